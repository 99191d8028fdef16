"""The embedded data set and the deterministic rate coding that turns images into spike stimuli.

The default data set is scikit-learn's ``load_digits`` (1797 handwritten digits, 8x8 pixels with
intensities 0..16, shipped inside scikit-learn, so nothing is downloaded). The train/test split is a
fixed, stratified split seeded by ``seed``; the same seed always gives the same split.

Rate coding (``docs/training.md``) is deterministic, so the golden model, the RTL testbenches and the
board demo all see the same input spikes without sharing a random number generator: a pixel of
intensity ``p`` in [0, 1] spikes at step ``t`` (0-based) iff ``floor((t+1) p r + f_j) > floor(t p r + f_j)``.
``r`` is the *maximum rate*, a fraction ``a/b`` in (0, 1], and ``f_j`` a fixed phase of input ``j`` in
``{0, 1/b, .., (b-1)/b}``. With the default ``r = 1`` the phase is 0: a pixel fires ``floor(T p)`` times,
evenly spread, the first time at step ``ceil(1/p) - 1``. ``r = 1/n`` spreads about the same spikes over
``n`` times as many steps, so that each step sees ``n`` times fewer input events; the phases keep the
bright pixels (most of an MNIST digit) from all firing in the same step (``docs/training.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["DIGITS_MAX", "DATASETS", "Split", "load_digits_split", "load_split", "encode", "input_phases",
           "parse_max_rate", "format_max_rate", "max_rate_of"]

#: Highest pixel value of ``load_digits`` (images hold 0..16).
DIGITS_MAX = 16

#: The data sets qlif trains and evaluates on: the embedded 8x8 digits, and MNIST from IDX files.
DATASETS = ("digits", "mnist")

#: Intensity denominators that :func:`encode` recognises and codes in exact integers: the digits' 16
#: levels and MNIST's 255.
_EXACT_LEVELS = (16, 255)

#: Largest denominator of a maximum rate (``parse_max_rate``).
_MAX_RATE_DENOMINATOR = 1 << 16

#: Knuth's multiplicative hash constant, ``floor(2^32 / golden ratio)``: input ``j``'s phase is
#: ``((j * PHASE_MULTIPLIER) mod 2^32) * b // 2^32`` units of ``1/b``, evenly spread over the ``b`` values
#: for any run of consecutive inputs (a Weyl sequence), in integers.
PHASE_MULTIPLIER = 2654435769


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


def load_split(dataset: str = "digits", *, data_dir=None, seed: int = 0, test_fraction: float = 0.25,
               train_count: int | None = None, test_count: int | None = None) -> Split:
    """Load a data set by name: ``"digits"`` (embedded) or ``"mnist"`` (IDX files in ``data_dir``).

    ``seed`` and ``test_fraction`` choose the digits split; MNIST has its standard split (60000 train,
    10000 test). ``train_count``/``test_count`` keep only the first samples of each part.
    Raises ``ValueError`` (:class:`qlif.golden.mnist.DataError` for data files) naming what is wrong.
    """
    if dataset == "digits":
        split = load_digits_split(seed, test_fraction)
        if train_count is not None or test_count is not None:
            split = Split(split.x_train[:train_count], split.y_train[:train_count],
                          split.x_test[:test_count], split.y_test[:test_count])
        return split
    if dataset == "mnist":
        from .mnist import DataError, load_mnist_split

        if data_dir is None:
            raise DataError("the mnist data set needs a data folder (--data-dir) with its IDX files")
        return load_mnist_split(data_dir, train_count=train_count, test_count=test_count)
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")


def parse_max_rate(value) -> Fraction:
    """The maximum rate ``r`` of the rate coding as an exact fraction in (0, 1].

    Accepts a :class:`fractions.Fraction`, an int (1), or a string ``"1"``, ``"1/8"``, ``"3/16"``; a float
    only if it is an exact binary fraction such as 0.125 (``"1/3"`` must be given as a string, 0.333 is
    refused rather than rounded). The denominator is at most 2^16. Raises ``ValueError`` naming the value otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"max rate must be a fraction in (0, 1] such as 1 or 1/8, not {value!r}")
    try:
        if isinstance(value, (int, float, Fraction, str)):
            r = Fraction(value.strip()) if isinstance(value, str) else Fraction(value)
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ValueError(f"max rate must be a fraction in (0, 1] such as 1 or 1/8, not {value!r}") from None
    if r.denominator > _MAX_RATE_DENOMINATOR:
        # keeps the integer coding inside int64, and refuses a float that only approximates a fraction
        raise ValueError(f"max rate {value!r}: denominator above {_MAX_RATE_DENOMINATOR} "
                         "(give an exact fraction such as 1/8)")
    if not 0 < r <= 1:
        raise ValueError(f"max rate must lie in (0, 1], not {value!r}")
    return r


def format_max_rate(value) -> str:
    """The canonical text of a maximum rate: ``"1"``, ``"1/8"`` (what configs and model metadata store)."""
    return str(parse_max_rate(value))


def input_phases(n_in: int, denominator: int) -> np.ndarray:
    """The phase numerators ``c_j`` (int64 [n_in], each in ``0 .. denominator-1``) of the rate coding.

    ``c_j = ((j * PHASE_MULTIPLIER) mod 2^32) * denominator // 2^32``: a multiplicative hash of the input
    index, so that neighbouring pixels (a stroke) get different phases and the ``denominator`` values are
    used equally often (on 784 inputs and ``denominator = 8``: 97..99 inputs each). All 0 when
    ``denominator = 1``.
    """
    j = np.arange(n_in, dtype=np.int64)
    return ((j * PHASE_MULTIPLIER) % (1 << 32)) * denominator >> 32


def max_rate_of(metadata: dict) -> str:
    """The maximum rate a model's stimuli are coded with: its metadata's ``"max_rate"``, else ``"1"``."""
    return format_max_rate(metadata.get("max_rate", 1))


def encode(images: np.ndarray, timesteps: int, *, max_rate=1) -> np.ndarray:
    """Deterministic rate coding of intensities into spike trains.

    Input ``j`` of sample ``s`` spikes at step ``t`` iff ``floor((t+1) p r + f_j) > floor(t p r + f_j)``
    with ``p = images[s, j]``, ``r = a/b`` the maximum rate and ``f_j = c_j / b`` the input's phase,
    ``c_j = ((j * PHASE_MULTIPLIER) mod 2^32) * b // 2^32`` (:func:`input_phases`; 0 when ``b = 1``):
    ``floor(T p r + f_j)`` spikes spread evenly over the ``T`` steps, no randomness. With ``r = 1`` this
    is ``floor((t+1) p) > floor(t p)``, ``floor(T p)`` spikes. Computed in exact integer arithmetic when
    every ``p`` is a multiple of 1/16 (the digits data) or of 1/255 (MNIST, ``pixel / 255``:
    ``floor((t * pixel * a + c_j * 255) / (255 * b))`` by integer division), so float rounding cannot
    move a spike.

    Parameters
    ----------
    images : numpy.ndarray
        [S, n_in] (or [n_in] for one sample) intensities in [0, 1].
    timesteps : int
        Number of steps T >= 1.
    max_rate : Fraction, int or str
        ``r`` in (0, 1], the spike probability per step of a full-intensity pixel (default 1; see
        :func:`parse_max_rate`). ``r = 1/n`` with ``n`` times as many steps gives about the same spikes per
        sample, ``n`` times fewer per step.

    Returns
    -------
    numpy.ndarray
        uint8 [S, T, n_in] of 0/1, the stimulus format of :func:`qlif.golden.reference.run`.
    """
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    rate = parse_max_rate(max_rate)
    p = np.asarray(images, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2:
        raise ValueError(f"images must be a 2-D array [samples, n_in], not shape {p.shape}")
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("images must hold intensities in [0, 1]")
    t = np.arange(timesteps + 1, dtype=np.float64)[None, :, None]
    phase = input_phases(p.shape[1], rate.denominator)[None, None, :]
    # Work in integer units of 1/16 (digits) or 1/255 (MNIST) when the intensities are such multiples,
    # else in floats with a tiny epsilon that keeps e.g. 3 * (1/3) from flooring to 0. MNIST's
    # float32 pixel/255 is within 2e-5 of its level, far inside the 1e-4 tolerance and far from the
    # next level (1/255 away).
    for levels in _EXACT_LEVELS:
        q = p * levels
        nearest = np.round(q)
        if np.all(np.abs(q - nearest) <= (0 if levels == DIGITS_MAX else 1e-4)):
            # t * level * a + c * levels <= 2^16 * 255 * 2^16 + 2^16 * 255: far inside int64.
            counts = ((t.astype(np.int64) * (nearest.astype(np.int64) * rate.numerator)[:, None, :]
                       + phase * levels) // (levels * rate.denominator))
            break
    else:
        counts = np.floor(t * (p * float(rate))[:, None, :] + phase / rate.denominator + 1e-9)
    return (np.diff(counts, axis=1) > 0).astype(np.uint8)
