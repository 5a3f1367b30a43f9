"""Peak FLOP/s per device and precision, for model-FLOPs utilization (MFU).

Accelerators: vendor datasheet values, dense (no 2:4 sparsity), per device (one GPU, one TPU chip).
CPUs have no datasheet number that code can read, so `diffbench run` measures a matmul
microbenchmark once per run and thread count (bench/measure/cpu_peak.py) and stores it in run.json;
CPU MFU is relative to that measured matmul throughput, and says so.
"""

from __future__ import annotations

# (substring of the device name, {precision: dense TFLOP/s}, source). First match wins: keep the
# more specific names first.
_H100_SXM = {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}
GPU_PEAKS = [
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
     "NVIDIA H100 Tensor Core GPU datasheet (PCIe), dense = sparse / 2"),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
     "NVIDIA H100 Tensor Core GPU datasheet (NVL), dense = sparse / 2"),
    ("H100", _H100_SXM, "NVIDIA H100 Tensor Core GPU datasheet (SXM5), dense = sparse / 2"),
    ("H200", _H100_SXM, "NVIDIA H200 Tensor Core GPU datasheet (SXM), dense = sparse / 2"),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
     "NVIDIA A100 Tensor Core GPU datasheet, dense"),
    ("L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05},
     "NVIDIA L40S datasheet, dense = sparse / 2"),
    ("L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}, "NVIDIA L4 datasheet, dense = sparse / 2"),
    ("RTX 4090", {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2, "fp16": 165.2},
     "NVIDIA Ada GPU architecture whitepaper, RTX 4090, FP32 accumulate, dense"),
    ("V100", {"fp32": 15.7, "fp16": 125.0}, "NVIDIA V100 datasheet (SXM2)"),
]
TPU_PEAKS = [  # per chip; XLA's fp32 on TPU is emulated on the bf16 MXU: no fp32 peak is given
    ("v6 lite", {"bf16": 918.0}, "Google Cloud TPU v6e (Trillium) documentation"),
    ("v5p", {"bf16": 459.0}, "Google Cloud TPU v5p documentation"),
    ("v5 lite", {"bf16": 197.0}, "Google Cloud TPU v5e documentation"),
    ("v5e", {"bf16": 197.0}, "Google Cloud TPU v5e documentation"),
    ("v4", {"bf16": 275.0}, "Google Cloud TPU v4 documentation"),
    ("v3", {"bf16": 123.0}, "Google Cloud TPU v3 documentation (per chip, 2 cores)"),
]
PEAK_KEY = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "bf16-pure": "bf16", "fp16": "fp16"}


def device_peak(device_name: str, platform: str, precision: str, cpu_peaks: dict | None = None) -> dict:
    """{"tflop_per_s": peak or None, "source": ..., "why": reason when None} for one device."""
    key = PEAK_KEY[precision]
    if platform == "cpu":
        measured = (cpu_peaks or {}).get("fp32" if key in ("fp32", "tf32") else "bf16")
        if not measured:
            return {"tflop_per_s": None, "source": None,
                    "why": "no CPU matmul peak measured for this run (MFU on CPU needs `diffbench run`, "
                           "which measures it once per thread count)"}
        return {"tflop_per_s": measured["gflop_per_s"] / 1e3, "source": measured["method"]}
    table = TPU_PEAKS if platform == "tpu" else GPU_PEAKS
    for pattern, peaks, source in table:
        if pattern.lower() in device_name.lower():
            if key not in peaks:
                return {"tflop_per_s": None, "source": source, "why": f"the datasheet gives no {key} peak for {device_name}"}
            return {"tflop_per_s": peaks[key], "source": source}
    return {"tflop_per_s": None, "source": None, "why": f"device {device_name!r} is not in the peak table "
                                                   "(bench/measure/peaks.py)"}


def utilization(gflop_per_step: float | None, median_ms: float, peak: dict) -> dict:
    """Achieved GFLOP/s of a timed step and its MFU against the peak."""
    if gflop_per_step is None or not median_ms:
        return {"achieved_gflop_per_s": None, "mfu": None, "peak_tflop_per_s": peak.get("tflop_per_s"),
                "peak_source": peak.get("source"), "mfu_why_null": "no FLOP count for this step"}
    achieved = gflop_per_step / (median_ms / 1e3)
    out = {"achieved_gflop_per_s": achieved, "peak_tflop_per_s": peak.get("tflop_per_s"),
           "peak_source": peak.get("source")}
    if peak.get("tflop_per_s"):
        out["mfu"] = achieved / (peak["tflop_per_s"] * 1e3)
    else:
        out.update(mfu=None, mfu_why_null=peak.get("why"))
    return out
