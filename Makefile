# The README's commands. Only Python 3 is needed; `make test` brings pytest into .venv itself.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test bench bench-quick bench-dask demo clean

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

# The same suite with dask's threaded scheduler as one more column, from a separate environment
# (dask is never a dependency of the project).
DASK_VENV := .venv-dask
$(DASK_VENV)/.dask-installed:
	$(PYTHON) -m venv $(DASK_VENV)
	$(DASK_VENV)/bin/python -m pip install --quiet dask
	touch $@

bench-dask: $(DASK_VENV)/.dask-installed
	$(DASK_VENV)/bin/python -m benchmarks

demo:
	$(PYTHON) -m llmcompiler demo

clean:
	rm -rf $(VENV) $(DASK_VENV) .pytest_cache
