# binaccel: set-up and entry points. `make demo` and `make test` each set up everything first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-slow clean

setup: $(STAMP)

# torch is installed first and on its own, pinned to the CPU build on this machine's disk, so that
# no later requirement can make pip resolve a second (CUDA) torch.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,docs]"
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'second torch installed: {v}')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/binaccel demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf build
