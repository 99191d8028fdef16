"""The ``qlif`` command line: one entry point, one subcommand per step of the flow.

Every user error (bad model file, bad stimuli, bad option) prints one line ``qlif: error: ...`` naming
what is wrong and exits with status 2; output files are written atomically, only once everything has
been checked and computed, so a failed command leaves no partial output behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "CLIError"]

SIMULATORS = ("icarus", "verilator")
BOARDS = ("icebreaker",)


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# -- helpers ---------------------------------------------------------------------------------------

def _atomic_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.part")


def write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """Write an ``.npz`` atomically (a temporary file renamed into place)."""
    import numpy as np

    path = Path(path)
    tmp = _atomic_path(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def write_npy(path: str | os.PathLike, array) -> None:
    import numpy as np

    path = Path(path)
    tmp = _atomic_path(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = _atomic_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def load_inputs(path: str | os.PathLike):
    """Read a stimuli ``.npy``; shape and values are checked against the model by the caller."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (ValueError, OSError) as e:
        raise CLIError(f"{path}: not a readable .npy array ({e})") from None


def _model(path):
    from qlif.golden.model import load_model

    return load_model(path)


def _lanes(value: str) -> int:
    from qlif.golden.cycles import LANES

    try:
        lanes = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"lanes must be an integer, not {value!r}") from None
    if lanes not in LANES:
        raise argparse.ArgumentTypeError(f"lanes must be one of {', '.join(map(str, LANES))}, not {lanes}")
    return lanes


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {n}")
    return n


# -- subcommands -----------------------------------------------------------------------------------

def cmd_golden(args) -> int:
    from qlif.golden.reference import check_inputs, run

    model = _model(args.model)
    x = check_inputs(model, load_inputs(args.inputs))
    result = run(model, x, lanes=args.lanes)
    write_npz(args.out, result.to_npz_dict())
    print(f"golden: {x.shape[0]} samples x {model.timesteps} steps -> {args.out}")
    return 0


def cmd_sim(args) -> int:
    from qlif.golden.reference import check_inputs, run
    from qlif.sim.runner import first_mismatch, run_rtl

    model = _model(args.model)
    x = check_inputs(model, load_inputs(args.inputs))
    expected = run(model, x, lanes=args.lanes)
    got = run_rtl(model, x, simulator=args.simulator, lanes=args.lanes,
                  build_dir=Path(args.build_dir) if args.build_dir else None)
    write_npz(args.out, got.to_npz_dict())
    mismatch = first_mismatch(expected, got)
    if mismatch is not None:
        print(f"qlif: RTL differs from the golden model: {mismatch}", file=sys.stderr)
        return 1
    print(f"sim ({args.simulator}, P={args.lanes}): {x.shape[0]} samples x {model.timesteps} steps "
          f"match the golden model (spikes, membranes, cycles) -> {args.out}")
    return 0


def cmd_verilog(args) -> int:
    from qlif.hw.verilog import generate

    model = _model(args.model)
    text = generate(model, lanes=args.lanes, name=args.name)
    write_text(args.out, text)
    print(f"verilog: module {args.name} (P={args.lanes}) -> {args.out}")
    return 0


def cmd_build(args) -> int:
    from qlif.boards.build import build

    model = _model(args.model)
    report = build(model, board=args.board, lanes=args.lanes, out_dir=Path(args.out_dir))
    print(f"build: {args.board}: bitstream {report['bitstream']}, Fmax {report['fmax_mhz']:.1f} MHz")
    return 0


def cmd_stimuli(args) -> int:
    from qlif.golden.data import encode, load_digits_split

    split = load_digits_split()
    images, labels = (split.x_test, split.y_test) if args.split == "test" else (split.x_train, split.y_train)
    if args.count is not None:
        images, labels = images[:args.count], labels[:args.count]
    x = encode(images, args.timesteps)
    write_npy(args.out, x)
    if args.labels:
        write_npy(args.labels, labels)
    print(f"stimuli: {x.shape[0]} digits ({args.split} split), T={args.timesteps} -> {args.out}")
    return 0


def cmd_train(args) -> int:
    from qlif.golden.evaluate import evaluate
    from qlif.golden.train import TrainConfig, save_checkpoint, train

    settings = dict(hidden=args.hidden, timesteps=args.timesteps, epochs=args.epochs, seed=args.seed)
    try:
        config = TrainConfig(**{k: v for k, v in settings.items() if v is not None})
    except ValueError as e:
        raise CLIError(str(e)) from None
    net, history = train(config)
    save_checkpoint(net, args.out, history=history)
    print(f"train: {evaluate(net=net).summary()} in {history['seconds']:.0f} s -> {args.out}")
    return 0


def cmd_quantize(args) -> int:
    from qlif.golden.model import save_model
    from qlif.golden.quantize import quantize_checkpoint

    if not Path(args.checkpoint).is_file():
        raise CLIError(f"{args.checkpoint}: no such checkpoint file")
    model = quantize_checkpoint(Path(args.checkpoint), weight_bits=args.weight_bits,
                                percentile=args.percentile, membrane_bits=args.membrane_bits)
    save_model(model, args.out)
    widths = ", ".join(f"{layer.weight_bits}b/{layer.membrane_bits}k" for layer in model.layers)
    print(f"quantize: layers (weight bits/membrane bits) {widths} -> {args.out}")
    return 0


def cmd_eval(args) -> int:
    import numpy as np

    from qlif.golden.reference import check_inputs, run

    model = _model(args.model)
    if args.inputs:
        if not args.labels:
            raise CLIError("--inputs needs --labels (a .npy of class indices, one per sample)")
        x = check_inputs(model, load_inputs(args.inputs))
        y = load_inputs(args.labels)
        if y.shape != (x.shape[0],):
            raise CLIError(f"--labels: shape {y.shape} does not match {x.shape[0]} samples")
    else:
        from qlif.golden.evaluate import evaluate

        if model.n_in != 64:
            raise CLIError(f"the model has {model.n_in} inputs, the digits data 64: pass --inputs and --labels")
        # The split (seed, test fraction) the model was trained on is in its metadata.
        print(f"eval: {evaluate(model=model).summary()}")
        return 0
    pred = run(model, x).prediction
    acc = float(np.mean(pred == y))
    print(f"eval: integer model accuracy {acc:.2%} on {len(y)} samples")
    return 0


def cmd_demo(args) -> int:
    from qlif.demo import run_demo

    run_demo(out_dir=Path(args.out_dir), samples=args.samples, simulator=args.simulator,
             lanes=args.lanes, synthesize=not args.no_build)
    return 0


# -- parser ----------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qlif",
        description="Quantized LIF spiking networks on open-toolchain FPGAs: train, quantize, run the "
                    "integer golden model, simulate the RTL, build bitstreams.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("golden", cmd_golden, "run the integer reference model on stimuli")
    sp.add_argument("model", help="model file (JSON, docs/model-format.md)")
    sp.add_argument("--inputs", required=True, help="stimuli .npy, uint8 [samples, T, n_in] of 0/1")
    sp.add_argument("--out", required=True, help="results .npz")
    sp.add_argument("--lanes", type=_lanes, default=1, help="P, for the cycle model (default 1)")

    sp = add("sim", cmd_sim, "simulate the RTL on stimuli and check it against the golden model")
    sp.add_argument("model")
    sp.add_argument("--inputs", required=True)
    sp.add_argument("--out", required=True, help="results measured from the RTL, .npz")
    sp.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    sp.add_argument("--lanes", type=_lanes, default=1, help="P synapses per cycle (default 1)")
    sp.add_argument("--build-dir", help="simulator build folder (default build/sim/...)")

    sp = add("verilog", cmd_verilog, "write the Verilog of the accelerator for a model")
    sp.add_argument("model")
    sp.add_argument("--out", required=True)
    sp.add_argument("--lanes", type=_lanes, default=1)
    sp.add_argument("--name", default="qlif_top", help="top module name")

    sp = add("build", cmd_build, "synthesise, place and route a bitstream with a report")
    sp.add_argument("model")
    sp.add_argument("--board", choices=BOARDS, default="icebreaker")
    sp.add_argument("--lanes", type=_lanes, default=4)
    sp.add_argument("--out-dir", default="build/board")

    sp = add("stimuli", cmd_stimuli, "rate-code the embedded digits data set into stimuli")
    sp.add_argument("--split", choices=("train", "test"), default="test")
    sp.add_argument("--timesteps", type=_positive, required=True)
    sp.add_argument("--count", type=_positive)
    sp.add_argument("--out", required=True)
    sp.add_argument("--labels", help="also write the labels .npy here")

    sp = add("train", cmd_train, "train the float LIF network (snntorch) on the digits data")
    sp.add_argument("--hidden", type=_positive, default=None, help="hidden neurons (default 128)")
    sp.add_argument("--timesteps", type=_positive, default=None, help="T (default: the trainer's)")
    sp.add_argument("--epochs", type=_positive, default=None)
    sp.add_argument("--seed", type=int, default=None, help="seed of weights, batches and split (default 0)")
    sp.add_argument("--out", required=True, help="checkpoint .pt")

    sp = add("quantize", cmd_quantize, "post-training quantization of a checkpoint into a model file")
    sp.add_argument("checkpoint")
    sp.add_argument("--weight-bits", type=int, choices=(1, 2, 4, 8), default=4)
    sp.add_argument("--percentile", type=float, default=99.9, help="weight clipping percentile per layer")
    sp.add_argument("--membrane-bits", type=int, default=None,
                    help="k for every layer (default: calibrated on the training data)")
    sp.add_argument("--out", required=True)

    sp = add("eval", cmd_eval, "accuracy of the integer model (default: the digits test split)")
    sp.add_argument("model")
    sp.add_argument("--inputs")
    sp.add_argument("--labels")

    sp = add("demo", cmd_demo, "train, quantize, verify the RTL, build the UP5K bitstream, write a report")
    sp.add_argument("--out-dir", default="build/demo")
    sp.add_argument("--samples", type=_positive, default=200, help="test samples run on the RTL")
    sp.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    sp.add_argument("--lanes", type=_lanes, default=4)
    sp.add_argument("--no-build", action="store_true", help="skip synthesis")
    return p


def main(argv: list[str] | None = None) -> int:
    from qlif.golden.model import ModelError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelError, CLIError) as e:
        print(f"qlif: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qlif: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
