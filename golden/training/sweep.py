"""``qlif sweep-accuracy``: every quantization method x weight bits x membrane bits, on digits and MNIST.

For each data set one float network is trained (or reused), then every row is produced the way its
commands (recorded in the table) would produce it: ``ptq`` quantizes the float network; ``lsq``,
``binary`` and ``ternary`` fine-tune a quantization-aware network from it (ternary distils from it).
Accuracy is measured on the whole test split for the float network and for the exported integer
model (the integer reference, :mod:`qlif.golden.spec.reference`). Rows are cached in
``WORK/DATASET/rows.json``, so an interrupted sweep continues where it stopped, and sweeps of different
rows may run on the same work folder at once (each adds its rows to the file as it is then).

PTQ rows come twice: with each layer's clip calibrated on training data (the default of ``qlif quantize``,
:func:`qlif.golden.training.quantize.calibrate_clips`) and with the fixed 99.9th percentile; the table's
"clip" column says which. A quantization-aware row whose checkpoint already exists at the row's path
(``WORK/DATASET/<row key>.pt``, trained by the row's command) is exported and measured without training it
again. Rows of the grid not measured are written too, marked "not run", with the command that measures
them. The table's T and max rate columns are the rate coding of the row's model: each data set's own,
and with ``codings`` the :data:`CODING_ROWS` at sparser codings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from qlif.golden.data.datasets import load_split
from qlif.golden.spec.model import save_model
from qlif.golden.training.checkpoint import load_checkpoint, save_checkpoint
from qlif.golden.training.methods import GRID_MEMBRANE_BITS, GRID_WEIGHT_BITS, METHODS
from qlif.golden.training.quantize import quantize, weight_memory_bits
from qlif.golden.training.train import MNIST_CONFIG, TrainConfig, set_determinism, train

__all__ = ["PTQ_CLIPS", "CODING_ROWS", "Row", "Job", "jobs", "sweep", "missing", "write_results"]

#: PTQ's clips in the sweep: calibrated per layer on training data (the default of ``qlif quantize``) and
#: the fixed 99.9th percentile it replaced, so the table shows both.
PTQ_CLIPS = ("calibrated", 99.9)
#: Fine-tuning of the quantization-aware rows: (epochs, learning rate) per data set and method.
QAT_SCHEDULE = {"digits": {"lsq": (10, 2e-3), "ternary": (10, 2e-3), "binary": (10, 2e-3)},
                "mnist": {"lsq": (3, 5e-4), "ternary": (3, 5e-4), "binary": (3, 1e-3)}}
#: Hidden firing rate of binary's regulariser in the sweep: 0.05 rather than Q-SNN's 0.5, which costs
#: 5 points on the digits at k = 4 and 20 on MNIST (docs/quantization.md).
BINARY_RATE_TARGET = 0.05
#: Rows at another coding than the data set's own (T, maximum rate), trained from the same float network
#: (``qlif sweep-accuracy --codings``): (data set, method, b, k, T, max rate, epochs, lr). MNIST binary with
#: 4-bit membranes needs a sparser coding (docs/quantization.md).
CODING_ROWS = (("mnist", "binary", 1, 4, 64, "1/8", 3, 1e-3),
               ("mnist", "binary", 1, 4, 128, "1/16", 4, 1e-3))

#: Where the command of a row not run writes its own table, and the command that then rewrites the whole one
#: from the cache (``make accuracy``'s work folder, build/sweep): ``qlif sweep-accuracy`` writes only the
#: rows it was asked for, so with the table's ``--out-dir`` it would replace the table by that one row.
PARTIAL_OUT = "build/sweep/partial"
REGENERATE = "make accuracy CACHED=1 CODINGS=1"


@dataclass
class Row:
    """One measured configuration; accuracies are fractions, memory in bits.

    ``calibration`` is PTQ's clip (``"calibrated"`` or ``"fixed 99.9"``) with the chosen percentile per layer
    in ``clip_percentiles``, and empty for the quantization-aware methods (their scales are learned).
    """

    dataset: str
    method: str
    weight_bits: int
    membrane_bits: int
    timesteps: int
    max_rate: str
    calibration: str
    float_accuracy: float
    integer_accuracy: float
    n_test: int
    weight_memory_bits: int
    compression: float
    thresholds: list
    clip_percentiles: list | None
    seconds: float
    commands: list
    key: str            # the row's :attr:`Job.key`


@dataclass(frozen=True)
class Job:
    """One row of the grid, before it is measured: what :func:`sweep` runs and :func:`missing` names."""

    dataset: str
    method: str
    weight_bits: int
    membrane_bits: int
    clip: str | float | None = None          # ptq only
    coding: tuple | None = None              # (T, max rate, epochs, lr) at another coding, else None

    @property
    def key(self) -> str:
        clip = "" if self.clip is None else ("-cal" if self.clip == "calibrated" else f"-p{self.clip:g}")
        coding = "" if self.coding is None else f"-T{self.coding[0]}-r{self.coding[1].replace('/', '_')}"
        return f"{self.method}{clip}-b{self.weight_bits}-k{self.membrane_bits}{coding}"

    @property
    def calibration(self) -> str:
        return "" if self.clip is None else ("calibrated" if self.clip == "calibrated" else f"fixed {self.clip:g}")


def _base_config(dataset: str) -> TrainConfig:
    return MNIST_CONFIG if dataset == "mnist" else TrainConfig()


def _data_arg(dataset: str, data_dir) -> str:
    return f" --dataset mnist --data-dir {data_dir}" if dataset == "mnist" else ""


def jobs(dataset: str, *, methods=tuple(METHODS), weight_bits=GRID_WEIGHT_BITS, membrane_bits=GRID_MEMBRANE_BITS,
         codings: bool = False) -> list[Job]:
    """The rows of the grid for one data set, in table order; with ``codings`` the :data:`CODING_ROWS` too."""
    out = []
    for m in methods:
        for b in (b for b in weight_bits if b in METHODS[m]):
            for clip in (PTQ_CLIPS if m == "ptq" else (None,)):
                out += [Job(dataset, m, b, k, clip) for k in membrane_bits]
    if codings:
        out += [Job(d, m, b, k, None, (t, r, e, lr)) for d, m, b, k, t, r, e, lr in CODING_ROWS
                if d == dataset and m in methods and b in weight_bits and k in membrane_bits]
    return out


def sweep(*, datasets=("digits",), methods=tuple(METHODS), weight_bits=GRID_WEIGHT_BITS,
          membrane_bits=GRID_MEMBRANE_BITS, codings: bool = False, work_dir: str | os.PathLike = "build/sweep",
          data_dir=None, float_checkpoints: dict | None = None,
          progress: bool = True, cached_only: bool = False, log=print) -> list[Row]:
    """Measure every (data set, method, b, k, clip) the methods can do; see the module docstring.

    With ``codings`` also the :data:`CODING_ROWS` (long MNIST trainings). With ``cached_only`` nothing is
    trained or measured: the rows of the grid already in the cache are returned (:func:`missing` names the
    others).
    """
    from qlif.golden.training.evaluate import evaluate
    from qlif.golden.training.qat import QATConfig, export, train_qat

    rows: list[Row] = []
    for dataset in datasets:
        work = Path(work_dir) / dataset
        work.mkdir(parents=True, exist_ok=True)
        cache_path = work / "rows.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        grid = jobs(dataset, methods=methods, weight_bits=weight_bits, membrane_bits=membrane_bits, codings=codings)
        if cached_only:
            rows += [_cached(cache, job) for job in grid if job.key in cache]
            continue
        split = load_split(dataset, data_dir=data_dir)
        data = _data_arg(dataset, data_dir)
        config = _base_config(dataset)
        given = dataset in (float_checkpoints or {})
        float_path = Path((float_checkpoints or {}).get(dataset, work / "float.pt"))
        if not float_path.is_file():
            log(f"sweep: training the float {dataset} network -> {float_path}")
            set_determinism(config.seed)
            net, history = train(config, split=split, progress=progress, resume=work / "float.pt.resume")
            save_checkpoint(net, float_path, history=history)
        teacher = load_checkpoint(float_path)
        float_acc = evaluate(net=teacher, split=split).float_accuracy
        # A given float network is used as it is (training one would overwrite it, e.g. the committed
        # digits fixture): the command only checks that it is there.
        train_cmd = f"test -f {float_path}" if given else f"qlif train{data} --out {float_path}"
        for job in grid:
            if job.key in cache:
                rows.append(_cached(cache, job))
                continue
            start = time.perf_counter()
            method, b, k = job.method, job.weight_bits, job.membrane_bits
            stem = work / job.key.replace("-", "_").replace(".", "_")    # no dot: with_suffix keeps the name
            if method == "ptq":
                percentile = None if job.clip == "calibrated" else job.clip
                model = quantize(teacher, weight_bits=b, percentile=percentile, membrane_bits=k, split=split)
                clip_arg = "" if percentile is None else f" --percentile {percentile:g}"
                commands = [train_cmd,
                            f"qlif quantize {float_path}{data.replace(' --dataset mnist', '')} --method ptq "
                            f"--weight-bits {b} --membrane-bits {k}{clip_arg} --out {stem}.json"]
            else:
                epochs, lr = QAT_SCHEDULE[dataset][method] if job.coding is None else job.coding[2:]
                coding = {} if job.coding is None else {"timesteps": job.coding[0], "max_rate": job.coding[1]}
                extra = {"rate_target": BINARY_RATE_TARGET} if method == "binary" else {}
                qat = QATConfig(method=method, weight_bits=b, membrane_bits=k, **extra)
                net = _trained(stem.with_suffix(".pt"), qat, coding)
                if net is None:
                    set_determinism(config.seed)
                    net, history = train_qat(replace(config, epochs=epochs, lr=lr), qat, split=split,
                                             teacher=teacher, progress=progress,
                                             resume=stem.with_suffix(".pt.resume"), **coding)
                    save_checkpoint(net, stem.with_suffix(".pt"), history=history)
                    stem.with_suffix(".pt.resume").unlink(missing_ok=True)
                model = export(net)
                rate = f" --rate-target {BINARY_RATE_TARGET:g}" if method == "binary" else ""
                coding_arg = "".join(f" --{n.replace('_', '-')} {v}" for n, v in coding.items())
                commands = [train_cmd,
                            f"qlif train{data} --qat {method} --weight-bits {b} --membrane-bits {k}{rate} "
                            f"--teacher {float_path} --epochs {epochs} --lr {lr:g}{coding_arg} --out {stem}.pt",
                            f"qlif quantize {stem}.pt --out {stem}.json"]
            eval_data = f" --data-dir {data_dir}" if dataset == "mnist" else ""
            commands.append(f"qlif eval {stem}.json{eval_data}")
            save_model(model, stem.with_suffix(".json"))
            result = evaluate(model=model, split=split)
            n_weights = sum(layer.weights.size for layer in model.layers)
            memory = weight_memory_bits(model)
            row = Row(dataset=dataset, method=method, weight_bits=b, membrane_bits=k,
                      timesteps=model.timesteps, max_rate=str(model.metadata.get("max_rate", "1")),
                      calibration=job.calibration, float_accuracy=float_acc,
                      integer_accuracy=result.integer_accuracy, n_test=result.n_test, weight_memory_bits=memory,
                      compression=32 * n_weights / memory, thresholds=[int(layer.threshold) for layer in model.layers],
                      clip_percentiles=model.metadata.get("clip_percentiles") if method == "ptq" else None,
                      seconds=time.perf_counter() - start, commands=commands, key=job.key)
            log(f"sweep: {dataset} {job.key}: float {float_acc:.2%} integer {row.integer_accuracy:.2%} "
                f"({row.seconds:.0f} s)")
            rows.append(row)
            # Read again before adding the row: another sweep of other rows on the same work folder (a long
            # row run beside the others) may have added some since, and writing this one's copy would drop them.
            cache = {**(json.loads(cache_path.read_text()) if cache_path.is_file() else {}), job.key: asdict(row)}
            tmp = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.part")
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, cache_path)
    return rows


def _cached(cache: dict, job: Job) -> Row:
    return Row(**{"key": job.key, **cache[job.key]})     # rows cached before rows had a key: the cache's


def missing(rows: list[Row], *, datasets, methods, weight_bits, membrane_bits, codings: bool = False) -> list[Job]:
    """The rows of the grid (:func:`jobs`) that ``rows`` do not hold."""
    have = {(r.dataset, r.key) for r in rows}
    return [job for d in datasets
            for job in jobs(d, methods=methods, weight_bits=weight_bits, membrane_bits=membrane_bits, codings=codings)
            if (d, job.key) not in have]


def _trained(path: Path, qat, coding: dict):
    """The quantization-aware network at ``path`` if it was trained with ``qat``'s settings (and at
    ``coding``'s T and maximum rate, where given), else None."""
    from qlif.golden.training.qat import QuantSpikingMLP

    if not path.is_file():
        return None
    net = load_checkpoint(path)
    if not isinstance(net, QuantSpikingMLP) or net.qat != qat:
        return None
    return net if all(getattr(net.config, n) == v for n, v in coding.items()) else None


def _sweep_command(job: Job, rows: list[Row]) -> str:
    """The commands that measure ``job`` (with the measured rows' data folder and float network, where there
    are any) and then add it to the table (:data:`REGENERATE`)."""
    d = job.dataset
    row = next((r for r in rows if r.dataset == d), None)
    data, float_arg = (" --data-dir DIR" if d == "mnist" else ""), ""
    if row is not None:
        # the float network is the last word of the first command, the data folder in the eval command's
        _, _, data_dir = row.commands[-1].partition(" --data-dir ")
        data = f" --data-dir {data_dir}" if data_dir else ""
        # one the sweep trained is reused from the work folder: given, the new row's first command would
        # become a check instead of the training the other rows name
        if row.commands[0].startswith("test -f "):
            float_arg = f" --float-checkpoint {d}={row.commands[0].split()[-1]}"
    codings = " --codings" if job.coding else ""
    return (f"qlif sweep-accuracy --datasets {d}{data}{float_arg} --methods {job.method} "
            f"--weight-bits {job.weight_bits} --membrane-bits {job.membrane_bits}{codings} "
            f"--out-dir {PARTIAL_OUT} && {REGENERATE}")


def _coding_of(job: Job, rows: list[Row]) -> tuple[int, str]:
    """(T, max rate) of a row not run: its own coding, else that of the data set's measured rows."""
    if job.coding:
        return job.coding[:2]
    own = next((r for r in rows if r.dataset == job.dataset and "-T" not in r.key), None)
    return (own.timesteps, own.max_rate) if own else (_base_config(job.dataset).timesteps,
                                                       _base_config(job.dataset).max_rate)


_CSV_FIELDS = ["dataset", "method", "calibration", "weight_bits", "membrane_bits", "timesteps", "max_rate", "status",
               "float_accuracy", "integer_accuracy", "n_test", "weight_memory_bits", "compression", "thresholds",
               "clip_percentiles", "commands"]


def _csv(rows: list[Row], absent=()) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(_CSV_FIELDS)
    for r in rows:
        w.writerow([r.dataset, r.method, r.calibration, r.weight_bits, r.membrane_bits, r.timesteps, r.max_rate,
                    "measured", f"{r.float_accuracy:.4f}", f"{r.integer_accuracy:.4f}", r.n_test,
                    r.weight_memory_bits, f"{r.compression:.2f}", "/".join(map(str, r.thresholds)),
                    "" if r.clip_percentiles is None else "/".join(f"{p:g}" for p in r.clip_percentiles),
                    " && ".join(r.commands)])
    for job in absent:
        t, rate = _coding_of(job, rows)
        w.writerow([job.dataset, job.method, job.calibration, job.weight_bits, job.membrane_bits, t, rate, "not run",
                    "", "", "", "", "", "", "", _sweep_command(job, rows)])
    return out.getvalue()


def _markdown(rows: list[Row], header: str, absent=()) -> str:
    lines = [header.rstrip(), ""]
    for dataset in dict.fromkeys([r.dataset for r in rows] + [j.dataset for j in absent]):
        rs = [r for r in rows if r.dataset == dataset]
        gone = [j for j in absent if j.dataset == dataset]
        ks = sorted({r.membrane_bits for r in rs} | {j.membrane_bits for j in gone})
        net = "784-500-10" if dataset == "mnist" else "64-128-10"
        title = f"## {dataset} ({net}"
        if rs:
            title += f", {rs[0].n_test} test samples, float {rs[0].float_accuracy:.2%} at T = {rs[0].timesteps}"
        lines += [title + ")", "",
                  "Integer-model accuracy (what the RTL computes) per membrane bits k; clip: PTQ's weight clipping "
                  "(calibrated per layer on training data, or one fixed percentile); T, max rate: the rate coding:",
                  "", "| method | clip | b | T | max rate | weight memory | compression | "
                  + " | ".join(f"k = {k}" for k in ks) + " |",
                  "|---|---|---|---|---|---|---|" + "---|" * len(ks)]
        lines_of = {}
        for r in rs:
            lines_of.setdefault((r.method, r.calibration, r.weight_bits, r.timesteps, r.max_rate), {})[
                r.membrane_bits] = r
        for j in gone:
            t, rate = _coding_of(j, rows)
            lines_of.setdefault((j.method, j.calibration, j.weight_bits, t, rate), {}).setdefault(j.membrane_bits, None)
        order = {m: i for i, m in enumerate(METHODS)}
        for (method, calibration, b, t, rate), cells in sorted(
                lines_of.items(), key=lambda kv: (order[kv[0][0]], kv[0][2], kv[0][1], kv[0][3])):
            any_row = next((c for c in cells.values() if c is not None), None)
            memory = (f"{any_row.weight_memory_bits / 8 / 1024:.1f} KiB | {any_row.compression:.1f}x"
                      if any_row else "- | -")
            lines.append(f"| {method} | {calibration or '-'} | {b} | {t} | {rate} | {memory} | "
                         + " | ".join("-" if k not in cells else ("not run" if cells[k] is None
                                                                  else f"{cells[k].integer_accuracy:.2%}")
                                      for k in ks) + " |")
        if rs:
            first = rs[0].commands[0]
            if first.startswith("test -f "):
                train = "qlif train --dataset mnist --data-dir DIR" if dataset == "mnist" else "qlif train"
                lines += ["", f"The float network, shared by all rows, is given (`--float-checkpoint`): "
                          f"`{first.split()[-1]}` (`{train} --out PATH` trains one). Commands of each row:", ""]
            else:
                lines += ["", "Commands that reproduce each row (float network first, shared by all rows):", "",
                          f"    {first}", ""]
            for r in rs:
                clips = ("" if r.clip_percentiles is None else
                         f", {r.calibration} clip percentiles {'/'.join(f'{p:g}' for p in r.clip_percentiles)}")
                coding = f", T = {r.timesteps}, max rate {r.max_rate}"
                thresholds = "/".join(map(str, r.thresholds))
                lines.append(f"- {r.method} b={r.weight_bits} k={r.membrane_bits}{coding} ({r.integer_accuracy:.2%}, "
                             f"thresholds {thresholds}{clips}): `" + " && ".join(r.commands[1:]) + "`")
        if gone:
            lines += ["", f"Not run in this table ({dataset}); each row is measured (and added) by its command:", ""]
            for j in gone:
                t, rate = _coding_of(j, rows)
                clip = f" clip {j.calibration}" if j.calibration else ""
                lines.append(f"- {j.method}{clip} b={j.weight_bits} k={j.membrane_bits} T={t} max rate {rate}: "
                             f"`{_sweep_command(j, rows)}`")
        lines.append("")
    return "\n".join(lines) + "\n"


def _plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rs = [r for r in rows if r.dataset == dataset]
        for line in dict.fromkeys((r.method, r.calibration, r.weight_bits, r.timesteps, r.max_rate) for r in rs):
            method, calibration, b, t, rate = line
            pts = sorted((r.membrane_bits, 100 * r.integer_accuracy) for r in rs
                         if (r.method, r.calibration, r.weight_bits, r.timesteps, r.max_rate) == line)
            label = f"{method} {b}-bit" + (f" {calibration}" if calibration else "")
            if t != rs[0].timesteps or rate != "1":
                label += f" T={t} r={rate}"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) > 1 else "*",
                    linestyle="--" if calibration.startswith("fixed") else "-", label=label)
        ax.axhline(100 * rs[0].float_accuracy, color="black", linestyle=":", linewidth=1, label="float")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r.membrane_bits for r in rs}), [str(k) for k in sorted({r.membrane_bits for r in rs})])
        ax.set_ylim(max(0, min(100 * r.integer_accuracy for r in rs) - 5), 100)
        ax.set_xlabel("membrane bits k")
        ax.set_ylabel("integer-model test accuracy (%)")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.part")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def write_results(rows: list[Row], out_dir: str | os.PathLike, *, header: str = "# Accuracy sweep\n",
                  absent=()) -> list[Path]:
    """Write ``accuracy.csv``, ``accuracy.md`` and ``accuracy.png`` into ``out_dir``; return the paths.

    ``absent`` lists the (data set, method, b, k) not measured yet (:func:`missing`), named in the table.
    """
    from qlif.golden.spec.files import write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "accuracy.csv", _csv(rows, absent))
    write_text(out / "accuracy.md", _markdown(rows, header, absent))
    _plot(rows, out / "accuracy.png")
    return [out / "accuracy.csv", out / "accuracy.md", out / "accuracy.png"]
