"""The reference NIR producer: an snntorch 1.0 network as its users write it, trained on qlif's coding.

``tests/test_nir.py`` checks ``qlif import`` against it and ``benchmarks/bench_nir_producers.py`` measures it
(``docs/nir.md``): digits 64-32-10, ``snn.Leaky`` (subtract reset, snntorch's default, ``reset_delay=True``)
with per-neuron beta and threshold tensors (snntorch's ``export_to_nir`` needs them to give the LIF nodes a
shape), bias-free ``nn.Linear``, fed qlif's rate-coded 0/1 stimuli (``encode``, T = 8, max rate 1), and
written by snntorch's own ``export_to_nir``.
"""

from __future__ import annotations

import snntorch as snn
import torch
from snntorch import surrogate, utils

from qlif.golden.data.split import Split
from qlif.golden.spec.coding import encode
from qlif.golden.training.train import set_determinism

__all__ = ["T", "HIDDEN", "GRID", "leaky", "run_producer", "train_producer"]

#: Steps per sample of the producer's rate coding.
T = 8
#: Hidden neurons of the producer (digits 64-HIDDEN-10).
HIDDEN = 32
#: The trained weights are rounded to multiples of 1 / GRID (:func:`train_producer`).
GRID = 2 ** 12


def leaky(n: int, beta: float, *, output: bool = False, threshold: torch.Tensor | None = None,
          learn_threshold: bool = False) -> snn.Leaky:
    """``n`` snntorch ``Leaky`` neurons with per-neuron beta and threshold (1 unless given)."""
    return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n) if threshold is None else threshold,
                     learn_threshold=learn_threshold, init_hidden=True, output=output,
                     spike_grad=surrogate.fast_sigmoid(slope=10))


def run_producer(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The producer stepped as snntorch users do: hidden state reset, one call per step; output spikes
    ``[S, T, n_out]`` of stimuli ``x`` ``[S, T, n_in]``."""
    utils.reset(net)
    return torch.stack([net(x[:, t])[0] for t in range(x.shape[1])], dim=1)


def train_producer(beta: float, epochs: int, split: Split) -> torch.nn.Sequential:
    """The producer trained ``epochs`` epochs (Adam, batch 64, seeded) on ``split``'s rate-coded training
    samples, its weights then rounded to multiples of ``1 / GRID`` (eval mode)."""
    set_determinism(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, HIDDEN, bias=False), leaky(HIDDEN, beta),
                              torch.nn.Linear(HIDDEN, 10, bias=False), leaky(10, beta, output=True))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(split.y_train), generator=gen).split(64):
            x = torch.from_numpy(encode(split.x_train[idx.numpy()], T)).float()
            y = torch.from_numpy(split.y_train[idx.numpy()])
            loss = torch.nn.functional.cross_entropy(run_producer(net, x).sum(dim=1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        # Weights on a grid of 2^-12: while a neuron's sum of |w| stays below 2^12, every partial sum of its
        # inputs is a multiple of 2^-12 below 2^12 (24 bits), exact in float32 in any order. The producer's
        # per-step products and qlif's all-steps-at-once product then agree on every CPU and BLAS (the
        # elementwise neuron updates are the same IEEE operations in both).
        for p in net.parameters():
            p.copy_(torch.round(p * GRID) / GRID)
            if not float(p.abs().sum(dim=1).max()) < 2 ** 24 / GRID:
                raise ArithmeticError("a neuron's sum of |w| reached 2^12: its partial sums are no longer exact")
    net.eval()
    return net
