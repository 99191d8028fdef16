"""The integer reference's fast paths (float BLAS products, integration by event rank) are the contract.

``tests/test_golden.py`` checks every feature of the semantics on small layers; here the layers are
large enough for the reference's two integration paths to be taken side by side (rows that cannot
saturate take the product, the others add input by input), with float32 and float64 products, and the
result is compared with the contract read literally (``naive_layer``: one sample, one neuron, one
addition at a time).
"""

import numpy as np
import pytest
from test_golden import naive_layer, random_layer

from qlif.golden.spec.model import Layer, Model
from qlif.golden.spec.reference import _exact_dtype, integrate_in_order, run, run_layer


def _check_layer(layer, x):
    spikes, mem = run_layer(layer, x)
    for n in range(x.shape[0]):
        ns, nm = naive_layer(layer, x[n])
        np.testing.assert_array_equal(spikes[n], ns)
        np.testing.assert_array_equal(mem[n], nm)
    return spikes, mem


@pytest.mark.parametrize("b, k, lam, reset, codebook", [
    (4, 16, 3, "subtract", None),     # nothing saturates: the product path
    (4, 7, 2, "subtract", None),      # some rows saturate: both paths in the same step
    (4, 5, 2, "subtract", None),      # almost everything saturates: the in-order path
    (1, 4, None, "zero", None),
    (2, 6, 0, "subtract", [0, 5, 0, -3]),
    (8, 9, 1, "zero", None),
])
def test_reference_equals_the_contract_read_literally(b, k, lam, reset, codebook):
    rng = np.random.default_rng(k * 7 + b)
    layer = random_layer(rng, 60, 9, b=b, k=k, lam=lam, reset=reset, codebook=codebook)
    x = (rng.random((24, 6, 60)) < rng.uniform(0.05, 0.4, size=(24, 1, 1))).astype(np.uint8)
    _check_layer(layer, x)
    assert _exact_dtype(60, layer.weights) is np.float32


def test_float64_products_are_exact_with_the_largest_weights():
    # 16-bit registers and codebook values of +-2^15 over 600 inputs: partial sums up to 2^24.2, beyond
    # float32's exact integers, so the products are float64; a sample with few inputs stays exact, one
    # with many saturates.
    rng = np.random.default_rng(1)
    book = [0, 1 << 15, 0, -(1 << 15) + 1]
    layer = Layer(weights=rng.choice(np.asarray(book), size=(600, 4)), weight_bits=2, membrane_bits=16,
                  threshold=30000, leak_shift=1, reset="subtract", codebook=tuple(book))
    assert _exact_dtype(600, layer.weights) is np.float64
    x = np.zeros((3, 3, 600), dtype=np.uint8)
    x[0, :, :2] = 1
    x[1] = rng.random((3, 600)) < 0.5
    x[2, 1, 599] = 1
    _, mem = _check_layer(layer, x)
    assert mem.min() == -(1 << 15) and mem.max() == (1 << 15) - 1


def test_exact_dtype_refuses_what_floats_cannot_hold():
    assert _exact_dtype(784, np.array([[127]])) is np.float32
    # float32 while n_in * max|W| < 2^24 (every partial sum an exact float32 integer), else float64
    assert _exact_dtype((1 << 10) - 1, np.array([[-(1 << 14)]])) is np.float32
    assert _exact_dtype(1 << 10, np.array([[-(1 << 14)]])) is np.float64
    with pytest.raises(ValueError, match="too large"):
        _exact_dtype(4, np.array([[(1 << 15) + 1]]))


@pytest.mark.parametrize("rows", [0, 1, 3, 200])
def test_integrate_in_order_is_the_contract(rows):
    rng = np.random.default_rng(rows)
    w = rng.integers(-6, 7, size=(50, 9))
    x = (rng.random((rows, 50)) < rng.uniform(0, 0.6, size=(rows, 1))).astype(np.uint8)
    if rows > 1:
        x[1] = 0                                         # a row without input spikes
    u0 = rng.integers(-8, 8, size=(rows, 9))
    got = integrate_in_order(u0, x, w, -8, 7)
    assert got.shape == (rows, 9)
    for n in range(rows):
        u = u0[n].copy()
        for j in np.flatnonzero(x[n]):
            u = np.clip(u + w[j], -8, 7)
        assert got[n].tolist() == u.tolist()


def test_network_of_mixed_paths_predicts_like_the_naive_chain():
    rng = np.random.default_rng(9)
    l0 = random_layer(rng, 70, 12, b=4, k=7, lam=3, reset="subtract")
    l1 = random_layer(rng, 12, 5, b=2, k=5, lam=None, reset="zero")
    x = (rng.random((30, 5, 70)) < 0.2).astype(np.uint8)
    res = run(Model(timesteps=5, layers=(l0, l1)), x)
    for n in range(30):
        s0, _ = naive_layer(l0, x[n])
        s1, _ = naive_layer(l1, s0)
        np.testing.assert_array_equal(res.spikes[1][n], s1)
