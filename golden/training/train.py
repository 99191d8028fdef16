"""Training of the float spiking network that :mod:`qlif.golden.training.quantize` turns into an integer model.

The network is a chain of bias-free ``nn.Linear`` layers, each followed by an ``snntorch.Leaky`` layer
with ``reset_mechanism="subtract"`` and ``reset_delay=True``. With ``beta = 1 - 2^-leak_shift`` that is,
step for step, the integer LIF contract of ``docs/semantics.md`` in real numbers::

    v[t] = beta * v[t-1] - theta * s[t-1] + W^T x[t];   s[t] = v[t] > theta

(the integer model leaks by ``v - (v >> leak_shift)`` and saturates; the quantizer scales weights and
threshold together so the two track each other). The loss is the cross entropy of the output spike
counts, the quantity the hardware's argmax reads. Everything is seeded and deterministic.

Each layer's synaptic currents ``W^T x[t]`` do not depend on its own state, so they are computed for all
``T`` steps in one matrix product; only the neuron update loops over time. The training loop
(:func:`fit`) is shared with quantization-aware training (:mod:`qlif.golden.training.qat`): it rate-codes each
batch on the fly (the coded MNIST training set would take 750 MB), shows a progress bar over batches,
and, given a ``resume`` path, saves its complete state after every epoch and continues from there, with
results identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn
from tqdm import tqdm

from qlif.golden.data.datasets import DATASETS, load_split
from qlif.golden.data.split import Split
from qlif.golden.spec.coding import encode, format_max_rate
from qlif.golden.spec.files import write_atomic
from qlif.golden.spec.model import leak_beta

__all__ = ["TrainConfig", "SpikingMLP", "train", "fit", "atomic_save", "set_determinism", "MNIST_CONFIG"]

#: Threads torch uses. The matrices are small (batch 64 x 128), so a second thread gains little, and on a
#: shared, busy 2-core machine two threads were measured 25x slower than one (they spin waiting for each
#: other). One thread also keeps the float sums, and so the training run, the same on every machine.
TORCH_THREADS = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored in the checkpoint.

    Parameters
    ----------
    hidden : tuple of int
        Hidden layer widths; ``(128,)`` (or ``128``) gives the 64-128-10 network.
    timesteps : int
        Steps T per sample, both for the rate coding and the network.
    leak_shift : int or None
        ``lam`` of the integer leak ``v - (v >> lam)``; the float network uses ``beta = 1 - 2^-lam``.
        ``None``: no leak (``beta = 1``, an integrate-and-fire neuron, e.g. imported from a NIR ``IF``).
    threshold : float or tuple of float
        Firing threshold, one for every layer or one per layer (float units; the weights learn their
        scale relative to it, so 1.0 loses nothing).
    epochs, batch_size, lr : int, int, float
        Adam optimisation settings.
    slope : float
        Slope of the fast-sigmoid surrogate gradient.
    seed : int
        Seeds torch (weights, batch order) and the data split.
    test_fraction : float
        Held-out fraction of the digits data (see :func:`qlif.golden.data.datasets.load_digits_split`).
    dataset : str
        ``"digits"`` (embedded) or ``"mnist"`` (IDX files; the folder is given when loading, not stored).
    max_rate : str
        Maximum rate ``r`` of the rate coding (:func:`qlif.golden.spec.coding.encode`), an exact fraction in
        (0, 1] stored as text: ``"1"`` (default) or e.g. ``"1/8"`` (a Fraction or 1 is accepted and
        stored as its text). Exported models carry it in their metadata, so every stimulus of the model
        (evaluation, RTL checks) uses the same coding.
    holdout : int
        Training samples held out of training for the calibration of post-training quantization: the last
        ``holdout`` of the data set's training split (:meth:`qlif.golden.data.split.Split.holdout_indices`;
        with ``dataset``, ``seed`` and ``test_fraction`` the checkpoint names exactly those samples).
        0 (default): the network trains on the whole training split.
    """

    hidden: tuple[int, ...] = (128,)
    timesteps: int = 16
    leak_shift: int | None = 3
    threshold: float | tuple[float, ...] = 1.0
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    slope: float = 10.0
    seed: int = 0
    test_fraction: float = 0.25
    dataset: str = "digits"
    max_rate: str = "1"
    holdout: int = 0

    def __post_init__(self):
        # Accept what a command line or a loaded checkpoint gives (an int, lists) as the tuples above.
        if isinstance(self.hidden, int):
            object.__setattr__(self, "hidden", (self.hidden,))
        for name in ("hidden", "threshold"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive integers, not {self.hidden!r}")
        if not isinstance(self.timesteps, int) or self.timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, not {self.timesteps!r}")
        if self.leak_shift is not None and (not isinstance(self.leak_shift, int) or not 0 <= self.leak_shift <= 15):
            raise ValueError(f"leak_shift must be an integer 0..15 or None, not {self.leak_shift!r}")
        n_layers = len(self.hidden) + 1
        if isinstance(self.threshold, tuple) and len(self.threshold) != n_layers:
            raise ValueError(f"threshold needs one value or {n_layers} (one per layer), not {self.threshold!r}")
        if not all(t > 0 for t in self.thresholds):
            raise ValueError(f"threshold must be positive, not {self.threshold!r}")
        object.__setattr__(self, "max_rate", format_max_rate(self.max_rate))
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.holdout, int) or isinstance(self.holdout, bool) or self.holdout < 0:
            raise ValueError(f"holdout must be a non-negative integer, not {self.holdout!r}")

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The threshold of every layer."""
        if isinstance(self.threshold, tuple):
            return self.threshold
        return (self.threshold,) * (len(self.hidden) + 1)

    @property
    def beta(self) -> float:
        """The float decay equal to the integer leak ``v - v / 2^lam`` (1 for no leak)."""
        return leak_beta(self.leak_shift)


def set_determinism(seed: int) -> None:
    """Seed torch and make its kernels deterministic, on :data:`TORCH_THREADS` threads."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(TORCH_THREADS)


class SpikingMLP(nn.Module):
    """Fully connected LIF network ``n_in - hidden... - n_out`` with bias-free synapses.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    config : TrainConfig
        Hidden widths, leak, threshold and surrogate slope.
    """

    def __init__(self, n_in: int, n_out: int, config: TrainConfig):
        super().__init__()
        self.config = config
        widths = (n_in, *config.hidden, n_out)
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairwise(widths))
        grad = surrogate.fast_sigmoid(slope=config.slope)
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=config.beta, threshold=theta, spike_grad=grad,
                      reset_mechanism="subtract", reset_delay=True)
            for theta in config.thresholds)

    @property
    def thresholds(self) -> list[float]:
        return [float(lif.threshold) for lif in self.lifs]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run on spikes ``x`` (float [B, T, n_in]); return every layer's spikes, each [B, T, N_l].

        Layer by layer: the currents of all ``T`` steps in one product, then the neurons step by step
        (the same arithmetic as stepping the whole network per timestep, since a layer's input at ``t``
        is the previous layer's spikes at ``t``).
        """
        out = []
        inp = x
        for fc, lif in zip(self.fcs, self.lifs, strict=True):
            cur = fc(inp)
            mem = torch.zeros(x.shape[0], fc.out_features, dtype=x.dtype)
            spikes = []
            for t in range(x.shape[1]):
                s, mem = lif(cur[:, t], mem)
                spikes.append(s)
            inp = torch.stack(spikes, dim=1)
            out.append(inp)
        return out

    def weights(self) -> list[np.ndarray]:
        """Weights as float64 [n_in, n_out] arrays (row j = input j, the model file's layout)."""
        return [fc.weight.detach().double().numpy().T.copy() for fc in self.fcs]


#: The seed network of the MNIST experiments: 784-500-10, T = 8, 12 epochs of batch 100 (docs/training.md).
MNIST_CONFIG = TrainConfig(hidden=(500,), timesteps=8, epochs=12, batch_size=100, lr=1e-3, dataset="mnist")

#: ``loss_fn(net, x, y) -> (loss, output spike counts)``, as :func:`fit` calls it on every batch.
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _cross_entropy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    counts = net(x)[-1].sum(dim=1)
    # Spike counts are the logits: the hardware predicts by their argmax.
    return nn.functional.cross_entropy(counts, y), counts


def fit(net: nn.Module, config: TrainConfig, split: Split, *, loss_fn: LossFn = _cross_entropy,
        lr: float | None = None, epochs: int | None = None, progress: bool = True,
        resume: str | os.PathLike | None = None, identity: dict | None = None,
        on_epoch: Callable[[int, dict], None] | None = None, desc: str = "train") -> dict:
    """Optimise ``net`` on the rate-coded training split, less its held-out slice (``config.holdout``): Adam,
    cosine decay, seeded batch order.

    Parameters
    ----------
    net : nn.Module
        Returns every layer's spikes from float [B, T, n_in] spikes; trained in place.
    config : TrainConfig
        Timesteps, batch size, seed; ``lr`` and ``epochs`` unless given here.
    split : Split
        Training data (intensities; each batch is rate-coded when drawn). The last ``config.holdout``
        training samples are never drawn: they are kept for calibration
        (:meth:`~qlif.golden.data.split.Split.holdout_indices`).
    loss_fn : callable
        ``loss_fn(net, x, y) -> (loss, counts)``; default cross entropy of the output spike counts.
    resume : path, optional
        After every epoch the whole state (weights, optimiser, schedule, batch-order generator,
        history) is written here atomically; if the file exists when training starts, training continues
        after its last epoch and ends bit-identical to an uninterrupted run.
    identity : dict, optional
        What must match for a resume file to be used (default: the config); a mismatch is an error.
    on_epoch : callable, optional
        ``on_epoch(epoch, history)`` after every epoch (and its resume file) is complete.

    Returns
    -------
    dict
        ``loss`` and ``train_acc`` per epoch, ``seconds`` of training (all sessions together),
        ``resumed_at`` (the epoch a resumed run started from, or 0) and ``n_train``, the samples trained on.
    """
    lr = config.lr if lr is None else lr
    epochs = config.epochs if epochs is None else epochs
    split = split.without_holdout(config.holdout)
    identity = dict(identity if identity is not None else asdict(config), lr=lr, epochs=epochs,
                    n_train=len(split.y_train))
    if not identity.get("holdout"):
        # No held-out slice: the identity of resume files written before the field existed, so that a
        # killed run of an older version still continues.
        identity.pop("holdout", None)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(config.seed)
    history: dict = {"loss": [], "train_acc": [], "seconds": 0.0, "resumed_at": 0, "n_train": len(split.y_train)}
    start_epoch = 0
    if resume is not None and Path(resume).is_file():
        state = torch.load(Path(resume), map_location="cpu", weights_only=False)
        if state.get("identity") != identity:
            raise ValueError(f"{resume}: resume file of a different training run (settings differ); "
                             "delete it or choose another output")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        history = dict(state["history"], n_train=len(split.y_train))
        start_epoch = history["resumed_at"] = state["epoch"]
    y_all = torch.from_numpy(split.y_train)
    n_batches = -(-len(y_all) // config.batch_size)
    bar = tqdm(total=epochs * n_batches, initial=start_epoch * n_batches, desc=desc, unit="batch",
               disable=not progress, dynamic_ncols=True)
    try:
        for epoch in range(start_epoch, epochs):
            start = time.perf_counter()
            net.train()
            total, correct = 0.0, 0
            for idx in torch.randperm(len(y_all), generator=gen).split(config.batch_size):
                xb = torch.from_numpy(encode(split.x_train[idx.numpy()], config.timesteps,
                                                   max_rate=config.max_rate)).float()
                yb = y_all[idx]
                loss, counts = loss_fn(net, xb, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                correct += int((counts.argmax(dim=1) == yb).sum())
                bar.update(1)
            sched.step()
            history["loss"].append(total / len(y_all))
            history["train_acc"].append(correct / len(y_all))
            history["seconds"] += time.perf_counter() - start
            bar.set_postfix(epoch=epoch + 1, loss=f"{history['loss'][-1]:.3f}",
                            acc=f"{history['train_acc'][-1]:.3f}")
            if resume is not None:
                atomic_save({"identity": identity, "epoch": epoch + 1, "net": net.state_dict(),
                              "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                              "torch_rng": torch.get_rng_state(), "history": history}, Path(resume))
            if on_epoch is not None:
                on_epoch(epoch + 1, history)
    finally:
        bar.close()
    net.eval()
    return history


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file renamed into place: a killed run leaves no partial file."""
    write_atomic(path, lambda f: torch.save(obj, f))


def train(config: TrainConfig = TrainConfig(), *, split: Split | None = None, data_dir=None,
          progress: bool = True, resume: str | os.PathLike | None = None,
          on_epoch: Callable[[int, dict], None] | None = None) -> tuple[SpikingMLP, dict]:
    """Train a :class:`SpikingMLP` on the rate-coded training split.

    Parameters
    ----------
    config : TrainConfig
        The run's settings.
    split : Split, optional
        Data to train on, less its last ``config.holdout`` training samples; default
        ``load_split(config.dataset, data_dir=data_dir, seed=config.seed, test_fraction=config.test_fraction)``.
    data_dir : path, optional
        The MNIST folder when ``config.dataset == "mnist"`` and no split is given.
    progress : bool
        Show a tqdm bar over batches.
    resume, on_epoch
        See :func:`fit`: a resume file makes a killed run continue from its last complete epoch.

    Returns
    -------
    (SpikingMLP, dict)
        The trained network (in eval mode) and the history of :func:`fit`.
    """
    set_determinism(config.seed)
    if split is None:
        split = load_split(config.dataset, data_dir=data_dir, seed=config.seed, test_fraction=config.test_fraction)
    net = SpikingMLP(split.n_in, split.n_classes, config)
    history = fit(net, config, split, progress=progress, resume=resume, on_epoch=on_epoch)
    return net, history
