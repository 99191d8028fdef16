"""PTQ's clip calibration on held-out data: digits networks trained without the training split's last samples.

Run: ``python benchmarks/bench_ptq_heldout.py [--hold 300] [--bits 4,2]``. qlif's training configuration has
no validation part (every network trains on the whole training split), so this trains its own: the digits
64-128-10 of ``TrainConfig()`` and the snntorch producers of :mod:`qlif.golden.training.nir_producer` (beta
0.875, 0.9, 0.95, imported through NIR), each on the digits training split less its last ``--hold`` samples.
Then, per network and weight width (k = 16), the integer accuracy on the held-out samples (which neither the
float network nor the calibration saw) and on the test split, of PTQ at the fixed 99.9th percentile and
with the clips calibrated (``quantize``'s default) on the first 1000 training samples (what ``qlif quantize``
does) or on the held-out ones. docs/quantization.md quotes the figures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nir
import torch
from snntorch.export_nir import export_to_nir

from qlif.golden.data.datasets import load_split
from qlif.golden.data.split import Split
from qlif.golden.spec.coding import encode
from qlif.golden.training.evaluate import float_accuracy, integer_accuracy
from qlif.golden.training.nir_graph import map_graph, to_network
from qlif.golden.training.nir_producer import T, train_producer
from qlif.golden.training.quantize import CLIP_SAMPLES, quantize
from qlif.golden.training.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=int, default=300, help="training samples held out (default 300)")
    parser.add_argument("--bits", default="4,2", help="weight widths, comma-separated (default 4,2)")
    args = parser.parse_args()
    split = load_split("digits")
    fit = Split(split.x_train[:-args.hold], split.y_train[:-args.hold], split.x_test, split.y_test)
    held, held_y = split.x_train[-args.hold:], split.y_train[-args.hold:]
    nets = [("digits 64-128-10", train(TrainConfig(), split=fit, progress=False)[0])]
    with tempfile.TemporaryDirectory() as tmp:
        for beta in (0.875, 0.9, 0.95):
            path = Path(tmp) / f"producer-{beta}.nir"
            nir.write(path, export_to_nir(train_producer(beta, 4, fit), torch.zeros(64)))
            nets.append((f"producer beta {beta}", to_network(map_graph(nir.read(path), reset="subtract"),
                                                             timesteps=T, dataset="digits")))
    print("| network | b | float | fixed 99.9 | calibrated on training samples | calibrated on held-out samples |"
          "  (each: held-out / test accuracy)")
    print("|---|---|---|---|---|---|")
    for name, net in nets:
        cfg = net.config
        x_test, x_held = (encode(x, cfg.timesteps, max_rate=cfg.max_rate) for x in (split.x_test, held))
        on_train = encode(fit.x_train[:CLIP_SAMPLES], cfg.timesteps, max_rate=cfg.max_rate)

        def accs(model, x_held=x_held, x_test=x_test):
            return (f"{integer_accuracy(model, x_held, held_y):.2%} / "
                    f"{integer_accuracy(model, x_test, split.y_test):.2%}")

        for b in (int(v) for v in args.bits.split(",")):
            fixed = quantize(net, weight_bits=b, membrane_bits=16, percentile=99.9, calibration=on_train)
            cal = [quantize(net, weight_bits=b, membrane_bits=16, calibration=c) for c in (on_train, x_held)]
            print(f"| {name} | {b} | {float_accuracy(net, x_held, held_y):.2%} / "
                  f"{float_accuracy(net, x_test, split.y_test):.2%} | {accs(fixed)} | "
                  + " | ".join(f"{accs(m)} ({'/'.join(f'{p:g}' for p in m.metadata['clip_percentiles'])})"
                               for m in cal) + " |", flush=True)


if __name__ == "__main__":
    main()
