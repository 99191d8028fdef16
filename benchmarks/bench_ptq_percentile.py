"""The effect of PTQ's clipping percentile: integer accuracy per weight bits and percentile, and with the
clips calibrated per layer (the default of ``qlif quantize``).

    .venv/bin/python benchmarks/bench_ptq_percentile.py CHECKPOINT [--data-dir DIR] [--bits 2,4]
        [--membrane-bits 16]

Quantizes the float checkpoint with each fixed percentile and with calibrated clips, and prints a markdown
table of the integer model's test accuracy (whole test split of the checkpoint's data set), the fraction of
weights clipped, and the calibrated clip percentile of each layer.
"""

from __future__ import annotations

import argparse

import numpy as np

from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode
from qlif.golden.training.checkpoint import load_checkpoint
from qlif.golden.training.evaluate import float_accuracy, integer_accuracy
from qlif.golden.training.quantize import quantize

PERCENTILES = (70.0, 80.0, 90.0, 95.0, 99.0, 99.9, 100.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--data-dir")
    p.add_argument("--bits", default="2,4")
    p.add_argument("--membrane-bits", type=int, default=16)
    args = p.parse_args()
    net = load_checkpoint(args.checkpoint)
    cfg = net.config
    split = load_split(cfg.dataset, data_dir=args.data_dir, seed=cfg.seed, test_fraction=cfg.test_fraction)
    x = encode(split.x_test, cfg.timesteps, max_rate=cfg.max_rate)
    print(f"float {float_accuracy(net, x, split.y_test):.2%}")
    print("| b | " + " | ".join(f"P = {q:g}" for q in PERCENTILES) + " | calibrated |")
    print("|---|" + "---|" * (len(PERCENTILES) + 1))
    for b in (int(v) for v in args.bits.split(",")):
        cells = []
        for q in PERCENTILES:
            model = quantize(net, weight_bits=b, percentile=q, membrane_bits=args.membrane_bits, split=split)
            clipped = np.mean([np.mean(np.abs(w) > np.percentile(np.abs(w), q)) for w in net.weights()])
            cells.append(f"{integer_accuracy(model, x, split.y_test):.2%} ({clipped:.1%} clipped)")
        model = quantize(net, weight_bits=b, membrane_bits=args.membrane_bits, split=split)
        clips = "/".join(f"{p:g}" for p in model.metadata["clip_percentiles"])
        cells.append(f"{integer_accuracy(model, x, split.y_test):.2%} (P = {clips})")
        print(f"| {b} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
