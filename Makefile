# binaccel: set-up and entry points. `make demo` and `make test` each set up everything first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-sim test-synth test-slow formal schedules coverage test-all docs clean

setup: $(STAMP)

# Icarus Verilog (the Debian package iverilog) is the cocotb suite's second simulator
# (tests/sim/test_icarus.py, one case in the default tier): installed where missing, else set-up fails.
# torch is installed first and on its own, pinned to the CPU build on this machine's disk, so that
# no later requirement can make pip resolve a second (CUDA) torch.
$(STAMP): pyproject.toml
	command -v iverilog >/dev/null || apt-get install -y iverilog || (apt-get update && apt-get install -y iverilog) \
		|| { echo "set-up: Icarus Verilog is missing and apt-get could not install it; install the Debian package iverilog (as root: apt-get install -y iverilog), then rerun make" >&2; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test,docs]"
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'second torch installed: {v}')"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/binaccel demo

# The default tier (what CI runs): the layering contract, then the pure-Python and Amaranth-simulator
# tests, one Verilator build per design and one small synthesis. The other tiers are markers.
test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# More Verilator simulations (parameter sets, seeds, transports).
test-sim: $(STAMP)
	$(BIN)/python -m pytest -m sim

# Synthesis and place-and-route runs beyond the default suite's one small build.
test-synth: $(STAMP)
	$(BIN)/python -m pytest -m synth

# Long tests: more seeds, large simulations, large synthesis.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# The formal properties of the stream interfaces (SymbiYosys, docs/formal.md): one job per property
# under build/formal/, the record in build/formal/formal.json.
formal: $(STAMP)
	$(BIN)/python -m binaccel.hw.formal

# Slow tier: random valid/ready schedules at scale (docs/simulation.md): 10,000 seeded runs per layer
# kind (idle, backpressure, resets) through the fast path, every map and logit against the integer
# reference; the record in build/schedules/schedules.json. About 22 minutes (measured, loaded 2 cores).
schedules: $(STAMP)
	$(BIN)/python -m binaccel.sim.schedules --runs 10000 --out build/schedules/schedules.json

# Verilator line and toggle coverage over a part of the cocotb suite (docs/simulation.md, "Coverage"):
# build/coverage/coverage.json, merged.dat, annotated/. `--quick` for a small subset.
coverage: $(STAMP)
	$(BIN)/python -m binaccel.sim.coverage

test-all: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m ""

# The reference docs (Sphinx, MyST, autodoc) into build/docs/html, warnings as errors. The results
# page includes build/docs/results.md, written first from the committed measurement record; the API
# pages (docs/api/generated, gitignored) are generated afresh on every build.
docs: $(STAMP)
	$(BIN)/binaccel --build-dir build records --markdown build/docs/results.md
	rm -rf docs/api/generated
	$(BIN)/sphinx-build -W --keep-going -q -b html docs build/docs/html

clean:
	rm -rf build
