"""The seed network, 784-500-10, on the generated Verilog with MNIST test images (long: ``-m slow``).

The two configurations of docs/boards.md: 4-bit weights at P = 32 (the ECP5-85F build) and ternary
weights (a custom codebook ``[0, a_p, 0, -a_n]``) at P = 8 (the UP5K build, synapses in SPRAM; the
generic Verilog holds them in an initialised memory, the SPRAM path itself is checked in
tests/test_hw_memory.py). Random weights, thresholds set for MNIST's input activity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qlif.golden.spec import reference
from qlif.golden.spec.model import Layer, Model
from qlif.golden.spec.random_model import random_model
from qlif.sim.compare import first_mismatch
from qlif.sim.runner import run_rtl

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def _images(count: int, timesteps: int) -> np.ndarray:
    if not (DATA / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST IDX files not found in {DATA}")
    from qlif.golden.data.datasets import load_split
    from qlif.golden.spec.coding import encode

    return encode(load_split("mnist", data_dir=DATA, test_count=count).x_test, timesteps)


def _ternary(seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out, theta in ((784, 500, 60), (500, 10, 40)):
        book = (0, 10, 0, -16)
        w = rng.choice(book, size=(n_in, n_out), p=(0.35, 0.3, 0.05, 0.3))
        layers.append(Layer(weights=w.astype(np.int64), weight_bits=2, membrane_bits=16, threshold=theta,
                            leak_shift=3, reset="subtract", codebook=book))
    model = Model(timesteps=8, layers=tuple(layers))
    model.validate()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name, lanes", [("4bit", 32), ("ternary", 8)])
def test_mnist_784_500_10_is_bit_exact(name, lanes):
    model = (random_model([784, 500, 10], timesteps=8, weight_bits=4, membrane_bits=13, seed=1)
             if name == "4bit" else _ternary())
    x = _images(6, model.timesteps)
    ref = reference.run(model, x, lanes=lanes)
    assert ref.spikes[0].any() and not ref.spikes[0].all()      # the hidden layer is neither dead nor saturated
    got = run_rtl(model, x, simulator="verilator", lanes=lanes, check=True)
    assert first_mismatch(ref, got) is None
