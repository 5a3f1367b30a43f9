"""RIN training recipes (Jabri et al. 2023), from the official pix2seq sweeps. Standard library only.

Shared by every RIN preset (configs/config_diffusion_base.py `optimization`): LAMB (TF-Addons)
with b1 0.9, b2 0.999, eps 1e-8, weight decay 0.01, 'bias,beta,gamma' excluded from weight decay
and from the layer adaptation (TF-Addons' default exclude_from_layer_adaptation), EMA 0.9999,
10k warmup steps from lr 0, cosine over part of the curve ("cosine@f", end_lr_factor 0). No
gradient clipping: pix2seq's global_clipnorm is passed to its AdamW branches, not to LAMB.
pix2seq initializes its EMA model separately; here the EMA starts at the initial weights.
"""

_LAMB = dict(optimizer="lamb", b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01, schedule="cosine", warmup=10_000,
             end_lr_factor=0.0, clip=None, ema=0.9999, adapt_1d=False)

_CIFAR10 = {"optim": dict(_LAMB, lr=3e-3, cosine_fraction=0.8), "batch": 256, "steps": 150_000,
            "source": "google-research/pix2seq configs/config_diffusion_cifar10.py (tape sweep: lamb, lr 3e-3, "
                      "cosine@0.8, warmup 10000, wd 1e-2, batch 256, 150k steps) + config_diffusion_base.py"}
_IMAGENET64 = {"optim": dict(_LAMB, lr=2e-3, cosine_fraction=0.7), "batch": 1024, "steps": 150_000,
               "source": "google-research/pix2seq configs/config_diffusion_imagenet64.py (tape sweep: lamb, lr 2e-3, "
                         "cosine@0.7, warmup 10000, wd 1e-2, batch 1024, 150k steps) + config_diffusion_base.py"}

RECIPES = {
    "rin-cifar10": _CIFAR10,
    "rin-imagenet64": _IMAGENET64,
    "rin-imagenet64-p4": _IMAGENET64,
    "*": dict(_CIFAR10, notes=("the rin-cifar10 recipe, for presets without an official config of their own",)),
}
