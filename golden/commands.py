"""``qlif`` subcommands of the golden package: golden, stimuli, train, quantize, eval."""

from __future__ import annotations

from pathlib import Path

from qlif.clitools import (
    AddCommand,
    CLIError,
    lanes_arg,
    load_inputs,
    load_model_arg,
    positive_arg,
    write_npy,
    write_npz,
)

__all__ = ["register"]


def cmd_golden(args) -> int:
    from .reference import check_inputs, run

    model = load_model_arg(args.model)
    x = check_inputs(model, load_inputs(args.inputs))
    result = run(model, x, lanes=args.lanes)
    write_npz(args.out, result.to_npz_dict())
    print(f"golden: {x.shape[0]} samples x {model.timesteps} steps -> {args.out}")
    return 0


def cmd_stimuli(args) -> int:
    from .data import encode, load_digits_split

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
    from .evaluate import evaluate
    from .train import TrainConfig, save_checkpoint, train

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
    from .model import save_model
    from .quantize import quantize_checkpoint

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

    from .reference import check_inputs, run

    model = load_model_arg(args.model)
    if args.inputs:
        if not args.labels:
            raise CLIError("--inputs needs --labels (a .npy of class indices, one per sample)")
        x = check_inputs(model, load_inputs(args.inputs))
        y = load_inputs(args.labels)
        if y.shape != (x.shape[0],):
            raise CLIError(f"--labels: shape {y.shape} does not match {x.shape[0]} samples")
    else:
        from .evaluate import evaluate

        if model.n_in != 64:
            raise CLIError(f"the model has {model.n_in} inputs, the digits data 64: pass --inputs and --labels")
        # The split (seed, test fraction) the model was trained on is in its metadata.
        print(f"eval: {evaluate(model=model).summary()}")
        return 0
    pred = run(model, x).prediction
    acc = float(np.mean(pred == y))
    print(f"eval: integer model accuracy {acc:.2%} on {len(y)} samples")
    return 0


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    sp = add("golden", cmd_golden, "run the integer reference model on stimuli")
    sp.add_argument("model", help="model file (JSON, docs/model-format.md)")
    sp.add_argument("--inputs", required=True, help="stimuli .npy, uint8 [samples, T, n_in] of 0/1")
    sp.add_argument("--out", required=True, help="results .npz")
    sp.add_argument("--lanes", type=lanes_arg, default=1, help="P, for the cycle model (default 1)")

    sp = add("stimuli", cmd_stimuli, "rate-code the embedded digits data set into stimuli")
    sp.add_argument("--split", choices=("train", "test"), default="test")
    sp.add_argument("--timesteps", type=positive_arg, required=True)
    sp.add_argument("--count", type=positive_arg)
    sp.add_argument("--out", required=True)
    sp.add_argument("--labels", help="also write the labels .npy here")

    sp = add("train", cmd_train, "train the float LIF network (snntorch) on the digits data")
    sp.add_argument("--hidden", type=positive_arg, default=None, help="hidden neurons (default 128)")
    sp.add_argument("--timesteps", type=positive_arg, default=None, help="T (default: the trainer's)")
    sp.add_argument("--epochs", type=positive_arg, default=None)
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
