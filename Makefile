# The README's commands. Only Python 3 is needed; `make test` brings pytest into .venv itself.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test bench bench-quick bench-dask demo clean stress test-dask

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.pytest-installed: | $(VPY)
	$(VPY) -c "import pytest" 2>/dev/null || $(VPY) -m pip install --quiet "pytest>=7"
	touch $@

test: $(VENV)/.pytest-installed
	$(VPY) -m pytest

bench:
	$(PYTHON) -m benchmarks

bench-quick:
	$(PYTHON) -m benchmarks --quick

demo:
	$(PYTHON) -m llmcompiler demo

# Long, seeded, bounded checks with a summary table (under 10 minutes; STRESS_ARGS=--quick for ~1).
STRESS_ARGS ?=
stress:
	$(PYTHON) -m stress $(STRESS_ARGS)

# Dask, in an environment of its own with distributed (and dask) from PyPI: the core never needs it.
DASK_VENV := .venv-dask
DASK_PY := $(DASK_VENV)/bin/python

$(DASK_VENV)/.installed:
	$(PYTHON) -m venv $(DASK_VENV)
	$(DASK_PY) -m pip install --quiet "pytest>=7" distributed
	touch $@

# The Dask tests: a real LocalCluster on 127.0.0.1 serving tools through Engine(executors=...).
test-dask: $(DASK_VENV)/.installed
	$(DASK_PY) -m pytest tests/test_dask.py tests/test_dask_lane.py

# The benchmarks with dask's threaded scheduler as one more column.
bench-dask: $(DASK_VENV)/.installed
	$(DASK_PY) -m benchmarks

clean:
	rm -rf $(VENV) $(DASK_VENV) .pytest_cache
