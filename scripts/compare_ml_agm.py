"""Compare diffbench's SongUNet with the official ones (apple/ml-agm, NVlabs/edm) on the same weights.

Not a test: it needs the official source. ml-agm is not on PyPI; the script reads its model file
from a checkout (and EDM's, optionally):

    git clone https://github.com/apple/ml-agm CHECKOUTS/ml-agm
    git clone https://github.com/NVlabs/edm CHECKOUTS/edm                 # optional
    python scripts/compare_ml_agm.py --ml-agm CHECKOUTS/ml-agm [--edm CHECKOUTS/edm] [--no-full]

(CHECKOUTS: any folder. diffbench must be importable: installed, or PYTHONPATH=. at the
repository root.)

Only torch, numpy (and jax for the Flax column) are needed: the official modules' one other
import (EDM's `persistence` decorator) is replaced by a stub. For each compared config it prints
both param counts, then copies randomly perturbed weights of our torch model into the official
SongUNet (same parameter names, strict load; the official `resample_filter` buffers are its own,
its Fourier `freqs` buffer gets ours) and prints the max error of our torch and Flax outputs
relative to the official output's scale, on random inputs and noise labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import torch

from architectures import registry
from bench.backends import torch_adapter as tb


def load_module(path: Path, name: str):
    """A model file with EDM's `persistence` import stubbed (under both its ml-agm and EDM names)."""
    persistence = types.SimpleNamespace(persistent_class=lambda cls: cls)
    for pkg in ("edm", "edm.torch_utils", "torch_utils"):
        sys.modules.setdefault(pkg, types.SimpleNamespace(__path__=[], persistence=persistence))
    sys.modules["edm.torch_utils.persistence"] = sys.modules["torch_utils.persistence"] = persistence
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kwargs(cfg) -> dict:
    return dict(model_channels=cfg.model_channels, channel_mult=list(cfg.channel_mult),
                channel_mult_emb=cfg.channel_mult_emb, num_blocks=cfg.num_blocks,
                attn_resolutions=list(cfg.attn_resolutions), dropout=cfg.dropout, label_dropout=0,
                embedding_type=cfg.embedding_type, channel_mult_noise=cfg.channel_mult_noise,
                encoder_type=cfg.encoder_type, resample_filter=list(cfg.resample_filter))


def agm_songunet(module, cfg):
    """ml-agm networks/edm/ncsnpp.py SongUNet(opt) from our config (as get_edm_NCSNpp_config sets it)."""
    model_config = NS(image_size=cfg.image_size, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
                      augment_dim=0, decoder_type="standard", **_kwargs(cfg))
    return module.SongUNet(NS(model_config=model_config, cond=cfg.num_classes > 0, cond_dim=cfg.num_classes))


def edm_songunet(module, cfg):
    """NVlabs/edm training/networks.py SongUNet(**kwargs) from our config."""
    return module.SongUNet(img_resolution=cfg.image_size, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
                           label_dim=cfg.num_classes, augment_dim=0, decoder_type="standard", **_kwargs(cfg))


def params(make, module, cfg) -> tuple[int, int]:
    with torch.device("meta"):
        theirs = sum(p.numel() for p in make(module, cfg).parameters())
    ours = tb.param_count(tb.build(registry.get("songunet"), cfg, abstract=True))
    return ours, theirs


def compare(make, module, cfg, batch: int, label: str) -> dict[str, float]:
    ours = tb.build(registry.get("songunet"), cfg, seed=0).model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    theirs = make(module, cfg).eval()
    state, mine = theirs.state_dict(), ours.state_dict()
    own = sorted(set(state) - set(mine))
    if set(mine) - set(state) or any(not k.endswith(("resample_filter", "map_noise.freqs")) for k in own):
        raise SystemExit(f"{label}: names differ: ours only {sorted(set(mine) - set(state))}, official only {own}")
    state.update(mine)
    if "map_noise.freqs" in state:
        state["map_noise.freqs"] = ours.frequencies().clone()
    theirs.load_state_dict(state, strict=True)

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, cfg.in_channels, cfg.image_size, cfg.image_size)).astype(np.float32))
    t = torch.from_numpy(rng.uniform(1e-3, 1.0, batch).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, cfg.num_classes, batch)) if cfg.num_classes else None
    onehot = None if y is None else torch.nn.functional.one_hot(y, cfg.num_classes).float()
    with torch.no_grad():
        official = theirs(x, t * cfg.time_scaling, onehot)
        mine_t = ours(x, t, y)
    scale = float(official.abs().max())
    errors = {"torch": float((mine_t - official).abs().max()) / scale, "flax": _flax_error(ours, cfg, x, t, y, official)}
    print(f"{label}: max |ours - official| / max |official|: torch {errors['torch']:.2e}, flax {errors['flax']:.2e}"
          f" (batch {batch}, output scale {scale:.3g})")
    return errors


def _flax_error(ours, cfg, x, t, y, official) -> float:
    import jax

    from architectures.songunet.songunet_flax import SongUNet
    from bench import convert

    net, xl = SongUNet(cfg), x.permute(0, 2, 3, 1).numpy()
    yl = None if y is None else y.numpy().astype(np.int32)
    variables = jax.eval_shape(lambda: net.init(jax.random.key(0), xl, t.numpy(), yl))
    params = convert.torch_to_flax(ours.state_dict(), variables)
    out = np.moveaxis(np.asarray(net.apply(params, xl, t.numpy(), yl)), -1, 1)
    return float(np.abs(out - official.numpy()).max()) / float(official.abs().max())


def small(cfg, **changes):
    """A config at tiny dimensions with the options of `cfg` (widths x 8 of 4 channels per group)."""
    return dataclasses.replace(cfg, image_size=16, model_channels=32, channel_mult=(1, 2), num_blocks=1,
                               attn_resolutions=(8,), **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ml-agm", required=True, type=Path, help="a checkout of apple/ml-agm")
    parser.add_argument("--edm", type=Path, help="a checkout of NVlabs/edm (optional)")
    parser.add_argument("--no-full", action="store_true", help="skip the full-size forward (56M params, batch 1)")
    args = parser.parse_args()
    agm = registry.get("phase_space").preset("agm-cifar10").config.network
    ncsnpp = registry.get("songunet").preset("ncsnpp-cifar10").config
    ddpmpp = registry.get("songunet").preset("ddpmpp-cifar10").config
    targets = [("ml-agm", agm_songunet, load_module(args.ml_agm / "networks/edm/ncsnpp.py", "agm_ncsnpp"))]
    if args.edm:
        targets.append(("edm", edm_songunet, load_module(args.edm / "training/networks.py", "edm_networks")))
    for source, make, module in targets:
        cases = [("agm-cifar10 backbone", agm)] if source == "ml-agm" else [("ncsnpp-cifar10", ncsnpp),
                                                                         ("ddpmpp-cifar10", ddpmpp)]
        for name, cfg in cases:
            ours, theirs = params(make, module, cfg)
            print(f"{source} {name}: params ours {ours:,}  official {theirs:,}  {'equal' if ours == theirs else 'DIFFERENT'}")
            compare(make, module, small(cfg, dropout=0.0), 2, f"{source} {name} options at tiny dims")
            compare(make, module, small(cfg, dropout=0.0, num_classes=10), 2, f"{source} {name} tiny, 10 classes")
            if not args.no_full:
                compare(make, module, cfg, 1, f"{source} {name} full size")


if __name__ == "__main__":
    main()
