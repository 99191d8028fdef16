"""The wake-up report's outputs: the table, the CSV, the JSON, the Markdown and the log-log plot, from the
:class:`~qlif.boards.sweep.wakeup_report.WakeupReport` of each model."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from qlif.boards.sweep.wakeup_report import WakeupReport
from qlif.golden.spec.files import write_atomic, write_text

__all__ = ["COLUMNS", "rows", "csv_text", "table", "markdown", "write_plot", "write_all"]

COLUMNS = ("model", "network", "clk_mhz", "rate_hz", "avg_power_uw", "sustained", "idle_power_uw",
           "energy_per_inference_uj", "latency_us", "power_up_us", "compute_us", "tail_us", "spi_us",
           "cycles_per_inference", "max_rate_hz", "avg_power_uw_spram_sensitivity")


def rows(reports: list[WakeupReport]) -> list[dict]:
    """One row per model and rate; ``avg_power_uw`` empty where the build cannot sustain the rate."""
    out = []
    for rep in reports:
        j = rep.to_json()
        sens = j["spram"]["idle_power_uw_at_sensitivity"]
        for r in j["rates"]:
            out.append({
                "model": j["model"], "network": "-".join(map(str, j["network"])), "clk_mhz": f"{j['clk_mhz']:g}",
                "rate_hz": f"{r['rate_hz']:g}",
                "avg_power_uw": "" if r["avg_power_uw"] is None else f"{r['avg_power_uw']:.1f}",
                "sustained": "yes" if r["sustained"] else "no", "idle_power_uw": f"{j['idle_power_uw']:.1f}",
                "energy_per_inference_uj": f"{j['energy_per_inference_uj']:.3f}",
                "latency_us": f"{j['latency_us']:.0f}",
                "power_up_us": f"{j['power_up_us']:.0f}", "compute_us": f"{j['compute_us']:.0f}",
                "tail_us": f"{j['tail_us']:.0f}", "spi_us": f"{j['spi_us']:.0f}",
                "cycles_per_inference": f"{j['cycles_per_inference']:.0f}", "max_rate_hz": f"{j['max_rate_hz']:.1f}",
                # The average were each sleeping SPRAM block to leak SPRAM_SLEEP_SENSITIVITY (SPRAM builds).
                "avg_power_uw_spram_sensitivity": "" if sens is None or r["avg_power_uw"] is None
                else f"{r['avg_power_uw'] + sens - j['idle_power_uw']:.1f}",
            })
    return out


def csv_text(reports: list[WakeupReport]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(reports))
    return buf.getvalue()


def _summary(rep: WakeupReport) -> str:
    j = rep.to_json()
    res = j["resources"]
    spram = f", {res['spram']} SPRAM" if res.get("spram") else ""
    return (f"{j['model']} ({'-'.join(map(str, j['network']))}, T = {j['timesteps']}, P = {j['lanes']}) on "
            f"{j['device']}: {res['luts']} LUT4, {res['ffs']} FF, {res['ebr']} EBR{spram}; core Fmax "
            f"{j['fmax_mhz']:.2f} MHz; SB_HFOSC {j['clk_mhz']:g} MHz ({j['clock_choice']}; timing "
            f"{'met' if j['timing_met'] else 'NOT met'}); {j['cycles_per_inference']:.0f} core cycles per inference "
            f"(mean of {j['cycle_samples']} test samples: encoded_cycles + {j['overhead_cycles']} edges of the "
            f"wake-up top per frame; {_check(j)})")


def _check(j: dict) -> str:
    checked = j["overhead_checked"]
    if checked:
        return f"equal to the wake-up RTL's clock edges on {len(checked)} frames"
    note = j["provenance"].get("cycles_check", "")
    return f"the wake-up RTL check {note}" if note else "not checked against the wake-up RTL"


def _phases(j: dict) -> str:
    return ", ".join(f"{p['phase']} {p['duration_us']:.0f} us x {p['power_above_idle_uw']:.0f} uW = "
                     f"{p['energy_uj']:.3f} uJ" for p in j["phases"])


def _spram(j: dict) -> list[str]:
    """The SPRAM lines: accesses, the sleep assumption and its sensitivity, the time awake unclocked, the
    one-time load."""
    sp = j["spram"]
    if not sp["blocks"]:
        return []
    enable = sp["measured_enable_rate"]
    more = sp["idle_power_uw_at_sensitivity"] - j["idle_power_uw"]
    return [f"SPRAM ({sp['blocks']} blocks, {', '.join(sp['memories'])}): {sp['accesses_per_block_cycle']:g} access "
            f"per block and core cycle (CHIPSELECT tied high; the core's read enable is high "
            f"{'?' if enable is None else f'{enable:.0%}'} of cycles); asleep while idle at "
            f"{sp['sleep_ua_per_block']:g} uA per block beyond static (an assumption: no published figure); at "
            f"{sp['sensitivity_ua_per_block']:g} uA per block idle would be "
            f"{sp['idle_power_uw_at_sensitivity']:.1f} uW (+{more:.1f}); awake unclocked "
            f"{sp['awake_unclocked_us']:.0f} us per inference (the power-up, and after the clock stops) "
            f"charged as asleep (the model's standby), +{sp['awake_unclocked_uj_at_sensitivity']:.4f} uJ were an "
            f"awake block to draw {sp['sensitivity_ua_per_block']:g} uA more;"
            f" weights loaded once at power-up: {sp['load_cycles']:,} cycles, {sp['load_ms']:.0f} ms, "
            f"{sp['load_uj']:.0f} uJ (not per inference)"]


def table(reports: list[WakeupReport]) -> str:
    """The plain-text table of stdout."""
    lines = []
    for rep in reports:
        j = rep.to_json()
        lines += [_summary(rep),
                  f"  idle {j['idle_power_uw']:.1f} uW, running {j['running_power_uw']:.0f} uW, "
                  f"{j['energy_per_inference_uj']:.3f} uJ per inference, latency {j['latency_us']:.0f} us "
                  f"(power-up {j['power_up_us']:.0f} + compute {j['compute_us']:.0f}), SPI {j['spi_us']:.0f} us at "
                  f"{j['sck_mhz']:g} MHz SCK, at most {j['max_rate_hz']:.1f} inferences/s",
                  f"  per inference: {_phases(j)}",
                  *(f"  {line}" for line in _spram(j)),
                  f"  {'rate (1/s)':>10}  {'average power (uW)':>19}"]
        for r in j["rates"]:
            w = "not sustained" if r["avg_power_uw"] is None else f"{r['avg_power_uw']:.1f}"
            lines.append(f"  {r['rate_hz']:>10g}  {w:>19}")
    return "\n".join(lines) + "\n"


def markdown(reports: list[WakeupReport], *, plot: str | None, command: str = "") -> str:
    lines = ["# Wake-up power: the UP5K wake-up build against the inference rate", "",
             "Estimates of the calibrated power model (docs/power.md, \"Wake-up power\"), not measurements.", ""]
    if command:
        lines += ["```sh", command, "```", ""]
    for rep in reports:
        j = rep.to_json()
        lines += [f"- {_summary(rep)}; activity from {rep.inputs.workload}",
                  f"  - per inference (above idle): {_phases(j)}",
                  *(f"  - {line}" for line in _spram(j)),
                  f"  - commit {j['provenance'].get('commit', '?')}, model sha256 "
                  f"{j['provenance'].get('model_sha256', '?')[:16]}, wake-up Verilog "
                  f"{j['provenance'].get('wakeup_verilog_sha256', '?')}"]
    lines += ["", "| model | rate (1/s) | average power (uW) | idle (uW) | energy per inference (uJ) | latency (us) |",
              "|---|---|---|---|---|---|"]
    for r in rows(reports):
        w = r["avg_power_uw"] or f"not sustained (max {r['max_rate_hz']}/s)"
        lines.append(f"| {r['model']} | {r['rate_hz']} | {w} | {r['idle_power_uw']} | {r['energy_per_inference_uj']} | "
                     f"{r['latency_us']} |")
    if plot:
        lines += ["", f"![average power against the inference rate]({plot})"]
    return "\n".join(lines) + "\n"


def write_plot(reports: list[WakeupReport], path: Path) -> None:
    """Average power against the inference rate, log-log; one line per model, its sustained rates only,
    and its idle power dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for rep in reports:
        pts = [(r, w * 1e6) for r, w in zip(rep.rates, rep.average_w, strict=True) if w is not None]
        label = f"{rep.inputs.model_name} ({rep.clk_mhz:g} MHz)"
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.axhline(rep.idle_w * 1e6, color=line.get_color(), linestyle="--", linewidth=0.8)
        for r, w in zip(rep.rates, rep.average_w, strict=True):
            if w is None:
                ax.annotate(f"{r:g}/s not sustained", (r, rep.idle_w * 1e6), fontsize=7, color=line.get_color(),
                            rotation=90, va="bottom")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inferences per second")
    ax.set_ylabel("average power (uW)")
    ax.set_title("iCE40 UP5K wake-up build: average power (dashed: idle)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    plt.close(fig)


def write_all(reports: list[WakeupReport], out_dir: Path, name: str, *, command: str = "") -> dict[str, Path]:
    """Write ``name``.csv, .json, .png and .md into ``out_dir``; return their paths. Everything is
    computed before the first file is written."""
    out_dir = Path(out_dir)
    csv_doc = csv_text(reports)
    json_doc = json.dumps([r.to_json() for r in reports], indent=2) + "\n"
    files = {k: out_dir / f"{name}.{k}" for k in ("csv", "json", "png", "md")}
    md = markdown(reports, plot=files["png"].name, command=command)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plot(reports, files["png"])
    write_text(files["csv"], csv_doc)
    write_text(files["json"], json_doc)
    write_text(files["md"], md)
    return files
