"""The peak table (bench/measure/peaks.py): exact device names, the row and kind in the record,
and an MFU above 1 never reported as a fact."""

from __future__ import annotations

import pytest

from bench.measure.peaks import GPU_PEAKS, TPU_PEAKS, device_peak, find_row, utilization

# What the devices report (torch.cuda.get_device_name, jax device_kind) -> the row they must get.
KNOWN = [
    ("NVIDIA H100 80GB HBM3", "cuda", "H100 SXM5"),
    ("NVIDIA H100 PCIe", "cuda", "H100 PCIe"),
    ("NVIDIA H100 NVL", "cuda", "H100 NVL"),
    ("NVIDIA H200", "cuda", "H200 SXM"),
    ("NVIDIA H200 NVL", "cuda", "H200 NVL"),
    ("NVIDIA A100-SXM4-80GB", "cuda", "A100"),
    ("NVIDIA A100-SXM4-40GB", "cuda", "A100"),
    ("NVIDIA A100-PCIE-40GB", "cuda", "A100"),
    ("NVIDIA A100 80GB PCIe", "cuda", "A100"),
    ("NVIDIA L40S", "cuda", "L40S"),
    ("NVIDIA L40", "cuda", "L40"),
    ("NVIDIA L4", "cuda", "L4"),
    ("NVIDIA GeForce RTX 4090", "cuda", "RTX 4090"),
    ("Tesla V100-SXM2-16GB", "cuda", "V100 SXM2"),
    ("TPU v5", "tpu", "TPU v5p"),  # a v5p chip reports "TPU v5"
    ("TPU v5p", "tpu", "TPU v5p"),
    ("TPU v5 lite", "tpu", "TPU v5e"),
    ("TPU v5e", "tpu", "TPU v5e"),
    ("TPU v6 lite", "tpu", "TPU v6e"),
    ("TPU v4", "tpu", "TPU v4"),
    ("TPU v3", "tpu", "TPU v3"),
]


@pytest.mark.parametrize("name,platform,row", KNOWN)
def test_each_known_device_string_gets_its_row(name, platform, row):
    assert find_row(name, platform).row == row
    assert find_row(f"  {name.upper()} ", platform).row == row  # case and spacing aside
    peak = device_peak(name, platform, "bf16" if platform == "tpu" else "fp32")
    assert peak["row"] == row and peak["kind"] == "dense" and peak["tflop_per_s"] > 0


@pytest.mark.parametrize("name,platform", [
    ("NVIDIA H200 NVL 2", "cuda"), ("NVIDIA L4O", "cuda"), ("H100", "cuda"), ("NVIDIA H100", "cuda"),
    ("TPU v5 liter", "tpu"), ("TPU v4 lite", "tpu"), ("NVIDIA H100 80GB HBM3", "tpu"), ("TPU v5", "cuda"),
])
def test_near_misses_get_no_peak(name, platform):
    assert find_row(name, platform) is None
    peak = device_peak(name, platform, "bf16")
    assert peak["tflop_per_s"] is None and "not in the peak table" in peak["why"]


def test_variants_that_differ_get_different_peaks():
    """The substring rule gave the NVL and L40 parts the wrong part's peak."""
    assert device_peak("NVIDIA H200 NVL", "cuda", "bf16")["tflop_per_s"] < device_peak("NVIDIA H200", "cuda", "bf16")["tflop_per_s"]
    assert device_peak("NVIDIA L40", "cuda", "bf16")["tflop_per_s"] > device_peak("NVIDIA L4", "cuda", "bf16")["tflop_per_s"]


def test_every_row_is_reachable_and_names_are_unique():
    for table in (GPU_PEAKS, TPU_PEAKS):
        names = [n.casefold() for row in table for n in row.names]
        assert len(names) == len(set(names))
        rows = [r.row for r in table]
        assert len(rows) == len(set(rows))


def test_precision_without_a_datasheet_number_says_so():
    peak = device_peak("TPU v4", "tpu", "fp32")
    assert peak["tflop_per_s"] is None and peak["row"] == "TPU v4" and "no fp32 peak" in peak["why"]


def test_record_names_the_row_and_kind():
    u = utilization(100.0, 1.0, device_peak("NVIDIA H200", "cuda", "bf16"))
    assert u["peak_row"] == "H200 SXM" and u["peak_kind"] == "dense"
    assert u["mfu"] == pytest.approx(100e3 / 989.4e3)


def test_cpu_peak_is_measured_and_says_so():
    cpu = {"fp32": {"gflop_per_s": 100.0, "method": "measured: best torch.mm"}, "bf16": {"gflop_per_s": 50.0, "method": "m"}}
    peak = device_peak("x86_64", "cpu", "fp32", cpu)
    assert peak == {"tflop_per_s": 0.1, "source": "measured: best torch.mm", "row": "measured CPU matmul",
                    "kind": "measured"}
    assert device_peak("x86_64", "cpu", "bf16", cpu)["tflop_per_s"] == 0.05
    assert device_peak("x86_64", "cpu", "fp32", None)["tflop_per_s"] is None


def test_mfu_above_one_is_flagged_not_reported():
    """Under load the CPU reference read 4.7 GFLOP/s instead of ~170 and gave MFU 2.2."""
    peak = {"tflop_per_s": 4.7e-3, "source": "measured", "row": "measured CPU matmul", "kind": "measured"}
    u = utilization(10.34, 1000.0, peak)  # 10.34 GFLOP/s achieved
    assert u["mfu"] is None and u["mfu_flagged"] == pytest.approx(2.2, rel=1e-3)
    assert "above 1" in u["mfu_why_null"]
    ok = utilization(1.0, 1000.0, peak)
    assert ok["mfu"] == pytest.approx(1 / 4.7) and "mfu_flagged" not in ok
