"""Quantization-aware training: learned step size (LSQ), binary weights (Q-SNN), asymmetric ternary.

A :class:`QuantSpikingMLP` keeps float *latent* weights and, in every forward pass, quantizes them to the
integers the hardware stores; its neurons compute, in the forward pass, the integer model of
``docs/semantics.md`` (same integer weights, threshold, floor leak ``v - (v >> lam)``, reset by the
previous spike, k-bit saturation, strict ``>``), so training sees the hardware's saturation. The backward
pass uses straight-through estimators and snntorch's fast-sigmoid surrogate. Per layer the quantizer
gives integer codes ``q`` and a *unit* ``u`` (the float value of one integer step); the float twin of
the state is ``v = u * v_int``. The integer threshold is ``theta_int = min(round(theta / u), theta_max)``
with ``theta_max = 2^(k-1) - 2``, the largest the format allows.

The forward pass saturates after every addition in ascending input order, as the hardware does
(:func:`qlif.golden.spec.saturating.saturating_sum`, a compiled loop equal to the reference's); the backward
pass treats a step's integration as one sum saturated once (a straight-through estimate: the gradient of
``clamp(v + sum_j W[j] x[j], lo, hi)``). So the network trains on the spikes the hardware will produce:
with 4-bit registers and hundreds of inputs a step, the in-order saturation is what the neuron computes,
and a model trained with saturation after the sum lost half its accuracy on the hardware (digits, binary,
k = 4: 96% in training, 44% as integer model). The exported model is evaluated with the integer reference.

Methods (``docs/quantization.md``):

``lsq``
    b in {2, 4, 8}: ``q = clip(round(w / s), -2^(b-1), 2^(b-1) - 1)`` with the step ``s`` learned per layer
    (LSQ: gradient through the rounding by the straight-through estimator, scaled by
    ``1 / sqrt(n_weights * (2^(b-1) - 1))``); ``u = s``.
``binary``
    b = 1: ``q = sign((W - mean W) / std W)`` per layer (0 counts as +1; straight-through gradient clipped
    to ``|z| <= 1``), weights ``a * q``; ``u = a`` is fixed when training starts so that ``theta / a`` fits
    the k-bit register. Loss adds ``rate_reg * sum_l (f_l - rate_target)^2`` over hidden layers (f_l: mean
    firing rate; Q-SNN's target is 0.5, the default; with small registers a low target is better: a hidden
    spike is an event the next layer's register must absorb, docs/quantization.md).
``ternary``
    b = 2: ``q in {-1, 0, +1}`` with ``|w| > delta * mean|W|`` (TWN, delta = 0.7); values ``+a_p`` and
    ``-a_n`` with learned, different positive and negative scales (TTQ), exported as integers ``+P`` and
    ``-N`` in a per-layer codebook ``[0, +P, 0, -N]`` (the ternary value's 2-bit two's complement code
    indexes it); ``u = max(a_p, a_n) / levels``. Spike calibration: the loss adds
    ``distill * sum_l (1 - cos(r_l, r_l^teacher))``, the cosine distance between the per-sample
    firing-rate vectors of each layer of the ternary network and of the full-precision teacher.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from qlif.golden.data.split import Split
from qlif.golden.spec.model import MEMBRANE_BITS, Layer, Model
from qlif.golden.spec.saturating import saturating_sum
from qlif.golden.training.methods import QAT_METHODS, QAT_WEIGHT_BITS
from qlif.golden.training.quantize import (
    CalibrationSet,
    bits_for_range,
    coding_metadata,
    leak_shift_of,
    quantize_weights,
)
from qlif.golden.training.train import SpikingMLP, TrainConfig, fit

__all__ = ["QATConfig", "QuantSpikingMLP", "train_qat", "export"]

_DEFAULT_BITS = {"lsq": 4, "binary": 1, "ternary": 2}


@dataclass(frozen=True)
class QATConfig:
    """The quantization of a :class:`QuantSpikingMLP`; stored in its checkpoint.

    Parameters
    ----------
    method : str
        ``"lsq"``, ``"binary"`` or ``"ternary"``.
    weight_bits : int, optional
        b; default 4 for lsq (2, 4, 8 allowed), 1 for binary, 2 for ternary.
    membrane_bits : int, optional
        k of every layer's register during training and in the export (2..16). ``None``: train with 16
        bits and export with the fewest bits the training data needs (as post-training quantization).
    distill : float
        Weight of ternary's spike-calibration loss (cosine distance of firing rates to the teacher).
    rate_reg : float
        Weight of binary's firing-rate regulariser ``sum (f_l - rate_target)^2``.
    rate_target : float
        The hidden firing rate binary's regulariser pulls towards (0.5 as in Q-SNN).
    delta : float
        Ternary: weights with ``|w| <= delta * mean|W|`` become 0.
    levels : int
        Ternary: integer value of the larger of the two scales in the export (resolution of ``a_p/a_n``).
    lr : float, optional
        Learning rate of the run (default: the TrainConfig's).
    """

    method: str
    weight_bits: int | None = None
    membrane_bits: int | None = None
    distill: float = 1.0
    rate_reg: float = 1.0
    rate_target: float = 0.5
    delta: float = 0.7
    levels: int = 16
    lr: float | None = None

    def __post_init__(self):
        if self.method not in QAT_METHODS:
            raise ValueError(f"quantization-aware method must be one of {', '.join(QAT_METHODS)}, "
                             f"not {self.method!r}")
        if self.weight_bits is None:
            object.__setattr__(self, "weight_bits", _DEFAULT_BITS[self.method])
        allowed = QAT_WEIGHT_BITS[self.method]
        if self.weight_bits not in allowed:
            raise ValueError(f"{self.method} gives {' or '.join(map(str, allowed))}-bit weights, "
                             f"not {self.weight_bits!r}")
        if self.membrane_bits is not None and self.membrane_bits not in MEMBRANE_BITS:
            raise ValueError(f"membrane bits must be 2..16, not {self.membrane_bits!r}")
        if not 0.0 <= self.rate_target <= 1.0:
            raise ValueError(f"rate target must lie in [0, 1], not {self.rate_target!r}")
        if not self.levels >= 1:
            raise ValueError(f"levels must be a positive integer, not {self.levels!r}")

    @property
    def train_membrane_bits(self) -> int:
        return 16 if self.membrane_bits is None else self.membrane_bits


def theta_max(k: int) -> int:
    """The largest threshold a k-bit register allows (``theta < 2^(k-1) - 1``)."""
    return (1 << (k - 1)) - 2


# -- straight-through helpers -------------------------------------------------------------------------

def _ste(exact: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward pass, the gradient of ``soft`` in the backward pass."""
    return soft + (exact - soft).detach()


def _grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _ste(x, x * scale)


def _fast_sigmoid_integral(z: torch.Tensor, slope: float) -> torch.Tensor:
    # d/dz [z / (1 + slope |z|)] = 1 / (1 + slope |z|)^2: snntorch's fast-sigmoid surrogate gradient.
    return z / (1.0 + slope * z.abs())


# -- the network ---------------------------------------------------------------------------------------

class QuantSpikingMLP(nn.Module):
    """A :class:`~qlif.golden.training.train.SpikingMLP` whose weights and neurons are quantized in the forward pass.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    config : TrainConfig
        Hidden widths, T, leak, float thresholds, surrogate slope.
    qat : QATConfig
        The method and bit-widths.

    Members
    -------
    fcs : nn.ModuleList of nn.Linear
        Latent float weights (same layout as SpikingMLP, so a float network initialises them).
    step : nn.ParameterList
        lsq: the learned step per layer.
    scale_pos, scale_neg : nn.ParameterList
        ternary: ``a_p`` and ``a_n`` per layer.
    unit : torch.Tensor (buffer)
        binary: the fixed unit ``a`` per layer.
    """

    def __init__(self, n_in: int, n_out: int, config: TrainConfig, qat: QATConfig):
        super().__init__()
        self.config, self.qat = config, qat
        widths = (n_in, *config.hidden, n_out)
        self.fcs = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(widths, widths[1:], strict=False))
        n = len(self.fcs)
        self.lam = leak_shift_of(config.beta)
        self.step = nn.ParameterList(nn.Parameter(torch.tensor(1.0)) for _ in range(n if qat.method == "lsq" else 0))
        self.scale_pos = nn.ParameterList(
            nn.Parameter(torch.tensor(1.0)) for _ in range(n if qat.method == "ternary" else 0))
        self.scale_neg = nn.ParameterList(
            nn.Parameter(torch.tensor(1.0)) for _ in range(n if qat.method == "ternary" else 0))
        self.register_buffer("unit", torch.ones(n))

    @property
    def thresholds(self) -> list[float]:
        return list(self.config.thresholds)

    @property
    def k(self) -> int:
        return self.qat.train_membrane_bits

    # -- initialisation from a float network -------------------------------------------------------------

    @torch.no_grad()
    def init_from(self, net: SpikingMLP | None = None, *, percentile: float = 99.9) -> None:
        """Copy latent weights from ``net`` (if given) and set each quantizer's scale from them."""
        if net is not None:
            for fc, src in zip(self.fcs, net.fcs, strict=True):
                fc.weight.copy_(src.weight)
        tmax = theta_max(self.k)
        for l, (fc, theta) in enumerate(zip(self.fcs, self.thresholds, strict=True)):
            w = fc.weight.detach().double().numpy()
            # The smallest unit whose threshold fits the register (k = 2: theta_int = 0, unit 2 theta).
            min_unit = theta / (tmax + 0.5)
            if self.qat.method == "lsq":
                _, s = quantize_weights(w, self.qat.weight_bits, percentile)
                self.step[l].fill_(max(s, min_unit))
            elif self.qat.method == "binary":
                self.unit[l] = max(float(np.abs(w).mean()), min_unit)
            else:
                cut = self.qat.delta * np.abs(w).mean()
                pos, neg = w[w > cut], -w[w < -cut]
                a_p = float(pos.mean()) if pos.size else float(np.abs(w).mean())
                a_n = float(neg.mean()) if neg.size else float(np.abs(w).mean())
                # The register must hold theta on the unit max(a_p, a_n) / levels: scale both up if not.
                grow = max(1.0, min_unit * self.qat.levels / max(a_p, a_n))
                self.scale_pos[l].fill_(a_p * grow)
                self.scale_neg[l].fill_(a_n * grow)

    # -- quantizers -----------------------------------------------------------------------------------------

    def quantized(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``l``'s integer codes' values ``q`` ([out, in], integer-valued, STE gradients) and unit ``u``.

        The layer's effective float weights are ``u * q``.
        """
        w = self.fcs[l].weight
        method = self.qat.method
        if method == "lsq":
            b = self.qat.weight_bits
            qn, qp = 1 << (b - 1), (1 << (b - 1)) - 1
            s = _grad_scale(self.step[l].abs() + 1e-12, 1.0 / math.sqrt(w.numel() * qp))
            z = torch.clamp(w / s, -qn, qp)
            return _ste(torch.round(z), z), s
        if method == "binary":
            z = (w - w.mean()) / (w.std() + 1e-12)
            sign = torch.where(z >= 0, 1.0, -1.0)
            return _ste(sign, torch.clamp(z, -1.0, 1.0)), self.unit[l]
        # ternary
        a_p, a_n = self.scale_pos[l].abs() + 1e-12, self.scale_neg[l].abs() + 1e-12
        u = torch.maximum(a_p, a_n).detach() / self.qat.levels
        p_int = _ste(torch.clamp(torch.round(a_p / u), min=1.0), a_p / u)
        n_int = _ste(torch.clamp(torch.round(a_n / u), min=1.0), a_n / u)
        cut = self.qat.delta * w.detach().abs().mean()
        pos, neg = (w > cut).float(), (w < -cut).float()
        # Values +P where w > cut, -N where w < -cut, else 0. Gradients: to P and N through the mask (so
        # to a_p and a_n), to the latent w straight through (identity in float units).
        wu = w / u
        q = (p_int * pos - n_int * neg) + (wu - wu.detach())
        return q, u

    def integer_threshold(self, l: int, u: torch.Tensor) -> torch.Tensor:
        """``min(round(theta / u), theta_max)``; the gradient of ``theta / u`` flows to the unit (so that
        scaling weights and threshold together, which changes nothing, gets no gradient)."""
        soft = torch.clamp(self.thresholds[l] / u, max=float(theta_max(self.k)))
        return _ste(torch.round(soft), soft)

    # -- forward ------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run on spikes ``x`` (float [B, T, n_in]); return every layer's spikes [B, T, N_l].

        The spikes (and the integer state) are those of the integer model, bit for bit; gradients are
        straight-through estimates (module docstring).
        """
        out = []
        inp = x
        k = self.k
        v_lo, v_hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
        slope = self.config.slope
        for l in range(len(self.fcs)):
            q, u = self.quantized(l)
            theta = self.integer_threshold(l, u)
            cur = torch.matmul(inp, q.t())                          # integer-valued currents [B, T, N]
            batch, steps, n = cur.shape
            q_int = np.ascontiguousarray(np.rint(q.detach().numpy().T), dtype=np.int32)  # [n_in, N] integers
            x_int = inp.detach().numpy().astype(np.uint8)           # [B, T, n_in], 0/1
            v = torch.zeros(batch, n, dtype=x.dtype)                # integer membrane (float tensor)
            s_prev = torch.zeros(batch, n, dtype=x.dtype)
            spikes = []
            for t in range(steps):
                # leak: v - floor(v / 2^lam) forward, (1 - 2^-lam) v backward
                if self.lam is not None:
                    v = _ste(v - torch.floor(v / (1 << self.lam)), v * (1.0 - 2.0 ** -self.lam))
                v = torch.clamp(v - theta * s_prev, v_lo, v_hi)     # reset by the previous spike
                # integrate with k-bit saturation: forward exactly as the hardware (after every addition,
                # ascending inputs), backward as one saturation after the sum
                exact = saturating_sum(v.detach().numpy(), x_int[:, t], q_int, v_lo, v_hi)
                v = _ste(torch.from_numpy(exact).to(x.dtype),
                         torch.clamp(v + cur[:, t], v_lo, v_hi))
                # fire: v > theta exactly; surrogate centred between theta and theta + 1, in float units
                z = (v - (theta + 0.5)) * u
                s = _ste((v > theta.detach()).to(x.dtype), _fast_sigmoid_integral(z, slope))
                s_prev = s.detach()
                spikes.append(s)
            inp = torch.stack(spikes, dim=1)
            out.append(inp)
        return out

    # -- export ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def integer_layers(self) -> list[dict]:
        """Per layer the exported integer weights [n_in, n_out], codebook, threshold, unit."""
        layers = []
        for l in range(len(self.fcs)):
            q, u = self.quantized(l)
            w = np.rint(q.detach().double().numpy()).astype(np.int64).T.copy()
            codebook = None
            if self.qat.method == "ternary":
                a_p, a_n = (float(p.abs()) + 1e-12 for p in (self.scale_pos[l], self.scale_neg[l]))
                p_int = max(1, round(a_p / float(u.detach())))
                n_int = max(1, round(a_n / float(u.detach())))
                codebook = (0, p_int, 0, -n_int)
            layers.append({"weights": w, "codebook": codebook, "threshold": int(self.integer_threshold(l, u)),
                           "unit": float(u.detach())})
        return layers


def _loss_fn(qat: QATConfig, teacher: nn.Module | None):
    def loss_fn(net: QuantSpikingMLP, x: torch.Tensor, y: torch.Tensor):
        spikes = net(x)
        counts = spikes[-1].sum(dim=1)
        loss = nn.functional.cross_entropy(counts, y)
        if qat.method == "binary" and qat.rate_reg:
            loss = loss + qat.rate_reg * sum((s.mean() - qat.rate_target) ** 2 for s in spikes[:-1])
        if qat.method == "ternary" and teacher is not None and qat.distill:
            with torch.no_grad():
                target = teacher(x)
            dist = sum((1.0 - nn.functional.cosine_similarity(s.mean(dim=1), r.mean(dim=1), dim=1, eps=1e-6)).mean()
                       for s, r in zip(spikes, target, strict=True))
            loss = loss + qat.distill * dist
        return loss, counts
    return loss_fn


def train_qat(config: TrainConfig, qat: QATConfig, *, split: Split, teacher: SpikingMLP | None = None,
              timesteps: int | None = None, max_rate=None, progress: bool = True,
              resume: str | os.PathLike | None = None, on_epoch=None) -> tuple[QuantSpikingMLP, dict]:
    """Quantization-aware training of a :class:`QuantSpikingMLP` on ``split``.

    Parameters
    ----------
    config : TrainConfig
        Network and optimisation settings (epochs, lr, batch size, seed). When a ``teacher`` is given its
        hidden widths, T, rate coding (``max_rate``), leak, thresholds and held-out slice (``holdout``) are
        used, so the two networks match layer for layer, see the same stimuli and leave out the same samples.
    qat : QATConfig
        Method and bit-widths.
    teacher : SpikingMLP, optional
        A trained float network: the latent weights start from it, and ternary distils from it (ternary
        requires one).
    timesteps, max_rate : optional
        The coding the network trains at, when it is not the teacher's (default: the teacher's, or
        ``config``'s without a teacher). A teacher trained at T = 8 can start a binary network at T = 64
        with maximum rate 1/8 (docs/quantization.md): its weights are only the starting point. Ternary
        refuses a different coding: its spike calibration compares firing rates with the teacher's on the
        same stimuli, and the teacher's rates belong to the coding it was trained at.
    resume, on_epoch, progress
        As :func:`qlif.golden.training.train.fit`.

    Returns
    -------
    (QuantSpikingMLP, dict)
        The trained network (eval mode) and the training history.
    """
    if qat.method == "ternary" and teacher is None:
        raise ValueError("ternary training distils from a full-precision network: give a teacher checkpoint")
    from dataclasses import replace

    if teacher is not None:
        t = teacher.config
        if config.holdout not in (0, t.holdout):
            raise ValueError(f"holdout {config.holdout}: the teacher holds out {t.holdout} training samples, and "
                             "a network trained from it holds out the same")
        # The teacher's held-out slice stays out of this training too (else its calibration samples would
        # be trained on).
        config = replace(config, hidden=t.hidden, timesteps=t.timesteps, leak_shift=t.leak_shift,
                         threshold=t.threshold, slope=t.slope, max_rate=t.max_rate, holdout=t.holdout)
    coding = {k: v for k, v in (("timesteps", timesteps), ("max_rate", max_rate)) if v is not None}
    if coding:
        own = replace(config, **coding)
        if qat.method == "ternary" and teacher is not None and (own.timesteps, own.max_rate) != (
                config.timesteps, config.max_rate):
            raise ValueError(f"ternary's spike calibration compares firing rates with the teacher's on the same "
                             f"stimuli: it trains at the teacher's coding (T = {config.timesteps}, max rate "
                             f"{config.max_rate}), not T = {own.timesteps}, max rate {own.max_rate}")
        config = own
    if teacher is not None:
        if teacher.fcs[0].in_features != split.n_in:
            raise ValueError(f"the teacher has {teacher.fcs[0].in_features} inputs, the data {split.n_in}")
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    net = QuantSpikingMLP(split.n_in, split.n_classes, config, qat)
    net.init_from(teacher)
    identity = dict(asdict(config), qat=asdict(qat),
                    teacher=None if teacher is None else [float(fc.weight.double().sum()) for fc in teacher.fcs])
    history = fit(net, config, split, loss_fn=_loss_fn(qat, teacher), lr=qat.lr, progress=progress,
                  resume=resume, identity=identity, on_epoch=on_epoch, desc=f"train --qat {qat.method}")
    return net, history


def export(net: QuantSpikingMLP, *, calibration: CalibrationSet | np.ndarray | None = None,
           margin_bits: int = 1) -> Model:
    """The integer :class:`Model` of a quantization-aware network (validated).

    With ``membrane_bits`` None the k of every layer is calibrated on ``calibration`` stimuli as in
    :func:`qlif.golden.training.quantize.quantize` (required then; recorded as the metadata's
    ``calibration_data``, a bare array as ``"given"``); otherwise the trained k is used.
    """
    from qlif.golden.spec.reference import run

    cfg, qat = net.config, net.qat
    layers = net.integer_layers()
    if isinstance(calibration, np.ndarray):
        calibration = CalibrationSet(calibration, "given")
    if qat.membrane_bits is not None:
        calibration = None                              # the trained k: nothing is chosen on data
    bits = qat.weight_bits

    def build(ks) -> Model:
        return Model(timesteps=cfg.timesteps, layers=tuple(
            Layer(weights=d["weights"], weight_bits=bits, membrane_bits=k, threshold=d["threshold"],
                  leak_shift=net.lam, reset="subtract", codebook=d["codebook"])
            for d, k in zip(layers, ks, strict=True)), metadata={
            "created_by": f"qlif.golden.training.qat ({qat.method})",
            "method": qat.method,
            "scales": [d["unit"] for d in layers],
            "float_thresholds": net.thresholds,
            "qat": asdict(qat),
            "calibration_data": "none" if calibration is None else calibration.metadata,
            "seed": cfg.seed,
            "test_fraction": cfg.test_fraction,
            "dataset": cfg.dataset,
            **coding_metadata(cfg),
        })

    if qat.membrane_bits is None:
        if calibration is None:
            raise ValueError("export needs calibration stimuli to choose the membrane bits")
        wide = run(build([max(MEMBRANE_BITS)] * len(layers)), calibration.x).membranes
        ks = [min(bits_for_range(int(v.min()), max(int(v.max()), d["threshold"] + 2)) + margin_bits,
                  max(MEMBRANE_BITS)) for d, v in zip(layers, wide, strict=True)]
    else:
        ks = [qat.membrane_bits] * len(layers)
    model = build(ks)
    model.validate()
    return model
