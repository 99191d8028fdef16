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

Builds and simulations are independent tasks run by a pool of worker processes, with a progress bar.
Each finished task leaves a JSON record in the work folder keyed by its configuration and by a hash of
the RTL and board sources, so an interrupted sweep resumes where it stopped and a changed design is
rebuilt. Outputs: ``<name>.csv``, ``<name>.md`` and three PNG plots in the output folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["WEIGHT_BITS", "MEMBRANE_BITS", "DEFAULT_TARGET_MHZ", "SweepConfig", "default_boards", "run_sweep"]

WEIGHT_BITS = (1, 2, 4, 8)
MEMBRANE_BITS = (4, 8, 12, 16)
#: Clock constraint of the builds, by device family: above what the design reaches, so that nextpnr
#: works for the highest Fmax (its Fmax depends on the constraint, see docs/boards.md).
DEFAULT_TARGET_MHZ = {"ice40up": 60.0, "ecp5": 125.0}
#: Line bits per UART byte (start, 8 data, stop), for the I/O toggles of the replies.
_UART_FRAME = 10
#: Host protocol v1 (docs/host-protocol.md): a STEP reply per timestep is 7 bytes, the RESULT reply
#: 8 bytes plus one count per class of ceil(bits(T) / 8) bytes.
_STEP_REPLY, _RESULT_REPLY = 7, 8


def _reply_bytes(timesteps: int, n_out: int) -> int:
    """UART bytes the board sends per inference (the only outputs that toggle)."""
    return timesteps * _STEP_REPLY + _RESULT_REPLY + n_out * -(-timesteps.bit_length() // 8)

from qlif.golden.spec.files import ROOT as _ROOT  # noqa: E402


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep. Every field has a checked default; see :func:`run_sweep`."""

    boards: tuple[str, ...] = ()
    weight_bits: tuple[int, ...] = WEIGHT_BITS
    membrane_bits: tuple[int, ...] = MEMBRANE_BITS
    lanes: tuple[int, ...] = (4,)
    seeds: tuple[int, ...] = (1, 2, 3)
    sizes: tuple[int, ...] = (64, 128, 10)
    timesteps: int = 16
    samples: int = 8
    model_seed: int = 0
    dataset: str = "digits"
    data_dir: str | None = None
    target_mhz: dict = field(default_factory=dict)     # board -> MHz; default by family

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        from qlif.boards.flow.build import BOARDS
        from qlif.golden.spec.cycles import LANES
        from qlif.golden.spec.model import MEMBRANE_BITS as K_RANGE
        from qlif.golden.spec.model import WEIGHT_BITS as B_ALLOWED

        def ints(name, values, allowed):
            if not values:
                raise ValueError(f"{name}: give at least one value")
            for v in values:
                if v not in allowed:
                    raise ValueError(f"{name}: {v!r} is not one of {', '.join(map(str, allowed))}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: {list(values)} repeats a value")

        if not self.boards:
            raise ValueError("boards: give at least one board")
        for board in self.boards:
            if board not in BOARDS:
                raise ValueError(f"boards: {board!r} is not one of {', '.join(sorted(BOARDS))}")
        ints("weight bits", self.weight_bits, B_ALLOWED)
        ints("membrane bits", self.membrane_bits, list(K_RANGE))
        ints("lanes", self.lanes, LANES)
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds) \
                or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: must be distinct non-negative integers, not {list(self.seeds)}")
        if len(self.sizes) < 2 or any(n < 1 for n in self.sizes):
            raise ValueError(f"sizes: need the inputs and at least one layer, all positive, not {list(self.sizes)}")
        if self.timesteps < 1 or self.samples < 1:
            raise ValueError("timesteps and samples must be positive")
        for board, mhz in self.target_mhz.items():
            if board not in self.boards:
                raise ValueError(f"clock target for {board!r}, which is not swept")
            if not mhz > 0:
                raise ValueError(f"clock target for {board!r} must be positive, not {mhz!r}")
        n_in = {"digits": 64, "mnist": 784}.get(self.dataset)
        if n_in is None:
            raise ValueError(f"dataset must be digits or mnist, not {self.dataset!r}")
        if self.sizes[0] != n_in:
            raise ValueError(f"sizes: the {self.dataset} workload has {n_in} inputs, so sizes must start "
                             f"with {n_in}, not {self.sizes[0]}")

    def target(self, board: str) -> float:
        """Clock constraint (MHz) of ``board``'s builds."""
        if board in self.target_mhz:
            return float(self.target_mhz[board])
        from qlif.boards.flow.power import family_of

        return DEFAULT_TARGET_MHZ[family_of(_device(board)).family]


def _device(board: str) -> str:
    from qlif.boards.flow.build import BOARDS

    platform = BOARDS[board][0]
    return str(platform.device)


def default_boards() -> tuple[str, ...]:
    """The iCE40 UP5K board and every ECP5-85F board of :data:`qlif.boards.flow.build.BOARDS`, as they exist."""
    from qlif.boards.flow.build import BOARDS

    up5k = [b for b in BOARDS if _device(b).upper().startswith("ICE40UP5K")]
    ecp5 = [b for b in BOARDS if _device(b).upper().startswith(("LFE5U-85", "LFE5UM-85", "LFE5UM5G-85"))]
    return tuple(up5k[:1] + ecp5[:1])


# --------------------------------------------------------------------------------------------------
# Tasks (run in worker processes; arguments and results are plain data).

#: Package of each top-level source folder (pyproject.toml's package-dir).
_PACKAGES = {"qlif.hw": "hw", "qlif.boards": "boards", "qlif.golden": "golden", "qlif.sim": "sim", "qlif": "qlif"}
#: What builds and activity runs depend on: the board flow, the RTL, the activity measurement and the
#: cocotb test it runs (named by a string in the runner, so listed here).
_HASH_ROOTS = ("boards/flow/build.py", "hw/verilog.py", "sim/activity.py", "sim/cocotb_network.py")


def _module_file(module: str) -> Path | None:
    for package in sorted(_PACKAGES, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            rest = module[len(package):].lstrip(".").split(".") if module != package else []
            base = _ROOT / _PACKAGES[package] / Path(*rest) if rest else _ROOT / _PACKAGES[package]
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            return None
    return None


def source_closure(roots: Iterable[str] = _HASH_ROOTS) -> list[Path]:
    """The project's source files that ``roots`` import, directly or not (read with ``ast``, so the
    answer does not depend on what this process happens to have imported)."""
    import ast

    seen: set[Path] = set()
    todo = [_ROOT / r for r in roots]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        package = next(p for p, d in sorted(_PACKAGES.items(), key=lambda pd: -len(pd[1]))
                       if path.parent.is_relative_to(_ROOT / d))
        package = ".".join([package, *path.parent.relative_to(_ROOT / _PACKAGES[package]).parts])
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for name in names:
                found = _module_file(name) if name.startswith("qlif") else None
                if found is not None:
                    todo.append(found)
    return sorted(seen)


def hash_files(paths: Iterable[Path]) -> str:
    """Content hash of files (names relative to the project, and contents)."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def design_hash() -> str:
    """Hash of every source a build or an activity run depends on (:func:`source_closure`): a change to
    the RTL, a board top or the testbench invalidates the sweep's records, and nothing else does."""
    return hash_files(source_closure())


def _model(cfg: dict, b: int, k: int):
    from qlif.golden.spec.random_model import random_model

    return random_model(list(cfg["sizes"]), timesteps=cfg["timesteps"], weight_bits=b, membrane_bits=k,
                        seed=cfg["model_seed"])


def _stimuli(cfg: dict):
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
    from qlif.golden.spec.reference import run
    from qlif.sim.activity import measure_activity

    model = _model(cfg, b, k)
    x = _stimuli(cfg)
    golden = run(model, x, lanes=lanes)
    # Verilator builds go to the shared build/sim folder: they are keyed by the Verilog text, and the
    # compiled Verilator runtime there is reused by every build.
    act = measure_activity(model, x[:cfg["samples"]], lanes=lanes,
                           workload=f"first {cfg['samples']} {cfg['dataset']} test samples, rate coded, "
                                    f"T = {cfg['timesteps']}")
    cycles = golden.cycles.sum(axis=1)
    return {"activity": act.to_json(), "cycles_mean": float(cycles.mean()), "cycles_max": int(cycles.max()),
            "samples_for_cycles": int(len(cycles)),
            "output_spikes_mean": float(golden.spikes[-1].sum(axis=(1, 2)).mean())}


def _run_task(kind: str, args: tuple) -> tuple[dict | None, str | None, float]:
    """Run one task in a worker; never raises (a failure is reported, the sweep goes on)."""
    start = time.monotonic()
    try:
        result = (_build_task if kind == "build" else _activity_task)(*args)
        return result, None, time.monotonic() - start
    except Exception as e:          # noqa: BLE001 - every failure becomes a row in the report
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return None, f"{type(e).__name__}: {first}"[:300], time.monotonic() - start


@dataclass
class _Task:
    kind: str               # "build" or "activity"
    key: str
    args: tuple
    record: Path


def _plan(config: SweepConfig, work: Path, cfg: dict) -> list[_Task]:
    """Every task, board by board and configuration by configuration (each configuration's activity run
    comes with the first board), so that a stopped sweep has whole rows, the first board's first."""
    tasks = []
    for i, board in enumerate(config.boards):
        for b in config.weight_bits:
            for k in config.membrane_bits:
                for p in config.lanes:
                    key = f"w{b}-k{k}-p{p}"
                    if i == 0:
                        tasks.append(_Task("activity", key, (cfg, str(work), b, k, p),
                                           work / "records" / f"activity-{key}.json"))
                    for seed in config.seeds:
                        bkey = f"{board}-w{b}-k{k}-p{p}-s{seed}"
                        tasks.append(_Task("build", bkey, (cfg, str(work), board, b, k, p, seed, config.target(board)),
                                           work / "records" / f"build-{bkey}.json"))
    return tasks


def _load_record(task: _Task, stamp: dict, *, any_design: bool = False) -> dict | None:
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


# --------------------------------------------------------------------------------------------------
# The sweep.

def run_sweep(config: SweepConfig, *, out_dir: str | os.PathLike, work_dir: str | os.PathLike | None = None,
              name: str = "hw-sweep", jobs: int = 2, progress: bool = True,
              log: Callable[[str], None] | None = None, label: str = "", table_only: bool = False) -> list[dict]:
    """Run (or resume) the sweep and write ``<name>.csv``, ``<name>.md`` and the plots into ``out_dir``.

    Returns the table rows (dicts, the CSV's columns). Failed tasks leave rows with an ``error``; the
    outputs are written all the same. ``label`` names the design in the report (e.g. a commit).
    ``table_only``: build and simulate nothing; write the outputs from the records in the work folder,
    whatever design they were made for (they must all be of one design, which the report names).
    Raises ``ValueError`` for a bad configuration before any work.
    """
    from qlif.boards.flow.build import BUILD_ROOT
    from qlif.golden.spec.files import write_text

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

    cfg = {"sizes": list(config.sizes), "timesteps": config.timesteps, "samples": config.samples,
           "model_seed": config.model_seed, "dataset": config.dataset, "data_dir": config.data_dir}
    if config.dataset == "mnist":
        _stimuli(cfg)               # a missing or broken data folder fails now, not in every task
    stamp = {"design": design_hash(), "cfg": cfg}
    tasks = _plan(config, work, cfg)
    results: dict[str, tuple[dict | None, str | None]] = {}
    todo = []
    designs = set()
    worker_seconds = 0.0
    for task in tasks:
        doc = _load_record(task, {**stamp, "args": _jsonable(task.args[2:])}, any_design=table_only)
        if doc is not None:
            results[task.key] = (doc["result"], None)
            designs.add(doc["stamp"]["design"])
            worker_seconds += float(doc.get("seconds", 0.0))
        else:
            todo.append(task)
    start = time.monotonic()
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
    else:
        (work / "records").mkdir(parents=True, exist_ok=True)
        if len(todo) < len(tasks):
            log(f"sweep-hw: {len(tasks) - len(todo)} of {len(tasks)} tasks already done in {work} (resuming)")

    # Link the power model's page: the docs folder the output lies in, else this project's.
    docs = next((d for d in (out.resolve(), *out.resolve().parents) if d.name == "docs" and (d / "power.md").exists()),
                _ROOT / "docs")
    power_doc = Path(os.path.relpath(docs / "power.md", out.resolve())).as_posix()

    runs_file = work / "runs.json"
    try:
        runs = json.loads(runs_file.read_text())
    except (OSError, ValueError):
        runs = []

    def write_outputs(busy: float, missing: int) -> tuple[list[dict], list[str]]:
        rows = _rows(config, results)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / f"{name}.csv", _csv(rows))
        plots = _plots(rows, out, name)
        write_text(out / f"{name}.md", _markdown(config, rows, plots, time.monotonic() - start, jobs,
                                                 len(todo) - missing, len(tasks), power_doc=power_doc, label=label,
                                                 design=stamp["design"], worker_seconds=worker_seconds + busy,
                                                 missing=missing, runs=runs))
        return rows, plots

    if not table_only:
        # Long sweeps write their outputs now and then, so that a stopped one leaves partial results.
        worker_seconds += _execute(todo, jobs, results, stamp, progress, log,
                                   checkpoint=lambda busy, left: write_outputs(busy, left))
    seconds = time.monotonic() - start
    if todo:
        # The wall time of every invocation that ran tasks, for the report (a resumed sweep has several).
        runs.append({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_seconds": round(seconds),
                     "jobs": jobs, "tasks": len(todo)})
        write_text(runs_file, json.dumps(runs, indent=1) + "\n")
    rows, plots = write_outputs(0.0, 0)
    failed = [r for r in rows if r["error"]]
    log(f"sweep-hw: {len(rows)} rows ({len(failed)} with errors) in {seconds:.0f} s -> "
        f"{out / (name + '.md')}, {out / (name + '.csv')}, {len(plots)} plots")
    return rows


def _jsonable(value):
    return json.loads(json.dumps(value))


#: Partial outputs are written after this many finished tasks (and at the end).
CHECKPOINT_TASKS = 8


def _execute(todo: list[_Task], jobs: int, results: dict, stamp: dict, progress: bool,
             log: Callable[[str], None], checkpoint: Callable[[float, int], object] | None = None) -> float:
    """Run the tasks in a worker pool; return the seconds the finished ones took (summed).
    ``checkpoint(busy seconds, tasks left)`` is called every :data:`CHECKPOINT_TASKS` finished tasks."""
    if not todo:
        return 0.0
    busy = 0.0
    finished = 0
    from tqdm import tqdm

    # In plan order, configuration by configuration, so that an interrupted sweep has whole rows.
    bar = tqdm(total=len(todo), desc="sweep-hw", unit="task", disable=not progress, file=sys.stderr)
    # "spawn": workers start clean (no copy of this process's threads or open files).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        running = {pool.submit(_run_task, task.kind, task.args): task for task in todo}
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    try:
                        result, error, seconds = future.result()
                    except Exception as e:      # noqa: BLE001 - a worker died (out of memory, killed)
                        result, error, seconds = None, f"worker failed: {type(e).__name__}: {e}"[:300], 0.0
                    results[task.key] = (result, error)
                    busy += seconds
                    if error is None:
                        record = {"stamp": {**stamp, "args": _jsonable(task.args[2:])}, "seconds": seconds,
                                  "result": result}
                        tmp = task.record.with_suffix(".part")
                        tmp.write_text(json.dumps(record) + "\n")
                        os.replace(tmp, task.record)
                    else:
                        bar.write(f"sweep-hw: {task.key} failed: {error}")
                    bar.set_postfix_str(f"{task.key} {seconds:.0f} s", refresh=False)
                    bar.update()
                    finished += 1
                    if checkpoint is not None and running and finished % CHECKPOINT_TASKS == 0:
                        checkpoint(busy, len(running))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            bar.close()
            log("sweep-hw: interrupted; finished tasks are kept, run the same command again to resume")
            raise
    bar.close()
    return busy


# --------------------------------------------------------------------------------------------------
# Rows, CSV, Markdown, plots.

#: Resource names in the reports (iCE40 / ECP5 may name the logic count differently).
_LOGIC_KEYS = ("lc", "lut", "comb", "slice")

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


def _rows(config: SweepConfig, results: dict) -> list[dict]:
    from qlif.boards.flow.activity import Activity
    from qlif.boards.flow.power import Resources, estimate_power, family_of

    rows = []
    for board in config.boards:
        device = _device(board)
        for b in config.weight_bits:
            for k in config.membrane_bits:
                for p in config.lanes:
                    row = dict.fromkeys(COLUMNS, "")
                    row.update(board=board, device=device, weight_bits=b, membrane_bits=k, lanes=p,
                               target_mhz=config.target(board))
                    errors = []
                    act_res, act_err = results.get(f"w{b}-k{k}-p{p}", (None, "not run"))
                    if act_err:
                        errors.append(f"activity: {act_err}")
                    reports = []
                    for seed in config.seeds:
                        res, err = results.get(f"{board}-w{b}-k{k}-p{p}-s{seed}", (None, "not run"))
                        if err:
                            errors.append(f"seed {seed}: {err}")
                        else:
                            reports.append(res["report"])
                    if reports:
                        rep = reports[0]
                        row["device"] = rep.get("device", device)
                        util = rep["resources"]
                        logic = next((key for key in _LOGIC_KEYS if key in util), None)
                        if logic:
                            row.update(logic_used=util[logic]["used"], logic_available=util[logic]["available"],
                                       logic_unit=logic.upper())
                        for key in ("ff", "ebr", "spram", "dsp"):
                            if key in util:
                                row[f"{key}_used"] = util[key]["used"]
                                row[f"{key}_available"] = util[key]["available"]
                        fmax = [r["fmax_mhz"] for r in reports]
                        median = statistics.median(fmax)
                        row.update(fmax_median_mhz=round(median, 2), fmax_min_mhz=round(min(fmax), 2),
                                   fmax_max_mhz=round(max(fmax), 2), seeds=len(fmax),
                                   critical_path=_critical(min(reports, key=lambda r: abs(r["fmax_mhz"] - median))))
                    if act_res:
                        act = Activity.from_json(act_res["activity"])
                        row.update(cycles_mean=round(act_res["cycles_mean"], 1), cycles_max=act_res["cycles_max"],
                                   ff_rate=round(act.ff_rate, 4), logic_rate=round(act.logic_rate, 4))
                        geometry = family_of(row["device"]).ebr_geometry
                        rd, wr = act.memory_rates(block_width=geometry[0], block_depth=geometry[1])
                        row.update(ebr_read_rate=round(rd, 4), ebr_write_rate=round(wr, 4))
                    if reports and act_res:
                        f = row["fmax_median_mhz"] * 1e6
                        cycles = act_res["cycles_mean"]
                        # The replies on the UART, about half of each byte's line bits changing.
                        toggles = _reply_bytes(config.timesteps, config.sizes[-1]) * _UART_FRAME / 2
                        res = Resources.from_report(reports[0])
                        # At Fmax, from the PLL.
                        power = estimate_power(device=row["device"], resources=res, activity=act, clk_hz=f, pll=True,
                                               io_toggles_per_s=toggles * f / cycles)
                        row.update(latency_us=round(cycles / f * 1e6, 2), static_mw=round(power.static_w * 1e3, 3),
                                   dynamic_mw=round((power.total_w - power.static_w) * 1e3, 3),
                                   power_mw=round(power.total_w * 1e3, 3),
                                   energy_uj=round(power.energy_per_inference(cycles) * 1e6, 4),
                                   energy_per_cycle_pj=round(power.energy_per_inference(1) * 1e12, 2))
                        # At the board's oscillator, no PLL (when the design is fast enough for it).
                        osc = _oscillator_hz(board)
                        if osc <= f:
                            slow = estimate_power(device=row["device"], resources=res, activity=act, clk_hz=osc,
                                                  pll=False, io_toggles_per_s=toggles * osc / cycles)
                            row.update(osc_mhz=round(osc / 1e6, 3), power_osc_mw=round(slow.total_w * 1e3, 3),
                                       energy_osc_uj=round(slow.energy_per_inference(cycles) * 1e6, 4))
                    row["error"] = "; ".join(errors)
                    rows.append(row)
    return rows


def _oscillator_hz(board: str) -> float:
    from qlif.boards.flow.build import BOARDS

    return float(BOARDS[board][0]().default_clk_frequency)


def _critical(report: dict) -> str:
    """Where the critical path of a build starts and ends in the project's sources (``boards/link/host_link.py:252
    -> hw/network.py:310``), from nextpnr's path report."""
    import re

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


def _only_unrun(error: str) -> bool:
    """Every part of a row's error says its task has not run (yet)."""
    return all(part.endswith("not run") for part in error.split("; "))


def _csv(rows: list[dict]) -> str:
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


def _markdown(config: SweepConfig, rows: list[dict], plots: list[str], seconds: float, jobs: int, ran: int,
              total: int, *, power_doc: str = "../power.md", label: str = "", design: str = "",
              worker_seconds: float = 0.0, missing: int = 0, runs: list | None = None) -> str:
    sizes = "-".join(map(str, config.sizes))
    lines = [
        "# Hardware sweep: resources, Fmax, latency, power and energy per bit width",
        "",
        f"Written by `qlif sweep-hw` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, design "
        f"{design or design_hash()}{', ' + label if label else ''}). Network {sizes}, T = {config.timesteps}, random "
        "uniform weights of each width "
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
        device = mine[0]["device"] if mine else _device(board)
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
                what = "not run yet" if _only_unrun(r["error"]) else f"failed: {r['error'][:120]}"
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
    failed = [r for r in rows if r["error"] and not _only_unrun(r["error"])]
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


def _plots(rows: list[dict], out: Path, name: str) -> list[str]:
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
        tmp = path.with_name(f".{path.name}.part")
        fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        os.replace(tmp, path)
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
