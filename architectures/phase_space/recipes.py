"""AGM training recipes (Chen et al. 2023), from the official code apple/ml-agm. Standard library only.

AM/runner.py build_optimizer_sched: torch AdamW (betas 0.9, 0.999, eps 1e-8) with weight decay
opt.l2_norm (train.py default 0; no config sets it), CosineAnnealingLR(T_max=num_itr) to 0, damped
by pytorch_warmup's UntunedLinearWarmup (2 / (1 - b2) = 2000 steps); Runner.train: global-norm
gradient clipping opt.clip_grad, then torch_ema's ExponentialMovingAverage(decay=opt.ema) after
every step (train.py default 0.9999). The batch: configs' microbatch 64 on each of n_gpu_per_node
8 GPUs (DDP averages the gradients), 512 per step.
"""

_ADAMW = dict(optimizer="adamw", b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, schedule="cosine", warmup=2000,
              cosine_fraction=1.0, end_lr_factor=0.0, clip=1.0, ema=0.9999)

_SOURCE = ("apple/ml-agm AM/runner.py (AdamW, CosineAnnealingLR T_max num_itr, UntunedLinearWarmup, "
           "clip_grad_norm_, torch_ema) + train.py defaults (ema 0.9999, l2_norm 0) + ")
_NOTES = (
    "ml-agm damps a cosine over the whole run by the warmup factor min(1, (s + 1) / 2000); diffbench warms "
    "up from 0 over 2000 steps, then walks the cosine over the remaining steps (0.3% of a 600k-step run)",
    "torch_ema's default use_num_updates=True caps the decay at (1 + n) / (10 + n) for the first updates; "
    "diffbench's EMA decay is constant",
    "data: random horizontal flips (configs' xflip) are not applied by diffbench's data pipeline",
)

_CIFAR10 = {"optim": dict(_ADAMW, lr=1e-3), "batch": 512, "steps": 600_000,
            "source": _SOURCE + "configs/cifar10_config.py (lr 1e-3, clip_grad 1, microbatch 64 x 8 GPUs, "
                                "num_itr 600000); README: train.py --exp cifar10 --n-gpu-per-node 8",
            "notes": _NOTES}

RECIPES = {
    "agm-cifar10": _CIFAR10,
    "agm-cifar10-adm": dict(_CIFAR10, notes=(*_NOTES, "the CIFAR-10 recipe on the ADM backbone (not trained so "
                                                      "in the paper)")),
    "agm-imagenet64": {"optim": dict(_ADAMW, lr=2e-4), "batch": 512, "steps": 5_000_000,
                       "source": _SOURCE + "configs/imagenet64_config.py (lr 2e-4, clip_grad 1, microbatch 64 x 8 "
                                           "GPUs); README: --num-itr 5000000 (the config says 10000000)",
                       "notes": _NOTES},
    "*": dict(_CIFAR10, notes=(*_NOTES, "the agm-cifar10 recipe, for presets without an official config")),
}
