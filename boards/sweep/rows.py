"""The sweep's table: task results parsed per configuration, the figures computed, the rows formatted.

:func:`rows` is :func:`format_row` of :func:`compute` of each :func:`parse`: parsing picks the builds'
reports and the activity result of one configuration out of the task results, computing derives the
resources, Fmax statistics, latency, power and energy from them (:mod:`qlif.boards.flow.power`), and
formatting rounds them into the CSV's :data:`COLUMNS`.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from qlif.boards.protocol import UART_BITS_PER_BYTE, inference_bytes
from qlif.boards.sweep.config import SweepConfig, device_of, oscillator_hz

__all__ = ["COLUMNS", "DIGITS", "Measured", "parse", "compute", "format_row", "rows", "critical_path_text",
           "only_unrun"]

COLUMNS = [
    "board", "device", "weight_bits", "membrane_bits", "lanes",
    "logic_used", "logic_available", "logic_unit", "ff_used", "ff_available", "ebr_used", "ebr_available",
    "spram_used", "spram_available", "dsp_used", "dsp_available",
    "fmax_median_mhz", "fmax_min_mhz", "fmax_max_mhz", "seeds", "target_mhz", "critical_path",
    "cycles_mean", "cycles_max", "latency_us",
    "ff_rate", "logic_rate", "ebr_read_rate", "ebr_write_rate",
    "static_mw", "dynamic_mw", "power_mw", "energy_uj", "energy_per_cycle_pj",
    "osc_mhz", "power_osc_mw", "energy_osc_uj", "error",
]
#: Decimals of each computed column in the table (the others are counts or names).
DIGITS = {
    "fmax_median_mhz": 2, "fmax_min_mhz": 2, "fmax_max_mhz": 2, "cycles_mean": 1, "latency_us": 2,
    "ff_rate": 4, "logic_rate": 4, "ebr_read_rate": 4, "ebr_write_rate": 4,
    "static_mw": 3, "dynamic_mw": 3, "power_mw": 3, "energy_uj": 4, "energy_per_cycle_pj": 2,
    "osc_mhz": 3, "power_osc_mw": 3, "energy_osc_uj": 4,
}
#: Resource names in the reports (iCE40 / ECP5 may name the logic count differently).
_LOGIC_KEYS = ("lc", "lut", "comb", "slice")


@dataclass(frozen=True)
class Measured:
    """What the tasks of one configuration (board, b, k, P) brought back."""

    board: str
    weight_bits: int
    membrane_bits: int
    lanes: int
    reports: list[dict]        #: build reports of the seeds that succeeded, in seed order
    activity: dict | None      #: the activity task's result, if it succeeded
    errors: list[str]          #: ``activity: ...`` and ``seed N: ...`` for each task that failed or did not run


def parse(config: SweepConfig, results: dict) -> list[Measured]:
    """The task results (key -> ``(result, error)``; a missing key has not run) of each configuration,
    board by board in :func:`qlif.boards.sweep.execute.plan`'s order."""
    out = []
    for board in config.boards:
        for b in config.weight_bits:
            for k in config.membrane_bits:
                for p in config.lanes:
                    errors, reports = [], []
                    activity, err = results.get(f"w{b}-k{k}-p{p}", (None, "not run"))
                    if err:
                        errors.append(f"activity: {err}")
                    for seed in config.seeds:
                        res, err = results.get(f"{board}-w{b}-k{k}-p{p}-s{seed}", (None, "not run"))
                        if err:
                            errors.append(f"seed {seed}: {err}")
                        else:
                            reports.append(res["report"])
                    out.append(Measured(board, b, k, p, reports, activity if activity else None, errors))
    return out


def compute(m: Measured, config: SweepConfig) -> dict:
    """The figures of one configuration by column (unrounded; columns without a figure are left out)."""
    from qlif.boards.flow.activity import Activity
    from qlif.boards.flow.power import Resources, estimate_power, family_of

    fig: dict = {"device": device_of(m.board), "target_mhz": config.target(m.board)}
    if m.reports:
        rep = m.reports[0]
        fig["device"] = rep.get("device", fig["device"])
        util = rep["resources"]
        logic = next((key for key in _LOGIC_KEYS if key in util), None)
        if logic:
            fig.update(logic_used=util[logic]["used"], logic_available=util[logic]["available"],
                       logic_unit=logic.upper())
        for key in ("ff", "ebr", "spram", "dsp"):
            if key in util:
                fig[f"{key}_used"] = util[key]["used"]
                fig[f"{key}_available"] = util[key]["available"]
        fmax = [r["fmax_mhz"] for r in m.reports]
        median = statistics.median(fmax)
        fig.update(fmax_median_mhz=median, fmax_min_mhz=min(fmax), fmax_max_mhz=max(fmax), seeds=len(fmax),
                   critical_path=critical_path_text(min(m.reports, key=lambda r: abs(r["fmax_mhz"] - median))))
    if m.activity:
        act = Activity.from_json(m.activity["activity"])
        fig.update(cycles_mean=m.activity["cycles_mean"], cycles_max=m.activity["cycles_max"],
                   ff_rate=act.ff_rate, logic_rate=act.logic_rate)
        geometry = family_of(fig["device"]).ebr_geometry
        fig["ebr_read_rate"], fig["ebr_write_rate"] = act.memory_rates(block_width=geometry[0],
                                                                       block_depth=geometry[1])
    if m.reports and m.activity:
        # At the Fmax the table shows (two decimals), so that latency = cycles / Fmax holds in the table.
        f = round(fig["fmax_median_mhz"], DIGITS["fmax_median_mhz"]) * 1e6
        cycles = m.activity["cycles_mean"]
        # The replies on the UART (the only outputs that toggle), about half of each byte's line bits
        # changing. Records made before the activity task counted them lack the figure; without input
        # steps of more than MAX_WORDS addresses (never so with the digits' 64 inputs) it is this one.
        replies = m.activity.get("reply_bytes_mean") or inference_bytes(
            [0] * config.timesteps, n_out=config.sizes[-1]).from_board
        toggles = replies * UART_BITS_PER_BYTE / 2
        res = Resources.from_report(m.reports[0])
        # At Fmax, from the PLL.
        power = estimate_power(device=fig["device"], resources=res, activity=act, clk_hz=f, pll=True,
                               io_toggles_per_s=toggles * f / cycles)
        fig.update(latency_us=cycles / f * 1e6, static_mw=power.static_w * 1e3,
                   dynamic_mw=(power.total_w - power.static_w) * 1e3, power_mw=power.total_w * 1e3,
                   energy_uj=power.energy_per_inference(cycles) * 1e6,
                   energy_per_cycle_pj=power.energy_per_inference(1) * 1e12)
        # At the board's oscillator, no PLL (when the design is fast enough for it).
        osc = oscillator_hz(m.board)
        if osc <= f:
            slow = estimate_power(device=fig["device"], resources=res, activity=act, clk_hz=osc, pll=False,
                                  io_toggles_per_s=toggles * osc / cycles)
            fig.update(osc_mhz=osc / 1e6, power_osc_mw=slow.total_w * 1e3,
                       energy_osc_uj=slow.energy_per_inference(cycles) * 1e6)
    return fig


def format_row(m: Measured, figures: dict) -> dict:
    """A table row: every column, figures rounded to :data:`DIGITS`, ``""`` where there is none."""
    row = dict.fromkeys(COLUMNS, "")
    row.update(board=m.board, weight_bits=m.weight_bits, membrane_bits=m.membrane_bits, lanes=m.lanes)
    row.update({key: round(value, DIGITS[key]) if key in DIGITS else value for key, value in figures.items()})
    row["error"] = "; ".join(m.errors)
    return row


def rows(config: SweepConfig, results: dict) -> list[dict]:
    """The table of the sweep from its task results (key -> ``(result, error)``)."""
    return [format_row(m, compute(m, config)) for m in parse(config, results)]


def critical_path_text(report: dict) -> str:
    """Where the critical path of a build starts and ends in the project's sources (``boards/link/host_link.py:252
    -> hw/network.py:310``), from nextpnr's path report."""
    path = report.get("critical_path") or {}
    places = []
    for src in path.get("sources", []):
        match = re.search(r"(?:^|/)((?:hw|boards|golden|sim)/(?:\w+/)*\w+\.py:\d+)", src)
        if match and match.group(1) not in places:
            places.append(match.group(1))
    if not places:
        # No source locations (nets of library code): the cells' hierarchical names, less the suffixes
        # that packing adds (``link.sender.fsm_state_SB_DFFESR_Q_2_D_SB_LUT4_O_LC`` -> ``link.sender.fsm_state``).
        for key in ("from", "to"):
            name = re.split(r"_(?:SB_|TRELLIS|DFF|LUT4|CCU2|DP16|PFUMX|L6MUX|MULT)|\$", path.get(key) or "")[0]
            if name and name not in places:
                places.append(name)
    if not places:
        return ""
    return places[0] if len(places) == 1 else f"{places[0]} -> {places[-1]}"


def only_unrun(error: str) -> bool:
    """Every part of a row's error says its task has not run (yet)."""
    return all(part.endswith("not run") for part in error.split("; "))
