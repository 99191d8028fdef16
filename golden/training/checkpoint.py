"""Checkpoints of trained networks: float (:class:`~qlif.golden.training.train.SpikingMLP`) and
quantization-aware (:class:`~qlif.golden.training.qat.QuantSpikingMLP`), saved and rebuilt by kind.

This module sits above both network kinds so that loading a checkpoint, which must know every kind,
imports downwards only.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from qlif.golden.spec.model import Model
from qlif.golden.training.qat import QATConfig, QuantSpikingMLP
from qlif.golden.training.quantize import quantize
from qlif.golden.training.train import SpikingMLP, TrainConfig, atomic_save

__all__ = ["save_checkpoint", "load_checkpoint", "quantize_checkpoint"]


def save_checkpoint(net: nn.Module, path: str | Path, *, history: dict | None = None) -> None:
    """Write ``{"config", "n_in", "n_out", "state_dict", "history"}`` with ``torch.save`` (atomically).

    A quantization-aware network (:class:`qlif.golden.training.qat.QuantSpikingMLP`) adds ``"qat"``, its
    quantization settings.
    """
    doc = {
        "config": asdict(net.config),
        "n_in": net.fcs[0].in_features,
        "n_out": net.fcs[-1].out_features,
        "state_dict": net.state_dict(),
        "history": history or {},
    }
    if hasattr(net, "qat"):
        doc["qat"] = asdict(net.qat)
    atomic_save(doc, Path(path))


def load_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the network saved by :func:`save_checkpoint` (in eval mode).

    A float checkpoint gives a :class:`SpikingMLP`, a quantization-aware one a
    :class:`qlif.golden.training.qat.QuantSpikingMLP`. A file that is not a checkpoint raises ``ValueError``.
    """
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
        n_in, n_out, config = int(ckpt["n_in"]), int(ckpt["n_out"]), TrainConfig(**ckpt["config"])
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint file") from None
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise ValueError(f"{path}: not a qlif checkpoint ({type(e).__name__}: {e})") from None
    if "qat" in ckpt:
        net = QuantSpikingMLP(n_in, n_out, config, QATConfig(**ckpt["qat"]))
    else:
        net = SpikingMLP(n_in, n_out, config)
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net


def quantize_checkpoint(path: str | os.PathLike, **kwargs) -> Model:
    """:func:`~qlif.golden.training.quantize.quantize` the network saved at ``path`` by :func:`save_checkpoint`.

    Keyword arguments are those of :func:`~qlif.golden.training.quantize.quantize`,
    e.g. ``weight_bits=4, percentile=99.9``.
    """
    return quantize(load_checkpoint(path), **kwargs)
