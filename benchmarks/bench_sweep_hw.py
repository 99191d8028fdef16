"""The full hardware sweep (`qlif sweep-hw` with its defaults) and its headline figures.

Builds every weight width {1,2,4,8} x membrane width {4,8,12,16} on the UP5K board and on an ECP5-85F
board when the board table has one, three nextpnr seeds each, measures the activity, and writes
docs/results/hw-sweep.{md,csv} and the plots. Takes hours on two shared cores; an interrupted run
resumes from build/sweep-hw. Extra arguments go to `qlif sweep-hw` (e.g. `--jobs 2 --seeds 1`).

    .venv/bin/python benchmarks/bench_sweep_hw.py [qlif sweep-hw options]
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from qlif.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _summary(path: Path) -> None:
    rows = [r for r in csv.DictReader(path.read_text().splitlines()) if not r["error"]]
    for board in dict.fromkeys(r["board"] for r in rows):
        mine = [r for r in rows if r["board"] == board and r["energy_uj"]]
        if not mine:
            continue
        best = min(mine, key=lambda r: float(r["energy_uj"]))
        fmax = [float(r["fmax_median_mhz"]) for r in mine]
        logic = [int(r["logic_used"]) for r in mine]
        print(f"{board} ({mine[0]['device']}): {len(mine)} configurations; {mine[0]['logic_unit']} "
              f"{min(logic)}-{max(logic)} of {mine[0]['logic_available']}; Fmax {min(fmax):.1f}-{max(fmax):.1f} MHz; "
              f"lowest energy b={best['weight_bits']} k={best['membrane_bits']}: {float(best['energy_uj']):.3f} uJ "
              f"per inference ({float(best['latency_us']):.0f} us at {float(best['fmax_median_mhz']):.1f} MHz, "
              f"{float(best['power_mw']):.2f} mW, estimated)")


def run(argv: list[str]) -> int:
    out = ROOT / "docs" / "results"
    start = time.monotonic()
    status = main(["sweep-hw", "--out-dir", str(out), *argv])
    print(f"sweep-hw: exit {status}, {(time.monotonic() - start) / 60:.1f} min wall time")
    name = argv[argv.index("--name") + 1] if "--name" in argv else "hw-sweep"
    if (out / f"{name}.csv").exists():
        _summary(out / f"{name}.csv")
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
