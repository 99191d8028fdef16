# amaranth: UnusedElaboratable=no
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
from qlif.hw.memory import plan_memories, spram_image
from qlif.sim.runner import SIMULATORS
from qlif.sim.wakeup_runner import SLEEP_MARGIN_NS, run_wakeup, spram_plan


def _model(sizes=(12, 16, 4), **metadata):
    return replace(random_model(list(sizes), timesteps=8, seed=2), metadata=metadata or {"dataset": "digits"})


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_wakeup_frames_over_spi(simulator):
    """Four frames (two of them with a second frame sent while busy): the clock stopped before and after
    each, results equal to the golden model, the wake pin as the mask written over SPI says. A fast SCK
    (a frame in about one LFOSC period) and the next frame 0, 0.5 and 1.5 LFOSC periods after DONE: the
    commits that once fell while the always-on domain was turning the oscillator off, so that CLKHFEN
    fell one or two LFOSC edges into the next inference (the bench fails on any fall of CLKHFEN while
    ``run`` is high; the design before the fix failed at frame 1 on both simulators). A frame cut by a
    glitch on CS is refused, the mask untouched (the target before took the frame's rest as a WRITE_MASK)."""
    model = _model()
    frames = np.random.default_rng(1).integers(0, 17, size=(4, model.n_in), dtype=np.uint8)
    stats = run_wakeup(model, frames, simulator=simulator, lanes=4, wake_set=(1, 2), busy_frames=2,
                       sck_ns=10, gaps_lfosc=(0, 0.5, 1.5), poll_ns=200)
    assert stats["frames"] == 4 and stats["refused"] == 2 and stats["clock_cuts"] == []
    assert all(n > 0 for n in stats["hf_edges"])
    # Before the frames, one cut by a glitch on CS whose rest reads as a WRITE_MASK: refused, the mask kept.
    assert stats["glitch_refused"]


@pytest.mark.parametrize("simulator", [pytest.param(s, marks=pytest.mark.slow) if s != "icarus" else s
                                       for s in SIMULATORS])
def test_wakeup_spram_sleeps_while_idle(simulator):
    """Synapses in SPRAM (2-bit weights, both layers): the weights loaded from the flash model at power-up
    (BUSY meanwhile, then the clock stopped), three frames equal to the golden model, the SPRAM asleep
    whenever the clock is stopped and no core clock edge while it sleeps (the bench caught both a
    ``spram_sleep`` tied low and one that fell only with ``run``, the clock's tail after the result
    running on a sleeping SPRAM); the loader started only from the boot request's synchroniser, the
    flash sent back into deep power-down after the load, SLEEP raised only a margin after the clock's
    last edge (the design before failed all three)."""
    model = replace(random_model([12, 16, 4], timesteps=8, seed=2, weight_bits=2), metadata={"dataset": "digits"})
    frames = np.random.default_rng(1).integers(0, 17, size=(3, model.n_in), dtype=np.uint8)
    stats = run_wakeup(model, frames, simulator=simulator, lanes=4, wake_set=(1, 2), busy_frames=1, sck_ns=10,
                       gaps_lfosc=(0, 1.5), poll_ns=200, spram=True)
    assert stats["frames"] == 3 and stats["sleep_edges"] == [] and stats["clock_cuts"] == []
    # The load: the flash's wake-up wait (4096 cycles) and 16 cycles a byte of the image.
    assert stats["load_edges"] > 4096 + 16 * len(spram_image(model, 4, spram_plan(model, 4)))
    # The bench's own checks, as figures: the loader started after the boot synchroniser (it selected the
    # flash at edge 1 before), the flash left in deep power-down, SLEEP only with the clock disabled and a
    # margin after its last edge (it rose with CLKHFEN's fall before: 0 ns).
    assert stats["flash_select_edge"] >= 3 and stats["flash_asleep"]
    assert all(e[1] is not None and min(e) >= SLEEP_MARGIN_NS for e in stats["sleep_entry_ns"])


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_wakeup_frames_over_spi_phased_mnist_levels(simulator):
    """Frames of 255 levels at a maximum rate of 3/16 (the encoder's phase ROM), 16 frames, every one
    refused-while-busy once, the power-up mask narrowed to one class."""
    model = _model((24, 20, 6), dataset="mnist", max_rate="3/16")
    frames = np.random.default_rng(2).integers(0, 256, size=(16, model.n_in), dtype=np.uint8)
    stats = run_wakeup(model, frames, simulator=simulator, lanes=2, wake_classes=[3], wake_set=(0, 3, 5),
                       busy_frames=16, gaps_lfosc=(0, 1, 2, 3, 5))
    assert stats["frames"] == 16 and stats["refused"] == 16


def test_wakeup_refuses_bad_parameters():
    model = _model()
    with pytest.raises(ValueError, match="SB_HFOSC frequency"):
        WakeupCore.check(model=model, lanes=4, core_freq=20e6)
    with pytest.raises(ValueError, match="frame_levels"):
        WakeupCore.check(model=replace(model, metadata={"dataset": "cifar"}), lanes=4)
    assert WakeupCore.check(model=model, lanes=4, memory=plan_memories(model, 4, "iCE40UP5K", spram=True))[0].uses_spram
    # The flow's baud and separate_clocks are taken (and ignored); a misspelt keyword is not.
    ICEBreakerWakeupTop(model=model, lanes=4, baud=115200, separate_clocks=False)
    with pytest.raises(TypeError, match="wake_class"):
        ICEBreakerWakeupTop(model=model, lanes=4, wake_class=[1])
    with pytest.raises(ValueError, match="gaps_lfosc"):
        run_wakeup(model, np.zeros((1, model.n_in), np.uint8), gaps_lfosc=())


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
    # CS pulled up; CIPO tri-stated: its buffer's output enable a signal (CS low), not the constant 1.
    modules = {m.split("\n", 1)[0].strip(): m for m in il.split("\nmodule ")[1:]}
    assert "parameter \\PULLUP 1" in modules["\\qlif.spi_cs"]
    cipo = il[il.index("cell \\qlif.spi_cipo"):]
    assert cipo.split("\n")[1].strip().startswith("connect \\oe \\"), cipo[:200]


def test_wakeup_report_names_spi_and_hfosc():
    """report.md of a wake-up build: SPI and SB_HFOSC, not a baud rate nor the board oscillator."""
    from qlif.boards.flow.reports import report_markdown

    report = {"board": "icebreaker", "device": "iCE40UP5K-SG48", "lanes": 4, "baud": 115200, "pll": True,
              "wakeup": True, "clk_mhz": 12.0, "fmax_mhz": 38.7, "timing_met": True, "resources": {},
              "files": {}, "bitstream": "qlif.bin",
              "model": {"sizes": [64, 128, 10], "timesteps": 16, "weight_bits": [4, 4], "membrane_bits": [11, 10]}}
    md = report_markdown(report)
    assert "frames over SPI" in md and "SB_HFOSC" in md, md
    assert "baud" not in md and "board oscillator" not in md and "PLL" not in md, md
    assert "115200 baud" in report_markdown({**report, "wakeup": False})


@pytest.mark.parametrize("args, message", [
    (["--board", "icesugar", "--wakeup"], "--wakeup is built for icebreaker"),
    (["--board", "icebreaker", "--wakeup", "--clk-mhz", "20"], "SB_HFOSC frequency"),
])
def test_wakeup_cli_refusals(args, message, capsys):
    assert main(["build", "--random", "12,16,4", "--out-dir", "build/wakeup-refused", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "qlif: error: build:" in err, err
