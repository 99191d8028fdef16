"""The compiled saturating sum used by quantization-aware training is the contract's step 3."""

import numpy as np
import pytest

from qlif.golden.spec import saturating
from qlif.golden.spec.reference import integrate_in_order


def _cases(seed, n):
    rng = np.random.default_rng(seed)
    for trial in range(n):
        rows, n_in, n_out = int(rng.integers(0, 30)), int(rng.integers(1, 80)), int(rng.integers(1, 40))
        k = int(rng.integers(2, 17))
        lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
        top = 1 << 15 if trial % 3 == 0 else 8          # the format's extreme weights, or 4-bit ones
        w = rng.integers(-top, top + 1, size=(n_in, n_out))
        x = (rng.random((rows, n_in)) < rng.random()).astype(np.uint8)
        u = rng.integers(lo, hi + 1, size=(rows, n_out))
        yield u, x, w, lo, hi


def _naive(u, x, w, lo, hi):
    out = u.copy()
    for r in range(len(u)):
        for j in np.flatnonzero(x[r]):
            out[r] = np.clip(out[r] + w[j], lo, hi)
    return out


def test_compiled_sum_equals_the_contract_on_random_cases():
    for u, x, w, lo, hi in _cases(0, 60):
        got = saturating.saturating_sum(u, x, w, lo, hi)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, _naive(u, x, w, lo, hi))
        np.testing.assert_array_equal(got, integrate_in_order(u, x, w, lo, hi))
    assert saturating._integrate.signatures, "the numba loop was not compiled (NUMBA_DISABLE_JIT?)"


@pytest.mark.parametrize("k", [2, 4, 16])
def test_extremes_saturate_as_the_contract_says(k):
    # Registers at their bounds, weights of +-2^15 (the largest |u| + |w| the int32 loop sees: 2^16),
    # dense inputs: every addition saturates, in one direction or the other.
    lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
    rng = np.random.default_rng(k)
    w = rng.choice([-(1 << 15), 1 << 15, -1, 1, 0], size=(40, 12))
    x = (rng.random((9, 40)) < 0.8).astype(np.uint8)
    x[0], x[1] = 1, 0                                   # a row with every input, a row with none
    for u0 in (lo, hi, 0):
        u = np.full((9, 12), u0, dtype=np.int64)
        got = saturating.saturating_sum(u, x, w, lo, hi)
        np.testing.assert_array_equal(got, integrate_in_order(u, x, w, lo, hi))
        assert got.min() >= lo and got.max() <= hi
        np.testing.assert_array_equal(got[1], u[1])


def test_inputs_are_taken_in_ascending_order():
    # +7, +7, -8 at k = 4: 7, 7, -1 (the order-free sum would be 6, the reverse order 6 too)
    got = saturating.saturating_sum(np.zeros((1, 1), np.int64), np.ones((1, 3), np.uint8),
                                    np.array([[7], [7], [-8]]), -8, 7)
    assert got.tolist() == [[-1]]


def test_float_and_strided_arguments(monkeypatch):
    # QAT passes float32 membranes and a strided slice of the [B, T, n_in] spikes.
    rng = np.random.default_rng(3)
    x3 = (rng.random((5, 4, 30)) < 0.5).astype(np.uint8)
    w = rng.integers(-3, 4, size=(30, 6))
    u = rng.integers(-8, 8, size=(5, 6)).astype(np.float32)
    got = saturating.saturating_sum(u, x3[:, 2], w.T.copy().T, -8, 7)
    np.testing.assert_array_equal(got, _naive(u.astype(np.int64), x3[:, 2], w, -8, 7))
    assert u.dtype == np.float32 and u.min() >= -8                     # not modified


def test_mismatched_shapes_are_refused_before_the_compiled_loop():
    with pytest.raises(ValueError, match="shapes do not match"):
        saturating.saturating_sum(np.zeros((2, 3)), np.zeros((2, 5), np.uint8), np.zeros((4, 3)), -8, 7)
