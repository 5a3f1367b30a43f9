# `make bench`: fresh machine -> .venv -> default suite on CPU -> results + report.
# `make test`: .venv (if missing) -> install -> tests.
PY := .venv/bin/python
SUITE ?= suites/smoke.yaml

.PHONY: bench test install clean

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

clean:
	rm -rf .venv *.egg-info
