"""``qlif sweep-accuracy``: every quantization method x weight bits x membrane bits, on digits and MNIST.

For each data set one float network is trained (or reused), then every row is produced the way its
commands (recorded in the table) would produce it: ``ptq`` quantizes the float network; ``lsq``,
``binary`` and ``ternary`` fine-tune a quantization-aware network from it (ternary distils from it).
Accuracy is measured on the whole test split for the float network and for the exported integer
model (the integer reference, :mod:`qlif.golden.spec.reference`). Rows are cached in
``WORK/DATASET/rows.json``, so an interrupted sweep continues where it stopped.

PTQ's clipping percentile is chosen per row on training data (the first 2000 samples, never the test
split) from :data:`PTQ_PERCENTILES`; the chosen value is in the row and in its command. A quantization-aware
row whose checkpoint already exists at the row's path (``WORK/DATASET/METHOD_bB_kK.pt``, trained by the
row's command) is exported and measured without training it again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode
from qlif.golden.spec.model import save_model
from qlif.golden.training.checkpoint import load_checkpoint, save_checkpoint
from qlif.golden.training.methods import GRID_MEMBRANE_BITS, GRID_WEIGHT_BITS, METHODS
from qlif.golden.training.quantize import quantize, weight_memory_bits
from qlif.golden.training.train import MNIST_CONFIG, TrainConfig, set_determinism, train

__all__ = ["PTQ_PERCENTILES", "Row", "sweep", "missing", "write_results"]

PTQ_PERCENTILES = (70.0, 80.0, 90.0, 95.0, 99.0, 99.9, 100.0)
_PTQ_SELECT_SAMPLES = 2000
#: Fine-tuning of the quantization-aware rows: (epochs, learning rate) per data set and method.
QAT_SCHEDULE = {"digits": {"lsq": (10, 2e-3), "ternary": (10, 2e-3), "binary": (10, 2e-3)},
                "mnist": {"lsq": (3, 5e-4), "ternary": (3, 5e-4), "binary": (3, 1e-3)}}
#: Hidden firing rate of binary's regulariser in the sweep: 0.05 rather than Q-SNN's 0.5, which costs
#: 5 points on the digits at k = 4 and 20 on MNIST (docs/quantization.md).
BINARY_RATE_TARGET = 0.05


@dataclass
class Row:
    """One measured configuration; accuracies are fractions, memory in bits."""

    dataset: str
    method: str
    weight_bits: int
    membrane_bits: int
    float_accuracy: float
    integer_accuracy: float
    n_test: int
    weight_memory_bits: int
    compression: float
    thresholds: list
    percentile: float | None
    seconds: float
    commands: list


def _base_config(dataset: str) -> TrainConfig:
    return MNIST_CONFIG if dataset == "mnist" else TrainConfig()


def _data_arg(dataset: str, data_dir) -> str:
    return f" --dataset mnist --data-dir {data_dir}" if dataset == "mnist" else ""


def _select_percentile(net, bits: int, k: int, x: np.ndarray, y: np.ndarray, split) -> float:
    from qlif.golden.training.evaluate import integer_accuracy

    scores = [(integer_accuracy(quantize(net, weight_bits=bits, percentile=p, membrane_bits=k, split=split), x, y), p)
              for p in PTQ_PERCENTILES]
    return max(scores)[1]   # ties: the larger percentile


def sweep(*, datasets=("digits",), methods=tuple(METHODS), weight_bits=GRID_WEIGHT_BITS,
          membrane_bits=GRID_MEMBRANE_BITS, work_dir: str | os.PathLike = "build/sweep", data_dir=None,
          float_checkpoints: dict | None = None,
          progress: bool = True, cached_only: bool = False, log=print) -> list[Row]:
    """Measure every (data set, method, b, k) the methods can do; see the module docstring.

    With ``cached_only`` nothing is trained or measured: the rows of the grid already in the cache are
    returned (:func:`missing` names the others).
    """
    from qlif.golden.training.evaluate import evaluate
    from qlif.golden.training.qat import QATConfig, export, train_qat

    rows: list[Row] = []
    for dataset in datasets:
        work = Path(work_dir) / dataset
        work.mkdir(parents=True, exist_ok=True)
        cache_path = work / "rows.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        if cached_only:
            rows += [Row(**cache[key]) for key in _grid(methods, weight_bits, membrane_bits) if key in cache]
            continue
        split = load_split(dataset, data_dir=data_dir)
        data = _data_arg(dataset, data_dir)
        config = _base_config(dataset)
        float_path = Path((float_checkpoints or {}).get(dataset, work / "float.pt"))
        if not float_path.is_file():
            log(f"sweep: training the float {dataset} network -> {float_path}")
            set_determinism(config.seed)
            net, history = train(config, split=split, progress=progress, resume=work / "float.pt.resume")
            save_checkpoint(net, float_path, history=history)
        teacher = load_checkpoint(float_path)
        float_acc = evaluate(net=teacher, split=split).float_accuracy
        train_cmd = f"qlif train{data} --out {float_path}"
        x_sel = encode(split.x_train[:_PTQ_SELECT_SAMPLES], teacher.config.timesteps,
                       max_rate=teacher.config.max_rate)
        y_sel = split.y_train[:_PTQ_SELECT_SAMPLES]
        for method in methods:
            for b in (b for b in weight_bits if b in METHODS[method]):
                for k in membrane_bits:
                    key = f"{method}-b{b}-k{k}"
                    if key in cache:
                        rows.append(Row(**cache[key]))
                        continue
                    start = time.perf_counter()
                    stem = work / f"{method}_b{b}_k{k}"
                    percentile = None
                    if method == "ptq":
                        percentile = _select_percentile(teacher, b, k, x_sel, y_sel, split)
                        model = quantize(teacher, weight_bits=b, percentile=percentile, membrane_bits=k, split=split)
                        commands = [train_cmd,
                                    f"qlif quantize {float_path} --method ptq --weight-bits {b} --membrane-bits {k} "
                                    f"--percentile {percentile:g} --out {stem}.json"]
                    else:
                        epochs, lr = QAT_SCHEDULE[dataset][method]
                        extra = {"rate_target": BINARY_RATE_TARGET} if method == "binary" else {}
                        qat = QATConfig(method=method, weight_bits=b, membrane_bits=k, **extra)
                        net = _trained(stem.with_suffix(".pt"), qat)
                        if net is None:
                            set_determinism(config.seed)
                            net, history = train_qat(replace(config, epochs=epochs, lr=lr), qat, split=split,
                                                     teacher=teacher, progress=progress,
                                                     resume=stem.with_suffix(".pt.resume"))
                            save_checkpoint(net, stem.with_suffix(".pt"), history=history)
                            stem.with_suffix(".pt.resume").unlink(missing_ok=True)
                        model = export(net)
                        rate = f" --rate-target {BINARY_RATE_TARGET:g}" if method == "binary" else ""
                        commands = [train_cmd,
                                    f"qlif train{data} --qat {method} --weight-bits {b} --membrane-bits {k}{rate} "
                                    f"--teacher {float_path} --epochs {epochs} --lr {lr:g} --out {stem}.pt",
                                    f"qlif quantize {stem}.pt --out {stem}.json"]
                    eval_data = f" --data-dir {data_dir}" if dataset == "mnist" else ""
                    commands.append(f"qlif eval {stem}.json{eval_data}")
                    save_model(model, stem.with_suffix(".json"))
                    result = evaluate(model=model, split=split)
                    n_weights = sum(layer.weights.size for layer in model.layers)
                    memory = weight_memory_bits(model)
                    row = Row(dataset=dataset, method=method, weight_bits=b, membrane_bits=k,
                              float_accuracy=float_acc, integer_accuracy=result.integer_accuracy,
                              n_test=result.n_test, weight_memory_bits=memory,
                              compression=32 * n_weights / memory,
                              thresholds=[int(layer.threshold) for layer in model.layers],
                              percentile=percentile, seconds=time.perf_counter() - start, commands=commands)
                    log(f"sweep: {dataset} {key}: float {float_acc:.2%} integer {row.integer_accuracy:.2%} "
                        f"({row.seconds:.0f} s)")
                    rows.append(row)
                    cache[key] = asdict(row)
                    tmp = cache_path.with_name(cache_path.name + ".part")
                    tmp.write_text(json.dumps(cache, indent=1))
                    os.replace(tmp, cache_path)
    return rows


def _grid(methods, weight_bits, membrane_bits) -> list[str]:
    return [f"{m}-b{b}-k{k}" for m in methods for b in weight_bits if b in METHODS[m] for k in membrane_bits]


def missing(rows: list[Row], *, datasets, methods, weight_bits, membrane_bits) -> list[tuple[str, str, int, int]]:
    """The (data set, method, b, k) of the grid that ``rows`` do not hold."""
    have = {(r.dataset, r.method, r.weight_bits, r.membrane_bits) for r in rows}
    return [(d, m, b, k) for d in datasets for m in methods for b in weight_bits if b in METHODS[m]
            for k in membrane_bits if (d, m, b, k) not in have]


def _trained(path: Path, qat):
    """The quantization-aware network at ``path`` if it was trained with ``qat``'s settings, else None."""
    from qlif.golden.training.qat import QuantSpikingMLP

    if not path.is_file():
        return None
    net = load_checkpoint(path)
    return net if isinstance(net, QuantSpikingMLP) and net.qat == qat else None


def _csv(rows: list[Row]) -> str:
    out = io.StringIO()
    fields = ["dataset", "method", "weight_bits", "membrane_bits", "float_accuracy", "integer_accuracy", "n_test",
              "weight_memory_bits", "compression", "thresholds", "percentile", "commands"]
    w = csv.writer(out, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([r.dataset, r.method, r.weight_bits, r.membrane_bits, f"{r.float_accuracy:.4f}",
                    f"{r.integer_accuracy:.4f}", r.n_test, r.weight_memory_bits, f"{r.compression:.2f}",
                    "/".join(map(str, r.thresholds)), "" if r.percentile is None else f"{r.percentile:g}",
                    " && ".join(r.commands)])
    return out.getvalue()


def _markdown(rows: list[Row], header: str, absent=()) -> str:
    lines = [header.rstrip(), ""]
    for dataset in dict.fromkeys(r.dataset for r in rows):
        rs = [r for r in rows if r.dataset == dataset]
        ks = sorted({r.membrane_bits for r in rs})
        net = "784-500-10" if dataset == "mnist" else "64-128-10"
        lines += [f"## {dataset} ({net}, {rs[0].n_test} test samples, float {rs[0].float_accuracy:.2%})", "",
                  "Integer-model accuracy (what the RTL computes) per membrane bits k:", "",
                  "| method | b | weight memory | compression | " + " | ".join(f"k = {k}" for k in ks) + " |",
                  "|---|---|---|---|" + "---|" * len(ks)]
        for method in dict.fromkeys(r.method for r in rs):
            for b in sorted({r.weight_bits for r in rs if r.method == method}):
                cells = {r.membrane_bits: r for r in rs if r.method == method and r.weight_bits == b}
                any_row = next(iter(cells.values()))
                lines.append(f"| {method} | {b} | {any_row.weight_memory_bits / 8 / 1024:.1f} KiB | "
                             f"{any_row.compression:.1f}x | "
                             + " | ".join(f"{cells[k].integer_accuracy:.2%}" if k in cells else "-" for k in ks)
                             + " |")
        lines += ["", "Commands that reproduce each row (float network first, shared by all rows):", "",
                  f"    {rs[0].commands[0]}", ""]
        for r in rs:
            extra = f", percentile {r.percentile:g}" if r.percentile is not None else ""
            thresholds = "/".join(map(str, r.thresholds))
            lines.append(f"- {r.method} b={r.weight_bits} k={r.membrane_bits} ({r.integer_accuracy:.2%}, "
                         f"thresholds {thresholds}{extra}): `" + " && ".join(r.commands[1:]) + "`")
        lines.append("")
    if absent:
        lines += ["## Not measured yet", "",
                  "Rows of the grid without a result; each is produced (and added to the tables) by its command:", ""]
        for d, m, b, k in absent:
            # the data folder and float network of the measured rows (``qlif train[ DATA] --out FLOAT``)
            train_cmd = next((r.commands[0] for r in rows if r.dataset == d), None)
            data, float_arg = (" --data-dir DIR" if d == "mnist" else ""), ""
            if train_cmd is not None:
                data_part, _, float_path = train_cmd.removeprefix("qlif train").partition(" --out ")
                data, float_arg = data_part.replace(" --dataset mnist", ""), f" --float-checkpoint {d}={float_path}"
            lines.append(f"- {d} {m} b={b} k={k}: `qlif sweep-accuracy --datasets {d}{data}{float_arg} --methods {m} "
                         f"--weight-bits {b} --membrane-bits {k}`")
        lines.append("")
    return "\n".join(lines) + "\n"


def _plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rs = [r for r in rows if r.dataset == dataset]
        for method, b in dict.fromkeys((r.method, r.weight_bits) for r in rs):
            pts = sorted((r.membrane_bits, 100 * r.integer_accuracy) for r in rs
                         if r.method == method and r.weight_bits == b)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{method} {b}-bit")
        ax.axhline(100 * rs[0].float_accuracy, color="black", linestyle="--", linewidth=1, label="float")
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
    write_text(out / "accuracy.csv", _csv(rows))
    write_text(out / "accuracy.md", _markdown(rows, header, absent))
    _plot(rows, out / "accuracy.png")
    return [out / "accuracy.csv", out / "accuracy.md", out / "accuracy.png"]
