"""The wake-up build (boards/tops/wakeup.py): frames over SPI into the encoder and the core on a gated
SB_HFOSC clock, under cocotb on both simulators (sim/cocotb_wakeup.py), against the golden model; its
parameter checks; the iCEBreaker top's build plan; the CLI's refusals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qlif.boards.tops.wakeup import ICEBreakerWakeupTop, WakeupCore, WakeupPlatform
from qlif.cli import main
from qlif.golden.spec.random_model import random_model
from qlif.hw.memory import plan_memories
from qlif.sim.runner import SIMULATORS
from qlif.sim.wakeup_runner import run_wakeup


def _model(sizes=(12, 16, 4), **metadata):
    return replace(random_model(list(sizes), timesteps=8, seed=2), metadata=metadata or {"dataset": "digits"})


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_wakeup_frames_over_spi(simulator):
    """Four frames (two of them with a second frame sent while busy): the clock stopped before and after
    each, results equal to the golden model, the wake pin as the mask written over SPI says."""
    model = _model()
    frames = np.random.default_rng(1).integers(0, 17, size=(4, model.n_in), dtype=np.uint8)
    stats = run_wakeup(model, frames, simulator=simulator, lanes=4, wake_set=(1, 2), busy_frames=2)
    assert stats["frames"] == 4 and stats["refused"] == 2
    assert all(n > 0 for n in stats["hf_edges"])


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_wakeup_frames_over_spi_phased_mnist_levels(simulator):
    """Frames of 255 levels at a maximum rate of 3/16 (the encoder's phase ROM), 16 frames, every one
    refused-while-busy once, the power-up mask narrowed to one class."""
    model = _model((24, 20, 6), dataset="mnist", max_rate="3/16")
    frames = np.random.default_rng(2).integers(0, 256, size=(16, model.n_in), dtype=np.uint8)
    stats = run_wakeup(model, frames, simulator=simulator, lanes=2, wake_classes=[3], wake_set=(0, 3, 5),
                       busy_frames=16)
    assert stats["frames"] == 16 and stats["refused"] == 16


def test_wakeup_refuses_bad_parameters():
    model = _model()
    with pytest.raises(ValueError, match="SB_HFOSC frequency"):
        WakeupCore.check(model=model, lanes=4, core_freq=20e6)
    with pytest.raises(ValueError, match="frame_levels"):
        WakeupCore.check(model=replace(model, metadata={"dataset": "cifar"}), lanes=4)
    with pytest.raises(ValueError, match="SPRAM"):
        WakeupCore.check(model=model, lanes=4, memory=plan_memories(model, 4, "iCE40UP5K", spram=True))


def test_wakeup_icebreaker_build_plan():
    """The iCEBreaker top elaborates on its platform (pins, oscillators, clock constraints) into a build
    plan; the tools themselves run in ``qlif build --wakeup`` (docs/boards.md has the figures)."""
    from qlif.boards.flow.build import build_plan

    top = ICEBreakerWakeupTop(model=_model(), lanes=4, clk_freq=24e6)
    plan = build_plan(top, WakeupPlatform(), "qlif", 1, "", "ice40", abc9=True)
    il = plan.files["qlif.il"]
    il = il if isinstance(il, str) else il.decode()
    assert "SB_HFOSC" in il and "SB_LFOSC" in il and '"0b01"' in il
    pcf = plan.files["qlif.pcf"]
    assert all(f" {pin}" in pcf for pin in ("43", "38", "34", "31")), pcf


@pytest.mark.parametrize("args, message", [
    (["--board", "icesugar", "--wakeup"], "--wakeup is built for icebreaker"),
    (["--board", "icebreaker", "--wakeup", "--clk-mhz", "20"], "SB_HFOSC frequency"),
])
def test_wakeup_cli_refusals(args, message, capsys):
    assert main(["build", "--random", "12,16,4", "--out-dir", "build/wakeup-refused", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "qlif: error: build:" in err, err
