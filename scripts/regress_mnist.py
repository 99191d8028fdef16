"""The seed network at scale: every MNIST test image through the generated Verilog, bit-exact at every step.

::

    make regress-mnist                                          # Verilator, 10,000 images; then Icarus, 500
    .venv/bin/python scripts/regress_mnist.py --count 200       # a quick look
    .venv/bin/python scripts/regress_mnist.py --model M.json --simulator icarus --count 500

The model is ``--model`` (an integer model file with 784 inputs), or else a 784-500-10 network trained
for ``--epochs`` (default 1) with ``qlif train --dataset mnist`` and quantized to 4 bits with ``qlif
quantize`` (post-training, docs/quantization.md); both are kept in ``--out-dir`` (build/regress-mnist)
and reused. The images are rate coded (golden/spec/coding.py) at the model's T and maximum rate and run
through the free-running bench of :mod:`qlif.sim.regress` at P = ``--lanes`` (32), ``--chunk`` images per
simulator process, ``-j`` processes at a time (default: the cores); every step of every image is compared
with the integer reference. Prints the build time (or that the build was cached), samples/s, clock
cycles/s, the RTL's and the integer model's accuracy (equal when bit-exact), and ends with
``regress-mnist: N/N bit-exact in S s`` (S: wall time from the start, build included, training not).
``--icarus N`` then also runs the first N images under Icarus and reports them in a line of their own
before that last line. Exit status 1 on any mismatch (the first one is printed), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode, max_rate_of
from qlif.golden.spec.cycles import LANES
from qlif.golden.spec.model import ModelError, load_model
from qlif.sim.regress import regress

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mnist"
OUT = ROOT / "build" / "regress-mnist"
#: The seed network's hidden layer (README: 784-500-10); its 784 inputs and 10 outputs come with MNIST.
HIDDEN = 500


def trained_model(data_dir: Path, out_dir: Path, epochs: int) -> Path:
    """The 4-bit PTQ model of a 784-500-10 network trained ``epochs`` epochs on ``data_dir``'s MNIST, trained
    and quantized with the project's own commands unless ``out_dir`` already has it (its name holds a
    hash of ``data_dir``'s absolute path: another copy of the data trains a model of its own)."""
    data = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    model = out_dir / f"mnist_e{epochs}_{data}_ptq4.json"
    if model.exists():
        print(f"regress-mnist: model {model} (cached)")
        return model
    out_dir.mkdir(parents=True, exist_ok=True)
    float_net = out_dir / f"mnist_e{epochs}_{data}_float.pt"
    qlif = [str(Path(sys.executable).with_name("qlif"))]      # the console script of this environment
    data = ["--data-dir", str(data_dir)]
    start = time.perf_counter()
    subprocess.run([*qlif, "train", "--dataset", "mnist", *data, "--hidden", str(HIDDEN), "--epochs", str(epochs),
                    "--out", str(float_net)], check=True)
    subprocess.run([*qlif, "quantize", str(float_net), *data, "--method", "ptq", "--weight-bits", "4",
                    "--out", str(model)], check=True)
    print(f"regress-mnist: trained ({epochs} epoch{'s' * (epochs != 1)}) and quantized in "
          f"{time.perf_counter() - start:.0f} s -> {model}")
    return model


def run(model, x: np.ndarray, y: np.ndarray, *, simulator: str, lanes: int, jobs: int, chunk: int,
        build_dir: Path) -> bool:
    """Run and report one simulator; True when every step of every image was bit-exact."""
    label = f"{simulator}, P = {lanes}, {len(x)} images, {jobs} processes"
    with tqdm(total=len(x), desc=f"regress-mnist ({simulator})", unit="img", smoothing=0.1) as bar:
        result = regress(model, x, lanes=lanes, simulator=simulator, jobs=jobs, chunk=chunk, build_dir=build_dir,
                         progress=bar.update)
    b = result.build
    print(f"regress-mnist: {label}")
    print(f"  build: Verilog generated in {b.generated:.1f} s, {simulator} build "
          f"{f'{b.seconds:.1f} s' if b.seconds else 'cached'} ({b.folder})")
    print(f"  simulation: {result.seconds:.1f} s, {len(x) / result.seconds:.3g} samples/s, "
          f"{result.clocks / result.seconds:,.0f} cycles/s ({result.clocks:,} clock cycles; "
          f"{result.steps_cycles:,} counted in step_cycles)")
    rtl = float(np.mean(result.rtl_prediction == y))
    golden = float(np.mean(result.golden_prediction == y))
    print(f"  accuracy: RTL {rtl:.2%}, integer model {golden:.2%}")
    # Each sample's prediction is among what regress() compares: a mismatch there is result.mismatch.
    if result.mismatch is not None:
        print(f"regress-mnist: MISMATCH ({len(result.failures)} chunk(s) of {chunk}): {result.mismatch}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DATA, help=f"MNIST IDX files (default {DATA})")
    p.add_argument("--model", type=Path, help="integer model file (default: train and quantize one)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs of the default model (default 1)")
    p.add_argument("--count", type=int, default=10000, help="test images, the first ones (default 10000)")
    p.add_argument("--lanes", type=int, default=32, help="P (default 32)")
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--icarus", type=int, default=0, metavar="N", help="then also the first N images under Icarus")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="simulator processes (default: cores)")
    p.add_argument("--chunk", type=int, default=250, help="images per simulator process (default 250)")
    p.add_argument("--out-dir", type=Path, default=OUT, help=f"models and builds (default {OUT})")
    args = p.parse_args(argv)
    # Our lines in order with those of the training commands and tqdm's, also when piped into a log.
    sys.stdout.reconfigure(line_buffering=True)
    if args.lanes not in LANES:
        p.error(f"--lanes must be one of {', '.join(map(str, LANES))}")
    if not 1 <= args.count <= 10000 or not 0 <= args.icarus <= args.count or args.jobs < 1 or args.chunk < 1 \
            or args.epochs < 1:
        p.error("--count must be 1..10000, --icarus 0..count, -j, --chunk and --epochs positive")
    try:
        split = load_split("mnist", data_dir=args.data_dir, test_count=args.count)
    except ValueError as e:
        p.error(f"--data-dir {args.data_dir}: {e}")
    if args.model is None:
        path = trained_model(args.data_dir, args.out_dir, args.epochs)
    else:
        path = args.model
    start = time.perf_counter()   # training is reported on its own; from here on counts
    try:
        model = load_model(path)
    except (OSError, ModelError) as e:
        p.error(f"--model: {e}")
    if model.n_in != 784 or model.n_out != 10:
        p.error(f"--model: {model.n_in} inputs and {model.n_out} outputs, MNIST needs 784 and 10")
    widths = "-".join(str(n) for n in [model.n_in, *(layer.n_out for layer in model.layers)])
    bits = "/".join(f"{layer.weight_bits}b{layer.membrane_bits}k" for layer in model.layers)
    x = encode(split.x_test, model.timesteps, max_rate=max_rate_of(model.metadata))
    y = np.asarray(split.y_test)
    print(f"regress-mnist: model {path}: {widths}, {bits}, T = {model.timesteps}; "
          f"{x.sum() / len(x) / model.timesteps:.1f} input events per step on average")
    build_dir = args.out_dir / "builds"
    ok = run(model, x, y, simulator=args.simulator, lanes=args.lanes, jobs=args.jobs, chunk=args.chunk,
             build_dir=build_dir)
    seconds = time.perf_counter() - start
    if ok and args.icarus:
        icarus = time.perf_counter()
        ok = run(model, x[:args.icarus], y[:args.icarus], simulator="icarus", lanes=args.lanes, jobs=args.jobs,
                 chunk=-(-args.icarus // args.jobs), build_dir=build_dir)
        if ok:
            print(f"regress-mnist: icarus {args.icarus}/{args.icarus} bit-exact in "
                  f"{time.perf_counter() - icarus:.0f} s")
    if ok:
        print(f"regress-mnist: {len(x)}/{len(x)} bit-exact in {seconds:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
