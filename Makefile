# `make bench`: fresh machine -> .venv -> default suite on CPU -> results + report.
# `make test`: .venv (if missing) -> install -> tests (the whole suite, what CI runs).
# `make test-fast`: the edit-test loop's subset (-m fast; about 1 min of CPU).
# `make gpu-check`: on a CUDA machine, `diffbench doctor --device cuda` (docs/measurement.md): precision
# flags, numerics vs float64, matmul speed vs the peak table, timer, jax bf16 step, tests/test_cuda.py and
# the gpu-validate suite (report in reports/example/gpu/<device>/), < 8 minutes on one H100/H200.
PY := .venv/bin/python
SUITE ?= suites/smoke.yaml

.PHONY: bench test test-fast install clean gpu-check

.venv/installed: pyproject.toml
	@echo "make: creating .venv (once) and installing diffbench with its pinned dependencies"
	@echo "      (torch, jax, flax, ray, ...: a few GB; several minutes on a fresh machine, quiet pip output)"
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[ray,test]"
	@echo "make: .venv ready"
	touch $@

install: .venv/installed

bench: .venv/installed
	.venv/bin/diffbench run $(SUITE) --report

test: .venv/installed
	$(PY) -m pytest

gpu-check: .venv/installed
	.venv/bin/diffbench doctor --device cuda

test-fast: .venv/installed
	$(PY) -m pytest -m "fast and not slow"

clean:
	rm -rf .venv *.egg-info
