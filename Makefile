# qlif: `make demo` and `make test` do all set-up on a fresh Debian 12 machine (as root) when needed.
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: setup demo test test-all lint bench mutation formal gate regress-mnist accuracy power-calibration clean

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

# Functional coverage (qlif.sim.coverage) of the slow constrained-random campaign: 1,000 designs in the
# Amaranth simulator, 200 under Verilator, 50 under Icarus; the table, then "coverpoints hit: H/N".
COVERAGE := $(CURDIR)/build/coverage
coverage: $(STAMP)
	rm -rf $(COVERAGE)/slow
	QLIF_COVERAGE_DIR=$(COVERAGE)/slow $(BIN)/python -m pytest -m slow -n auto --dist load \
		tests/test_random_designs.py tests/test_random_verilog.py; status=$$?; \
	$(BIN)/python -m qlif.sim.coverage $(COVERAGE)/slow; exit $$status

# The same measure for the default suite's own RTL runs.
coverage-default: $(STAMP)
	rm -rf $(COVERAGE)/default
	QLIF_COVERAGE_DIR=$(COVERAGE)/default $(BIN)/python -m pytest -n auto --dist loadfile; status=$$?; \
	$(BIN)/python -m qlif.sim.coverage $(COVERAGE)/default; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_lanes.py

# The RTL tests against each mutant of sim/mutants.py (about 15 min on 2 cores); ends with "mutants killed: K/N".
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py

# Every formal proof (sim/proofs) at its full depth and every broken design it names (SymbiYosys through
# YoWASP, smtbmc; the LIF datapath's 33,592 parameter sets through Yosys' sat); ends with
# "proofs passed: K/N" and "broken designs caught: B/M".
formal: $(STAMP)
	$(BIN)/python scripts/formal.py

# Gate-level equivalence (scripts/gate.py): the digits demo model as synthesised for the UP5K (the
# board's netlist through its UART, and the core's) and 784-500-10 for the ECP5-85F (the core's), on the
# cocotb benches with Yosys' cell models; ends with "gate-level: D designs, S samples bit-exact".
gate: $(STAMP)
	$(BIN)/python scripts/gate.py

# The power model against the published iCE40 UP5K measurements (scripts/power_calibration.py,
# docs/power.md): rebuilds the 16 measured designs (a few seconds each, cached under
# build/power-calibration), fits, writes docs/results/power-calibration.{csv,md,json}.
power-calibration: $(STAMP)
	$(BIN)/python scripts/power_calibration.py

# The seed network at scale (scripts/regress_mnist.py, docs/verification.md): a 784-500-10 4-bit model
# (trained 1 epoch and quantized once, or MODEL=M.json) on the 10,000 MNIST test images through the generated
# Verilog at P = 32 under Verilator, bit-exact at every step, then the first ICARUS images under Icarus
# (about 2,000 cycles/s at P = 32: some 22 min for 500 on 2 free cores; ICARUS=0 skips it); ends with
# "regress-mnist: 10000/10000 bit-exact in S s" (S: the Verilator run, build included).
MNIST  ?= $(CURDIR)/../shared/data/mnist
ICARUS ?= 500
regress-mnist: $(STAMP)
	$(BIN)/python scripts/regress_mnist.py --data-dir $(MNIST) --icarus $(ICARUS) $(if $(MODEL),--model $(MODEL))

# The accuracy table docs/results/accuracy.{csv,md,png} (docs/quantization.md): every quantization method x
# weight bits x membrane bits (PTQ calibrated and at the fixed 99.9th percentile) on the digits (the committed
# float network) and MNIST (784-500-10, trained once into build/sweep/mnist/float.pt); rows are cached under
# build/sweep, so an interrupted run resumes. Hours on 2 cores (MNIST's QAT rows); CODINGS=1 adds the
# sparse-coding MNIST binary rows (hours more); CACHED=1 only rewrites the table from the cached rows, the
# others marked "not run" with their command.
accuracy: $(STAMP)
	nice -n 10 $(BIN)/qlif sweep-accuracy --datasets digits,mnist --data-dir $(MNIST) \
	    --float-checkpoint digits=tests/fixtures/digits_float_seed0.pt --work-dir build/sweep \
	    $(if $(CODINGS),--codings) $(if $(CACHED),--cached-only)

clean:
	rm -rf build
