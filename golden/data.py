"""The embedded data set and the deterministic rate coding that turns images into spike stimuli.

The default data set is scikit-learn's ``load_digits`` (1797 handwritten digits, 8x8 pixels with
intensities 0..16, shipped inside scikit-learn, so nothing is downloaded). The train/test split is a
fixed, stratified split seeded by ``seed``; the same seed always gives the same split.

Rate coding (``docs/training.md``) is deterministic, so the golden model, the RTL testbenches and the
board demo all see the same input spikes without sharing a random number generator: a pixel of
intensity ``p`` in [0, 1] spikes at step ``t`` (0-based) iff ``floor((t+1) p) > floor(t p)``. It fires
``floor(T p)`` times in ``T`` steps, evenly spread, the first time at step ``ceil(1/p) - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DIGITS_MAX", "Split", "load_digits_split", "encode"]

#: Highest pixel value of ``load_digits`` (images hold 0..16).
DIGITS_MAX = 16


@dataclass(frozen=True)
class Split:
    """A train/test split of images scaled to [0, 1].

    Members
    -------
    x_train, x_test : numpy.ndarray
        float32 [S, n_in] pixel intensities in [0, 1] (row-major flattened images).
    y_train, y_test : numpy.ndarray
        int64 [S] class labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digits_split(seed: int = 0, test_fraction: float = 0.25) -> Split:
    """Load scikit-learn's 8x8 digits and split them into train and test sets.

    Parameters
    ----------
    seed : int
        Seed of the split (``train_test_split(random_state=seed)``); the split is a pure function of
        ``seed`` and ``test_fraction``.
    test_fraction : float
        Fraction of the 1797 samples held out for test, stratified by class. The default 0.25 gives
        450 test and 1347 train samples.

    Returns
    -------
    Split
        64 inputs per sample, intensities ``pixel / 16`` in [0, 1].
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, not {test_fraction!r}")
    # Imported here: scikit-learn is slow to import and only this function needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / DIGITS_MAX).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


def encode(images: np.ndarray, timesteps: int) -> np.ndarray:
    """Deterministic rate coding of intensities into spike trains.

    Input ``j`` of sample ``s`` spikes at step ``t`` iff ``floor((t+1) p) > floor(t p)`` with
    ``p = images[s, j]``: ``floor(T p)`` spikes spread evenly over the ``T`` steps, no randomness.
    Computed in exact integer arithmetic when ``p`` is a multiple of 1/16 (the digits data), so float
    rounding cannot move a spike.

    Parameters
    ----------
    images : numpy.ndarray
        [S, n_in] (or [n_in] for one sample) intensities in [0, 1].
    timesteps : int
        Number of steps T >= 1.

    Returns
    -------
    numpy.ndarray
        uint8 [S, T, n_in] of 0/1, the stimulus format of :func:`qlif.golden.reference.run`.
    """
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    p = np.asarray(images, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2:
        raise ValueError(f"images must be a 2-D array [samples, n_in], not shape {p.shape}")
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("images must hold intensities in [0, 1]")
    t = np.arange(timesteps + 1, dtype=np.float64)[None, :, None]
    # Work in units of 1/DIGITS_MAX when that is exact (the digits data), else in floats; a tiny epsilon
    # keeps e.g. 3 * (1/3) from flooring to 0.
    q = p * DIGITS_MAX
    if np.array_equal(q, np.round(q)):
        counts = (t * np.round(q).astype(np.int64)[:, None, :]) // DIGITS_MAX
    else:
        counts = np.floor(t * p[:, None, :] + 1e-9)
    return (np.diff(counts, axis=1) > 0).astype(np.uint8)
