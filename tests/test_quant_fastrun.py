"""The fast evaluator computes exactly what the integer reference computes, saturating or not."""

import numpy as np
import pytest

from qlif.golden.fastrun import predict_fast, run_fast
from qlif.golden.model import Layer, Model, default_codebook
from qlif.golden.reference import run


def _model(rng, widths, *, b, k, lam, reset, codebook=None, T=6):
    layers = []
    for n_in, n_out in zip(widths, widths[1:], strict=False):
        book = np.asarray(codebook if codebook is not None else default_codebook(b))
        top = (1 << (k - 1)) - 1
        layers.append(Layer(weights=rng.choice(book, size=(n_in, n_out)), weight_bits=b, membrane_bits=k,
                            threshold=int(rng.integers(0, min(top, 12))), leak_shift=lam, reset=reset,
                            codebook=None if codebook is None else tuple(codebook)))
    return Model(timesteps=T, layers=tuple(layers))


@pytest.mark.parametrize("b, k, lam, reset, codebook", [
    (4, 16, 3, "subtract", None),     # nothing saturates: the product path
    (4, 5, 2, "subtract", None),      # almost everything saturates: the sequential path
    (1, 4, None, "zero", None),
    (2, 6, 0, "subtract", [0, 5, 0, -3]),
    (8, 9, 1, "zero", None),
])
def test_run_fast_equals_the_reference(b, k, lam, reset, codebook):
    rng = np.random.default_rng(k * 7 + b)
    model = _model(rng, [40, 30, 10], b=b, k=k, lam=lam, reset=reset, codebook=codebook)
    x = (rng.random((130, 6, 40)) < 0.3).astype(np.uint8)
    ref = run(model, x)
    spikes, membranes, pred = run_fast(model, x, keep_membranes=True, chunk=50)   # several chunks
    for a, c in zip(ref.spikes, spikes, strict=True):
        assert np.array_equal(a, c)
    for a, c in zip(ref.membranes, membranes, strict=True):
        assert np.array_equal(a, c)
    assert np.array_equal(ref.prediction, pred) and np.array_equal(pred, predict_fast(model, x))
    assert 0 < ref.spikes[0].mean() < 1


@pytest.mark.parametrize("rows", [1, 3, 200])      # few rows: row by row; many: input by input
def test_saturating_rows_both_ways_are_the_contract(rows):
    from qlif.golden.fastrun import _saturating_rows

    rng = np.random.default_rng(rows)
    w = rng.integers(-6, 7, size=(50, 9))
    x = (rng.random((rows, 50)) < 0.4).astype(np.uint8)
    u0 = rng.integers(-8, 8, size=(rows, 9))
    got = _saturating_rows(u0.copy(), x, w, -8, 7)
    for n in range(rows):
        u = u0[n].copy()
        for j in np.flatnonzero(x[n]):
            u = np.clip(u + w[j], -8, 7)
        assert got[n].tolist() == u.tolist()
