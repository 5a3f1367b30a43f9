# `make bench`: fresh machine -> .venv -> default suite on CPU -> results + report.
# `make test`: .venv (if missing) -> install -> tests.
# `make gpu-check`: on a CUDA machine, `diffbench doctor --device cuda` (docs/measurement.md): precision
# flags, numerics vs float64, matmul speed vs the peak table, timer, jax bf16 step, tests/test_cuda.py and
# the gpu-validate suite (report in reports/example/gpu/<device>/), < 8 minutes on one H100/H200.
PY := .venv/bin/python
SUITE ?= suites/smoke.yaml

.PHONY: bench test install clean gpu-check

.venv/installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[ray,test]"
	touch $@

install: .venv/installed

bench: .venv/installed
	.venv/bin/diffbench run $(SUITE) --report

test: .venv/installed
	$(PY) -m pytest

gpu-check: .venv/installed
	.venv/bin/diffbench doctor --device cuda

clean:
	rm -rf .venv *.egg-info
