"""snntorch networks through NIR into qlif: the float accuracy of a beta that is not 1 - 2^-lam, and 4-bit PTQ.

Run: ``python benchmarks/bench_nir_producers.py [--betas 0.875,0.9,0.95] [--epochs 4]``. For each beta the
producer of :mod:`qlif.golden.training.nir_producer`, the one ``tests/test_nir.py`` checks (digits 64-32-10,
snntorch ``Leaky`` with subtract reset, T = 8), is trained, written by snntorch's ``export_to_nir`` and read
by ``qlif import --reset subtract --dataset digits`` (which prints the leak line); the table gives, on the 450
digits test samples, the producer's accuracy, the imported network's with each neuron's own beta and with the
nearest ``1 - 2^-lam`` (the checkpoint), and 4-bit PTQ of the checkpoint at ``quantize``'s default clip and at
the fixed 99.9th percentile. docs/nir.md quotes its figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nir
import numpy as np
import torch
from snntorch.export_nir import export_to_nir

from qlif.cli import main as qlif
from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.reference import predict
from qlif.golden.training.checkpoint import load_checkpoint
from qlif.golden.training.evaluate import float_accuracy, integer_accuracy
from qlif.golden.training.nir_graph import map_graph, to_network
from qlif.golden.training.nir_producer import T, run_producer, train_producer
from qlif.golden.training.quantize import quantize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", default="0.875,0.9,0.95", help="producer betas, comma-separated")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs of each producer (default 4)")
    args = parser.parse_args()
    out = Path(BUILD_ROOT) / "nir"
    out.mkdir(parents=True, exist_ok=True)
    split = load_split("digits")
    x = encode(split.x_test, T)
    rows = []
    for beta in (float(b) for b in args.betas.split(",")):
        start = time.perf_counter()
        net = train_producer(beta, args.epochs, split)
        graph = export_to_nir(net, torch.zeros(64))
        path, ckpt = out / f"producer-{beta}.nir", out / f"producer-{beta}.pt"
        nir.write(path, graph)
        with torch.no_grad():
            producer = float(np.mean(predict(run_producer(net, torch.from_numpy(x).float()).numpy()) == split.y_test))
        assert qlif(["import", str(path), "--out", str(ckpt), "--timesteps", str(T), "--reset", "subtract",
                     "--dataset", "digits"]) == 0
        imported = map_graph(nir.read(path), reset="subtract")
        own = float_accuracy(to_network(imported, timesteps=T, dataset="digits", exact_beta=True), x, split.y_test)
        snapped = load_checkpoint(ckpt)
        ptq = [integer_accuracy(quantize(snapped, weight_bits=4, **clip), x, split.y_test)
               for clip in ({}, {"percentile": 99.9})]
        rows.append((beta, imported.leak_shift, producer, own, float_accuracy(snapped, x, split.y_test), *ptq,
                     time.perf_counter() - start))
    print("\n| producer beta | leak shift | producer | imported, own beta | imported, 1 - 2^-lam | 4-bit PTQ "
          "(default clip) | 4-bit PTQ (99.9th pct) | s |")
    print("|---|---|---|---|---|---|---|---|")
    for beta, lam, *accs, secs in rows:
        print(f"| {beta:g} | {lam} | " + " | ".join(f"{a:.2%}" for a in accs) + f" | {secs:.0f} |")


if __name__ == "__main__":
    main()
