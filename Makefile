# The README's commands. Only Python 3 is needed; `make test` brings pytest into .venv itself.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test bench demo clean stress test-dask

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.pytest-installed: | $(VPY)
	$(VPY) -c "import pytest" 2>/dev/null || $(VPY) -m pip install --quiet "pytest>=7"
	touch $@

test: $(VENV)/.pytest-installed
	$(VPY) -m pytest

bench:
	$(PYTHON) -m benchmarks

demo:
	$(PYTHON) -m llmcompiler demo

# Long, seeded, bounded checks with a summary table (under 10 minutes; STRESS_ARGS=--quick for ~1).
STRESS_ARGS ?=
stress:
	$(PYTHON) -m stress $(STRESS_ARGS)

# The Dask tests, in an environment of their own with distributed from PyPI (the core never needs it).
DASK_VENV := .venv-dask
DASK_PY := $(DASK_VENV)/bin/python

$(DASK_VENV)/.installed:
	$(PYTHON) -m venv $(DASK_VENV)
	$(DASK_PY) -m pip install --quiet "pytest>=7" distributed
	touch $@

test-dask: $(DASK_VENV)/.installed
	$(DASK_PY) -m pytest tests/test_dask.py

clean:
	rm -rf $(VENV) $(DASK_VENV) .pytest_cache
