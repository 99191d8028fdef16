"""Random valid models: the one generator behind the tests, benchmarks and hardware sweeps.

A random model is an ordinary :class:`~qlif.golden.spec.model.Model` (validated like a file), so the
RTL, the golden model and the flow treat it as they would a trained one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qlif.golden.spec.model import Layer, Model, default_codebook

__all__ = ["random_model", "THRESHOLDS"]

#: How :func:`random_model` sets each layer's threshold theta:
#: ``"drive"``: about one standard deviation of the drive of a 25 %-active input (capped at
#: ``2^(k-1) - 2``), so that neurons spike and fire, reset and counting are exercised (resource and
#: power figures, board tests); ``"random"``: drawn uniformly from ``0 .. min(2^(k-1) - 1, 24) - 1``
#: (equivalence tests, where low thresholds make spikes frequent).
THRESHOLDS = ("drive", "random")


def random_model(sizes: Sequence[int], *, seed: int = 0, timesteps: int = 8, weight_bits: int = 4,
                 membrane_bits: int = 8, leak_shift: int | None = 3, reset: str = "subtract",
                 codebook: Sequence[int] | None = None, threshold: str = "drive",
                 alternate_resets: bool = False) -> Model:
    """A valid model of the given layer sizes, weights drawn uniformly from the codebook.

    Parameters
    ----------
    sizes : sequence of int
        The inputs, then each layer's neurons, e.g. ``[64, 128, 10]``.
    seed : int
        Seed of the NumPy generator: the same arguments give the same model on every machine.
    timesteps, weight_bits, membrane_bits, leak_shift, reset
        As in the model file (:mod:`qlif.golden.spec.model`), the same for every layer.
    codebook : sequence of int or None
        A custom codebook of ``2^b`` entries; ``None`` for the default one of ``weight_bits``.
    threshold : str
        One of :data:`THRESHOLDS`.
    alternate_resets : bool
        Layers alternate between ``reset`` and the other reset kind, starting with ``reset``.
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes must list the inputs and at least one layer, not {list(sizes)!r}")
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {', '.join(THRESHOLDS)}, not {threshold!r}")
    rng = np.random.default_rng(seed)
    book = np.asarray(codebook if codebook is not None else default_codebook(weight_bits))
    other = {"subtract": "zero", "zero": "subtract"}.get(reset, reset)
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.choice(book, size=(n_in, n_out))
        if threshold == "drive":
            drive = float(np.sqrt(0.25 * n_in) * book.std())
            theta = int(min(max(1, round(drive)), (1 << (membrane_bits - 1)) - 2))
        else:
            theta = int(rng.integers(0, max(1, min((1 << (membrane_bits - 1)) - 1, 24))))
        layers.append(Layer(weights=w.astype(np.int64), weight_bits=weight_bits, membrane_bits=membrane_bits,
                            threshold=theta, leak_shift=leak_shift,
                            reset=other if alternate_resets and l % 2 else reset,
                            codebook=None if codebook is None else tuple(codebook)))
    model = Model(timesteps=timesteps, layers=tuple(layers))
    model.validate()
    return model
