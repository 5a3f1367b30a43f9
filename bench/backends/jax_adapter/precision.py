"""Precision policies of the jax adapter (docs/precision.md), the same names as torch_adapter/precision.py.

Mixed precision is applied around the network call: float32 master parameters are cast to the
compute dtype inside the traced function (gradients flow back to float32 through the cast), the
inputs of every matmul/conv layer are cast as torch.autocast casts them (flax method
interception), and the output is cast back to float32 for the process math. bf16-pure stores the
parameters in bfloat16. fp16 training uses a dynamic loss scale (the GradScaler rule). Model
files never see any of this.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from bench.backends.framework_free import DeviceError, dtype_names

DTYPES = {"bf16": jnp.bfloat16, "fp16": jnp.float16, "bf16-pure": jnp.bfloat16}
MATMUL = {"fp32": "highest", "tf32": "tensorfloat32"}  # jax.default_matmul_precision while tracing
SCALE_INIT, SCALE_GROWTH, SCALE_INTERVAL = 2.0**16, 2.0, 2000  # torch.amp.GradScaler's defaults


@dataclass
class Policy:
    precision: str = "fp32"
    attention: str = "auto"
    memory_format: str = "contiguous"
    platform: str = "cpu"
    donate: bool = True  # the training step donates parameters, optimizer state and EMA to XLA

    @classmethod
    def make(cls, precision: str, attention: str, memory_format: str, device, donate: bool = True) -> Policy:
        if precision == "tf32" and device.platform != "gpu":
            raise DeviceError(f"precision 'tf32' needs an NVIDIA GPU (XLA's tensorfloat32 matmul precision), not "
                              f"{device.platform}; allowed there: fp32 or bf16")
        if precision == "fp16" and device.platform == "cpu":
            raise DeviceError("precision 'fp16' with jax is not supported on CPU (XLA:CPU has no float16 dot_general "
                              "with float32 accumulation, 'F16_F16_F32'); use bf16 on CPU, or a GPU")
        return cls(precision, attention, memory_format, device.platform, bool(donate))

    def _cast(self, tree, dtype):
        return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    def prepare(self, variables):
        """Parameters as the policy stores them: bf16 for bf16-pure, float32 otherwise."""
        return self._cast(variables, jnp.bfloat16) if self.precision == "bf16-pure" else variables

    def network(self, variables, args: dict):
        """(variables, inputs) as the network computes with them inside the traced function:
        parameters in the compute dtype, inputs as given (the linear layers cast them, see
        `autocast`). The time input stays float32, as under torch.autocast: t * 1000 in bfloat16
        would move the sinusoidal embedding's fast frequencies by whole periods."""
        if self.precision not in DTYPES:
            return variables, args
        return self._cast(variables, DTYPES[self.precision]), args

    @contextlib.contextmanager
    def autocast(self):
        """torch.autocast for Flax: the float inputs of every matmul/conv layer (Dense, DenseGeneral,
        Conv, ConvTranspose, Einsum) are cast to the compute dtype, by flax's method interception;
        everything else (norms, softmax inside attention, the time embedding) runs in the dtype
        its inputs have. No model file changes."""
        if self.precision not in DTYPES:
            yield
            return
        import flax.linen as nn

        dtype = DTYPES[self.precision]
        linear = (nn.Dense, nn.DenseGeneral, nn.Conv, nn.ConvTranspose, nn.Einsum)

        def cast(a):
            return a.astype(dtype) if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating) else a

        def interceptor(next_fun, args, kwargs, context):
            if isinstance(context.module, linear) and context.method_name == "__call__":
                args, kwargs = tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(interceptor):
            yield

    @staticmethod
    def output(y):
        return jax.tree.map(lambda a: a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a, y)

    @contextlib.contextmanager
    def tracing(self):
        """Around lowering: XLA's matmul precision (fp32: highest, tf32: tensorfloat32 on GPU)."""
        with jax.default_matmul_precision(MATMUL.get(self.precision, "default")):
            yield

    # -- fp16 loss scaling ---------------------------------------------------------------------
    def initial_scale(self):
        return None if self.precision != "fp16" else {"scale": jnp.float32(SCALE_INIT), "good": jnp.int32(0)}

    @staticmethod
    def unscale(grads, state):
        """(grads / scale, all finite?, next state): halve on overflow, grow after INTERVAL good steps."""
        grads = jax.tree.map(lambda g: g / state["scale"], grads)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        good = jnp.where(finite, state["good"] + 1, 0)
        grow = good >= SCALE_INTERVAL
        scale = jnp.where(finite, jnp.where(grow, state["scale"] * SCALE_GROWTH, state["scale"]),
                          jnp.maximum(state["scale"] / SCALE_GROWTH, 1.0))
        return grads, finite, {"scale": scale, "good": jnp.where(grow, 0, good)}

    def describe(self) -> dict:
        return {"precision": self.precision, "attention": self.attention, "memory_format": self.memory_format,
                **dtype_names(self.precision),
                "method": {"fp32": "float32, jax.default_matmul_precision('highest')",
                           "tf32": "jax.default_matmul_precision('tensorfloat32')",
                           "bf16": "params and inputs cast to bfloat16 inside the jitted step, float32 master",
                           "fp16": "params and inputs cast to float16, dynamic loss scale, float32 master",
                           "bf16-pure": "params stored in bfloat16"}[self.precision],
                # set while the whole step (forward, backward, optimizer) is traced and lowered
                "backend_flags": {"default_matmul_precision": MATMUL.get(self.precision, "default")},
                "donate": self.donate}
