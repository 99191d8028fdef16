"""Mutation score of the RTL: the default suite's RTL tests against each mutant of sim/mutants.py.

::

    make mutation                                      # every mutant
    .venv/bin/python scripts/mutation.py --only forward-1,queue-wrap
    .venv/bin/python scripts/mutation.py --list

First the tests run on the clean RTL, which must pass (``--no-baseline`` skips that). Then, for each
mutant, pytest runs the RTL test files with ``QLIF_MUTANT`` set (tests/conftest.py installs the
mutant in every test process), stops at the first failure (``-x``) and writes a JUnit report to
build/mutation/<name>.xml (its output to <name>.log). A mutant is killed when a test failed; the first
failing test of the report is named. Prints a line per mutant as it goes, then a table, then
``mutants killed: K/N``; the exit status is 1 when any mutant survived (or its run broke down).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The RTL test files of the default suite, run against every mutant (fast killers first).
TEST_FILES = ("tests/test_hw_lif.py", "tests/test_hw_network.py", "tests/test_sim_rtl.py", "tests/test_hw_memory.py",
              "tests/test_random_designs.py", "tests/test_random_verilog.py")
OUT = ROOT / "build" / "mutation"
#: Where tests/conftest.py sends a mutant's simulator builds (emptied after each mutant, but for the
#: Verilator runtime objects that every build links: ``runtime-*``).
SIM_BUILDS = OUT / "sim"
PYTEST_ARGS = ("-x", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile", "-q")


@dataclass
class Outcome:
    """What one mutant's run came to."""

    name: str
    status: str          # "killed", "SURVIVED" or "ERROR"
    detail: str          # the killing test, or why the run broke down
    seconds: float


def node_id(case: ET.Element) -> str:
    """The pytest node id of a JUnit ``testcase`` (``classname`` is the module path with dots, then any
    test class)."""
    parts = case.get("classname", "").split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if (ROOT / path).exists():
            return "::".join([path, *parts[i:], case.get("name", "")])
    return f"{case.get('classname')}::{case.get('name')}"


def first_failure(report: Path) -> str | None:
    """The first test of a JUnit report that failed or errored, or None. A module that failed to
    collect is no test and counts as none (the error may not be the mutant's doing)."""
    if not report.exists():
        return None
    for case in ET.parse(report).getroot().iter("testcase"):
        failed = case.find("failure")
        if failed is None:
            failed = case.find("error")
        if failed is not None and failed.get("message") != "collection failure":
            # tests/conftest.py's watchdog: the mutant hung the design, and this test ran out of time.
            hung = " (hung: ran out of time)" if "the RTL hangs" in failed.get("message", "") else ""
            return node_id(case) + hung
    return None


def prune_builds() -> None:
    """Delete the last mutant's simulator builds (each one is of no use to another mutant)."""
    for sim in SIM_BUILDS.glob("*"):
        for build in sim.iterdir():
            if build.is_dir() and not build.name.startswith("runtime-"):
                shutil.rmtree(build, ignore_errors=True)


def run(name: str | None, files: list[str]) -> Outcome:
    """Run ``files`` under pytest with mutant ``name`` installed (None: the clean RTL, reported as
    ``clean``), and say whether a test killed it."""
    env = {key: value for key, value in os.environ.items() if key != "QLIF_MUTANT"}
    if name is not None:
        env["QLIF_MUTANT"] = name
    name = name or "clean"
    report, log = OUT / f"{name}.xml", OUT / f"{name}.log"
    report.unlink(missing_ok=True)
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "pytest", *files, *PYTEST_ARGS, f"--junitxml={report}"],
                              cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    prune_builds()
    killer = first_failure(report)
    # Exit status 1: tests failed; 2: interrupted, which is how pytest-xdist ends a run at the first
    # failure (-x), and also how a collection error ends one (no kill: see first_failure). Anything else
    # (3, internal error; 4, usage) is a broken run.
    if proc.returncode in (1, 2) and killer:
        return Outcome(name, "killed", killer, seconds)
    if proc.returncode == 0:
        return Outcome(name, "SURVIVED", "", seconds)
    return Outcome(name, "ERROR", f"pytest exit status {proc.returncode}, see {log.relative_to(ROOT)}", seconds)


def main(argv: list[str] | None = None) -> int:
    from qlif.sim.mutants import MUTANTS, StaleMutant, apply, get

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and what each breaks")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the first run, on the clean RTL (which must pass for a kill to mean anything)")
    args = parser.parse_args(argv)
    if args.list:
        width = max(len(m.name) for m in MUTANTS)
        for m in MUTANTS:
            print(f"{m.name:<{width}}  {m.breaks}  [{m.module}.{m.target}]")
        return 0
    try:
        chosen = [get(n.strip()) for n in args.only.split(",")] if args.only else list(MUTANTS)
        # Each mutant must apply before half an hour of tests is spent: a stale one fails here, by name.
        for mutant in chosen:
            apply(mutant.name)()
    except (ValueError, StaleMutant) as e:
        print(f"mutation: {e}", file=sys.stderr)
        return 2

    OUT.mkdir(parents=True, exist_ok=True)
    files = list(TEST_FILES)
    print(f"{len(chosen)} mutants against {' '.join(files)}", flush=True)
    width = max(len(m.name) for m in chosen)
    start = time.monotonic()
    if not args.no_baseline:
        # A test that fails on the clean RTL would "kill" every mutant.
        o = run(None, files)
        if o.status != "SURVIVED":
            print(f"mutation: the tests fail on the clean RTL ({o.detail}); "
                  f"see build/mutation/clean.log", file=sys.stderr)
            return 2
        print(f"{'clean':<8}  {'':<{width}}  all tests pass on the clean RTL  ({o.seconds:.0f} s)", flush=True)
    outcomes = []
    for mutant in chosen:
        o = run(mutant.name, files)
        outcomes.append(o)
        by = {"killed": f"by {o.detail}", "SURVIVED": "", "ERROR": o.detail}[o.status]
        print(f"{o.status:<8}  {o.name:<{width}}  {by}  ({o.seconds:.0f} s)", flush=True)
    total = time.monotonic() - start

    print(f"\n{'mutant':<{width}}  {'result':<8}  {'seconds':>7}  killed by")
    for o in outcomes:
        print(f"{o.name:<{width}}  {o.status:<8}  {o.seconds:7.0f}  {o.detail}")
    killed = sum(o.status == "killed" for o in outcomes)
    print(f"\nwall time: {total / 60:.1f} min")
    print(f"mutants killed: {killed}/{len(outcomes)}")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
