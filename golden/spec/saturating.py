"""Contract step 3 (saturating integration in ascending input order), compiled, for training.

Quantization-aware training (:mod:`qlif.golden.training.qat`) integrates every step of every batch the way the
hardware does: ``u = sat(u + W[j])`` after every input spike ``j`` in ascending order. With 4-bit
registers and 784 inputs nearly every (sample, neuron) saturates, so no matrix product can stand in for
it, and the work is one addition per input spike and neuron: about 4.7 million per step of a batch of
100 MNIST digits. The reference's numpy loop (:func:`qlif.golden.spec.reference.integrate_in_order`) spends
about 6 ns on each; the loop below, compiled by numba for the machine's own vector instructions, about
0.2 ns (0.8 ms per step, measured on the shared 2-core machine; a C loop built with ``cc -O3`` took
0.4 ns). That takes binary MNIST training from over two hours to a few minutes per epoch.

numba compiles the loop on first use (0.4 s) and caches the machine code beside this file
(``__pycache__``, or numba's user cache where that is not writable; ``NUMBA_CACHE_DIR`` moves it), so
later processes load it in 0.2 s. The reference's numpy loop stays the definition:
``tests/test_quant_saturating.py`` checks this loop against it on random cases, the extremes included.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["saturating_sum"]


@numba.njit(cache=True)
def _integrate(u, x, w, lo, hi):
    """``u[r] = sat(u[r] + w[j])`` for every ``j`` with ``x[r, j]``, ascending, row by row, in place."""
    rows, n = u.shape
    for r in range(rows):
        for j in range(x.shape[1]):
            if x[r, j]:
                for i in range(n):      # vectorised by LLVM
                    v = u[r, i] + w[j, i]
                    u[r, i] = lo if v < lo else (hi if v > hi else v)


def saturating_sum(u: np.ndarray, x: np.ndarray, w: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``u + x @ w`` saturated to ``[lo, hi]`` after every addition in ascending input order, per row.

    Exactly :func:`qlif.golden.spec.reference.integrate_in_order` (the contract's step 3), faster.

    Parameters
    ----------
    u : numpy.ndarray
        Integer-valued [R, N] (any numeric dtype: QAT passes float32), the membranes before
        integration, each in ``[lo, hi]``; not modified.
    x : numpy.ndarray
        0/1 [R, n_in], the input spikes of each row (any layout: QAT passes a strided slice).
    w : numpy.ndarray
        Integer [n_in, N] with ``|w| <= 2^15``.
    lo, hi : int
        The register's range, within ``-2^15 .. 2^15 - 1``.

    Returns
    -------
    numpy.ndarray
        int64 [R, N].
    """
    x = np.asarray(x)
    if x.ndim != 2 or np.ndim(w) != 2 or np.shape(u) != (x.shape[0], np.shape(w)[1]) or x.shape[1] != len(w):
        # The compiled loop does not check bounds: check the shapes here.
        raise ValueError(f"shapes do not match: u {np.shape(u)}, x {x.shape}, w {np.shape(w)}")
    # One dtype and layout for each argument, so numba compiles (and caches) one version of the loop.
    # int32: |u| + |w| <= 2^16 cannot overflow before the clamp, and twice the lanes of int64 per vector.
    out = np.array(u, dtype=np.int32, order="C")
    _integrate(out, np.ascontiguousarray(x != 0), np.ascontiguousarray(w, dtype=np.int32), np.int32(lo),
               np.int32(hi))
    return out.astype(np.int64)
