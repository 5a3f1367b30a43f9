"""The JAX/Flax adapter: the one place the harness touches jax devices, RNG, jit and device
memory (XLA's threads are set before jax starts: bench/backends/threads.py pin_threads).

One module per role, the same names as torch_adapter/: device (devices, threads, PRNG, memory),
timing (block_until_ready, the ahead-of-time compile and its cache state), arrays (inputs to and
from the device), building (model, denoiser), sampling, optimizer, training (Trainer, timed train
step), weights (checkpoints), precision (the case's precision policy). Arrays stay in the
canonical channels-last layout. The network runs under the case's precision policy; the process
math in float32. Steps are compiled ahead of time (jit(f).lower(...).compile()) and the compile
time is reported apart from the step; compile=False runs op by op (no jit).
"""

from bench.backends.jax_adapter.arrays import all_finite, device_arrays, make_inputs, to_numpy
from bench.backends.jax_adapter.building import build, denoiser, param_count
from bench.backends.jax_adapter.device import (NAME, device_description, peak_memory, peak_memory_span,
                                               reset_peak_memory, resolve_device, set_threads)
from bench.backends.jax_adapter.optimizer import ema_update, make_optimizer
from bench.backends.jax_adapter.precision import Policy
from bench.backends.jax_adapter.sampling import generate, make_sample_step, sampling_run
from bench.backends.jax_adapter.timing import FAST_COMPILE, device_timer, sync
from bench.backends.jax_adapter.training import Trainer, make_train_step, restored
from bench.backends.jax_adapter.weights import export_weights, load_weights

BACKEND_ONLY = ("FAST_COMPILE",)  # public here, with no torch twin
__all__ = ["FAST_COMPILE", "NAME", "Policy", "Trainer", "all_finite", "build", "denoiser", "device_arrays",
           "device_description", "device_timer", "ema_update", "export_weights", "generate", "load_weights",
           "make_inputs", "make_optimizer", "make_sample_step", "make_train_step", "param_count", "peak_memory",
           "peak_memory_span", "reset_peak_memory", "resolve_device", "restored", "sampling_run", "set_threads",
           "sync", "to_numpy"]
