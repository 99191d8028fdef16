# qlif: `make demo` and `make test` do all set-up on a fresh Debian 12 machine (as root) when needed.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: setup demo test test-all lint bench mutation clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/qlif demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadfile

# Long runs too (full regressions, sweeps): opt in.
test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lanes.py

# The RTL tests against each mutant of sim/mutants.py (about 15 min on 2 cores); ends with "mutants killed: K/N".
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py

clean:
	rm -rf build
