"""Check exported models against the RTL: golden model vs cocotb simulation on the first N test samples.

    .venv/bin/python benchmarks/check_exports_rtl.py MODEL.json [MODEL.json ...] \
        [--samples 50] [--simulator verilator] [--lanes 4] [--data-dir ../shared/data/mnist]

For each model: the test split of the data set named in its metadata is rate-coded (with the model's T and
maximum rate, ``metadata["max_rate"]``, default 1), the first N samples
are run through the integer reference (what ``qlif golden`` writes) and through the generated Verilog
(what ``qlif sim`` runs), and every spike, membrane and cycle count of every step is compared. Prints
one line per model and exits non-zero if any differs.
"""

from __future__ import annotations

import argparse
import sys
import time

from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode, max_rate_of
from qlif.golden.spec.model import load_model
from qlif.golden.spec.reference import run
from qlif.sim.compare import first_mismatch
from qlif.sim.runner import run_rtl


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--simulator", default="verilator")
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    failed = 0
    for path in args.models:
        model = load_model(path)
        meta = model.metadata
        split = load_split(str(meta.get("dataset", "digits")), data_dir=args.data_dir, seed=int(meta.get("seed", 0)),
                           test_fraction=float(meta.get("test_fraction", 0.25)), test_count=args.samples)
        x = encode(split.x_test[:args.samples], model.timesteps, max_rate=max_rate_of(meta))
        start = time.perf_counter()
        expected = run(model, x, lanes=args.lanes)
        got = run_rtl(model, x, simulator=args.simulator, lanes=args.lanes)
        mismatch = first_mismatch(expected, got)
        failed += mismatch is not None
        widths = "/".join(f"{layer.weight_bits}b{layer.membrane_bits}k" for layer in model.layers)
        widths += f", T={model.timesteps}, max rate {max_rate_of(meta)}"
        print(f"{path}: {widths}, {len(x)} samples, {args.simulator} P={args.lanes}: "
              f"{'MATCH' if mismatch is None else 'MISMATCH ' + str(mismatch)} "
              f"(accuracy {float((got.prediction == split.y_test[:len(x)]).mean()):.0%}, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
