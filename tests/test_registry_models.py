"""Contract tests generated from the registry: every architecture's tiny preset(s), both backends.

For each (entry, tiny preset): the torch model, with every weight moved off its init (zero-init
layers would make parity trivial), is transferred to Flax by bench/convert.py; both backends then
see the same canonical inputs and must agree to 1e-5 relative in float32, with equal param
counts, the contract's output shape and no NaN. An architecture added to the registry is
covered without writing a test.
"""

import numpy as np
import pytest
import torch

from architectures import registry
from bench import convert
from bench.backends import host
from bench.backends import jax_backend as jb
from bench.backends import torch_backend as tb

CASES = [(e.name, p) for e in registry.entries() if set(e.backends) == {"torch", "jax"}
         for p in e.load_presets() if p.endswith("-tiny")]
BATCH = 2


def _perturbed_torch(entry, config):
    built = tb.build(entry, config, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in built.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    built.model.eval()
    return built


def _canonical_inputs(config):
    arrays = host.random_inputs(config.input_shapes(BATCH), seed=3, num_classes=config.num_classes)
    if "latents" in arrays:  # non-zero latents so the self-conditioning path is exercised
        arrays["latents"] = np.random.default_rng(4).standard_normal(arrays["latents"].shape).astype(np.float32)
    return arrays


def _run(adapter, built, variables, arrays):
    a = adapter.device_arrays(built, arrays)
    args = (a["x"], a["t"], a.get("y"), a.get("latents"))
    if adapter is tb:
        with torch.no_grad():
            pred, latents = tb.denoiser(built, built.model, a.get("context"), a.get("context_mask"))(*args)
    else:
        pred, latents = jb.denoiser(built, variables, a.get("context"), context_mask=a.get("context_mask"))(*args)
    return adapter.to_numpy(pred), None if latents is None else adapter.to_numpy(latents)


def _close(a, b, what):
    if isinstance(a, list):  # one output per resolution (NestedUNet): each to its own scale
        assert len(a) == len(b), what
        for i, (ai, bi) in enumerate(zip(a, b)):
            _close(ai, bi, f"{what}[{i}]")
        return
    scale = max(float(np.abs(a).max()), 1e-6)
    err = float(np.abs(a - b).max()) / scale
    assert err < 1e-5, f"{what}: max error {err:.2e} of the output's scale"


@pytest.mark.parametrize("arch,preset", CASES)
def test_tiny_preset_contract_and_cross_backend_parity(arch, preset):
    entry = registry.get(arch)
    config = entry.preset(preset).config
    t_built = _perturbed_torch(entry, config)
    j_built = jb.build(entry, config, seed=0, abstract=True)
    assert tb.param_count(t_built) == jb.param_count(j_built)

    variables = convert.torch_to_flax(t_built.model.state_dict(), j_built.params)
    arrays = _canonical_inputs(config)
    t_pred, t_lat = _run(tb, t_built, None, arrays)
    j_pred, j_lat = _run(jb, j_built, variables, arrays)

    # one output per resolution (NestedUNet); phase space: [x, v] in, force out (data_shape)
    assert host.shape_tree(t_pred) == t_built.process.data_shape(host.shape_tree(arrays["x"]))
    for t_out, j_out in zip(*(p if isinstance(p, list) else [p] for p in (t_pred, j_pred))):
        assert np.isfinite(t_out).all() and np.isfinite(j_out).all()
        assert float(np.abs(t_out).max()) > 0, "perturbed weights gave an all-zero output"
    _close(t_pred, j_pred, f"{preset} prediction")
    assert (t_lat is None) == ("latents" not in entry.extras)
    if t_lat is not None:
        _close(t_lat, j_lat, f"{preset} latents")


def test_every_registered_architecture_is_covered():
    assert {arch for arch, _ in CASES} == {e.name for e in registry.entries()}
