"""Training of the float spiking network that :mod:`qlif.golden.quantize` turns into an integer model.

The network is a chain of bias-free ``nn.Linear`` layers, each followed by an ``snntorch.Leaky`` layer
with ``reset_mechanism="subtract"`` and ``reset_delay=True``. With ``beta = 1 - 2^-leak_shift`` that is,
step for step, the integer LIF contract of ``docs/semantics.md`` in real numbers::

    v[t] = beta * v[t-1] - theta * s[t-1] + W^T x[t];   s[t] = v[t] > theta

(the integer model leaks by ``v - (v >> leak_shift)`` and saturates; the quantizer scales weights and
threshold together so the two track each other). The loss is the cross entropy of the output spike
counts, the quantity the hardware's argmax reads. Everything is seeded and deterministic.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn
from tqdm import tqdm

from .data import Split, encode, load_digits_split

__all__ = ["TrainConfig", "SpikingMLP", "train", "save_checkpoint", "load_checkpoint", "set_determinism"]

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
    leak_shift : int
        ``lam`` of the integer leak ``v - (v >> lam)``; the float network uses ``beta = 1 - 2^-lam``.
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
        Held-out fraction of the digits data (see :func:`qlif.golden.data.load_digits_split`).
    """

    hidden: tuple[int, ...] = (128,)
    timesteps: int = 16
    leak_shift: int = 3
    threshold: float | tuple[float, ...] = 1.0
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    slope: float = 10.0
    seed: int = 0
    test_fraction: float = 0.25

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
        if not isinstance(self.leak_shift, int) or not 0 <= self.leak_shift <= 15:
            raise ValueError(f"leak_shift must be an integer 0..15, not {self.leak_shift!r}")
        n_layers = len(self.hidden) + 1
        if isinstance(self.threshold, tuple) and len(self.threshold) != n_layers:
            raise ValueError(f"threshold needs one value or {n_layers} (one per layer), not {self.threshold!r}")
        if not all(t > 0 for t in self.thresholds):
            raise ValueError(f"threshold must be positive, not {self.threshold!r}")

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The threshold of every layer."""
        if isinstance(self.threshold, tuple):
            return self.threshold
        return (self.threshold,) * (len(self.hidden) + 1)

    @property
    def beta(self) -> float:
        """The float decay equal to the integer leak ``v - v / 2^lam``."""
        return 1.0 - 2.0 ** -self.leak_shift


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
        """Run on spikes ``x`` (float [B, T, n_in]); return every layer's spikes, each [B, T, N_l]."""
        mems = [torch.zeros(x.shape[0], fc.out_features, dtype=x.dtype) for fc in self.fcs]
        out: list[list[torch.Tensor]] = [[] for _ in self.fcs]
        for t in range(x.shape[1]):
            inp = x[:, t]
            for l, (fc, lif) in enumerate(zip(self.fcs, self.lifs, strict=True)):
                inp, mems[l] = lif(fc(inp), mems[l])
                out[l].append(inp)
        return [torch.stack(o, dim=1) for o in out]

    def weights(self) -> list[np.ndarray]:
        """Weights as float64 [n_in, n_out] arrays (row j = input j, the model file's layout)."""
        return [fc.weight.detach().double().numpy().T.copy() for fc in self.fcs]


def _counts(net: SpikingMLP, x: torch.Tensor) -> torch.Tensor:
    return net(x)[-1].sum(dim=1)


def train(config: TrainConfig = TrainConfig(), *, split: Split | None = None,
          progress: bool = True) -> tuple[SpikingMLP, dict]:
    """Train a :class:`SpikingMLP` on the rate-coded digits.

    Parameters
    ----------
    config : TrainConfig
        The run's settings.
    split : Split, optional
        Data to train on; default ``load_digits_split(config.seed, config.test_fraction)``.
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    (SpikingMLP, dict)
        The trained network (in eval mode) and a history dict with ``loss`` and ``train_acc`` per
        epoch and ``seconds`` of wall time.
    """
    set_determinism(config.seed)
    if split is None:
        split = load_digits_split(config.seed, config.test_fraction)
    x = torch.from_numpy(encode(split.x_train, config.timesteps)).float()
    y = torch.from_numpy(split.y_train)
    net = SpikingMLP(split.n_in, split.n_classes, config)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    gen = torch.Generator().manual_seed(config.seed)
    history: dict = {"loss": [], "train_acc": []}
    start = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress)
    for _ in bar:
        net.train()
        total, correct = 0.0, 0
        for idx in torch.randperm(len(y), generator=gen).split(config.batch_size):
            counts = _counts(net, x[idx])
            # Spike counts are the logits: the hardware predicts by their argmax.
            loss = nn.functional.cross_entropy(counts, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((counts.argmax(dim=1) == y[idx]).sum())
        sched.step()
        history["loss"].append(total / len(y))
        history["train_acc"].append(correct / len(y))
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{history['train_acc'][-1]:.3f}")
    history["seconds"] = time.perf_counter() - start
    net.eval()
    return net, history


def save_checkpoint(net: SpikingMLP, path: str | Path, *, history: dict | None = None) -> None:
    """Write ``{"config", "n_in", "n_out", "state_dict", "history"}`` with ``torch.save``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = asdict(net.config)
    torch.save({
        "config": cfg,
        "n_in": net.fcs[0].in_features,
        "n_out": net.fcs[-1].out_features,
        "state_dict": net.state_dict(),
        "history": history or {},
    }, path)


def load_checkpoint(path: str | Path) -> SpikingMLP:
    """Rebuild the network saved by :func:`save_checkpoint` (in eval mode)."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    net = SpikingMLP(int(ckpt["n_in"]), int(ckpt["n_out"]), TrainConfig(**ckpt["config"]))
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net
