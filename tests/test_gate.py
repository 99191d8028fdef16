"""Gate-level netlists equal the golden model (:mod:`qlif.sim.gate`): the board's, the very netlist nextpnr
places, driven through its UART pins by the host-link bench (everything the protocol reports, after every
step); and the core's, the same Yosys script on the core alone, on the network bench (every membrane and
spike at every step, through the trace port the board netlist has lost).

Default suite: one small design per family (iCE40 on the iCEBreaker's UP5K, ECP5 on the ULX3S-85F) under
Icarus, at both levels, and netlists with one block RAM's weights changed, which the benches must catch.
``-m slow`` (``make gate``, scripts/gate.py): the demo's digits model as built for the UP5K (board and
core), and 784-500-10 as built for the ECP5-85F (core). With ``QLIF_GATE_RECORDS`` set, each netlist leaves
a JSON record of its figures there.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qlif.golden.spec import reference
from qlif.golden.spec.model import Model
from qlif.golden.spec.random_model import random_model
from qlif.sim.compare import first_mismatch
from qlif.sim.gate import GATE_DIR, run_board_gate, synthesize, synthesize_board
from qlif.sim.runner import RtlMismatch, SimulationError, build_verilog, run_rtl
from qlif.sim.waves import waves_requested

FIXTURES = Path(__file__).parent / "fixtures"
#: Simulator builds of the netlists (apart from the RTL's).
SIM_DIR = GATE_DIR / "sim"


@dataclass(frozen=True)
class GateCase:
    """A design of the gate-level set: ``make()`` gives the model and its stimuli."""

    name: str
    board: str
    lanes: int
    simulator: str
    make: Callable[[], tuple[Model, np.ndarray]]


def _random_stimuli(model: Model, samples: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((samples, model.timesteps, model.n_in)) < rate).astype(np.uint8)


def _small() -> tuple[Model, np.ndarray]:
    """Partial last groups at P = 4 and 2, both reset kinds, low thresholds (frequent spikes)."""
    model = random_model([20, 11, 6], seed=3, timesteps=4, threshold="random", alternate_resets=True)
    return model, _random_stimuli(model, 3, 0.4, seed=1)


def _small_one() -> tuple[Model, np.ndarray]:
    """The small design on its first sample: through the UART a sample costs the board netlist ~23,000
    clock cycles (10-15 CPU-s under Icarus), where the core's bench needs ~200."""
    model, x = _small()
    return model, x[:1]


def _digits() -> tuple[Model, np.ndarray]:
    """The demo's model (qlif.demo: TrainConfig() defaults, 4-bit PTQ) from the stored float network, and
    the first test images as the demo codes them."""
    from qlif.golden.data.datasets import load_digits_split
    from qlif.golden.spec.coding import encode
    from qlif.golden.training.checkpoint import load_checkpoint
    from qlif.golden.training.quantize import quantize
    from qlif.golden.training.train import TrainConfig

    config = TrainConfig()
    model = quantize(load_checkpoint(FIXTURES / "digits_float_seed0.pt"), weight_bits=4)
    split = load_digits_split(config.seed, config.test_fraction)
    return model, encode(split.x_test[:4], model.timesteps)


def _mnist() -> tuple[Model, np.ndarray]:
    """784-500-10, 4-bit random weights, k = 12, T = 2; ~11% of the inputs spike per step (MNIST's rate
    coding gives 85 of 784 on average)."""
    model = random_model([784, 500, 10], seed=0, timesteps=2, weight_bits=4, membrane_bits=12, threshold="random")
    return model, _random_stimuli(model, 3, 85 / 784, seed=2)


DEFAULT = [GateCase("small-ice40", "icebreaker", 4, "icarus", _small),
           GateCase("small-ecp5", "ulx3s-85f", 2, "icarus", _small)]
SLOW = [GateCase("digits-up5k", "icebreaker", 4, "icarus", _digits),
        GateCase("mnist-ecp5-85f", "ulx3s-85f", 32, "icarus", _mnist)]
BOARD_DEFAULT = [GateCase("small-ice40", "icebreaker", 4, "icarus", _small_one),
                 GateCase("small-ecp5", "ulx3s-85f", 2, "icarus", _small_one)]
# 784-500-10's board netlist is not here: its core netlist alone runs ~10 cycles/s under Icarus, and a
# sample through the UART is ~10^5 cycles.
BOARD_SLOW = [GateCase("digits-up5k", "icebreaker", 4, "icarus", _digits)]


def check(case: GateCase) -> dict:
    """Synthesise, build and run ``case``; assert every step equals the golden model; return (and with
    ``QLIF_GATE_RECORDS``, write) its figures."""
    model, x = case.make()
    t0 = time.monotonic()
    net = synthesize(model, board=case.board, lanes=case.lanes)
    t1 = time.monotonic()
    build_verilog(net.verilog, case.simulator, SIM_DIR.resolve(), waves_requested())
    t2 = time.monotonic()
    stats: dict = {}
    got = run_rtl(model, x, simulator=case.simulator, lanes=case.lanes, verilog=net.verilog, build_dir=SIM_DIR,
                  check=True, stats=stats)
    t3 = time.monotonic()
    assert first_mismatch(reference.run(model, x, lanes=case.lanes), got) is None
    record = {"design": case.name, "board": case.board, "family": net.family, "lanes": case.lanes,
              "sizes": [model.n_in, *(layer.n_out for layer in model.layers)], "timesteps": model.timesteps,
              "mapper": net.mapper, "cells": net.cells, "synth_s": net.synth_s, "synth_cached": net.cached,
              "prepare_s": round(t1 - t0, 1), "simulator": case.simulator, "build_s": round(t2 - t1, 1),
              "samples": len(x), "sim_cycles": stats["sim_cycles"], "run_s": round(t3 - t2, 1),
              "level": "core", "bit_exact": True}
    _record(f"{case.name}-core", record)
    return record


def check_board(case: GateCase) -> dict:
    """Synthesise ``case``'s board top, build and run it through its UART with a RESULT after every step;
    the bench raises when anything the board reports differs from the golden model. Return (and with
    ``QLIF_GATE_RECORDS``, write) its figures."""
    model, x = case.make()
    t0 = time.monotonic()
    net = synthesize_board(model, board=case.board, lanes=case.lanes)
    t1 = time.monotonic()
    build_verilog(net.verilog, case.simulator, SIM_DIR.resolve(), waves_requested())
    t2 = time.monotonic()
    stats = run_board_gate(model, x, board=case.board, lanes=case.lanes, test="steps", simulator=case.simulator,
                           build_dir=SIM_DIR)
    t3 = time.monotonic()
    assert stats["steps_checked"] == x.shape[0] * x.shape[1]
    record = {"design": case.name, "board": case.board, "family": net.family, "lanes": case.lanes,
              "sizes": [model.n_in, *(layer.n_out for layer in model.layers)], "timesteps": model.timesteps,
              "mapper": net.mapper, "cells": net.cells, "synth_s": net.synth_s, "synth_cached": net.cached,
              "prepare_s": round(t1 - t0, 1), "simulator": case.simulator, "build_s": round(t2 - t1, 1),
              "samples": len(x), "sim_cycles": stats["sim_cycles"], "run_s": round(t3 - t2, 1),
              "level": "board", "baud": net.baud, "steps_checked": stats["steps_checked"], "bit_exact": True}
    _record(f"{case.name}-board", record)
    return record


def _record(name: str, record: dict) -> None:
    if os.environ.get("QLIF_GATE_RECORDS"):
        out = Path(os.environ["QLIF_GATE_RECORDS"])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")


def _flip_first_init_word(verilog: str, ram: str) -> str:
    """``verilog`` with every bit of the first init word of block RAM instance ``ram`` (a regex) inverted,
    as a bad memory mapping could leave the weights."""
    init = re.compile(r"(\.INIT(?:VAL)?_0+\((\d+)'h)([0-9a-f]+)\)")
    at = re.search(ram, verilog)
    assert at, f"no block RAM {ram} in the netlist"
    # The init parameters precede the instance name in write_verilog's output: take the last before it.
    first = list(init.finditer(verilog, 0, at.start()))[-1]
    flipped = "".join(f"{int(d, 16) ^ 0xF:x}" for d in first.group(3))
    return verilog[:first.start(3)] + flipped + verilog[first.end(3):]


@pytest.mark.parametrize("case", DEFAULT, ids=lambda c: c.name)
def test_small_core_netlists_equal_golden(case):
    check(case)


@pytest.mark.parametrize("case", DEFAULT, ids=lambda c: c.name)
def test_changed_weights_in_the_netlist_are_caught(case):
    """Layer 0's first synapse block RAM with its first init word inverted: the bench must report a
    difference."""
    model, x = case.make()
    net = synthesize(model, board=case.board, lanes=case.lanes)
    bad = _flip_first_init_word(net.verilog, r"\\core\.layer0\.syn\S*\s+\(")
    with pytest.raises(RtlMismatch):
        run_rtl(model, x, simulator=case.simulator, lanes=case.lanes, verilog=bad, build_dir=SIM_DIR, check=True)


@pytest.mark.parametrize("case", BOARD_DEFAULT, ids=lambda c: c.name)
def test_small_board_netlists_equal_golden(case):
    check_board(case)


def test_changed_weights_in_the_board_netlist_are_caught():
    """The same change in the iCE40 board netlist: the host-link bench, through the UART alone, must see it."""
    from qlif.sim.link_runner import SIM_TIMEOUT_CYCLES, run_link

    case = BOARD_DEFAULT[0]
    model, x = case.make()
    net = synthesize_board(model, board=case.board, lanes=case.lanes)
    bad = _flip_first_init_word(net.verilog, r"\\link\.network\.layer0\.syn\S*\s+\(")
    with pytest.raises(SimulationError, match="sample 0, step 0: the board says"):
        run_link(model, x, test="steps", simulator=case.simulator, lanes=case.lanes, build_dir=SIM_DIR,
                 netlist=(bad, net.divisor, net.timeout_cycles), host_timeout_cycles=SIM_TIMEOUT_CYCLES)


@pytest.mark.slow
@pytest.mark.parametrize("case", BOARD_SLOW, ids=lambda c: c.name)
def test_board_netlists_at_scale_equal_golden(case):
    check_board(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=lambda c: c.name)
def test_core_netlists_at_scale_equal_golden(case):
    check(case)
