"""Rate coding: the deterministic map from pixel intensities to input spike trains.

Part of the contract (docs/semantics.md, docs/training.md): the golden model, the RTL testbenches, the
board demo and an on-chip encoder all see the same input spikes without sharing a random number
generator. A pixel of intensity ``p`` in [0, 1] spikes at step ``t`` (0-based) iff
``floor((t+1) p r + f_j) > floor(t p r + f_j)``. ``r`` is the *maximum rate*, a fraction ``a/b`` in
(0, 1], and ``f_j`` a fixed phase of input ``j`` in ``{0, 1/b, .., (b-1)/b}``. With the default ``r = 1``
the phase is 0: a pixel fires ``floor(T p)`` times, evenly spread, the first time at step
``ceil(1/p) - 1``. ``r = 1/n`` spreads about the same spikes over ``n`` times as many steps, so that each
step sees ``n`` times fewer input events; the phases keep the bright pixels (most of an MNIST digit) from
all firing in the same step.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["encode", "input_phases", "parse_max_rate", "format_max_rate", "max_rate_of", "PHASE_MULTIPLIER",
           "DIGITS_MAX", "MNIST_MAX"]

#: Highest pixel value of ``load_digits`` (images hold 0..16): intensities ``pixel / 16``.
DIGITS_MAX = 16
#: Highest pixel value of MNIST (images hold 0..255): intensities ``pixel / 255``.
MNIST_MAX = 255
#: Intensity denominators that :func:`encode` recognises and codes in exact integers: the digits' 16
#: levels (coded exactly, no tolerance) and MNIST's 255.
_EXACT_LEVELS = (DIGITS_MAX, MNIST_MAX)

#: Largest denominator of a maximum rate (``parse_max_rate``).
_MAX_RATE_DENOMINATOR = 1 << 16

#: Knuth's multiplicative hash constant, ``floor(2^32 / golden ratio)``: input ``j``'s phase is
#: ``((j * PHASE_MULTIPLIER) mod 2^32) * b // 2^32`` units of ``1/b``, evenly spread over the ``b`` values
#: for any run of consecutive inputs (a Weyl sequence), in integers.
PHASE_MULTIPLIER = 2654435769



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
        uint8 [S, T, n_in] of 0/1, the stimulus format of :func:`qlif.golden.spec.reference.run`.
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
