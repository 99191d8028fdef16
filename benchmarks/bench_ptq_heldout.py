"""PTQ's clip calibration on the held-out slice of ``qlif train --holdout`` against the training split.

Run: ``python benchmarks/bench_ptq_heldout.py [--hold 300] [--bits 4,2]`` trains its own networks on the digits
training split less its last ``--hold`` samples (``TrainConfig(holdout=...)``, what ``qlif train --holdout``
does): the digits 64-128-10 of ``TrainConfig()`` and the snntorch producers of
:mod:`qlif.golden.training.nir_producer` (beta 0.875, 0.9, 0.95, imported through NIR; an imported network
records no slice, so the same samples are named for it here). ``python benchmarks/bench_ptq_heldout.py
--checkpoint CKPT [--data-dir D]`` measures a checkpoint trained with ``--holdout`` instead (e.g. MNIST).
Per network and weight width (k = 16, so only the clips differ), the integer accuracy on the held-out
samples (which the float network never trained on) and on the test split, of PTQ at the fixed 99.9th
percentile and with the clips calibrated (``quantize``'s default) on the training split's first samples
(the default without a held-out slice), on as many of them as the slice holds when that is fewer than the
clip calibration's :data:`~qlif.golden.training.quantize.CLIP_SAMPLES` (unseen against fewer samples), or on
the held-out slice (the default with one), with the wall time of each calibration. docs/quantization.md
quotes the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode
from qlif.golden.training.evaluate import float_accuracy, integer_accuracy
from qlif.golden.training.quantize import CLIP_SAMPLES, CalibrationSet, calibration_stimuli, quantize
from qlif.golden.training.train import TrainConfig, train


def _digits_networks(hold: int, split) -> list:
    import nir
    import torch
    from snntorch.export_nir import export_to_nir

    from qlif.golden.training.nir_graph import map_graph, to_network
    from qlif.golden.training.nir_producer import T, train_producer

    nets = [("digits 64-128-10", train(TrainConfig(holdout=hold), split=split, progress=False)[0])]
    with tempfile.TemporaryDirectory() as tmp:
        for beta in (0.875, 0.9, 0.95):
            path = Path(tmp) / f"producer-{beta}.nir"
            nir.write(path, export_to_nir(train_producer(beta, 4, split.without_holdout(hold)), torch.zeros(64)))
            net = to_network(map_graph(nir.read(path), reset="subtract"), timesteps=T, dataset="digits")
            # The producer trained without the slice; the imported config cannot know it.
            net.config = replace(net.config, holdout=hold)
            nets.append((f"producer beta {beta}", net))
    return nets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=int, default=300, help="digits training samples held out (default 300)")
    parser.add_argument("--bits", default="4,2", help="weight widths, comma-separated (default 4,2)")
    parser.add_argument("--checkpoint", help="a checkpoint of qlif train --holdout to measure instead")
    parser.add_argument("--data-dir", help="the MNIST folder, for an MNIST checkpoint")
    args = parser.parse_args()
    if args.checkpoint:
        from qlif.golden.training.checkpoint import load_checkpoint

        net = load_checkpoint(args.checkpoint)
        if not net.config.holdout:
            parser.error(f"{args.checkpoint} records no held-out slice (train it with qlif train --holdout N)")
        cfg = net.config
        split = load_split(cfg.dataset, data_dir=args.data_dir, seed=cfg.seed, test_fraction=cfg.test_fraction)
        nets = [(args.checkpoint, net)]
    else:
        split = load_split("digits")
        nets = _digits_networks(args.hold, split)
    print("| network | b | float | fixed 99.9 | calibrated on training samples | on as many training samples as "
          "the slice | calibrated on the held-out slice |  (each: held-out / test accuracy)")
    print("|---|---|---|---|---|---|---|")
    for name, net in nets:
        cfg = net.config
        held = split.holdout_indices(cfg.holdout)
        held_y = split.y_train[held.start:]
        x_test, x_held = (encode(x, cfg.timesteps, max_rate=cfg.max_rate)
                          for x in (split.x_test, split.x_train[held.start:]))
        on_train = calibration_stimuli(SimpleNamespace(config=replace(cfg, holdout=0)), split=split)
        on_held = calibration_stimuli(net, split=split)
        n = len(on_held.x)
        as_many = CalibrationSet(on_train.x[:n], "training", 0) if n < min(CLIP_SAMPLES, len(on_train.x)) else None

        def accs(model, x_held=x_held, held_y=held_y, x_test=x_test):
            return (f"{integer_accuracy(model, x_held, held_y):.2%} / "
                    f"{integer_accuracy(model, x_test, split.y_test):.2%}")

        for b in (int(v) for v in args.bits.split(",")):
            fixed = quantize(net, weight_bits=b, membrane_bits=16, percentile=99.9, calibration=on_train)
            cells = []
            for cal in (on_train, as_many, on_held):
                if cal is None:
                    cells.append("as the training column")
                    continue
                start = time.perf_counter()
                model = quantize(net, weight_bits=b, membrane_bits=16, calibration=cal)
                seconds = time.perf_counter() - start
                clips = "/".join(f"{p:g}" for p in model.metadata["clip_percentiles"])
                cells.append(f"{accs(model)} ({clips}; {seconds:.0f} s)")
            print(f"| {name} | {b} | {float_accuracy(net, x_held, held_y):.2%} / "
                  f"{float_accuracy(net, x_test, split.y_test):.2%} | {accs(fixed)} | " + " | ".join(cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
