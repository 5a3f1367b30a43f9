"""The architecture registry: one table, name -> entry.

Every string that points at code is a lazy "module:attribute" reference, so listing the
registry imports neither torch nor jax. Config modules import only the standard library, so
presets can be read without a framework too.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from architectures.plugin_failures import failure_hint

BACKENDS = ("torch", "jax")
PLUGINS_ENV = "DIFFBENCH_PLUGINS"
MODALITIES = ("image", "video")


class RegistryError(ValueError):
    """A bad registry name or entry; the message lists what is valid."""


@dataclass(frozen=True)
class Preset:
    config: Any  # a frozen config dataclass instance
    provenance: str  # "official config <file>", "paper <table>", "not verified", "ours"


@dataclass(frozen=True)
class Entry:
    name: str
    config: str  # "module:ConfigClass" (stdlib-only module)
    presets: str  # "module:PRESETS", a dict name -> Preset
    backends: dict[str, str]  # backend -> "module:Class"; one backend is allowed (parity checks skipped)
    process: str  # process family, a key of PROCESSES
    flops: str  # "module:function": analytic forward count, see docs/adding-an-architecture.md
    modalities: tuple[str, ...] = ("image",)
    extras: tuple[str, ...] = ()  # call extras beyond (x, t, y): "latents", "context", "context_mask"
    description: str = ""
    test_only: bool = False  # registered by the tests, never listed as shipped
    recipes: str = ""  # "module:RECIPES": paper training recipes per preset (docs/training.md)

    def __post_init__(self):
        if not self.backends:
            raise RegistryError(f"entry {self.name!r}: no backend; allowed: one or both of {list(BACKENDS)}")
        unknown = set(self.backends) - set(BACKENDS)
        if unknown:
            raise RegistryError(f"entry {self.name!r}: unknown backend(s) {sorted(unknown)}; allowed: {list(BACKENDS)}")
        bad = set(self.modalities) - set(MODALITIES)
        if bad:
            raise RegistryError(f"entry {self.name!r}: unknown modality {sorted(bad)}; allowed: {list(MODALITIES)}")

    def load_config_class(self):
        return resolve(self.config)

    def load_presets(self) -> dict[str, Preset]:
        return resolve(self.presets)

    def preset(self, name: str) -> Preset:
        presets = self.load_presets()
        if name not in presets:
            raise RegistryError(f"unknown preset {name!r} of {self.name!r}{did_you_mean(name, presets)}; allowed: "
                                f"{', '.join(sorted(presets))}{plugin_hint(missing=True)}")
        return presets[name]

    def load_model_class(self, backend: str):
        if backend not in self.backends:
            raise RegistryError(f"{self.name!r} has no {backend!r} backend; allowed: {', '.join(sorted(self.backends))}")
        return resolve(self.backends[backend])

    def load_flops(self):
        return resolve(self.flops)


def resolve(ref: str):
    """Import "package.module:attr" and return the attribute."""
    module, _, attr = ref.partition(":")
    if not attr:
        raise RegistryError(f"bad reference {ref!r}: expected 'module:attribute'")
    return getattr(importlib.import_module(module), attr)


# Process families: name -> "module:Class" of the process (written once for both backends).
PROCESSES = {
    "gaussian": "architectures.processes.gaussian:GaussianProcess",
    "multires": "architectures.processes.multires:MultiResProcess",  # Matryoshka Diffusion: x is a list
    "phase_space": "architectures.phase_space.process:PhaseSpaceProcess",
}

_TABLE: dict[str, Entry] = {}


def process_class(name: str):
    """The process class of a family (see architectures/processes/__init__.py for its methods)."""
    if name not in PROCESSES:
        raise RegistryError(f"unknown process {name!r}; allowed: {sorted(PROCESSES)}")
    return resolve(PROCESSES[name])


def register(entry: Entry) -> Entry:
    if entry.name in _TABLE:
        raise RegistryError(f"architecture {entry.name!r} is registered twice")
    if entry.process not in PROCESSES:
        raise RegistryError(f"entry {entry.name!r}: unknown process {entry.process!r}; allowed: {sorted(PROCESSES)}")
    _TABLE[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """For tests that register temporary architectures."""
    _TABLE.pop(name, None)


def get(name: str) -> Entry:
    if name not in _TABLE:
        raise RegistryError(f"unknown architecture {name!r}{did_you_mean(name, names())}; allowed: "
                            f"{', '.join(names())}{plugin_hint(missing=True)}")
    return _TABLE[name]


def names(include_test_only: bool = False) -> list[str]:
    return sorted(n for n, e in _TABLE.items() if include_test_only or not e.test_only)


def entries(include_test_only: bool = False) -> list[Entry]:
    return [_TABLE[n] for n in names(include_test_only)]


def plugin_hint(missing: bool = False) -> str:
    """Plugins that failed to import; with `missing`, else a reminder that plugins must be loaded."""
    hint = failure_hint()
    if hint or not missing:
        return hint
    return "; a name from a plugin needs it loaded: --plugins MODULE or DIFFBENCH_PLUGINS"


def did_you_mean(name: str, candidates) -> str:
    """' (did you mean 'rin-tiny'?)' for a near miss, else ''."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def all_presets() -> list[str]:
    return sorted({p for e in entries(include_test_only=True) for p in e.load_presets()})


def find_preset(preset: str) -> Entry:
    """The entry that owns a preset name (preset names are unique across the registry)."""
    for entry in entries(include_test_only=True):
        if preset in entry.load_presets():
            return entry
    raise RegistryError(f"unknown preset {preset!r}{did_you_mean(preset, all_presets())}: no architecture has it; "
                        f"allowed: the presets `diffbench list` prints{plugin_hint(missing=True)}")


def _standard(name: str, package: str, config: str, model: str, presets: str = "PRESETS", recipes: str = "",
              **fields) -> Entry:
    """An entry laid out the standard way (docs/adding-an-architecture.md): architectures/<package>/
    config.py (the config class and its presets), <package>_torch.py and <package>_flax.py (the same
    model class), flops.py (forward_macs) and recipes.py; `presets` and `recipes` name the tables."""
    base = f"architectures.{package}"
    return Entry(name=name, config=f"{base}.config:{config}", presets=f"{base}.config:{presets}",
                 backends={"torch": f"{base}.{package}_torch:{model}", "jax": f"{base}.{package}_flax:{model}"},
                 flops=f"{base}.flops:forward_macs", recipes=f"{base}.recipes:{recipes}" if recipes else "", **fields)


register(_standard(
    "rin", "rin", "RINConfig", "RIN", recipes="RECIPES",
    process="gaussian",
    modalities=("image", "video"),
    extras=("latents", "context"),
    description="Recurrent Interface Networks (Jabri et al. 2023) with latent self-conditioning",
))

register(_standard(
    "unet2d", "unet", "UNetConfig", "UNet", presets="PRESETS_2D", recipes="RECIPES_2D",
    process="gaussian",
    modalities=("image",),
    description="ADM U-Net (Dhariwal & Nichol 2021), guided-diffusion UNetModel",
))

register(_standard(
    "unet3d", "unet", "UNetConfig", "UNet", presets="PRESETS_3D", recipes="RECIPES_3D",
    process="gaussian",
    modalities=("video",),
    extras=("context",),
    description="Space-time video U-Net (Ho et al. 2022): 1x3x3 convs, spatial + temporal attention",
))

register(_standard(
    "nested_unet", "nested_unet", "NestedUNetConfig", "NestedUNet",
    process="multires",
    modalities=("image",),
    extras=("context", "context_mask"),  # conditioning tokens (B, L, D) + mask (B, L); x in and out: one per resolution
    description="NestedUNet, Matryoshka Diffusion (Gu et al. 2024): nested U-Nets, one prediction per resolution",
))

register(_standard(
    "songunet", "songunet", "SongUNetConfig", "SongUNet",
    process="gaussian",
    modalities=("image",),
    description="DDPM++/NCSN++ U-Net (Song et al. 2021) as EDM's SongUNet; AGM's CIFAR-10 backbone",
))

register(Entry(  # one network module for both backends: not the standard layout
    name="phase_space",
    config="architectures.phase_space.config:PhaseSpaceConfig",
    presets="architectures.phase_space.config:PRESETS",
    backends={"torch": "architectures.phase_space.network:torch_network",
              "jax": "architectures.phase_space.network:flax_network"},
    process="phase_space",
    flops="architectures.phase_space.network:forward_macs",
    modalities=("image",),
    description="AGM (Chen et al. 2023): phase stochastic bridge, force net on [x, v], gDDIM + sampling-hop",
    recipes="architectures.phase_space.recipes:RECIPES",
))

register(_standard(
    "dit", "dit", "DiTConfig", "DiT",
    process="gaussian",
    modalities=("image",),
    description="Diffusion Transformer (Peebles & Xie 2023): patchify, adaLN-Zero blocks, learned sigma",
))
