"""The tasks of a sweep, their records, and their execution on a Dask cluster.

Each build (board x b x k x P x seed) and each activity simulation (b x k x P) is a task: a function of
plain data, run in a worker of a :mod:`dask.distributed` cluster (a ``LocalCluster`` of ``jobs`` worker
processes, or an existing cluster named by its scheduler's address). Each finished task leaves a JSON
record in the work folder, stamped with the workload, the task's arguments and the design hash
(:func:`qlif.boards.sweep.closure.design_hash`): a sweep run again skips the tasks whose record matches,
so an interrupted sweep resumes where it stopped and a changed design is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from qlif.boards.sweep import closure
from qlif.boards.sweep.config import SweepConfig
from qlif.golden.spec.files import write_text

__all__ = ["CHECKPOINT_TASKS", "CONNECT_TIMEOUT", "ClusterError", "Task", "plan", "jsonable", "load_record",
           "write_record", "run_task", "cluster", "execute"]

#: Partial outputs are written after this many finished tasks (and at the end).
CHECKPOINT_TASKS = 8
#: Seconds to wait for the scheduler of an existing cluster before giving up.
CONNECT_TIMEOUT = 10


class ClusterError(RuntimeError):
    """The Dask cluster named by its scheduler address cannot be used (unreachable, or another design)."""


# --------------------------------------------------------------------------------------------------
# Tasks (run in the workers; arguments and results are plain data).

def _model(cfg: dict, b: int, k: int):
    from qlif.golden.spec.random_model import random_model

    return random_model(list(cfg["sizes"]), timesteps=cfg["timesteps"], weight_bits=b, membrane_bits=k,
                        seed=cfg["model_seed"])


def stimuli(cfg: dict):
    """The workload's test split, rate coded (``[samples, T, n_in]``)."""
    from qlif.golden.data.datasets import load_split
    from qlif.golden.spec.coding import encode

    split = load_split(cfg["dataset"], data_dir=cfg["data_dir"])
    return encode(split.x_test, cfg["timesteps"])


def _build_task(cfg: dict, work: str, board: str, b: int, k: int, lanes: int, seed: int, target_mhz: float) -> dict:
    from qlif.boards.flow.build import build

    report = build(_model(cfg, b, k), board=board, lanes=lanes, clk_freq=target_mhz * 1e6,
                   out_dir=Path(work) / "builds" / f"{board}-w{b}-k{k}-p{lanes}-s{seed}", name="qlif",
                   seed=seed, progress=None)
    return {"report": report}


def _activity_task(cfg: dict, work: str, b: int, k: int, lanes: int) -> dict:
    from qlif.boards.protocol import inference_bytes
    from qlif.golden.spec.reference import run
    from qlif.sim.activity import measure_activity

    model = _model(cfg, b, k)
    x = stimuli(cfg)
    golden = run(model, x, lanes=lanes)
    # Verilator builds go to the shared build/sim folder: they are keyed by the Verilog text, and the
    # compiled Verilator runtime there is reused by every build.
    act = measure_activity(model, x[:cfg["samples"]], lanes=lanes,
                           workload=f"first {cfg['samples']} {cfg['dataset']} test samples, rate coded, "
                                    f"T = {cfg['timesteps']}")
    cycles = golden.cycles.sum(axis=1)
    # The board's replies depend on the inputs (a step of more than MAX_WORDS addresses takes more frames).
    replies = [inference_bytes(sample.sum(axis=1), n_out=model.n_out).from_board for sample in x]
    return {"activity": act.to_json(), "cycles_mean": float(cycles.mean()), "cycles_max": int(cycles.max()),
            "samples_for_cycles": int(len(cycles)),
            "output_spikes_mean": float(golden.spikes[-1].sum(axis=(1, 2)).mean()),
            "reply_bytes_mean": sum(replies) / len(replies)}


def run_task(kind: str, args: tuple) -> tuple[dict | None, str | None, float]:
    """Run one task in a worker; never raises (a failure is reported, the sweep goes on)."""
    start = time.monotonic()
    try:
        result = (_build_task if kind == "build" else _activity_task)(*args)
        return result, None, time.monotonic() - start
    except Exception as e:          # noqa: BLE001 - every failure becomes a row in the report
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return None, f"{type(e).__name__}: {first}"[:300], time.monotonic() - start


# --------------------------------------------------------------------------------------------------
# Records.

@dataclass(frozen=True)
class Task:
    """One build or activity simulation, and the file its record goes to."""

    kind: str               # "build" or "activity"
    key: str
    args: tuple
    record: Path

    def stamp(self, base: dict) -> dict:
        """``base`` (design hash and workload) with this task's own arguments: what its record must carry."""
        return {**base, "args": jsonable(self.args[2:])}


def plan(config: SweepConfig, work: Path, cfg: dict) -> list[Task]:
    """Every task, board by board and configuration by configuration (each configuration's activity run
    comes with the first board), so that a stopped sweep has whole rows, the first board's first."""
    tasks = []
    for i, board in enumerate(config.boards):
        for b in config.weight_bits:
            for k in config.membrane_bits:
                for p in config.lanes:
                    key = f"w{b}-k{k}-p{p}"
                    if i == 0:
                        tasks.append(Task("activity", key, (cfg, str(work), b, k, p),
                                          work / "records" / f"activity-{key}.json"))
                    for seed in config.seeds:
                        bkey = f"{board}-w{b}-k{k}-p{p}-s{seed}"
                        tasks.append(Task("build", bkey, (cfg, str(work), board, b, k, p, seed, config.target(board)),
                                          work / "records" / f"build-{bkey}.json"))
    return tasks


def jsonable(value):
    """``value`` as it reads back from JSON (tuples become lists), to compare with a record."""
    return json.loads(json.dumps(value))


def load_record(task: Task, stamp: dict, *, any_design: bool = False) -> dict | None:
    """The task's record if it was made for ``stamp`` (with ``any_design``: for any design hash)."""
    try:
        doc = json.loads(task.record.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("result") is None or not isinstance(doc.get("stamp"), dict):
        return None
    if any_design:
        return doc if {**doc["stamp"], "design": stamp["design"]} == stamp else None
    return doc if doc["stamp"] == stamp else None


def write_record(task: Task, stamp: dict, seconds: float, result: dict) -> None:
    """Keep a finished task's result (written whole or not at all)."""
    write_text(task.record, json.dumps({"stamp": stamp, "seconds": seconds, "result": result}) + "\n")


# --------------------------------------------------------------------------------------------------
# Execution.

def _worker_design() -> str:
    return closure.design_hash()


@contextlib.contextmanager
def cluster(jobs: int, scheduler: str | None = None, *, design: str | None = None) -> Iterator:
    """A ``distributed.Client``: of a new ``LocalCluster`` of ``jobs`` worker processes, or of the cluster
    whose scheduler listens at ``scheduler`` (``tcp://host:8786``).

    The workers of an existing cluster must import this qlif tree at the same path (the tasks write to
    the work folder inside it); with ``design``, their sources are checked to hash to it. Raises
    :class:`ClusterError` when the scheduler cannot be reached or a worker has other sources.
    """
    from distributed import Client, LocalCluster

    if scheduler is None:
        # One single-threaded process per job: builds and simulations hold the GIL and run tools in
        # subprocesses. No memory limit: a build needs what it needs, and a worker restarted for it
        # would only fail the build. No dashboard: nothing listens on a port unasked.
        with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit=0) as local, Client(local) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError) as e:          # TimeoutError is an OSError
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r}: {reason}") from None
    with client:
        if design is not None:
            other = {addr: h for addr, h in client.run(_worker_design).items() if h != design}
            if other:
                raise ClusterError(f"{len(other)} worker(s) of {scheduler} have other sources than this tree "
                                   f"(design {', '.join(sorted(set(other.values())))}, here {design}): "
                                   "run them from the same checkout")
        yield client


def execute(todo: list[Task], client, results: dict, stamp: dict, progress: bool, log: Callable[[str], None],
            checkpoint: Callable[[float, int], object] | None = None) -> float:
    """Run the tasks on ``client``'s cluster, record each finished one, and put ``(result, error)`` into
    ``results`` by task key; return the seconds the finished tasks took (summed).

    Tasks start in plan order (configuration by configuration, so that an interrupted sweep has whole
    rows). ``checkpoint(busy seconds, tasks left)`` is called every :data:`CHECKPOINT_TASKS` finished tasks.
    """
    if not todo:
        return 0.0
    from distributed import as_completed
    from tqdm import tqdm

    busy = 0.0
    bar = tqdm(total=len(todo), desc="sweep-hw", unit="task", disable=not progress, file=sys.stderr)
    # A higher priority starts first; pure=False: the same arguments in another sweep are another run.
    running = {client.submit(run_task, task.kind, task.args, pure=False, priority=len(todo) - i): task
               for i, task in enumerate(todo)}
    try:
        for finished, future in enumerate(as_completed(running), 1):
            task = running.pop(future)
            try:
                result, error, seconds = future.result()
            except Exception as e:      # noqa: BLE001 - a worker died (out of memory, killed) more than once
                result, error, seconds = None, f"worker failed: {type(e).__name__}: {e}"[:300], 0.0
            results[task.key] = (result, error)
            busy += seconds
            if error is None:
                write_record(task, task.stamp(stamp), seconds, result)
            else:
                bar.write(f"sweep-hw: {task.key} failed: {error}")
            bar.set_postfix_str(f"{task.key} {seconds:.0f} s", refresh=False)
            bar.update()
            if checkpoint is not None and running and finished % CHECKPOINT_TASKS == 0:
                checkpoint(busy, len(running))
    except KeyboardInterrupt:
        client.cancel(list(running))
        bar.close()
        log("sweep-hw: interrupted; finished tasks are kept, run the same command again to resume")
        raise
    bar.close()
    return busy
