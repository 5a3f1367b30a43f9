"""`diffbench describe NAME`: an architecture (by name or by one of its presets), its backends,
the exact keys its `override:` takes (and the family-independent aliases), and every preset's key
dimensions and provenance. Imports neither torch nor jax."""

from __future__ import annotations

import dataclasses


def describe_entry(name: str) -> dict:
    """An architecture by name, or the architecture owning a preset of that name."""
    from architectures import registry

    try:
        entry = registry.get(name)
    except registry.RegistryError:
        try:
            entry = registry.find_preset(name)
        except registry.RegistryError:
            known = [*registry.names(), *registry.all_presets()]
            raise registry.RegistryError(f"unknown architecture or preset {name!r}{registry.did_you_mean(name, known)}; "
                                         f"allowed: {', '.join(registry.names())} or a preset `diffbench list` prints"
                                         f"{registry.plugin_hint(missing=True)}") from None
    presets = {}
    for preset_name, preset in entry.load_presets().items():
        config = preset.config
        dims = config.key_dims() if hasattr(config, "key_dims") else dataclasses.asdict(config)
        presets[preset_name] = {"provenance": preset.provenance, "modality": config.modality, "key_dims": dims}
    from bench import aliases

    sample = next(iter(entry.load_presets().values())).config
    return {
        "name": entry.name,
        "description": entry.description,
        "backends": dict(entry.backends),
        "process": entry.process,
        "modalities": list(entry.modalities),
        "extras": list(entry.extras),
        "override_keys": override_keys(sample),
        "aliases": aliases.targets(sample),
        "presets": presets,
    }


def override_keys(config) -> list[str]:
    """The exact keys an `override:` takes for this config (nested configs as `field.{a, b}`)."""
    out = []
    for f in dataclasses.fields(config):
        if not f.init or f.name.startswith("_"):
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = [g.name for g in dataclasses.fields(value) if g.init and not g.name.startswith("_")]
            out.append(f"{f.name}.{{{', '.join(inner)}}}")
        else:
            out.append(f.name)
    return out


def format_describe(info: dict) -> str:
    lines = []
    lines.append(f"{info['name']}: {info['description']}")
    lines.append(f"  process: {info['process']}   modalities: {', '.join(info['modalities'])}   "
                 f"extras: {', '.join(info['extras']) or '-'}")
    for backend, ref in info["backends"].items():
        lines.append(f"  {backend:5s} {ref}")
    lines.append(f"  override keys: {', '.join(info['override_keys'])}")
    if info["aliases"]:
        lines.append("  aliases (any family): " + ", ".join(f"{a} -> {t}" for a, t in info["aliases"].items()))
    for name, preset in info["presets"].items():
        dims = ", ".join(f"{k}={v}" for k, v in preset["key_dims"].items() if not isinstance(v, dict))
        lines.append(f"  - {name} [{preset['modality']}] {dims}\n      provenance: {preset['provenance']}")
    return "\n".join(lines)
