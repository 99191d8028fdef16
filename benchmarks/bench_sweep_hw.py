"""The full hardware sweep (`qlif sweep-hw` with its defaults) and its headline figures.

Builds every weight width {1,2,4,8} x membrane width {4,8,12,16} on the UP5K board and on an ECP5-85F
board when the board table has one, three nextpnr seeds each, measures the activity, and writes
docs/results/hw-sweep.{md,csv} and the plots. Takes hours on two shared cores; an interrupted run
resumes from its work folder. Other arguments go to `qlif sweep-hw` (e.g. `--jobs 2 --seeds 1`, or
`--scheduler tcp://host:8786` to build on an existing Dask cluster).

    .venv/bin/python benchmarks/bench_sweep_hw.py [--rev REV] [qlif sweep-hw options]

``--rev REV`` sweeps a committed revision instead of the working tree: ``git archive`` extracts it
under build/snapshots/<commit>, and the sweep runs on that copy (its own build/ folder, records and
caches), so edits made to the shared tree meanwhile cannot mix into the results. The report names the
commit. Relative paths in the other options are then relative to the snapshot's folder.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

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


def snapshot(rev: str) -> tuple[Path, str]:
    """Extract ``rev`` into build/snapshots/<commit> with an importable ``qlif`` package; return the
    folder to put on PYTHONPATH and the short commit."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", f"{rev}^{{commit}}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    snap = ROOT / "build" / "snapshots" / sha
    if not (snap / "tree" / "pyproject.toml").exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", sha], check=True,
                                 capture_output=True).stdout
        (snap / "tree").mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(snap / "tree", filter="data")
    # qlif/ holds the CLI; the other packages are folders at the top, linked in as the revision's
    # pyproject.toml maps them (package-dir: "qlif.hw" = "hw", ...).
    pkg = snap / "path" / "qlif"
    pkg.mkdir(parents=True, exist_ok=True)
    for item in (snap / "tree" / "qlif").iterdir():
        if not (pkg / item.name).exists():
            (pkg / item.name).symlink_to(item)
    dirs = tomllib.loads((snap / "tree" / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in dirs.items():
        link = pkg / package.removeprefix("qlif.")
        if package.count(".") == 1 and package.startswith("qlif.") and not link.exists():
            link.symlink_to(snap / "tree" / folder, target_is_directory=True)
    return snap / "path", sha


def run(argv: list[str]) -> int:
    out = ROOT / "docs" / "results"
    if "--rev" in argv:
        i = argv.index("--rev")
        rev, argv = argv[i + 1], argv[:i] + argv[i + 2:]
        path, sha = snapshot(rev)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}
        # The compiled WebAssembly tools do not depend on the revision: share this tree's cache.
        env.setdefault("YOWASP_CACHE_DIR", str(ROOT / "build" / "yowasp-cache"))
        # The snapshot's own code runs the sweep: run from its folder, since Python puts the working
        # folder first on the path (from the repository it would find the working tree's qlif/).
        cmd = [sys.executable, "-m", "qlif.cli", "sweep-hw", "--out-dir", str(out), "--label", f"commit {sha}",
               *argv]
        start = time.monotonic()
        status = subprocess.run(cmd, env=env, cwd=path).returncode
    else:
        from qlif.cli import main

        start = time.monotonic()
        status = main(["sweep-hw", "--out-dir", str(out), *argv])
    print(f"sweep-hw: exit {status}, {(time.monotonic() - start) / 60:.1f} min wall time")
    name = argv[argv.index("--name") + 1] if "--name" in argv else "hw-sweep"
    if (out / f"{name}.csv").exists():
        _summary(out / f"{name}.csv")
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
