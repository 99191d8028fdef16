"""``qlif sweep-hw``: resources, Fmax, latency, power and energy per inference across bit widths and boards.

For every board x weight bits b x membrane bits k x lanes P the sweep

1. builds the bitstream of a fixed network (``random_model``: the given layer sizes, uniform random
   b-bit weights, k-bit membranes) with several nextpnr seeds, the clock constrained to a target above
   what the design reaches, and takes the median Fmax over the seeds;
2. measures the switching activity of the same core in RTL simulation of the workload (the first
   test samples of the data set, rate coded; :mod:`qlif.sim.activity`), checked against the golden
   model;
3. counts cycles per inference with the golden cycle model over the whole test split;
4. estimates power at Fmax and energy per inference (:mod:`qlif.boards.flow.power`, docs/power.md).

The pieces: :mod:`~qlif.boards.sweep.config` (what to sweep), :mod:`~qlif.boards.sweep.execute` (the
tasks, their records and their run on a Dask cluster, with a progress bar and resume),
:mod:`~qlif.boards.sweep.closure` (the design hash the records are keyed by), :mod:`~qlif.boards.sweep.rows`
(the table) and :mod:`~qlif.boards.sweep.render` (``<name>.csv``, ``<name>.md`` and three PNG plots).
This module runs them in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from qlif.boards.sweep import closure
from qlif.boards.sweep.config import SweepConfig
from qlif.boards.sweep.execute import cluster, execute, load_record, plan, stimuli
from qlif.boards.sweep.render import csv_text, markdown, write_plots
from qlif.boards.sweep.rows import rows as table_rows
from qlif.golden.spec.files import BUILD_ROOT, ROOT, write_text

__all__ = ["run_sweep"]


def run_sweep(config: SweepConfig, *, out_dir: str | os.PathLike, work_dir: str | os.PathLike | None = None,
              name: str = "hw-sweep", jobs: int = 2, scheduler: str | None = None, progress: bool = True,
              log: Callable[[str], None] | None = None, label: str = "", table_only: bool = False) -> list[dict]:
    """Run (or resume) the sweep and write ``<name>.csv``, ``<name>.md`` and the plots into ``out_dir``.

    Parameters
    ----------
    config : SweepConfig
        What to sweep.
    out_dir, work_dir : path
        Where the outputs go, and the builds and records (inside ``build/``; default ``build/sweep-hw``).
    name : str
        Base name of the outputs.
    jobs : int
        Worker processes of the local Dask cluster (without ``scheduler``).
    scheduler : str or None
        Address of the scheduler of an existing Dask cluster (``tcp://host:8786``) to run the tasks on
        instead; its workers must see this tree at the same path (:func:`qlif.boards.sweep.execute.cluster`).
    progress : bool
        Show a progress bar.
    log : callable or None
        Takes the status lines (default: print to stderr).
    label : str
        Names the design in the report (e.g. a commit).
    table_only : bool
        Build and simulate nothing; write the outputs from the records in the work folder, whatever
        design they were made for (they must all be of one design, which the report names).

    Returns
    -------
    list of dict
        The table rows (the CSV's columns). Failed tasks leave rows with an ``error``; the outputs are
        written all the same.

    Raises
    ------
    ValueError
        For a bad configuration, before any work.
    qlif.boards.sweep.execute.ClusterError
        When the scheduler cannot be reached (before any work) or its workers have other sources.
    """
    config.check()
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"name must be letters, digits, - and _, not {name!r}")
    work = Path(work_dir) if work_dir is not None else BUILD_ROOT / "sweep-hw"
    work = work.resolve()
    if not work.is_relative_to(BUILD_ROOT.resolve()):
        raise ValueError(f"work folder must lie inside {BUILD_ROOT} (YoWASP sees only that tree), not {str(work)!r}")
    out = Path(out_dir)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    cfg = config.workload()
    if config.dataset == "mnist":
        stimuli(cfg)                # a missing or broken data folder fails now, not in every task
    stamp = {"design": closure.design_hash(), "cfg": cfg}
    tasks = plan(config, work, cfg)
    results: dict[str, tuple[dict | None, str | None]] = {}
    todo = []
    designs = set()
    worker_seconds = 0.0
    for task in tasks:
        doc = load_record(task, task.stamp(stamp), any_design=table_only)
        if doc is not None:
            results[task.key] = (doc["result"], None)
            designs.add(doc["stamp"]["design"])
            worker_seconds += float(doc.get("seconds", 0.0))
        else:
            todo.append(task)
    if table_only:
        if len(designs) > 1:
            raise ValueError(f"the records in {work} are of {len(designs)} different designs "
                             f"({', '.join(sorted(designs))}); rerun the sweep to make them agree")
        if not designs:
            raise ValueError(f"no records of this sweep's configuration in {work}")
        stamp["design"] = designs.pop()
        log(f"sweep-hw: table from {len(tasks) - len(todo)} of {len(tasks)} records of design {stamp['design']} "
            f"in {work}")
        for task in todo:
            results[task.key] = (None, "no record")
        todo = []

    # Link the power model's page: the docs folder the output lies in, else this project's.
    docs = next((d for d in (out.resolve(), *out.resolve().parents) if d.name == "docs" and (d / "power.md").exists()),
                ROOT / "docs")
    power_doc = Path(os.path.relpath(docs / "power.md", out.resolve())).as_posix()
    runs_file = work / "runs.json"
    try:
        runs = json.loads(runs_file.read_text())
    except (OSError, ValueError):
        runs = []

    start = time.monotonic()
    workers = jobs

    def write_outputs(busy: float, missing: int) -> tuple[list[dict], list[str]]:
        rows = table_rows(config, results)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / f"{name}.csv", csv_text(rows))
        plots = write_plots(rows, out, name)
        write_text(out / f"{name}.md", markdown(config, rows, plots, time.monotonic() - start, workers,
                                                len(todo) - missing, len(tasks), power_doc=power_doc, label=label,
                                                design=stamp["design"], worker_seconds=worker_seconds + busy,
                                                missing=missing, runs=runs))
        return rows, plots

    if not table_only and len(todo) < len(tasks):
        log(f"sweep-hw: {len(tasks) - len(todo)} of {len(tasks)} tasks already done in {work} (resuming)")
    # The cluster starts (or is reached) before anything is written, and only when there is work.
    with cluster(jobs, scheduler, design=stamp["design"]) if todo else contextlib.nullcontext() as client:
        if todo:
            if scheduler is not None:
                workers = len(client.scheduler_info().get("workers", {}))
            (work / "records").mkdir(parents=True, exist_ok=True)
            # Long sweeps write their outputs now and then, so that a stopped one leaves partial results.
            worker_seconds += execute(todo, client, results, stamp, progress, log,
                                      checkpoint=lambda busy, left: write_outputs(busy, left))
    seconds = time.monotonic() - start
    if todo:
        # The wall time of every invocation that ran tasks, for the report (a resumed sweep has several).
        runs.append({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_seconds": round(seconds),
                     "jobs": workers, "tasks": len(todo)})
        write_text(runs_file, json.dumps(runs, indent=1) + "\n")
    rows, plots = write_outputs(0.0, 0)
    failed = [r for r in rows if r["error"]]
    log(f"sweep-hw: {len(rows)} rows ({len(failed)} with errors) in {seconds:.0f} s -> "
        f"{out / (name + '.md')}, {out / (name + '.csv')}, {len(plots)} plots")
    return rows
