# `make bench`: fresh machine -> .venv -> default suite on CPU -> results + report.
# `make test`: .venv (if missing) -> install -> tests (the whole suite, what CI runs).
# `make test-fast`: the edit-test loop's subset (-m fast; about 1 min of CPU).
PY := .venv/bin/python
SUITE ?= suites/smoke.yaml

.PHONY: bench test test-fast install clean

.venv/installed: pyproject.toml
	@echo "make: creating .venv (once) and installing diffbench with its pinned dependencies"
	@echo "      (torch, jax, flax, ray, ...: a few GB; several minutes on a fresh machine, quiet pip output)"
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[ray]"
	@echo "make: .venv ready"
	touch $@

install: .venv/installed

bench: .venv/installed
	.venv/bin/diffbench run $(SUITE) --report

test: .venv/installed
	$(PY) -m pytest

test-fast: .venv/installed
	$(PY) -m pytest -m "fast and not slow"

clean:
	rm -rf .venv *.egg-info
