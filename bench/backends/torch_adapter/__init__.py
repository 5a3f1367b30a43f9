"""The PyTorch adapter: the one place the harness touches torch devices, RNG, compile and device
memory (torch threads: also pin_threads' environment, bench/backends/threads.py).

One module per role, the same names as jax_adapter/: device (devices, threads, memory), timing
(sync, CUDA events, torch.compile's first call), arrays (inputs to and from the device),
building (model, denoiser), sampling, optimizer, training (Trainer, timed train step), weights
(checkpoints), precision (the case's precision / kernel / memory-format policy). Models take
channels-first tensors; inputs are drawn in the canonical channels-last layout
(bench/backends/framework_free.py) and transposed here, outside any timed region. The network
runs under the case's precision policy; the process math in float32.
"""

from bench.backends.torch_adapter.arrays import all_finite, device_arrays, make_inputs, to_numpy
from bench.backends.torch_adapter.building import build, denoiser, param_count
from bench.backends.torch_adapter.device import (NAME, device_description, peak_memory, peak_memory_span,
                                                 reset_peak_memory, resolve_device, set_threads)
from bench.backends.torch_adapter.optimizer import clip_global_norm, ema_update, make_optimizer
from bench.backends.torch_adapter.precision import Policy
from bench.backends.torch_adapter.sampling import generate, make_sample_step, sampling_run
from bench.backends.torch_adapter.timing import device_timer, sync, sync_device
from bench.backends.torch_adapter.training import Trainer, make_train_step, restored
from bench.backends.torch_adapter.weights import export_weights, load_weights

BACKEND_ONLY = ("clip_global_norm", "sync_device")  # public here, with no jax twin
__all__ = ["NAME", "Policy", "Trainer", "all_finite", "build", "clip_global_norm", "denoiser", "device_arrays",
           "device_description", "device_timer", "ema_update", "export_weights", "generate", "load_weights",
           "make_inputs", "make_optimizer", "make_sample_step", "make_train_step", "param_count", "peak_memory",
           "peak_memory_span", "reset_peak_memory", "resolve_device", "restored", "sampling_run", "set_threads",
           "sync", "sync_device", "to_numpy"]
