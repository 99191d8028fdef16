"""``qlif`` subcommands of the golden package: golden, stimuli, train, quantize, eval."""

from __future__ import annotations

from pathlib import Path

from qlif.clitools import (
    AddCommand,
    CLIError,
    lanes_arg,
    load_inputs,
    load_model_arg,
    load_stimuli,
    positive_arg,
    stimuli_args,
)
from qlif.golden.data.datasets import DATASETS
from qlif.golden.spec.files import write_npy, write_npz
from qlif.golden.spec.model import MEMBRANE_BITS, WEIGHT_BITS
from qlif.golden.training.methods import GRID_MEMBRANE_BITS, GRID_WEIGHT_BITS, METHODS, QAT_METHODS

__all__ = ["register"]


def cmd_golden(args) -> int:
    from qlif.golden.spec.reference import run

    model = load_model_arg(args.model)
    frames, x = load_stimuli(model, args)
    result = run(model, x, lanes=args.lanes)
    write_npz(args.out, result.to_npz_dict())
    coded = "" if frames is None else " (frames, encoded as on chip)"
    print(f"golden: {x.shape[0]} samples x {model.timesteps} steps{coded} -> {args.out}")
    return 0


def cmd_stimuli(args) -> int:
    from qlif.golden.data.datasets import load_split
    from qlif.golden.spec.coding import encode

    _check_choice("--dataset", args.dataset, DATASETS)
    count = {f"{args.split}_count": args.count}
    try:
        split = load_split(args.dataset, data_dir=args.data_dir, **count)
    except ValueError as e:
        raise CLIError(str(e)) from None
    images, labels = (split.x_test, split.y_test) if args.split == "test" else (split.x_train, split.y_train)
    if args.frames:
        if args.timesteps is not None:
            raise CLIError("--frames writes intensities: T and the max rate are the model's, give no --timesteps")
        import numpy as np

        from qlif.golden.spec.coding import FRAME_LEVELS

        # The data sets' intensities are pixel / L exactly (float32 within 2e-5): the pixels back.
        x = np.rint(images * FRAME_LEVELS[args.dataset]).astype(np.uint8)
        what = f"frames (0..{FRAME_LEVELS[args.dataset]})"
    else:
        if args.timesteps is None:
            raise CLIError("--timesteps is required (or --frames)")
        try:
            x = encode(images, args.timesteps, max_rate=args.max_rate)
        except ValueError as e:
            raise CLIError(f"--max-rate: {e}") from None
        rate = "" if args.max_rate == "1" else f", max rate {args.max_rate}"
        what = f"T={args.timesteps}{rate}"
    write_npy(args.out, x)
    if args.labels:
        write_npy(args.labels, labels)
    print(f"stimuli: {x.shape[0]} {args.dataset} samples ({args.split} split), {what} -> {args.out}")
    return 0


def _load_split(dataset: str, data_dir, *, seed: int = 0, test_fraction: float = 0.25):
    from qlif.golden.data.datasets import load_split

    try:
        return load_split(dataset, data_dir=data_dir, seed=seed, test_fraction=test_fraction)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _train_config(args):
    from qlif.golden.training.train import MNIST_CONFIG, TrainConfig

    base = MNIST_CONFIG if args.dataset == "mnist" else TrainConfig()
    settings = dict(hidden=args.hidden, timesteps=args.timesteps, epochs=args.epochs, seed=args.seed,
                    batch_size=args.batch_size, lr=args.lr, max_rate=args.max_rate, holdout=args.holdout)
    return _replace_config(base, **{k: v for k, v in settings.items() if v is not None})


def _replace_config(config, **changes):
    from dataclasses import replace

    try:
        return replace(config, **changes)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _resume_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".resume")


def _load_checkpoint_arg(path):
    from qlif.golden.training.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _qat_config(args):
    from qlif.golden.training.qat import QATConfig

    try:
        extra = {} if args.rate_target is None else {"rate_target": args.rate_target}
        return QATConfig(method=args.qat, weight_bits=args.weight_bits, membrane_bits=args.membrane_bits, **extra)
    except ValueError as e:
        raise CLIError(str(e)) from None


def cmd_train(args) -> int:
    from qlif.golden.training.checkpoint import save_checkpoint
    from qlif.golden.training.evaluate import evaluate
    from qlif.golden.training.train import set_determinism, train

    _check_choice("--dataset", args.dataset, DATASETS)
    _check_choice("--qat", args.qat, QAT_METHODS)
    if args.qat is None and (args.weight_bits or args.membrane_bits):
        raise CLIError("--weight-bits and --membrane-bits belong to --qat; a float network has neither "
                       "(quantize it afterwards with qlif quantize)")
    if args.rate_target is not None and args.qat != "binary":
        raise CLIError("--rate-target belongs to --qat binary (its firing-rate regulariser)")
    if args.qat is not None and args.teacher and not Path(args.teacher).is_file():
        raise CLIError(f"--teacher {args.teacher}: no such checkpoint file")
    config = _train_config(args)
    qat = _qat_config(args) if args.qat else None
    teacher = _load_checkpoint_arg(args.teacher) if args.qat is not None and args.teacher else None
    if teacher is not None:
        # The teacher's held-out slice stays out: else its calibration samples would be trained on.
        if args.holdout is not None and args.holdout != teacher.config.holdout:
            raise CLIError(f"--holdout {args.holdout}: the teacher {args.teacher} holds out "
                           f"{teacher.config.holdout} samples, and a network trained from it holds out the same")
        config = _replace_config(config, holdout=teacher.config.holdout)
    # With a teacher, T and the rate coding are the teacher's unless --timesteps/--max-rate say otherwise
    # (its weights are then only the starting point: a T = 8 float network starts a T = 64, r = 1/8 one).
    coding = {name: getattr(config, name) for name in ("timesteps", "max_rate") if getattr(args, name) is not None}
    if teacher is not None and any(v != getattr(teacher.config, k) for k, v in coding.items()):
        t = teacher.config
        print(f"train: the teacher {args.teacher} was trained at T = {t.timesteps}, max rate {t.max_rate}; "
              f"this network trains at T = {coding.get('timesteps', t.timesteps)}, max rate "
              f"{coding.get('max_rate', t.max_rate)} from its weights")
    split = _load_split(config.dataset, args.data_dir, seed=config.seed, test_fraction=config.test_fraction)
    try:
        held = split.holdout_indices(config.holdout)
    except ValueError as e:
        raise CLIError(f"--holdout: {e}") from None
    resume = _resume_path(args.out)
    if resume.is_file():
        print(f"train: resuming from {resume}")
    try:
        if args.qat is None:
            net, history = train(config, split=split, resume=resume)
        else:
            from qlif.golden.training.qat import train_qat

            set_determinism(config.seed)
            net, history = train_qat(config, qat, split=split, resume=resume, teacher=teacher, **coding)
    except ValueError as e:
        raise CLIError(str(e)) from None
    save_checkpoint(net, args.out, history=history)
    resume.unlink(missing_ok=True)
    result = evaluate(net=net, split=split)
    # A quantization-aware network's forward pass is its integer model: not a float accuracy.
    summary = result.summary() if args.qat is None else result.summary().replace(
        "float", f"quantization-aware ({args.qat}, the integer model's spikes)", 1)
    kept = (f"; held out for calibration: training samples {held.start}..{held.stop - 1} ({len(held)})"
            if len(held) else "")
    print(f"train: {summary} in {history['seconds']:.0f} s{kept} -> {args.out}")
    return 0


def cmd_quantize(args) -> int:
    from qlif.golden.spec.model import save_model
    from qlif.golden.training.qat import QuantSpikingMLP, export
    from qlif.golden.training.quantize import calibration_stimuli, quantize

    _check_choice("--method", args.method, tuple(METHODS))
    if not Path(args.checkpoint).is_file():
        raise CLIError(f"{args.checkpoint}: no such checkpoint file")
    net = _load_checkpoint_arg(args.checkpoint)
    trained = net.qat.method if isinstance(net, QuantSpikingMLP) else None
    method = args.method or trained or "ptq"
    if method not in METHODS:
        raise CLIError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if trained is None and method != "ptq":
        raise CLIError(f"{method} is quantization-aware training: run `qlif train --qat {method} "
                       f"--teacher {args.checkpoint} ...`, then quantize that checkpoint")
    if trained is not None and method != trained:
        raise CLIError(f"{args.checkpoint} was trained with --qat {trained}; it exports as {trained}, "
                       f"not {method}")
    bits = args.weight_bits if args.weight_bits is not None else (4 if trained is None else net.qat.weight_bits)
    if bits not in METHODS[method]:
        raise CLIError(f"{method} gives {' or '.join(map(str, METHODS[method]))}-bit weights, not {bits}")
    if args.membrane_bits is not None and args.membrane_bits not in MEMBRANE_BITS:
        raise CLIError(f"--membrane-bits must be {MEMBRANE_BITS.start}..{MEMBRANE_BITS.stop - 1}, "
                       f"not {args.membrane_bits}")
    if args.percentile is not None and trained is not None:
        raise CLIError(f"--percentile belongs to ptq; {args.checkpoint} was trained with --qat {trained}, "
                       "whose scales it learned")
    if args.percentile is not None and not 0.0 < args.percentile <= 100.0:
        raise CLIError(f"--percentile must lie in (0, 100], not {args.percentile:g}")
    try:
        calibration = None
        if trained is None:
            on_data = args.membrane_bits is None or args.percentile is None or bits == 1
        else:
            on_data = net.qat.membrane_bits is None
        if on_data:
            # calibrated k and clips, and 1-bit PTQ's error feedback, run on the held-out slice the checkpoint
            # records, else on training data
            calibration = calibration_stimuli(net, data_dir=args.data_dir)
        if trained is None:
            model = quantize(net, weight_bits=bits, percentile=args.percentile,
                             membrane_bits=args.membrane_bits, calibration=calibration, progress=True)
        else:
            if args.membrane_bits is not None and args.membrane_bits != net.qat.membrane_bits:
                raise CLIError(f"{args.checkpoint} was trained for "
                               f"{net.qat.membrane_bits or 'calibrated'}-bit membranes, not {args.membrane_bits}")
            model = export(net, calibration=calibration)
    except ValueError as e:
        raise CLIError(str(e)) from None
    save_model(model, args.out)
    widths = ", ".join(f"{layer.weight_bits}b/{layer.membrane_bits}k" for layer in model.layers)
    clips = data = ""
    if trained is None:
        how = "fixed" if args.percentile is not None else "calibrated"
        clips = f", clip percentiles ({how}) " + "/".join(f"{p:g}" for p in model.metadata["clip_percentiles"])
    if calibration is not None:
        data = f"; calibration data: {calibration.describe()}"
    print(f"quantize: {method}, layers (weight bits/membrane bits) {widths}{clips}{data} -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    from qlif.golden.spec.reference import check_inputs, predict
    from qlif.golden.training.evaluate import integer_spikes

    model = load_model_arg(args.model)
    if args.inputs:
        if not args.labels:
            raise CLIError("--inputs needs --labels (a .npy of class indices, one per sample)")
        x = check_inputs(model, load_inputs(args.inputs))
        y = load_inputs(args.labels)
        if y.shape != (x.shape[0],):
            raise CLIError(f"--labels: shape {y.shape} does not match {x.shape[0]} samples")
        acc = float(np.mean(predict(integer_spikes(model, x, progress=True)[-1]) == y))
        print(f"eval: integer model accuracy {acc:.2%} on {len(y)} samples")
        return 0
    from qlif.golden.training.evaluate import evaluate

    _check_choice("--dataset", args.dataset, DATASETS)
    dataset = args.dataset or str(model.metadata.get("dataset", "digits"))
    meta = model.metadata
    split = _load_split(dataset, args.data_dir, seed=int(meta.get("seed", 0)),
                        test_fraction=float(meta.get("test_fraction", 0.25)))
    if model.n_in != split.n_in:
        raise CLIError(f"the model has {model.n_in} inputs, the {dataset} data {split.n_in}: "
                       "choose --dataset, or pass --inputs and --labels")
    # The split (seed, test fraction) the model was trained on is in its metadata.
    print(f"eval: {evaluate(model=model, split=split, progress=True).summary()}")
    return 0


def _int_list(option: str, text: str, allowed) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"{option}: expected comma-separated integers, not {text!r}") from None
    bad = [v for v in values if v not in allowed]
    if bad:
        raise CLIError(f"{option}: {bad[0]} is not one of {', '.join(map(str, allowed))}")
    return values


def cmd_sweep(args) -> int:
    from qlif.golden.training.sweep import missing, sweep, write_results

    datasets = tuple(args.datasets.split(","))
    for d in datasets:
        _check_choice("--datasets", d, DATASETS)
    methods = tuple(args.methods.split(","))
    for m in methods:
        _check_choice("--methods", m, tuple(METHODS))
    weight_bits = _int_list("--weight-bits", args.weight_bits, WEIGHT_BITS)
    membrane_bits = _int_list("--membrane-bits", args.membrane_bits, tuple(MEMBRANE_BITS))
    floats = {}
    for item in args.float_checkpoint or ():
        name, _, path = item.partition("=")
        _check_choice("--float-checkpoint", name, datasets)
        if not Path(path).is_file():
            raise CLIError(f"--float-checkpoint {item}: no such checkpoint file")
        floats[name] = path
    if "mnist" in datasets and not args.cached_only:
        _load_split("mnist", args.data_dir)   # a missing or bad data folder fails here, before any work
    try:
        rows = sweep(datasets=datasets, methods=methods, weight_bits=weight_bits, membrane_bits=membrane_bits,
                     codings=args.codings, work_dir=args.work_dir, data_dir=args.data_dir,
                     float_checkpoints=floats, cached_only=args.cached_only)
    except ValueError as e:
        raise CLIError(str(e)) from None
    header = ("# Accuracy per quantization method, weight bits b and membrane bits k\n\n"
              "Generated by `make accuracy` (`qlif sweep-accuracy`, golden/training/sweep.py); methods and "
              "settings in [docs/quantization.md](../quantization.md). Accuracy is that of the integer model on "
              "the whole test split; weight memory is n_weights x b bits plus 16 bits per custom codebook entry; "
              "compression is against 32-bit float weights.\n")
    if not rows:
        raise CLIError(f"no rows measured yet in {args.work_dir} (run without --cached-only)")
    absent = missing(rows, datasets=datasets, methods=methods, weight_bits=weight_bits, membrane_bits=membrane_bits,
                     codings=True)     # the sparse-coding rows are part of the table, run or not
    paths = write_results(rows, args.out_dir, header=header, absent=absent)
    print(f"sweep-accuracy: {len(rows)} rows ({len(absent)} of the grid not measured) -> "
          + ", ".join(map(str, paths)))
    return 0


def _check_choice(option: str, value, choices) -> None:
    # Checked here rather than by argparse ``choices`` so that a bad value is one line, exit 2.
    if value is not None and value not in choices:
        raise CLIError(f"{option}: unknown value {value!r}, choose one of {', '.join(choices)}")


def _data_args(sp) -> None:
    sp.add_argument("--dataset", default="digits", help="digits (embedded, default) or mnist (IDX files in --data-dir)")
    sp.add_argument("--data-dir", help="folder with the MNIST IDX files (gzipped or not)")


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    sp = add("golden", cmd_golden, "run the integer reference model on stimuli")
    sp.add_argument("model", help="model file (JSON, docs/model-format.md)")
    stimuli_args(sp)
    sp.add_argument("--out", required=True, help="results .npz")
    sp.add_argument("--lanes", type=lanes_arg, default=1, help="P, for the cycle model (default 1)")

    sp = add("stimuli", cmd_stimuli, "rate-code a data set (the embedded digits, or MNIST) into stimuli")
    _data_args(sp)
    sp.add_argument("--split", choices=("train", "test"), default="test")
    sp.add_argument("--timesteps", type=positive_arg, help="T (required unless --frames)")
    sp.add_argument("--max-rate", default="1",
                    help="maximum rate of the rate coding, a fraction in (0, 1] such as 1/8 (default 1); use the "
                         "model's (its metadata's max_rate)")
    sp.add_argument("--frames", action="store_true",
                    help="write frames instead (uint8 [samples, n_in], the pixels 0..16 or 0..255) for the --frames "
                         "of qlif golden and qlif sim, which code them as the on-chip encoder does")
    sp.add_argument("--count", type=positive_arg)
    sp.add_argument("--out", required=True)
    sp.add_argument("--labels", help="also write the labels .npy here")

    sp = add("train", cmd_train, "train the float LIF network (snntorch), or a quantization-aware one (--qat)")
    _data_args(sp)
    sp.add_argument("--hidden", type=positive_arg, default=None,
                    help="hidden neurons (default 128 on digits, 500 on mnist)")
    sp.add_argument("--timesteps", type=positive_arg, default=None,
                    help="T (default 16 on digits, 8 on mnist; with --teacher, the teacher's)")
    sp.add_argument("--max-rate", default=None,
                    help="maximum rate r of the rate coding, a fraction in (0, 1] such as 1/8 (default 1; with "
                         "--teacher, the teacher's); with T = 8/r the inputs give about as many spikes per "
                         "sample, r times as many per step (docs/training.md). With --qat lsq/binary these "
                         "may differ from the teacher's: it then only gives the starting weights")
    sp.add_argument("--epochs", type=positive_arg, default=None)
    sp.add_argument("--batch-size", type=positive_arg, default=None)
    sp.add_argument("--lr", type=float, default=None)
    sp.add_argument("--seed", type=int, default=None, help="seed of weights, batches and split (default 0)")
    sp.add_argument("--qat", default=None,
                    help="quantization-aware training: lsq (learned step), binary (1-bit, k-bit membranes), "
                         "ternary (asymmetric, spike calibration from --teacher)")
    sp.add_argument("--weight-bits", type=int, default=None, help="b for --qat (lsq: 2, 4, 8)")
    sp.add_argument("--membrane-bits", type=int, default=None, help="k for --qat, 2..16 (default 16)")
    sp.add_argument("--rate-target", type=float, default=None,
                    help="--qat binary: hidden firing rate of the regulariser (default 0.5, as Q-SNN; 0.05 is "
                         "better with small membrane registers, docs/quantization.md)")
    sp.add_argument("--teacher", help="float checkpoint: the initial weights of --qat and ternary's teacher")
    sp.add_argument("--holdout", type=int, default=None,
                    help="keep the last N samples of the training split out of training, for the calibration "
                         "of qlif quantize (default 0; with --teacher, the teacher's; docs/training.md)")
    sp.add_argument("--out", required=True,
                    help="checkpoint .pt (progress is kept in OUT.resume: a killed run continues from there)")

    sp = add("quantize", cmd_quantize, "quantize a checkpoint into an integer model file (docs/quantization.md)")
    sp.add_argument("checkpoint", help="float checkpoint (ptq) or one of qlif train --qat (its method)")
    sp.add_argument("--method", help="ptq (default for a float checkpoint), or the --qat method the "
                                     "checkpoint was trained with: lsq, binary, ternary")
    sp.add_argument("--weight-bits", type=int, default=None, help="b (ptq: 1, 2, 4, 8; default 4)")
    sp.add_argument("--percentile", type=float, default=None,
                    help="ptq: clip every layer's weights at this percentile of |W| (e.g. 99.9); default: each "
                         "layer's clip calibrated on the checkpoint's held-out slice, else on training data "
                         "(docs/quantization.md)")
    sp.add_argument("--membrane-bits", type=int, default=None,
                    help="k for every layer (default: calibrated on the calibration data, as the clips)")
    sp.add_argument("--data-dir", help="MNIST folder, for a checkpoint trained on mnist (calibration data)")
    sp.add_argument("--out", required=True)

    sp = add("sweep-accuracy", cmd_sweep,
             "accuracy of every quantization method x weight bits x membrane bits (table, CSV, plot)")
    sp.add_argument("--datasets", default="digits", help="comma-separated: digits, mnist (default digits)")
    sp.add_argument("--data-dir", help="folder with the MNIST IDX files")
    sp.add_argument("--methods", default="ptq,lsq,binary,ternary")
    sp.add_argument("--weight-bits", default=",".join(map(str, GRID_WEIGHT_BITS)),
                    help="rows for these b where a method can do them")
    sp.add_argument("--membrane-bits", default=",".join(map(str, GRID_MEMBRANE_BITS)))
    sp.add_argument("--float-checkpoint", action="append", metavar="DATASET=PATH",
                    help="reuse this float network for DATASET instead of training one")
    sp.add_argument("--work-dir", default="build/sweep", help="checkpoints, models and the row cache")
    sp.add_argument("--codings", action="store_true",
                    help="also the rows at sparser rate codings (MNIST binary k = 4 at T = 64 and 128: hours)")
    sp.add_argument("--cached-only", action="store_true",
                    help="measure nothing: write the results from the rows already cached, naming the missing ones")
    sp.add_argument("--out-dir", default="docs/results", help="where accuracy.md/.csv/.png go")

    sp = add("eval", cmd_eval, "accuracy of the integer model (default: the test split of its data set)")
    sp.add_argument("model")
    sp.add_argument("--dataset", default=None,
                    help="default: the data set in the model's metadata (digits if none)")
    sp.add_argument("--data-dir", help="folder with the MNIST IDX files")
    sp.add_argument("--inputs")
    sp.add_argument("--labels")
