"""Accuracy of the float network and of the integer model on the same rate-coded test stimuli.

The integer accuracy (:func:`qlif.golden.spec.reference.run`) is the figure qlif reports: it is what the RTL
computes bit for bit. The float accuracy and the per-layer spike agreement show what quantization cost.
Both predictions use :func:`qlif.golden.spec.reference.predict` (argmax of spike counts, ties to the lowest
index), so they differ only through the spikes. The integer model is the reference itself, run on
chunks of samples with a progress bar (:func:`integer_spikes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from qlif.golden.data.datasets import load_split
from qlif.golden.data.split import Split
from qlif.golden.spec.coding import encode, max_rate_of
from qlif.golden.spec.model import Model
from qlif.golden.spec.reference import predict, run
from qlif.golden.training.train import SpikingMLP

__all__ = ["Evaluation", "float_spikes", "float_accuracy", "integer_spikes", "integer_accuracy", "spike_agreement",
           "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    """Result of :func:`evaluate`; accuracies are fractions in [0, 1], ``None`` where not measured.

    Members
    -------
    n_test : int
        Number of test samples.
    float_accuracy, integer_accuracy : float or None
        Accuracy of the torch network and of the integer model.
    agreement : list of float or None
        Per layer, the fraction of (sample, step, neuron) spikes on which the two agree.
    prediction_agreement : float or None
        Fraction of samples where both predict the same class.
    """

    n_test: int
    float_accuracy: float | None
    integer_accuracy: float | None
    agreement: list[float] | None = None
    prediction_agreement: float | None = None

    def summary(self) -> str:
        """One line for people, e.g. ``float 97.11%  integer 96.89%  (450 test samples)``."""
        parts = []
        if self.float_accuracy is not None:
            parts.append(f"float {100 * self.float_accuracy:.2f}%")
        if self.integer_accuracy is not None:
            parts.append(f"integer {100 * self.integer_accuracy:.2f}%")
        if self.agreement is not None:
            parts.append("spike agreement " + "/".join(f"{100 * a:.2f}%" for a in self.agreement))
        return "  ".join(parts) + f"  ({self.n_test} test samples)"


def float_spikes(net: SpikingMLP, x: np.ndarray, *, batch: int = 1000) -> list[np.ndarray]:
    """Every layer's spikes (uint8 [S, T, N_l]) of the float network on stimuli ``x`` (uint8 [S, T, n_in]).

    ``net`` may also be a quantization-aware network (:class:`qlif.golden.training.qat.QuantSpikingMLP`).
    """
    x = np.asarray(x)
    parts = []
    with torch.no_grad():
        for start in range(0, max(len(x), 1), batch):
            out = net(torch.from_numpy(x[start:start + batch].astype(np.float32)))
            parts.append([o.numpy().astype(np.uint8) for o in out])
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def float_accuracy(net: SpikingMLP, x: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the float network on stimuli ``x`` (uint8 [S, T, n_in]) with ``labels`` [S]."""
    return float((predict(float_spikes(net, x)[-1]) == labels).mean())


def integer_spikes(model: Model, x: np.ndarray, *, progress: bool = False, chunk: int = 500,
                   desc: str = "integer model") -> list[np.ndarray]:
    """Every layer's spikes (uint8 [S, T, N_l]) of the integer reference on stimuli ``x``.

    Samples are independent, so they run in chunks of ``chunk`` (memory stays small; ``progress`` shows a
    bar over the chunks): the same spikes as one :func:`qlif.golden.spec.reference.run` of all of them.
    """
    parts = [run(model, x[start:start + chunk]).spikes
             for start in tqdm(range(0, len(x), chunk), desc=desc, unit="chunk", disable=not progress, leave=False)]
    if not parts:
        return run(model, x).spikes
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def integer_accuracy(model: Model, x: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the integer model (:func:`qlif.golden.spec.reference.run`) on stimuli ``x``."""
    return float((predict(integer_spikes(model, x)[-1]) == labels).mean())


def spike_agreement(net: SpikingMLP, model: Model, x: np.ndarray) -> list[float]:
    """Per layer, the fraction of spikes on which float network and integer model agree."""
    return _agreement(float_spikes(net, x), integer_spikes(model, x))


def _agreement(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    return [float((sa == sb).mean()) for sa, sb in zip(a, b, strict=True)]


def evaluate(*, net: SpikingMLP | None = None, model: Model | None = None,
             seed: int | None = None, test_fraction: float | None = None, split: Split | None = None,
             data_dir=None, progress: bool = False) -> Evaluation:
    """Measure the float network and/or the integer model on the test split.

    Parameters
    ----------
    net : SpikingMLP, optional
        The float network (e.g. :func:`qlif.golden.training.checkpoint.load_checkpoint`).
    model : Model, optional
        The integer model (e.g. :func:`qlif.golden.spec.model.load_model`).
    seed, test_fraction : optional
        The digits split; by default taken from the network's config, else the model's metadata
        (written by the quantizers), else 0 and 0.25. The rate coding (T, maximum rate) is likewise the
        network's, else the model's.
    split : Split, optional
        The data (its test part is used); by default loaded from the data set the network's config or
        the model's metadata names (``"digits"`` if neither does).
    data_dir : path, optional
        The MNIST folder when the data set is MNIST and no split is given.

    Returns
    -------
    Evaluation
    """
    if net is None and model is None:
        raise ValueError("evaluate needs a network, a model or both")
    if net is not None and model is not None and net.config.timesteps != model.timesteps:
        raise ValueError(f"network has T={net.config.timesteps} but model has T={model.timesteps}")
    meta = model.metadata if model is not None else {}
    if net is not None and model is not None and net.config.max_rate != max_rate_of(meta):
        raise ValueError(f"network codes its inputs with max rate {net.config.max_rate} but the model with "
                         f"{max_rate_of(meta)}")
    timesteps = net.config.timesteps if net is not None else model.timesteps
    max_rate = net.config.max_rate if net is not None else max_rate_of(meta)
    if split is None:
        if seed is None:
            seed = net.config.seed if net is not None else int(meta.get("seed", 0))
        if test_fraction is None:
            test_fraction = net.config.test_fraction if net is not None else float(meta.get("test_fraction", 0.25))
        dataset = net.config.dataset if net is not None else str(meta.get("dataset", "digits"))
        split = load_split(dataset, data_dir=data_dir, seed=seed, test_fraction=test_fraction)
    x, y = encode(split.x_test, timesteps, max_rate=max_rate), split.y_test
    f_spikes = float_spikes(net, x) if net is not None else None
    i_spikes = integer_spikes(model, x, progress=progress) if model is not None else None
    i_pred = predict(i_spikes[-1]) if i_spikes is not None else None
    f_pred = predict(f_spikes[-1]) if f_spikes is not None else None
    both = f_spikes is not None and i_spikes is not None
    return Evaluation(
        n_test=len(y),
        float_accuracy=None if f_pred is None else float((f_pred == y).mean()),
        integer_accuracy=None if i_pred is None else float((i_pred == y).mean()),
        agreement=_agreement(f_spikes, i_spikes) if both else None,
        prediction_agreement=float((f_pred == i_pred).mean()) if both else None,
    )
