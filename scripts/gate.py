"""Gate-level equivalence of the board designs: the slow set of tests/test_gate.py (``make gate``).

::

    make gate                                   # digits on the UP5K (board, core), 784-500-10 on the ECP5-85F (core)
    .venv/bin/python scripts/gate.py --fresh    # without the cached netlists and simulator builds (real times)

Runs ``pytest -m slow tests/test_gate.py``; each netlist's test leaves a record of its figures
(``QLIF_GATE_RECORDS``), printed as one line per netlist as it completes (``board``: the board top as
nextpnr gets it, driven through its UART; ``core``: the core alone, every membrane at every step), then
``gate-level: D designs, S samples bit-exact`` (D: the netlists, S: their samples). The exit status is
pytest's (1 when a netlist differs from the golden model or its synthesis or simulation failed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from qlif.sim.gate import GATE_DIR

ROOT = Path(__file__).resolve().parent.parent
GATE = GATE_DIR     # the cache tests/test_gate.py builds into (qlif.sim.gate), so --fresh empties it
RECORDS = GATE / "records"


def describe(r: dict) -> str:
    """One line of a design's record."""
    cells = r["cells"]
    luts = cells.get("SB_LUT4", 0) + cells.get("LUT4", 0)
    rams = cells.get("SB_RAM40_4K", 0) + cells.get("DP16KD", 0)
    synth = f"{r['synth_s']:.0f} s" + (", cached" if r["synth_cached"] else "")
    level = r.get("level", "core")
    checked = (f"{r['steps_checked']} steps' RESULT through the UART at {r['baud']} baud" if level == "board"
               else "every step's membranes")
    return (f"{r['design']} ({level}): {r['family']} ({r['board']}), {'-'.join(map(str, r['sizes']))}, "
            f"T={r['timesteps']}, P={r['lanes']}: synthesis {synth} ({r['mapper']}, {luts} LUT4, {rams} block RAMs), "
            f"{r['simulator']} build {r['build_s']:.0f} s, {r['samples']} samples ({r['sim_cycles']} cycles) "
            f"in {r['run_s']:.0f} s: {checked} bit-exact")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="remove the cached netlists and simulator builds first")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(GATE, ignore_errors=True)
    shutil.rmtree(RECORDS, ignore_errors=True)
    env = {**os.environ, "QLIF_GATE_RECORDS": str(RECORDS)}
    cmd = [sys.executable, "-m", "pytest", "-m", "slow", "-q", "-p", "no:cacheprovider", "tests/test_gate.py"]
    print("gate-level designs: " + " ".join(cmd[1:]), flush=True)
    t0 = time.monotonic()
    log = GATE / "pytest.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    seen: set[Path] = set()

    def report_new() -> None:
        for path in sorted(RECORDS.glob("*.json")) if RECORDS.is_dir() else []:
            if path not in seen:
                seen.add(path)
                print(f"  {describe(json.loads(path.read_text()))} [{time.monotonic() - t0:.0f} s]", flush=True)

    with open(log, "w") as out, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT) as proc:
        while proc.poll() is None:
            time.sleep(2)
            report_new()
    report_new()
    records = [json.loads(p.read_text()) for p in sorted(seen)]
    if proc.returncode:
        print(log.read_text()[-4000:])
        print(f"gate-level: FAILED ({len(records)} designs bit-exact; pytest exit {proc.returncode}, log in {log})")
        return 1
    print(f"gate-level: {len(records)} designs, {sum(r['samples'] for r in records)} samples bit-exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
