"""Phase-space model config and presets (AGM, Chen et al. 2023). Standard library only.

The model is a registry architecture (the backbone) whose network input is the phase state
[x, v] (2C channels) and whose output is the normalized force on v (C channels); the process
(architectures/phase_space/process.py) owns everything else. Which backbone, and its config,
are fields of the preset, so the harness never names one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from architectures import registry
from architectures.phase_space.process_config import PhaseSpaceProcessConfig
from architectures.registry import Preset
from architectures.songunet.config import SongUNetConfig
from architectures.unet.config import UNetConfig


def _tiny_network() -> UNetConfig:
    tiny = registry.get("unet2d").preset("unet2d-tiny").config
    return dataclasses.replace(tiny, in_channels=6, output_channels=3, num_classes=0)


def _tiny_songunet() -> SongUNetConfig:
    tiny = registry.get("songunet").preset("songunet-tiny").config
    return dataclasses.replace(tiny, in_channels=6, output_channels=3, num_classes=0)


@dataclass(frozen=True)
class PhaseSpaceConfig:
    backbone: str = "unet2d"  # registry architecture of the force network
    network: Any = field(default_factory=_tiny_network)  # its config: 2C in, C out
    process: PhaseSpaceProcessConfig = field(default_factory=PhaseSpaceProcessConfig)

    def __post_init__(self):
        entry = registry.get(self.backbone)  # RegistryError lists the valid names
        cls = entry.load_config_class()
        if not isinstance(self.network, cls):
            raise ValueError(f"network is a {type(self.network).__name__}; backbone {self.backbone!r} needs {cls.__name__}")
        shape = self.network.input_shapes(1)["x"][0]
        out = getattr(self.network, "out_channels", None)
        if shape[-1] % 2 or out != shape[-1] // 2:
            raise ValueError(f"network takes {shape[-1]} channels and returns {out}; the phase state [x, v] "
                             "needs 2C in and C out (e.g. in_channels=6, output_channels=3)")

    # what the harness reads from a config: the network's own call, labels, modality
    def input_shapes(self, batch: int) -> dict[str, tuple[tuple[int, ...], str]]:
        """The network call's inputs: x is the phase state [x, v] (the data has half its channels)."""
        return self.network.input_shapes(batch)

    def key_dims(self) -> dict:
        """What `diffbench describe` shows: the backbone's size and the sampler's NFE."""
        n, c = self.network, self.process
        dims = {f: getattr(n, f) for f in ("image_size", "model_channels", "channel_mult", "num_res_blocks", "num_blocks")
                if hasattr(n, f)}
        return {"backbone": self.backbone, **dims, "channels_in_out": (self.input_shapes(1)["x"][0][-1], n.out_channels),
                "sampler": c.sampler, "nfe": c.sample_steps, "hop_time": c.hop_time, "p": c.p, "k": c.k}

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    @property
    def modality(self) -> str:
        return self.network.modality


def _unet(**kw) -> UNetConfig:
    return UNetConfig(in_channels=6, output_channels=3, **kw)


def _songunet(**kw) -> SongUNetConfig:
    return SongUNetConfig(in_channels=6, output_channels=3, **kw)


_RELEASE = ("official configs/cifar10_config.py (p 3, k 0.2, t0 1e-5, gDDIM r 2, rev-quad) and scripts/release.sh "
            "(NFE 20 at T 0.9, --pred-x1)")

PRESETS: dict[str, Preset] = {
    "agm-cifar10": Preset(PhaseSpaceConfig(
        backbone="songunet",
        network=_songunet(image_size=32, model_channels=128, channel_mult=(2, 2, 2), num_blocks=4,
                          attn_resolutions=(16,), dropout=0.13, embedding_type="fourier", channel_mult_noise=2,
                          encoder_type="residual", resample_filter=(1, 3, 3, 1)),
        process=PhaseSpaceProcessConfig(sample_steps=20, hop_time=0.9)),
        _RELEASE + "; backbone: get_edm_NCSNpp_config, EDM's NCSN++ (networks/edm/ncsnpp.py SongUNet, "
        "56,405,891 params: C 128, mult 2,2,2, 4 blocks, attention at 16, dropout 0.13, fourier noise embedding, "
        "residual encoder, FIR 1,3,3,1, 6 in / 3 out), equal to it by weight transfer (scripts/compare_ml_agm.py)"),
    "agm-cifar10-adm": Preset(PhaseSpaceConfig(
        network=_unet(image_size=32, model_channels=128, channel_mult=(2, 2, 2), num_res_blocks=4,
                      attention_resolutions=(16,), num_heads=1, dropout=0.13),
        process=PhaseSpaceProcessConfig(sample_steps=20, hop_time=0.9)),
        _RELEASE + "; ours: the paper's NCSN++ (SongUNet) replaced by the registry's ADM U-Net with the same widths, "
        "depth and attention (54,235,139 params)"),
    "agm-imagenet64": Preset(PhaseSpaceConfig(
        network=_unet(image_size=64, model_channels=192, channel_mult=(1, 2, 3, 4), num_res_blocks=3,
                      attention_resolutions=(32, 16, 8), num_head_channels=64, use_scale_shift_norm=True,
                      resblock_updown=True, dropout=0.1),
        process=PhaseSpaceProcessConfig(sample_steps=20, hop_time=0.99)),
        "official configs/imagenet64_config.py (EDM's DhariwalUNet = ADM at 64: C 192, mult 1,2,3,4, 3 blocks, "
        "attention at 32,16,8, dropout 0.1), unconditional; sampled as the README's ImageNet64 command "
        "(NFE 20 at T 0.99, gDDIM, --pred-x1: FID 10.55; scripts/release.sh's ImageNet lines repeat CIFAR-10's)"),
    "agm-tiny": Preset(PhaseSpaceConfig(process=PhaseSpaceProcessConfig(sample_steps=5, hop_time=0.9)),
                       "ours (unet2d-tiny with 6 in / 3 out, unconditional; tests and smoke runs)"),
    "agm-songunet-tiny": Preset(PhaseSpaceConfig(backbone="songunet", network=_tiny_songunet(),
                                                 process=PhaseSpaceProcessConfig(sample_steps=5, hop_time=0.9)),
                                "ours (songunet-tiny with 6 in / 3 out, unconditional: agm-cifar10's backbone at "
                                "tiny size; suites/agm-nfe.yaml)"),
}
