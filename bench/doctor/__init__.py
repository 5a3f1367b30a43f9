"""`diffbench doctor` / `make gpu-check`: one command that checks a GPU machine gives right numbers
(precision flags, numerical error against float64, matmul speed against the peak table, the
harness timer against bare CUDA events, a jax bf16 training step, tests/test_cuda.py and the
gpu-validate suite with its report). See docs/measurement.md. `estimate.py` predicts how long a
suite takes on one accelerator."""
