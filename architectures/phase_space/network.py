"""The phase-space model's network: the backbone architecture named by the config, built from
config.network (2C in, C out). Functions, not classes, so the parameters keep the backbone's own
names and bench/convert.py transfers them unchanged."""

from __future__ import annotations

from architectures import registry


def torch_network(config):
    return registry.get(config.backbone).load_model_class("torch")(config.network)


def flax_network(config):
    return registry.get(config.backbone).load_model_class("jax")(config.network)


def forward_macs(config, batch: int, **kwargs) -> dict[str, int]:
    """The backbone's analytic count (one NFE = one force evaluation)."""
    return registry.get(config.backbone).load_flops()(config.network, batch, **kwargs)
