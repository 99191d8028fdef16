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

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = ["encode", "input_phases", "parse_max_rate", "format_max_rate", "max_rate_of", "PHASE_MULTIPLIER",
           "DIGITS_MAX", "MNIST_MAX", "FRAME_LEVELS", "frame_levels_of", "check_frames", "EncoderConstants",
           "encoder_constants", "encode_frames"]

#: Highest pixel value of ``load_digits`` (images hold 0..16): intensities ``pixel / 16``.
DIGITS_MAX = 16
#: Highest pixel value of MNIST (images hold 0..255): intensities ``pixel / 255``.
MNIST_MAX = 255
#: Intensity denominators that :func:`encode` recognises and codes in exact integers: the digits' 16
#: levels (coded exactly, no tolerance) and MNIST's 255.
_EXACT_LEVELS = (DIGITS_MAX, MNIST_MAX)
#: The frame levels ``L`` of a model's data set (the on-chip encoder's intensity denominator): a frame
#: holds one integer ``0 .. L`` per input, the intensity ``p / L``. Only the levels :func:`encode` codes
#: exactly, so that the on-chip rule and :func:`encode` agree by proof, not by tolerance.
FRAME_LEVELS = {"digits": DIGITS_MAX, "mnist": MNIST_MAX}
#: Bits of a frame value (one byte per input on the encoder's ``frame`` port).
FRAME_BITS = 8

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


def frame_levels_of(metadata: dict) -> int:
    """The frame levels ``L`` of a model (docs/semantics.md, "On-chip encoding"): its metadata's
    ``"frame_levels"`` (16 or 255), else those of its ``"dataset"`` (:data:`FRAME_LEVELS`; ``"digits"``
    when it names none, as ``qlif eval`` assumes). Raises ``ValueError`` naming the field otherwise."""
    if "frame_levels" in metadata:
        levels = metadata["frame_levels"]
        if isinstance(levels, bool) or levels not in _EXACT_LEVELS:
            raise ValueError(f"metadata.frame_levels must be one of {_EXACT_LEVELS}, not {levels!r}")
        return int(levels)
    dataset = metadata.get("dataset", "digits")
    if dataset not in FRAME_LEVELS:
        raise ValueError(f"metadata.dataset {dataset!r} has no frame levels (known: {', '.join(FRAME_LEVELS)}); "
                         "give metadata.frame_levels")
    return FRAME_LEVELS[dataset]


def check_frames(frames, n_in: int, levels: int) -> np.ndarray:
    """Validate frames (an integer array [S, n_in] of values ``0 .. levels``); return them as uint8.

    Raises ``ValueError`` with a one-line message naming what is wrong (dtype, shape or a value).
    """
    f = np.asarray(frames)
    if f.dtype.kind not in "iu":
        raise ValueError(f"frames: must be an integer (uint8) array, not dtype {f.dtype}")
    if f.ndim != 2 or f.shape[1] != n_in:
        raise ValueError(f"frames: must have shape [samples, {n_in}] (one value per input), not {f.shape}")
    if f.size and (f.min() < 0 or f.max() > levels):
        s, j = (int(a) for a in np.argwhere((f < 0) | (f > levels))[0])
        raise ValueError(f"frames: sample {s}, input {j}: value {int(f[s, j])} is outside 0..{levels} "
                         "(the model's frame levels)")
    return f.astype(np.uint8)


@dataclass(frozen=True)
class EncoderConstants:
    """The integers of the on-chip rule for ``L`` levels and maximum rate ``a/b``.

    An input of value ``p`` adds ``p * multiplier`` (``a``) to its accumulator per step and spikes each
    time the sum reaches ``modulus`` (``D = L * b``); ``start`` holds the accumulators at step 0,
    ``c_j * L`` (int64 [n_in], each ``< D``).
    """

    levels: int
    multiplier: int
    modulus: int
    start: np.ndarray

    @property
    def acc_bits(self) -> int:
        """Bits of a stored accumulator (``0 .. D-1``)."""
        return max(1, (self.modulus - 1).bit_length())

    @property
    def increment_bits(self) -> int:
        """Bits of an increment ``p * a`` (``0 .. L * a``)."""
        return (self.levels * self.multiplier).bit_length()


def encoder_constants(n_in: int, levels: int, max_rate=1) -> EncoderConstants:
    """The constants of the on-chip rule (:class:`EncoderConstants`) for ``n_in`` inputs."""
    if levels not in _EXACT_LEVELS:
        raise ValueError(f"levels must be one of {_EXACT_LEVELS}, not {levels!r}")
    rate = parse_max_rate(max_rate)
    return EncoderConstants(levels=levels, multiplier=rate.numerator, modulus=levels * rate.denominator,
                            start=input_phases(n_in, rate.denominator) * levels)


def encode_frames(frames, timesteps: int, *, levels: int, max_rate=1) -> np.ndarray:
    """The on-chip encoder's rule: frames (integers ``0 .. levels``, [S, n_in]) into spike trains.

    Per input ``j`` an accumulator starts at ``acc = c_j * L`` (:func:`input_phases` with the rate's
    denominator ``b``, times ``L = levels``); at every step ``acc += p_j * a``, and input ``j`` spikes
    iff ``acc >= D = L * b``, which then subtracts ``D``. No division, and at most one spike per step
    (``p_j * a <= L * a <= D``). The same spikes as ``encode(frames / levels, timesteps,
    max_rate=a/b)``: by induction ``acc`` at step ``t`` is ``(t p a + c L) mod D`` and the spikes so far
    ``floor((t p a + c L) / D)``, which is :func:`encode`'s exact integer count (docs/semantics.md;
    tests/test_encoder_golden.py checks every 8-bit value).

    Returns uint8 [S, T, n_in] of 0/1, the stimulus format of :func:`qlif.golden.spec.reference.run`.
    """
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    f = np.asarray(frames)
    if f.ndim == 1:
        f = f[None, :]
    f = check_frames(f, f.shape[-1] if f.ndim == 2 else 0, levels)
    k = encoder_constants(f.shape[1], levels, max_rate)
    inc = f.astype(np.int64) * k.multiplier
    acc = np.broadcast_to(k.start, f.shape).copy()
    out = np.zeros((f.shape[0], timesteps, f.shape[1]), np.uint8)
    for t in range(timesteps):
        acc += inc
        spike = acc >= k.modulus
        acc -= k.modulus * spike
        out[:, t] = spike
    return out
