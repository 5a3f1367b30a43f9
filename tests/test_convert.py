"""bench/convert.py: names, layouts (Dense, Conv 2D/3D, norms, embeddings, plain params), round trips, errors."""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn

from architectures.rin import rin_flax, rin_torch
from architectures.rin.config import PRESETS
from bench.convert import ConversionError, flax_key, flax_to_torch, torch_key, torch_to_flax

TINY = PRESETS["rin-tiny"].config


class TorchNet(nn.Module):
    """One of each layout the converter knows, with non-square kernels so a wrong axis order shows."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, (3, 2))
        self.gn = nn.GroupNorm(2, 8, eps=1e-5)
        self.conv3d = nn.Conv3d(3, 8, (2, 3, 1))
        self.emb = nn.Embedding(10, 8)
        self.pos = nn.Parameter(torch.randn(8))
        self.layers = nn.ModuleList(nn.Linear(8, 8 if i else 6) for i in range(2))
        self.ln = nn.LayerNorm(6, eps=1e-5)

    def forward(self, img, vid, ids):  # channels-first
        a = self.gn(self.conv(img)).mean((2, 3))
        b = self.conv3d(vid).mean((2, 3, 4))
        h = a + b + self.emb(ids) + self.pos
        return self.ln(self.layers[0](self.layers[1](h)))


class FlaxNet(fnn.Module):
    @fnn.compact
    def __call__(self, img, vid, ids):  # channels-last
        a = fnn.GroupNorm(num_groups=2, epsilon=1e-5, name="gn")(fnn.Conv(8, (3, 2), padding="VALID", name="conv")(img))
        b = fnn.Conv(8, (2, 3, 1), padding="VALID", name="conv3d")(vid)
        h = a.mean((1, 2)) + b.mean((1, 2, 3)) + fnn.Embed(10, 8, name="emb")(ids)
        h = h + self.param("pos", fnn.initializers.normal(1.0), (8,))
        h = fnn.Dense(6, name="layers_0")(fnn.Dense(8, name="layers_1")(h))
        return fnn.LayerNorm(epsilon=1e-5, name="ln")(h)


def net_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    img = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    vid = rng.standard_normal((2, 4, 5, 3, 3)).astype(np.float32)
    ids = np.array([3, 9])
    return img, vid, ids


def torch_forward(model, img, vid, ids):
    with torch.no_grad():
        return model(torch.from_numpy(img).movedim(-1, 1), torch.from_numpy(vid).movedim(-1, 1),
                     torch.from_numpy(ids)).numpy()


def randomized_torch_net(seed: int = 0) -> TorchNet:
    torch.manual_seed(seed)
    model = TorchNet()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))  # move norms and biases off their 1 / 0 init
    return model


def abstract_flax_params():
    img, vid, ids = net_inputs()
    return jax.eval_shape(lambda: FlaxNet().init(jax.random.PRNGKey(0), img, vid, ids))


def test_names_map_to_one_canonical_key():
    assert torch_key("blocks.0.process.1.attn.q.weight") == "blocks_0/process_1/attn/q/weight"
    assert flax_key(("blocks_0", "process_1", "attn", "q", "kernel")) == "blocks_0/process_1/attn/q/weight"
    assert flax_key(("ln", "scale")) == torch_key("ln.weight")
    assert flax_key(("emb", "embedding")) == torch_key("emb.weight")
    assert flax_key(("pos_emb",)) == torch_key("pos_emb")


def test_torch_to_flax_layouts_give_equal_outputs():
    model = randomized_torch_net()
    params = torch_to_flax(model.state_dict(), abstract_flax_params())
    img, vid, ids = net_inputs()
    expected = torch_forward(model, img, vid, ids)
    np.testing.assert_allclose(np.asarray(FlaxNet().apply(params, img, vid, ids)), expected, rtol=1e-5, atol=1e-5)


def test_flax_to_torch_layouts_give_equal_outputs():
    rng = np.random.default_rng(1)
    params = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.standard_normal(s.shape), s.dtype), abstract_flax_params())
    model = TorchNet()
    model.load_state_dict(flax_to_torch(params, model), strict=True)
    img, vid, ids = net_inputs()
    expected = np.asarray(FlaxNet().apply(params, img, vid, ids))
    np.testing.assert_allclose(torch_forward(model, img, vid, ids), expected, rtol=1e-5, atol=1e-5)


def rin_abstract_params():
    args = {k: jax.ShapeDtypeStruct(s, jnp.dtype(d)) for k, (s, d) in TINY.input_shapes(1).items()}
    return jax.eval_shape(lambda a: rin_flax.RIN(TINY).init(jax.random.PRNGKey(0), **a), args)


def test_rin_round_trip_is_exact():
    torch.manual_seed(0)
    source = rin_torch.RIN(TINY)
    params = torch_to_flax(source.state_dict(), rin_abstract_params())
    assert set(params) == {"params"} and "blocks_1" in params["params"]
    unwrapped = torch_to_flax(source.state_dict(), rin_abstract_params()["params"])
    assert "blocks_1" in unwrapped
    torch.manual_seed(1)
    target = rin_torch.RIN(TINY)
    target.load_state_dict(flax_to_torch(params, target.state_dict()), strict=True)
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, target.state_dict()[name]), name


def test_errors_list_every_unmatched_or_misshaped_parameter():
    state = randomized_torch_net().state_dict()
    state["extra.weight"] = torch.zeros(3)
    state["conv.bias"] = torch.zeros(5)
    template = jax.tree_util.tree_map(lambda a: a, abstract_flax_params())
    del template["params"]["ln"]["bias"]
    with pytest.raises(ConversionError) as info:
        torch_to_flax(state, template)
    message = str(info.value)
    assert "3 parameter(s)" in message
    for fragment in ("extra.weight", "conv/bias -> conv.bias", "ln.bias"):
        assert fragment in message, message
    with pytest.raises(ConversionError, match="ln.bias"):
        flax_to_torch(template, TorchNet())


def test_bfloat16_on_either_side():
    model = randomized_torch_net().to(torch.bfloat16)
    params = torch_to_flax(model.state_dict(), abstract_flax_params())
    assert params["params"]["conv"]["kernel"].dtype == jnp.float32
    back = flax_to_torch(jax.tree_util.tree_map(lambda a: a.astype(jnp.bfloat16), params), model)
    for name, tensor in model.state_dict().items():
        assert back[name].dtype == torch.bfloat16 and torch.equal(back[name], tensor), name
