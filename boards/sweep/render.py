"""The sweep's outputs: the CSV, the Markdown report and the PNG plots, from the table rows of :mod:`.rows`."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from qlif.boards.sweep import closure
from qlif.boards.sweep.config import SweepConfig, device_of
from qlif.boards.sweep.rows import COLUMNS, only_unrun
from qlif.golden.spec.files import write_atomic

__all__ = ["csv_text", "markdown", "write_plots"]


def csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _fmt(value, digits: int = 1) -> str:
    if value == "" or value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(config: SweepConfig, rows: list[dict], plots: list[str], seconds: float, jobs: int, ran: int,
              total: int, *, power_doc: str = "../power.md", label: str = "", design: str = "",
              worker_seconds: float = 0.0, missing: int = 0, runs: list | None = None) -> str:
    sizes = "-".join(map(str, config.sizes))
    lines = [
        "# Hardware sweep: resources, Fmax, latency, power and energy per bit width",
        "",
        f"Written by `qlif sweep-hw` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, design "
        f"{design or closure.design_hash()}{', ' + label if label else ''}). Network {sizes}, "
        f"T = {config.timesteps}, random uniform weights of each width "
        f"(`random_model`, seed {config.model_seed}), leak shift 3, subtract reset, P = "
        f"{', '.join(map(str, config.lanes))} lanes, inside the board top with its UART host link. Fmax: "
        f"nextpnr, median over seeds {', '.join(map(str, config.seeds))}, clock constrained to the target "
        "column. Cycles: golden cycle model, mean over the whole "
        f"{config.dataset} test split (rate coded). Latency = cycles / Fmax.",
        "",
        "**Power and energy are estimates, not measurements**: device static power from the data sheet, "
        "dynamic power from the switching activity measured in RTL simulation of the workload (first "
        f"{config.samples} test samples) times per-resource coefficients, each with its source in "
        f"[docs/power.md]({power_doc}), at the median Fmax with the clock from the PLL. The ECP5 "
        "coefficients are engineering estimates (docs/power.md says which), so compare ECP5 figures with "
        "each other more than with the UP5K's.",
        "",
        *([f"**Partial results**, written while the sweep runs: {missing} of {total} tasks are not finished "
           "(rows marked *not run yet*).", ""] if missing else []),
        f"Run: {total} tasks (builds and activity simulations) took {worker_seconds / 3600:.1f} h of worker time"
        + (f"; wall time {sum(r['wall_seconds'] for r in runs) / 60:.0f} min over {len(runs)} invocation(s) with "
           f"{', '.join(sorted({str(r['jobs']) for r in runs}))} worker(s)" if runs else "")
        + (f"; this invocation ran {ran} of them in {seconds / 60:.1f} min with {jobs} worker(s)" if ran else "")
        + " on a 2-core machine shared with other work (builds there are slower than on an idle machine).",
        "",
    ]
    for board in config.boards:
        mine = [r for r in rows if r["board"] == board]
        device = mine[0]["device"] if mine else device_of(board)
        unit = next((r["logic_unit"] for r in mine if r["logic_unit"]), "LC")
        avail = next((r for r in mine if r["logic_available"] != ""), None)
        lines += [f"## {board} ({device})", ""]
        if avail:
            lines += [f"Available: {avail['logic_available']} {unit}, {avail['ff_available']} FF, "
                      f"{avail['ebr_available']} EBR, {_fmt(avail['spram_available'])} SPRAM, "
                      f"{_fmt(avail['dsp_available'])} DSP.", ""]
        lines += [f"| b | k | P | {unit} | FF | EBR | SPRAM | DSP | Fmax MHz (min-max) | cycles/inf | latency us "
                  "| a_ff | a_logic | power mW (static) | energy uJ/inf | pJ/cycle | at the oscillator: mW, uJ/inf "
                  "| critical path (median build) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in mine:
            if r["error"] and r["fmax_median_mhz"] == "":
                what = "not run yet" if only_unrun(r["error"]) else f"failed: {r['error'][:120]}"
                lines.append(f"| {r['weight_bits']} | {r['membrane_bits']} | {r['lanes']} | {what} ||||||||||||||||")
                continue
            fmax = (f"{_fmt(r['fmax_median_mhz'])} ({_fmt(r['fmax_min_mhz'])}-{_fmt(r['fmax_max_mhz'])})"
                    if r["fmax_median_mhz"] != "" else "-")
            lines.append(
                f"| {r['weight_bits']} | {r['membrane_bits']} | {r['lanes']} | {_fmt(r['logic_used'])} "
                f"| {_fmt(r['ff_used'])} | {_fmt(r['ebr_used'])} | {_fmt(r['spram_used'])} | {_fmt(r['dsp_used'])} "
                f"| {fmax} | {_fmt(r['cycles_mean'], 0)} | {_fmt(r['latency_us'])} | {_fmt(r['ff_rate'], 3)} "
                f"| {_fmt(r['logic_rate'], 3)} | {_fmt(r['power_mw'], 2)} ({_fmt(r['static_mw'], 2)}) "
                f"| {_fmt(r['energy_uj'], 3)} | {_fmt(r['energy_per_cycle_pj'], 0)} "
                f"| {_fmt(r['power_osc_mw'], 2)}, {_fmt(r['energy_osc_uj'], 3)} "
                f"| {r['critical_path'] or '-'} |")
        lines.append("")
    failed = [r for r in rows if r["error"] and not only_unrun(r["error"])]
    if failed:
        lines += ["## Errors", ""] + [f"- {r['board']} b={r['weight_bits']} k={r['membrane_bits']} "
                                      f"P={r['lanes']}: {r['error']}" for r in failed] + [""]
    lines += [
        "## Reading the table",
        "",
        "- b: weight bits, k: membrane bits, P: lanes. Resources are those of the first seed's build "
        "(placement does not change what synthesis uses). EBR counts include the host link's byte FIFO.",
        "- a_ff, a_logic: measured toggles per flip-flop bit and per logic net bit per cycle "
        "(`qlif.sim.activity`).",
        "- Cycles (and so latency, activity and energy) depend on the spikes of each width's random network, "
        "not only on the hardware: the default codebooks are two's complement, so b = 2 weights "
        "{-2, -1, 0, 1} average -0.5, a large bias against their spread, and that network spikes less (fewer "
        "cycles, lower activity). Compare widths by resources and Fmax directly, and by energy per cycle "
        "(pJ/cycle, at Fmax) for the hardware's own cost.",
        "- Energy per inference = power x latency, at Fmax (clock from the PLL) and at the board's oscillator "
        "(no PLL; the latency is then cycles / oscillator frequency). On the UP5K, whose static power is tiny, "
        "the slower clock without the PLL can cost less energy per inference; on the ECP5 the static power "
        "makes the fastest clock the cheapest.",
        "- Published FPGA SNN results on MNIST (Xilinx, "
        "vendor tools) use 1,600-7,600 logic cells, 0.5-1.1 ms and 111-180 mW per inference, i.e. about "
        "55-200 uJ per inference; note their networks are larger than this digits network.",
        "",
    ]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_plots(rows: list[dict], out: Path, name: str) -> list[str]:
    """Resources, Fmax and energy vs weight bits (one line per membrane width), one panel per board."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boards = list(dict.fromkeys(r["board"] for r in rows))
    lanes = sorted({r["lanes"] for r in rows})
    written = []

    def panel(fname: str, title: str, series: list[tuple[str, str]], errorbars: bool = False):
        fig, axes = plt.subplots(len(series), len(boards), figsize=(5.5 * len(boards), 3.6 * len(series)),
                                 squeeze=False)
        for col, board in enumerate(boards):
            for row_i, (key, label) in enumerate(series):
                ax = axes[row_i][col]
                for p in lanes:
                    for k in sorted({r["membrane_bits"] for r in rows}):
                        pts = [r for r in rows if r["board"] == board and r["membrane_bits"] == k
                               and r["lanes"] == p and r[key] != ""]
                        if not pts:
                            continue
                        xs = [r["weight_bits"] for r in pts]
                        ys = [r[key] for r in pts]
                        lbl = f"k={k}" + (f", P={p}" if len(lanes) > 1 else "")
                        if errorbars:
                            lo = [r[key] - r["fmax_min_mhz"] for r in pts]
                            hi = [r["fmax_max_mhz"] - r[key] for r in pts]
                            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=lbl)
                        else:
                            ax.plot(xs, ys, marker="o", label=lbl)
                ax.set_xscale("log", base=2)
                ax.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
                ax.set_xlabel("weight bits")
                ax.set_ylabel(label)
                device = next((r["device"] for r in rows if r["board"] == board), board)
                ax.set_title(f"{board} ({device})", fontsize=9)
                ax.grid(True, alpha=0.3)
                if ax.lines:
                    ax.legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        path = out / fname
        write_atomic(path, lambda f, fig=fig: fig.savefig(f, dpi=110, format="png"))
        plt.close(fig)
        written.append(fname)

    if any(r["logic_used"] != "" for r in rows):
        panel(f"{name}-resources.png", "Resources vs weight bits",
              [("logic_used", "logic cells / LUTs"), ("ebr_used", "block RAMs")])
    if any(r["fmax_median_mhz"] != "" for r in rows):
        panel(f"{name}-fmax.png", "Fmax (median over seeds, min-max bars) vs weight bits",
              [("fmax_median_mhz", "Fmax (MHz)")], errorbars=True)
    if any(r["energy_uj"] != "" for r in rows):
        panel(f"{name}-energy.png", "Estimated energy per inference at Fmax vs weight bits",
              [("energy_uj", "energy per inference (uJ)"), ("power_mw", "power at Fmax (mW)")])
    return written
