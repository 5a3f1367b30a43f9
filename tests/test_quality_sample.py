"""Sampling for quality: N samples in batches with the family's sampler, uint8, reproducible,
and the NFE in the record equal to the network passes actually made (counted with a hook)."""
import dataclasses

import numpy as np
import pytest

from architectures import registry
from bench import backends
from bench.quality import sample


def _built(backend, arch, preset, **process):
    entry = registry.get(arch)
    cfg = entry.preset(preset).config
    if process:
        cfg = dataclasses.replace(cfg, process=dataclasses.replace(cfg.process, **process))
    adapter = backends.get(backend)
    return adapter, adapter.build(entry, cfg, seed=0)


def _count_passes(built):
    """The batch size of every model call (a batched guided call has 2B rows)."""
    calls = []
    built.model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    return calls


@pytest.mark.parametrize("arch,preset,process,per_step", [
    ("unet2d", "unet2d-tiny", {}, 1),
    ("rin", "rin-tiny", {"guidance_scale": 1.5}, 2),  # guidance: the unconditional pass is counted
])
def test_torch_nfe_is_the_passes_made(arch, preset, process, per_step, tmp_path):
    adapter, built = _built("torch", arch, preset, **process)
    calls = _count_passes(built)
    samples, info = sample.generate_samples(adapter, built, 5, 2, steps=3, seed=7)
    assert samples.dtype == np.uint8 and samples.shape == (5, 16, 16, 3)
    assert info["nfe"] == 3 * per_step and info["nfe_per_step"] == per_step
    assert info["network_passes"] == 3 * per_step * 3  # 3 batches (2 + 2 + 1)
    assert len(calls) == 3 * 3 and sum(calls) == info["nfe"] * 5  # one call per step (guidance batched into it)
    again, _ = sample.generate_samples(adapter, built, 5, 2, steps=3, seed=7)
    np.testing.assert_array_equal(samples, again)
    path = sample.save_samples(tmp_path / "s" / "samples.npz", samples, info)
    np.testing.assert_array_equal(sample.load_samples(path), samples)


def test_video_clips_start_with_their_conditioning_frames():
    adapter, built = _built("torch", "unet3d", "unet3d-tiny")
    context = np.random.default_rng(0).uniform(-1, 1, (3, 1, 16, 16, 3)).astype(np.float32)
    clips, info = sample.generate_samples(adapter, built, 3, 2, steps=2, context=context)
    assert clips.shape == (3, 4, 16, 16, 3) and info["conditioning_frames_included"]
    np.testing.assert_array_equal(clips[:, :1], np.clip(context * 127.5 + 128, 0, 255).astype(np.uint8))


def test_jax_samples_and_nfe():
    adapter, built = _built("jax", "rin", "rin-tiny", guidance_scale=1.5)
    samples, info = sample.generate_samples(adapter, built, 3, 2, steps=2, seed=1)
    assert samples.shape == (3, 16, 16, 3) and samples.dtype == np.uint8
    assert info["nfe"] == 4 and info["network_passes"] == 8
    assert samples.std() > 0


def test_quality_measurement_end_to_end_through_the_runner(tmp_path):
    """A suite case with `measure: [quality]`: samples kept as npz next to the record, scores
    with N, feature space and floor, NFE in the record; untrained samples are far from the data."""
    import json

    from bench import runner, suite_file
    suite = suite_file.loads("name: q\ncases:\n  - preset: unet2d-tiny\n    measure: [quality]\n    threads: 1\n"
                       "    quality: {metrics: [fd-effnet, kid], n: 8, steps: 2, batch: 4, dataset: shapes}\n")
    run_dir = runner.run_suite(suite, tmp_path)
    record = json.loads(next(p for p in sorted(run_dir.glob("*.json")) if p.name != "run.json").read_text())
    assert record["status"] == "ok", record.get("error")
    q = record["quality"]
    assert q["weights"] == "initial" and q["sampling"]["nfe"] == 2 and q["sampling"]["network_passes"] == 4
    samples = sample.load_samples(run_dir / q["samples_file"])
    assert samples.shape == (8, 16, 16, 3) and samples.dtype == np.uint8
    rows = {r["metric"]: r for r in q["metrics"]}
    assert rows["fd-effnet"]["n"] == 8 and rows["fd-effnet"]["proxy"] and "efficientnet" in rows["fd-effnet"]["feature_space"]
    assert rows["fd-effnet"]["value"] > rows["fd-effnet"]["floor"] > 0 and "floor_std" in rows["kid"]
    # sampling cost at the NFE really spent (2 steps), not the preset's sample_steps
    from bench.measure.flops import analytic
    entry = registry.get("unet2d")
    per_image = 2 * analytic(entry, entry.preset("unet2d-tiny").config, 1)["macs"] / 1e9
    assert q["sampling"]["gflop_per_image"] == pytest.approx(per_image)
    assert q["sampling"]["gflop_per_sample"] == pytest.approx(2 * per_image)
    for row in rows.values():  # every score and floor carries its bootstrap CI
        assert row["ci95"][0] <= row["value"] <= row["ci95"][1] and len(row["floor_ci95"]) == 2
