"""U-Net training recipes: DDPM (Ho et al. 2020), iDDPM (Nichol & Dhariwal 2021) and ADM
(Dhariwal & Nichol 2021), from the official code. Standard library only.

DDPM (hojonathanho/diffusion): Adam lr 2e-4, batch 128, warmup 5000, grad clip 1.0, EMA 0.9999.
iDDPM / ADM (improved-diffusion and guided-diffusion train_util.py): torch AdamW, weight decay 0.0,
no warmup, no clipping, constant lr (lr_anneal_steps=0), EMA rate 0.9999 (image_train.py defaults).
"""

_ADAMW = dict(optimizer="adamw", b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, schedule="constant", warmup=0,
              clip=None, ema=0.9999)

_IDDPM_SRC = "openai/improved-diffusion README (TRAIN_FLAGS) + guided_diffusion/train_util.py (AdamW, wd 0, ema 0.9999)"

RECIPES_2D = {
    "ddpm-cifar10": {"optim": dict(_ADAMW, lr=2e-4, warmup=5000, clip=1.0), "batch": 128, "steps": None,
                     "source": "hojonathanho/diffusion scripts/run_cifar.py train() (adam, total_bs 128, lr 2e-4, "
                               "warmup 5000, grad_clip 1) + diffusion_tf/tpu_utils/tpu_utils.py (ema_decay 0.9999)",
                     "notes": ("Adam without weight decay, expressed as AdamW with weight_decay 0",)},
    "iddpm-32": {"optim": dict(_ADAMW, lr=1e-4), "batch": 128, "steps": 500_000,
                 "source": _IDDPM_SRC + ": CIFAR-10 --lr 1e-4 --batch_size 128"},
    "adm-imagenet64": {"optim": dict(_ADAMW, lr=3e-4), "batch": 2048, "steps": 250_000,
                       "source": _IDDPM_SRC + ": class-conditional ImageNet-64 --lr 3e-4 --batch_size 2048 "
                                              "(checkpoint imagenet64_cond_270M_250K)"},
    "adm-imagenet128": {"optim": dict(_ADAMW, lr=1e-4), "batch": 256, "steps": None,
                        "source": "guided-diffusion scripts/image_train.py defaults (lr 1e-4, wd 0, ema 0.9999); "
                                  "batch 256 per Dhariwal & Nichol 2021 (not verified here)"},
    "adm-imagenet256": {"optim": dict(_ADAMW, lr=1e-4), "batch": 256, "steps": None,
                        "source": "guided-diffusion scripts/image_train.py defaults (lr 1e-4, wd 0, ema 0.9999); "
                                  "batch 256 per Dhariwal & Nichol 2021 (not verified here)"},
    "*": {"optim": dict(_ADAMW, lr=1e-4), "source": _IDDPM_SRC,
          "notes": ("the iDDPM/ADM defaults, for presets without a recipe of their own",)},
}

RECIPES_3D = {
    "*": {"optim": dict(_ADAMW, lr=1e-4), "source": _IDDPM_SRC,
          "notes": ("not the video paper's recipe (Ho et al. 2022 not verified): the ADM defaults",)},
}
