# The README's commands. Only Python 3 is needed; `make test` brings pytest into .venv itself.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: test bench demo clean

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

clean:
	rm -rf $(VENV) .pytest_cache
