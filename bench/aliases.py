"""The override names every family understands: `resolution`, `channels` and `frames`, so one
sweep (`matrix: {override: [{resolution: 32}, {resolution: 64}]}`) works across architectures
whatever each config calls the field. Standard library only.

    resolution  image_size (RIN, U-Nets), input_size (DiT), every level of a NestedUNet scaled
                (the outermost becomes the value), the backbone `network`'s field (phase space)
    channels    the data's channels: in_channels (U-Nets, DiT, NestedUNet), or the phase-space
                backbone's 2C in / C out; RIN's own field is already named `channels`
    frames      the clip length of video models (RIN, U-Nets already name it `frames`; the
                phase-space backbone's `network.frames`); image-only families have none

A config field of the same name always wins (an alias only applies where the field is missing).
"""

from __future__ import annotations

import dataclasses

ALIASES = ("resolution", "channels", "frames")


class AliasError(ValueError):
    """The family has no field the alias stands for; the message says what it does have."""


def _fields(config) -> set[str]:
    return {f.name for f in dataclasses.fields(config)}


def _is_config(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def targets(config) -> dict[str, str]:
    """alias -> the real override key(s) it sets on this config (for `diffbench describe`)."""
    out = {}
    for alias in ALIASES:
        if alias in _fields(config):
            continue
        try:
            out[alias] = ", ".join(_keys(config, alias))
        except AliasError:
            pass
    return out


def _keys(config, alias: str) -> list[str]:
    fields = _fields(config)
    if "network" in fields and _is_config(config.network):  # a backbone config inside (phase space)
        if alias == "channels":
            return ["network.in_channels", "network.output_channels"]
        if alias in _fields(config.network):
            return [f"network.{alias}"]
        return [f"network.{k}" for k in _keys(config.network, alias)]
    if alias == "resolution":
        for name in ("image_size", "input_size"):
            if name in fields:
                return [name]
        if "levels" in fields:
            return ["levels[*].resolution"]
    if alias == "channels" and "in_channels" in fields:
        return ["in_channels"]
    raise AliasError(f"{type(config).__name__} has no {alias} (fields: {', '.join(sorted(fields))})")


def apply(config, alias: str, value):
    """The config with the alias set (dataclasses.replace: the config's own checks run)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if alias == "frames" else 1):
        raise AliasError(f"{alias} must be an integer >= {0 if alias == 'frames' else 1}, got {value!r}")
    fields = _fields(config)
    if "network" in fields and _is_config(config.network):
        net = config.network
        if alias == "channels":  # the phase state [x, v]: 2C in, C out
            return dataclasses.replace(config, network=dataclasses.replace(net, in_channels=2 * value,
                                                                           output_channels=value))
        inner = dataclasses.replace(net, **{alias: value}) if alias in _fields(net) else apply(net, alias, value)
        return dataclasses.replace(config, network=inner)
    key = _keys(config, alias)[0]
    if key == "levels[*].resolution":
        return dataclasses.replace(config, levels=_scaled_levels(config.levels, value))
    return dataclasses.replace(config, **{key: value})


def _scaled_levels(levels, resolution: int):
    """Every level's side scaled so that the outermost is `resolution` (the nest keeps its ratios)."""
    top = levels[0].resolution
    sides = [level.resolution * resolution / top for level in levels]
    if any(s != int(s) for s in sides):
        raise AliasError(f"resolution {resolution}: the nest's sides {[lv.resolution for lv in levels]} scaled by "
                         f"{resolution}/{top} are not all integers")
    return tuple(dataclasses.replace(level, resolution=int(s)) for level, s in zip(levels, sides))
