"""Compare diffbench's NestedUNet with the official one (apple/ml-mdm) on the same weights.

Not a test: it needs the official source. The `ml-mdm` 0.1.0 package on PyPI is a 2 kB
placeholder without the models, so the script reads the two model files from a checkout:

    git clone https://github.com/apple/ml-mdm /tmp/ml-mdm      # any commit with ml-mdm-matryoshka/
    python scripts/compare_ml_mdm.py --ml-mdm /tmp/ml-mdm/ml-mdm-matryoshka [--full mdm-256]

Only torch, numpy and einops are needed (all diffbench dependencies): the official modules'
other imports (the config registry, S3 helpers, torchinfo) are replaced by stubs, since the
models use nothing from them. For every official preset it prints both param counts (built on
the meta device); then it copies randomly perturbed weights of our torch model into ml-mdm's
NestedUNet (names mapped, shapes checked, strict load) and prints the max error of every
resolution's output, at tiny dimensions and at one full-size preset at batch 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from architectures import registry
from architectures.nested_unet.config import NestedUNetConfig
from bench.backends import torch_adapter as tb

TOKENS, WIDTH = 16, 2048


def load_official(root: Path):
    """ml_mdm.models.unet and .nested_unet from a checkout, with stubs for unused imports."""
    stub = lambda name, **attrs: sys.modules.setdefault(name, types.SimpleNamespace(__name__=name, **attrs))
    ident = lambda *a, **k: (lambda cls: cls)
    stub("ml_mdm", __path__=[])
    sys.modules["ml_mdm.config"] = types.SimpleNamespace(register_model_config=ident, register_model=ident)
    sys.modules["ml_mdm.s3_helpers"] = types.SimpleNamespace()
    sys.modules["ml_mdm.utils"] = types.SimpleNamespace(fix_old_checkpoints=types.SimpleNamespace())
    sys.modules["ml_mdm.utils.fix_old_checkpoints"] = sys.modules["ml_mdm.utils"].fix_old_checkpoints
    sys.modules["torchinfo"] = types.SimpleNamespace(summary=None)
    sys.modules["ml_mdm"].config = sys.modules["ml_mdm.config"]
    sys.modules["ml_mdm"].s3_helpers = sys.modules["ml_mdm.s3_helpers"]
    sys.modules["ml_mdm"].utils = sys.modules["ml_mdm.utils"]
    mods = {}
    for name in ("unet", "nested_unet"):
        spec = importlib.util.spec_from_file_location(f"ml_mdm.models.{name}", root / "ml_mdm" / "models" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        mods[name] = module
    return mods["unet"], mods["nested_unet"]


def official_config(unet, nested, cfg: NestedUNetConfig, index: int = 0):
    """The ml-mdm (Nested)UNetConfig of our level `index` (conditioning_feature_dim set as
    train_parallel.py does, to the language model's width)."""
    lv = cfg.levels[index]
    levels = [i for i, n in enumerate(lv.attention_layers) if n] if lv.attention_layers else []
    innermost = index == len(cfg.levels) - 1
    kw = dict(num_resnets_per_resolution=list(lv.num_resnets), attention_levels=levels,
              num_attention_layers=list(lv.attention_layers or [0] * len(lv.channels)),
              resolution_channels=list(lv.channels), temporal_dim=lv.temporal_dim or None,
              conditioning_feature_dim=cfg.cond_dim if index == 0 else -1,
              conditioning_feature_proj_dim=cfg.cond_proj_dim if innermost else -1,
              masked_cross_attention=int(cfg.masked_cross_attention), skip_mid_blocks=not lv.mid_blocks,
              skip_cond_emb=not innermost, nesting=index > 0, micro_conditioning=f"scale:{lv.resolution}",
              resnet_config=unet.ResNetConfig(num_groups_norm=cfg.norm_groups, dropout=0.0,
                                              use_attention_ffn=lv.attention_ffn))
    if innermost:
        return unet.UNetConfig(**kw)
    return nested.NestedUNetConfig(**kw, inner_config=official_config(unet, nested, cfg, index + 1),
                                   skip_normalization=not lv.normalize_input, skip_inner_unet_input=False)


def official_model(unet, nested, cfg: NestedUNetConfig):
    oc = official_config(unet, nested, cfg)
    cls = unet.UNet if len(cfg.levels) == 1 else nested.NestedUNet
    return cls(cfg.in_channels, cfg.in_channels, oc)


_RENAMES = [(r"^time_emb\.fc_in", "temb_layer1"), (r"^time_emb\.fc_out", "temb_layer2"),
            (r"^res_emb\.fc_in", "cond_layers.scale.0"), (r"^res_emb\.fc_out", "cond_layers.scale.1"),
            (r"^cond_proj", "lm_proj"), (r"^down\.", "down_blocks."), (r"^up\.", "up_blocks."),
            (r"^mid\.", "mid_blocks."), (r"\.skip\.", ".conv3."), (r"\.ffn_norm\.", ".ffn.0."),
            (r"\.ffn_in\.", ".ffn.1."), (r"\.ffn_out\.", ".ffn.3.")]


def official_name(name: str) -> str:
    prefix = ""
    while name.startswith("inner."):
        prefix, name = prefix + "inner_unet.", name[len("inner."):]
    for pattern, repl in _RENAMES:
        name = re.sub(pattern, repl, name)
    return prefix + name


def compare(unet, nested, cfg: NestedUNetConfig, batch: int, label: str) -> list[float]:
    entry = registry.get("nested_unet")
    ours = tb.build(entry, cfg, seed=0).model.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    theirs = official_model(unet, nested, cfg).eval()
    state = {official_name(k): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state, strict=True)
    rng = np.random.default_rng(0)
    xs = [torch.from_numpy(rng.standard_normal((batch, cfg.in_channels, r, r)).astype(np.float32))
          for r in cfg.resolutions]
    k = torch.from_numpy(rng.integers(0, 1000, batch).astype(np.float32))
    context = torch.from_numpy(rng.standard_normal((batch, cfg.cond_tokens, cfg.cond_dim)).astype(np.float32))
    mask = torch.ones(batch, cfg.cond_tokens)
    mask[:, cfg.cond_tokens // 2:] = 0
    with torch.no_grad():
        mine = ours(xs, k / 1000.0, context=context, context_mask=mask)
        official = theirs(xs if len(xs) > 1 else xs[0], k, context, mask)
    official = official if isinstance(official, list) else [official]
    errors = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(mine, official)]
    print(f"{label}: max |ours - ml-mdm| / max |ml-mdm| per resolution {cfg.resolutions}: "
          + ", ".join(f"{e:.2e}" for e in errors))
    return errors


def small_config() -> NestedUNetConfig:
    """mdm-tiny's nest at widths ml-mdm can build (its attention GroupNorm has 32 groups)."""
    tiny = registry.get("nested_unet").preset("mdm-tiny").config
    levels = tuple(replace(lv, channels=tuple(2 * c for c in lv.channels), temporal_dim=128 if lv.temporal_dim else 0)
                   for lv in tiny.levels)
    return replace(tiny, levels=levels, norm_groups=32, num_heads=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ml-mdm", required=True, type=Path, help="the ml-mdm-matryoshka folder of a checkout")
    parser.add_argument("--full", default="mdm-256", help="full-size preset compared at batch 1 ('' to skip)")
    args = parser.parse_args()
    torch.manual_seed(0)
    unet, nested = load_official(args.ml_mdm)
    entry = registry.get("nested_unet")
    for name, preset in entry.load_presets().items():
        if preset.config.num_classes or name == "mdm-tiny":
            continue  # no official class-conditional model; mdm-tiny's widths need norm_groups < 32
        with torch.device("meta"):
            theirs = sum(p.numel() for p in official_model(unet, nested, preset.config).parameters())
        ours = tb.param_count(tb.build(entry, preset.config, abstract=True))
        print(f"{name}: params ours {ours:,}  ml-mdm {theirs:,}  {'equal' if ours == theirs else 'DIFFERENT'}")
    compare(unet, nested, small_config(), 2, "mdm-tiny dims (widths x2)")
    if args.full:
        compare(unet, nested, entry.preset(args.full).config, 1, f"{args.full} (batch 1)")


if __name__ == "__main__":
    main()
