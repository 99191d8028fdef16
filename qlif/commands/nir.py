"""``qlif`` subcommands for NIR graphs: import (a NIR chain -> float checkpoint), export (model -> NIR)."""

from __future__ import annotations

from pathlib import Path

from qlif.clitools import AddCommand, CLIError, load_model_arg, positive_arg
from qlif.golden.data.datasets import DATASETS

__all__ = ["register"]


def cmd_import(args) -> int:
    from qlif.golden.training.checkpoint import save_checkpoint
    from qlif.golden.training.nir_graph import NIRImportError, default_dataset, map_graph, read_graph, to_network

    if args.dataset is not None and args.dataset not in DATASETS:
        raise CLIError(f"--dataset must be one of {', '.join(DATASETS)}, not {args.dataset!r}")
    try:
        graph = read_graph(args.graph)
        imported = map_graph(graph, dt=args.dt, reset=args.reset)
    except NIRImportError as e:
        raise CLIError(f"{args.graph}: {e}") from None
    except ValueError as e:
        raise CLIError(str(e)) from None
    meta = imported.model_metadata
    model_meta = meta.get("metadata", {})
    timesteps = args.timesteps or meta.get("timesteps")
    if timesteps is None:
        raise CLIError("--timesteps: a NIR graph has no number of steps per sample; give T")
    dataset = args.dataset or default_dataset(imported)
    if dataset is None:
        raise CLIError(f"--dataset: no data set has {imported.n_in} inputs; name the one `qlif quantize` "
                       "calibrates on")
    coding = dict(timesteps=int(timesteps), dataset=dataset,
                  max_rate=args.max_rate or str(model_meta.get("max_rate", "1")),
                  seed=int(model_meta.get("seed", 0)), test_fraction=float(model_meta.get("test_fraction", 0.25)))
    try:
        net = to_network(imported, **coding)
    except ValueError as e:
        raise CLIError(f"{args.graph}: {e}") from None
    data = _test_split(coding, args) if args.dataset is not None else None
    leak = _leak_report(imported, net, coding, data)
    shape = "-".join(str(n) for n in (imported.n_in, *(layer.weights.shape[1] for layer in imported.layers)))
    try:
        save_checkpoint(net, args.out, history={"imported_from": str(args.graph),
                                                "nir_notes": list(imported.notes), "leak": leak})
    except OSError as e:
        raise CLIError(f"--out {args.out}: {e.strerror or e}") from None
    for note in imported.notes:
        print(f"import: {note}")
    thresholds = ", ".join(f"{layer.threshold:.6g}" for layer in imported.layers)
    print(f"import: {leak}")
    if data is not None:
        # Always, not only for a snapped leak: a producer that was not fed qlif's rate-coded 0/1 spikes (e.g.
        # analogue pixels at every step) imports without complaint, and this figure is where it shows.
        from qlif.golden.training.evaluate import float_accuracy

        print(f"import: float accuracy {float_accuracy(net, *data):.2%} on {len(data[1])} {dataset} test samples, "
              f"rate-coded as qlif feeds them (T = {coding['timesteps']}, max rate {coding['max_rate']}; "
              "docs/nir.md#the-inputs)")
    print(f"import: {shape}, T = {coding['timesteps']}, thresholds {thresholds}, reset subtract, "
          f"data {dataset} -> {args.out}")
    return 0


def _test_split(coding: dict, args):
    """The rate-coded test split ``(x, y)`` of the checkpoint's data set and coding."""
    from qlif.golden.data.datasets import load_split
    from qlif.golden.spec.coding import encode

    try:
        split = load_split(coding["dataset"], data_dir=args.data_dir, seed=coding["seed"],
                           test_fraction=coding["test_fraction"])
    except ValueError as e:
        raise CLIError(str(e)) from None
    return encode(split.x_test, coding["timesteps"], max_rate=coding["max_rate"]), split.y_test


def _leak_report(imported, net, coding: dict, data) -> str:
    """One line on the leak: exact, or the nearest shift with its float accuracy change (measured on the test
    split ``data`` when ``--dataset`` was given)."""
    from qlif.golden.spec.model import leak_beta

    lam = imported.leak_shift
    target = "no leak (beta = 1)" if lam is None else f"leak shift {lam} (beta = 1 - 2^-{lam} = {leak_beta(lam):g})"
    if imported.exact_leak:
        return f"every neuron's beta is {target} exactly"
    betas = sorted({round(float(b), 6) for layer in imported.layers for b in layer.beta})
    shown = ", ".join(f"{b:g}" for b in betas[:4]) + (" ..." if len(betas) > 4 else "")
    head = f"beta {shown} is not 1 - 2^-lam: nearest {target}"
    if data is None:
        return f"{head}; float accuracy change not measured (give --dataset to measure it)"
    from qlif.golden.training.evaluate import float_accuracy
    from qlif.golden.training.nir_graph import to_network

    before = float_accuracy(to_network(imported, **coding, exact_beta=True), *data)
    after = float_accuracy(net, *data)
    return (f"{head}; float accuracy {before:.2%} -> {after:.2%} ({100 * (after - before):+.2f} points) on "
            f"{len(data[1])} {coding['dataset']} test samples")


def cmd_export(args) -> int:
    from qlif.golden.training.nir_graph import export_graph

    model = load_model_arg(args.model)
    if Path(args.nir).suffix != ".nir":
        raise CLIError(f"--nir {args.nir}: name the NIR file *.nir")
    try:
        export_graph(model, args.nir, dt=args.dt)
    except OSError as e:
        raise CLIError(f"--nir {args.nir}: {e.strerror or e}") from None
    shape = "-".join(str(n) for n in (model.n_in, *(layer.n_out for layer in model.layers)))
    print(f"export: {shape}, T = {model.timesteps}, as NIR (Linear + LIF/IF per layer, the model file in the "
          f"metadata) -> {args.nir}")
    return 0


def _dt_arg(value: str) -> float:
    import argparse

    try:
        dt = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"dt must be a number, not {value!r}") from None
    if not dt > 0:
        raise argparse.ArgumentTypeError(f"dt must be positive, not {value!r}")
    return dt


def register(add: AddCommand) -> None:
    from qlif.golden.training.nir_graph import DT

    sp = add("import", cmd_import, "NIR graph (a feed-forward Linear/LIF/IF chain) -> float checkpoint (docs/nir.md)")
    sp.add_argument("graph", help="NIR file (nir 1.0, e.g. from snntorch's export_to_nir)")
    sp.add_argument("--out", required=True, help="float checkpoint for qlif quantize / train --qat / eval")
    sp.add_argument("--timesteps", type=positive_arg, default=None,
                    help="T, steps per sample (NIR has none; default: the metadata of a graph qlif exported)")
    sp.add_argument("--reset", choices=("subtract",), default=None,
                    help="the producer reset by subtracting the threshold (snntorch's default); NIR 1.0 cannot "
                         "say so, and snntorch writes v_reset = 0 for both of its resets")
    sp.add_argument("--dt", type=_dt_arg, default=DT, help=f"the producer's Euler step (default {DT:g}, snntorch's)")
    sp.add_argument("--dataset", default=None,
                    help="data the checkpoint calibrates on; given, the imported network's float accuracy (and "
                         "the change of a leak shift that is not exact) is measured on its test split (default: "
                         "by input width, unmeasured)")
    sp.add_argument("--data-dir", help="folder with the MNIST IDX files")
    sp.add_argument("--max-rate", default=None, help="maximum rate of the rate coding (default 1)")
    sp = add("export", cmd_export, "integer model -> NIR graph, integer semantics in its metadata (docs/nir.md)")
    sp.add_argument("model", help="model file (JSON, docs/model-format.md)")
    sp.add_argument("--nir", required=True, help="NIR file to write (*.nir)")
    sp.add_argument("--dt", type=_dt_arg, default=DT, help=f"Euler step the graph is written for (default {DT:g})")
