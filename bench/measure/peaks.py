"""Peak FLOP/s per device and precision, for model-FLOPs utilization (MFU).

Accelerators: vendor datasheet values, dense (no 2:4 sparsity: the datasheets star the sparse
figures, dense = sparse / 2), per device (one GPU, one TPU chip). A device is matched by its
exact name, as torch.cuda.get_device_name / jax's device_kind report it (case and repeated
spaces ignored): a substring rule matched "H200 NVL" as "H200" (1.18x off), "L40" as "L4" (1.5x
off) and never matched a TPU v5p, which reports "TPU v5". An unknown name gets no peak (MFU null)
rather than a wrong one. CPUs have no datasheet number that code can read, so `diffbench run`
measures a matmul microbenchmark once per run and thread count (bench/measure/cpu_peak.py) and
stores it in run.json; CPU MFU is relative to that measured matmul throughput, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeakRow:
    row: str  # the table row, written into the record (`peak_row`)
    names: tuple[str, ...]  # exact device names (torch / jax report the same CUDA name; TPU device_kind)
    tflop_per_s: dict  # precision -> dense TFLOP/s
    source: str


_H100_SXM = {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}
_HOPPER_NVL = {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}
_A100 = {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}
GPU_PEAKS = (
    PeakRow("H100 SXM5", ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"), _H100_SXM,
            "NVIDIA H100 Tensor Core GPU datasheet (SXM5), dense = sparse / 2"),
    PeakRow("H100 PCIe", ("NVIDIA H100 PCIe",), {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
            "NVIDIA H100 Tensor Core GPU datasheet (PCIe), dense = sparse / 2"),
    PeakRow("H100 NVL", ("NVIDIA H100 NVL",), _HOPPER_NVL,
            "NVIDIA H100 Tensor Core GPU datasheet (NVL), dense = sparse / 2"),
    PeakRow("H200 SXM", ("NVIDIA H200", "NVIDIA H200 SXM"), _H100_SXM,
            "NVIDIA H200 Tensor Core GPU datasheet (SXM), dense = sparse / 2"),
    PeakRow("H200 NVL", ("NVIDIA H200 NVL",), _HOPPER_NVL,
            "NVIDIA H200 Tensor Core GPU datasheet (NVL), dense = sparse / 2"),
    PeakRow("A100", ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB",
                     "NVIDIA A100 80GB PCIe"), _A100, "NVIDIA A100 Tensor Core GPU datasheet, dense"),
    PeakRow("L40S", ("NVIDIA L40S",), {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05},
            "NVIDIA L40S datasheet, dense (sparse figures starred)"),
    PeakRow("L40", ("NVIDIA L40",), {"fp32": 90.5, "tf32": 90.5, "bf16": 181.05, "fp16": 181.05},
            "NVIDIA L40 datasheet, dense (sparse figures starred)"),
    PeakRow("L4", ("NVIDIA L4",), {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
            "NVIDIA L4 datasheet, dense = sparse / 2"),
    PeakRow("RTX 4090", ("NVIDIA GeForce RTX 4090",), {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2},
            "NVIDIA Ada GPU architecture whitepaper, RTX 4090, FP32 accumulate, dense"),
    PeakRow("V100 SXM2", ("Tesla V100-SXM2-16GB", "Tesla V100-SXM2-32GB"), {"fp32": 15.7, "fp16": 125.0},
            "NVIDIA V100 datasheet (SXM2)"),
)
TPU_PEAKS = (  # per chip; XLA's fp32 on TPU is emulated on the bf16 MXU: no fp32 peak is given
    PeakRow("TPU v6e", ("TPU v6 lite", "TPU v6e"), {"bf16": 918.0}, "Google Cloud TPU v6e (Trillium) documentation"),
    PeakRow("TPU v5p", ("TPU v5", "TPU v5p"), {"bf16": 459.0}, "Google Cloud TPU v5p documentation"),
    PeakRow("TPU v5e", ("TPU v5 lite", "TPU v5e"), {"bf16": 197.0}, "Google Cloud TPU v5e documentation"),
    PeakRow("TPU v4", ("TPU v4",), {"bf16": 275.0}, "Google Cloud TPU v4 documentation"),
    PeakRow("TPU v3", ("TPU v3",), {"bf16": 123.0}, "Google Cloud TPU v3 documentation (per chip, 2 cores)"),
)
PEAK_KEY = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "bf16-pure": "bf16", "fp16": "fp16"}


def _norm(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def find_row(device_name: str, platform: str) -> PeakRow | None:
    """The table row whose names include `device_name` exactly (case and spacing aside), or None."""
    want = _norm(device_name)
    table = TPU_PEAKS if platform == "tpu" else GPU_PEAKS
    return next((row for row in table if want in {_norm(n) for n in row.names}), None)


def device_peak(device_name: str, platform: str, precision: str, cpu_peak_gflop_per_s: dict | None = None) -> dict:
    """{"tflop_per_s": peak or None, "source", "row" (the table row used), "kind" ("dense" datasheet or
    "measured" on CPU), "why": reason when None} for one device."""
    key = PEAK_KEY[precision]
    if platform == "cpu":
        measured = (cpu_peak_gflop_per_s or {}).get("fp32" if key in ("fp32", "tf32") else "bf16")
        if not measured:
            return {"tflop_per_s": None, "source": None, "row": None, "kind": None,
                    "why": "no CPU matmul peak measured for this run (MFU on CPU needs `diffbench run`, "
                           "which measures it once per thread count)"}
        out = {"tflop_per_s": measured["gflop_per_s"] / 1e3, "source": measured["method"], "row": "measured CPU matmul",
               "kind": "measured"}
        return {**out, "contended": True} if measured.get("contended") else out
    row = find_row(device_name, platform)
    if row is None:
        return {"tflop_per_s": None, "source": None, "row": None, "kind": None,
                "why": f"device {device_name!r} is not in the peak table (bench/measure/peaks.py matches exact "
                       "device names; add its datasheet row there)"}
    if key not in row.tflop_per_s:
        return {"tflop_per_s": None, "source": row.source, "row": row.row, "kind": "dense",
                "why": f"the datasheet gives no {key} peak for {row.row}"}
    return {"tflop_per_s": row.tflop_per_s[key], "source": row.source, "row": row.row, "kind": "dense"}


def utilization(gflop_per_step: float | None, median_ms: float, peak: dict) -> dict:
    """Achieved GFLOP/s of a timed step and its MFU against the peak. An MFU above 1 cannot be
    true (the peak reference is too low, e.g. a CPU matmul benchmark disturbed by other load, or
    the FLOP count too high): it is not reported as `mfu` (null, with `mfu_why_null`) and kept,
    flagged, as `mfu_flagged`; so is any MFU against a CPU reference measured under contention."""
    base = {"peak_tflop_per_s": peak.get("tflop_per_s"), "peak_source": peak.get("source"), "peak_row": peak.get("row"),
            "peak_kind": peak.get("kind")}
    if gflop_per_step is None or not median_ms:
        return {"achieved_gflop_per_s": None, "mfu": None, **base, "mfu_why_null": "no FLOP count for this step"}
    achieved = gflop_per_step / (median_ms / 1e3)
    out = {"achieved_gflop_per_s": achieved, **base}
    if not peak.get("tflop_per_s"):
        return {**out, "mfu": None, "mfu_why_null": peak.get("why")}
    mfu = achieved / (peak["tflop_per_s"] * 1e3)
    if peak.get("contended"):  # the reference is too low by an unknown factor: so is any MFU against it
        return {**out, "mfu": None, "mfu_flagged": mfu, "peak_contended": True,
                "mfu_why_null": "the CPU matmul reference was measured while other load shared its CPUs (even "
                                "after re-measuring): MFU against it not reported"}
    if mfu > 1:
        return {**out, "mfu": None, "mfu_flagged": mfu,
                "mfu_why_null": f"computed MFU {mfu:.2f} is above 1, which cannot be: the peak reference "
                                f"({peak.get('row')}: {peak['tflop_per_s']:.4g} TFLOP/s) is too low or the FLOP count "
                                "too high; not reported"}
    return {**out, "mfu": mfu}
