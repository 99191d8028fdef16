"""The resource and timing report of a build: parsed from the tools' JSON, then formatted for people.

Parsing: :func:`parse_reports` reads nextpnr's ``--report`` JSON (utilisation, Fmax, critical paths) and
Yosys' ``stat -json`` (cell counts), never the logs, and computes the figures of one build from them.
Formatting: :func:`summary` (one line) and :func:`report_markdown` (``report.md``) render a report dict
of :func:`qlif.boards.flow.build.build`, which adds what was built to the parsed figures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qlif.golden.spec.files import ROOT
from qlif.hw.flash import DEFAULT_OFFSET as FLASH_OFFSET

__all__ = ["CORE_CLOCK_NET", "parse_reports", "critical_path", "summary", "timing_misses", "report_markdown"]

_ROOT = str(ROOT) + os.sep

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

#: The resources a one-line summary of a build names.
_SUMMARY_RESOURCES = ("lc", "lut", "ff", "ebr", "spram", "dsp")


# -- parsing -------------------------------------------------------------------------------------------------

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
    cells = {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}
    clocks = {net: {"fmax_mhz": float(f["achieved"]), "constraint_mhz": float(f["constraint"])}
              for net, f in rep["fmax"].items()}
    if not clocks:
        raise ValueError("nextpnr report has no clock in 'fmax': was the clock constrained?")
    net = _clock_net(clocks, clock)
    return {
        "family": fam,
        "resources": _resources(fam, rep["utilization"], cells),
        "cells": cells,
        "fmax_mhz": clocks[net]["fmax_mhz"],
        "timing_met": all(c["fmax_mhz"] >= c["constraint_mhz"] for c in clocks.values()),
        "clocks": clocks,
        "critical_path": critical_path(rep.get("critical_paths", []), net),
    }


# -- computing -----------------------------------------------------------------------------------------------

def _resources(fam: str, utilization: dict, cells: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{name: {"used", "available"}}`` from nextpnr's utilisation (and, on iCE40, Yosys' flip-flops)."""
    util = {name: {"used": int(utilization[bel]["used"]), "available": int(utilization[bel]["available"])}
            for bel, name in _BELS[fam].items() if bel in utilization}
    if fam == "ice40":
        # Every iCE40 logic cell has one flip-flop; Yosys names them SB_DFF plus enable/reset suffixes.
        util["ff"] = {"used": sum(n for k, n in cells.items() if k.startswith("SB_DFF")),
                      "available": util["lc"]["available"]}
    return util


def _clock_net(clocks: dict[str, dict], clock: str | None) -> str:
    """The report's net for ``clock`` (its name or the end of its hierarchical name), or the slowest."""
    if clock is None:
        return min(clocks, key=lambda net: clocks[net]["fmax_mhz"])
    # nextpnr-ecp5 names a clock net after its global buffer and hierarchy ("$glbnet$link.network.core_clk").
    named = [net for net in clocks if net == clock or net.endswith(("." + clock, "$" + clock))]
    if len(named) != 1:
        raise ValueError(f"clock must name one of the report's clocks {sorted(clocks)}, not {clock!r}")
    return named[0]


def critical_path(paths: list[dict], clock_net: str) -> dict | None:
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


# -- formatting ----------------------------------------------------------------------------------------------

def summary(report: dict) -> str:
    """One line of a build's report: every clock's Fmax against its constraint, the core's Fmax, whether
    timing is met, and the main resources used / available."""
    clocks = "; ".join(f"{net}: Fmax {c['fmax_mhz']:.2f} MHz (constraint {c['constraint_mhz']:.2f})"
                       for net, c in report["clocks"].items())
    util = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in report["resources"].items()
                     if k in _SUMMARY_RESOURCES)
    return (f"{clocks}; core Fmax {report['fmax_mhz']:.2f} MHz; timing "
            f"{'met' if report['timing_met'] else 'NOT met'}; {report['device']}: {util}")


def timing_misses(report: dict) -> str:
    """The clocks that miss their constraint, as ``net Fmax X MHz < Y MHz`` (empty when timing is met)."""
    return ", ".join(f"{net} Fmax {c['fmax_mhz']:.2f} MHz < {c['constraint_mhz']:.2f} MHz"
                     for net, c in report["clocks"].items() if c["fmax_mhz"] < c["constraint_mhz"])


def _link_and_clock(report: dict) -> tuple[str, str]:
    """How the host reaches the board, and where the core's clock comes from. A wake-up build
    (``report["wakeup"]``, :mod:`qlif.boards.tops.wakeup`) has no UART (its ``baud`` is only the flow's
    default) and no PLL: its core runs on the gated ``SB_HFOSC``."""
    if report.get("wakeup"):
        return ("frames over SPI (mode 0, on the controller's SCK; no UART). Clocks: `core_clk` (SB_HFOSC), "
                "`aon_clk` (SB_LFOSC, 10 kHz) and SCK (the third)",
                "SB_HFOSC, on from a frame's commit until 200-300 us after its result")
    link = f"host link at {report['baud']} baud"
    if report.get("encoder"):
        link += ", with the on-chip encoder (FRAME: one frame per sample; its resources are in the figures below)"
    return link, "PLL" if report["pll"] else "board oscillator"


def report_markdown(report: dict) -> str:
    """``report.md`` of a build: what was built, the resources used and available, timing, files."""
    m = report["model"]
    link, clock = _link_and_clock(report)
    lines = [
        f"# qlif build: {report['board']} ({report['device']})",
        "",
        f"{report.get('description', report['board'])}. Model {'-'.join(map(str, m['sizes']))}, "
        f"T = {m['timesteps']}, weight bits {m['weight_bits']}, membrane bits {m['membrane_bits']}; "
        f"P = {report['lanes']} lanes; {link}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| core clock | {report['clk_mhz']:.3f} MHz ({clock}) |",
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
        image = Path(report["files"]["flash_image"]).name
        lines += ["", f"Synapses in SPRAM are loaded from the SPI flash at start-up (16 clock cycles per byte): "
                  f"program `{image}` (the bitstream, then the weights at {FLASH_OFFSET:#x}), e.g. "
                  f"`iceprog {image}`."]
    if report.get("pins"):
        lines += ["", "## Pins", "", "| signal | resource |", "|---|---|"]
        lines += [f"| {sig} | {pin} |" for sig, pin in report["pins"].items()]
    lines += ["", f"Bitstream: `{report['bitstream']}`", ""]
    return "\n".join(lines)
