"""Quality-metric speed, measured side by side in one run, variants interleaved (A B, B A, ...):

1. Fréchet distance at 2048-d from (mu, sigma): diffbench's eigh-based `frechet_distance`
   vs clean-fid's `frechet_distance` (scipy sqrtm). Target: >= 5x.
2. Scoring N generated samples against cached reference features, clean mode:
   diffbench's in-memory path (uint8 arrays -> clean-fid resizer -> network -> FD, low-rank path)
   vs clean-fid's folder path on the same samples (write PNGs -> `get_folder_features` ->
   mean/cov -> clean-fid `frechet_distance`). Target: >= 2x.
   The real Inception weights are not shipped, so both paths run the same stand-in network with
   Inception-v3's architecture and cost (torchvision's, random init, TorchScript, wrapped as
   NVIDIA's file is: a `layers` module on (x - 128) / 128). Speed does not depend on weight values.

    .venv/bin/python benchmarks/quality_speed.py [--rounds 3] [--n 64] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

DIM = 2048


def _spd_pair(seed: int, n: int = 4096):
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.2, 2.0, DIM)
    f1 = rng.standard_normal((n, DIM)) * scale
    f2 = rng.standard_normal((n, DIM)) * scale + 0.05
    return f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)


def bench_fd(rounds: int) -> dict:
    from cleanfid.fid import frechet_distance as theirs

    from bench.quality.fd import frechet_distance as ours
    stats = _spd_pair(0)
    times, values = {"diffbench": [], "clean-fid": []}, {}
    for i in range(rounds):
        for name in ("diffbench", "clean-fid") if i % 2 == 0 else ("clean-fid", "diffbench"):
            fn = ours if name == "diffbench" else theirs
            t0 = time.perf_counter()
            values[name] = float(fn(*stats))
            times[name].append(time.perf_counter() - t0)
    return _ratio("FD at 2048-d from (mu, sigma), N=4096 features", times, values)


class _Layers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import torchvision
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()
        self.net = net.eval()

    def forward(self, x):
        return self.net(x).unsqueeze(-1).unsqueeze(-1)


class _InceptionCost(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


def bench_scoring(rounds: int, n: int) -> dict:
    from cleanfid.fid import frechet_distance, get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W
    from PIL import Image

    from bench.quality import features, fd, weights
    tmp = tempfile.mkdtemp(prefix="quality_speed_")
    path = os.path.join(tmp, weights.INCEPTION.filename)
    torch.manual_seed(0)
    with torch.no_grad():
        torch.jit.trace(_InceptionCost().eval(), torch.zeros(1, 3, 299, 299)).save(path)
    spec = weights.WeightSpec(weights.INCEPTION.env, weights.INCEPTION.filename, weights.file_sha256(path), "stand-in")
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    ref = rng.standard_normal((2 * n, DIM))  # cached reference features (both paths get them free)
    ref_mu, ref_sigma = ref.mean(0), np.cov(ref, rowvar=False)
    ours_ex = features.inception(spec, environ={spec.env: path})
    their_net = InceptionV3W(tmp, download=False).eval()

    def ours():
        return fd.fd_from_features(ours_ex(samples, batch=32), ref)

    def theirs():
        folder = tempfile.mkdtemp(dir=tmp)
        for i, img in enumerate(samples):
            Image.fromarray(img).save(os.path.join(folder, f"{i:06d}.png"))
        f = get_folder_features(folder, their_net, num_workers=0, batch_size=32, device=torch.device("cpu"),
                                mode="clean", verbose=False)
        return frechet_distance(f.mean(0), np.cov(f, rowvar=False), ref_mu, ref_sigma)

    times, values = {"diffbench": [], "clean-fid": []}, {}
    for i in range(rounds):
        for name in ("diffbench", "clean-fid") if i % 2 == 0 else ("clean-fid", "diffbench"):
            t0 = time.perf_counter()
            values[name] = float((ours if name == "diffbench" else theirs)())
            times[name].append(time.perf_counter() - t0)
    return _ratio(f"score N={n} 32x32 samples, clean mode, Inception-v3-cost stand-in, CPU", times, values)


def _ratio(what: str, times: dict, values: dict) -> dict:
    from bench.measure.stats import bootstrap_ratio_ci
    a, b = np.array(times["clean-fid"]), np.array(times["diffbench"])
    return {"what": what, "clean_fid_median_s": float(np.median(a)), "diffbench_median_s": float(np.median(b)),
            "speedup": float(np.median(a) / np.median(b)), "speedup_ci95": bootstrap_ratio_ci(a, b),
            "values": values, "rounds": len(a), "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=64, help="generated samples scored in part 2")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = [bench_fd(args.rounds), bench_scoring(args.rounds, args.n)]
    if args.json:
        print(json.dumps(out))
    else:
        for r in out:
            lo, hi = r["speedup_ci95"]
            print(f"{r['what']}: clean-fid {r['clean_fid_median_s']:.2f} s, diffbench {r['diffbench_median_s']:.2f} s, "
                  f"speedup {r['speedup']:.2f}x (95% CI {lo:.2f}-{hi:.2f}), values {r['values']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
