"""snntorch's own ``snn.Leaky`` as an independent oracle for the integer contract (docs/semantics.md).

Where the contract is exactly representable in snntorch, a network of ``nn.Linear`` (the integer weight
matrix, no bias) and ``snn.Leaky`` layers run on integer-valued float64 tensors must give every spike
and every membrane of every layer, sample and step that ``qlif.golden.spec.reference.run`` gives.

The correspondence, worked out from both sources
------------------------------------------------
snntorch 1.0, ``snntorch/_neurons/leaky.py`` and ``neurons.py``: one call ``spk, mem = lif(I, mem_prev)``
with ``reset_delay=True`` (the default) does ::

    reset = H(mem_prev - threshold)           # mem_reset: H(z) = (z > 0), in the forward pass
    subtract: mem = beta * mem_prev + I - reset * threshold
    zero:     mem = beta * ((1 - reset) * mem_prev) + I
    spk = H(mem - threshold)                  # fire: strict ">"
    return spk, mem                           # mem before any reset (reset_delay=True skips it)

The contract, per neuron and step (no saturation reached) ::

    u = leak(v)                               # v for lam null, v - (v >> 0) = 0 for lam 0
    subtract: u = u - theta * s               zero: u = 0 if s else u
    u = u + sum_j x[j] W[j][i]                # = I, the nn.Linear output
    s = u > theta;  v = u                     # recorded: s and v

1. **Membrane.** Golden records ``v``, the membrane after integration and before the next step's
   reset; with ``reset_delay=True`` snntorch returns exactly that ``mem`` (the reset is applied at the
   start of the *next* call, never to the returned value). So golden ``v[t]`` == snntorch ``mem[t]``.
2. **Reset uses the previous spike.** snntorch does not store the spike; it recomputes
   ``reset = mem_prev > threshold`` from the returned membrane, which is the comparison that produced
   the previous spike, so ``reset == s[t-1]``. At ``t = 0`` both start from 0, and ``0 > theta`` is
   false because the contract has ``theta >= 0``.
3. **Leak.** ``lam = null`` is ``beta = 1`` (``u = v``). ``lam = 0`` is ``beta = 0``: the contract's
   ``v - (v >> 0) = 0`` and snntorch's ``0 * mem_prev`` (``-0.0`` for a negative membrane, which equals
   0). ``beta.clamp(0, 1)`` leaves both as they are.
4. **Order of leak and reset.** Subtract: contract ``leak(v) - theta * s``, snntorch
   ``beta * mem_prev - reset * threshold``: the same sum. Zero: contract ``0 if s else leak(v)``,
   snntorch ``beta * ((1 - s) * mem_prev)``; with ``beta`` 0 or 1 (and in fact any beta) these are
   equal, so **zero reset with lam 0 matches too** (both give ``u = I``): no case of the four
   (lam null/0 x subtract/zero) is left out.
5. **Layers.** The contract feeds layer ``l``'s spikes of step ``t`` to layer ``l + 1`` at the same
   step; the snntorch loop does the same (all layers per step, then the next step). snntorch's spikes
   are float32 (``(z > 0).float()``), cast to float64 for the next ``nn.Linear``: exact for 0/1.
6. **Exactness.** Every value is an integer far below 2^53, so float64 sums and products are exact;
   ``beta`` and ``threshold`` are float64 tensors (an integer threshold, 0 <= theta < 2^15).
7. **No saturation.** The comparison is honest only where the contract's ``sat`` is the identity. With
   ``membrane_bits = 16`` and small layers, :func:`_saturation_free` proves it from golden's own
   records for every neuron and step: after the reset and for every partial sum of the integration in
   any order (bounded by ``u + x @ max(W, 0)`` above and ``u + x @ min(W, 0)`` below), the value stays
   strictly inside ``-2^15 .. 2^15 - 1``; a draw that would touch a bound is redrawn, and the test
   asserts the proof for every model it compares.

Weights enter snntorch through the hardware's representation: the stored codes decoded by the
codebook in force (``effective_codebook[codes()]``), default and custom codebooks alike.

What snntorch cannot express exactly (saturation at k bits, the in-order saturating integration, leak
shifts 1..15 with the floor-rounded ``v - (v >> lam)``) is listed in docs/semantics.md, section
"snntorch as an oracle"; those features are checked against the contract read literally in
tests/test_golden.py and tests/test_quant_reference.py.

Reproduce one draw: ``_draw(seed)`` gives the model and its stimuli; every failure names the seed.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from qlif.golden.spec.model import Layer, Model, default_codebook
from qlif.golden.spec.reference import Result, run

#: Models compared (one seed each; seed % 4 + 1 layers, so 70 of each depth and 210 of 2..4 layers) and
#: samples per model (batched through snntorch at once).
N_MODELS = 280
SAMPLES = 32
K = 16                                   # membrane bits: room enough that nothing saturates
BETA = {None: 1.0, 0: 0.0}               # leak_shift -> snntorch beta, the two exact cases
MAX_REDRAWS = 50


def _layer(rng: np.random.Generator, n_in: int, n_out: int) -> Layer:
    b = int(rng.choice([1, 2, 4, 8]))
    codebook = None
    if rng.random() < 0.3:               # a custom codebook: any integers, repeats allowed
        codebook = tuple(int(c) for c in rng.integers(-9, 10, size=1 << b))
    book = np.asarray(codebook if codebook is not None else default_codebook(b), dtype=np.int64)
    if b == 8 and codebook is None:      # keep 8-bit drives small: weights from the codebook's middle
        book = book[np.abs(book) <= 24]
    w = rng.choice(book, size=(n_in, n_out))
    drive = float(np.sqrt(0.3 * n_in) * max(book.std(), 1.0))
    theta = int(rng.integers(0, max(2, int(2 * drive) + 1)))
    return Layer(weights=w.astype(np.int64), weight_bits=b, membrane_bits=K, threshold=theta,
                 leak_shift=[None, 0][int(rng.integers(2))], reset=["subtract", "zero"][int(rng.integers(2))],
                 codebook=codebook)


def _saturation_free(model: Model, x: np.ndarray, res: Result) -> bool:
    """True if no neuron in any step reaches a register bound: after the reset and for every partial sum
    of the integration in any order (the contract's ``sat`` never acts)."""
    inp = x.astype(np.int64)
    for layer, s, v in zip(model.layers, res.spikes, res.membranes, strict=True):
        n = inp.shape[0]
        v_prev = np.concatenate([np.zeros((n, 1, layer.n_out), np.int64), v[:, :-1].astype(np.int64)], axis=1)
        s_prev = np.concatenate([np.zeros((n, 1, layer.n_out), np.int64), s[:, :-1].astype(np.int64)], axis=1)
        u = v_prev if layer.leak_shift is None else v_prev - (v_prev >> layer.leak_shift)
        u = u - layer.threshold * s_prev if layer.reset == "subtract" else np.where(s_prev == 1, 0, u)
        up = u + inp @ np.maximum(layer.weights, 0)
        down = u + inp @ np.minimum(layer.weights, 0)
        if not (u.min() > layer.v_min and u.max() < layer.v_max and up.max() < layer.v_max
                and down.min() > layer.v_min):
            return False
        inp = s.astype(np.int64)
    return True


def _exercised(res: Result) -> bool:
    """Every layer spikes in some step of some sample and is silent in another."""
    return all(s.any() and (~s.any(axis=2)).any() for s in (s.astype(bool) for s in res.spikes))


@functools.cache
def _draw(seed: int) -> tuple[Model, np.ndarray, Result, int]:
    """Model, stimuli uint8 [SAMPLES, T, n_in], golden's result and the number of redraws for ``seed``."""
    rng = np.random.default_rng([0x5A7, seed])
    depth = seed % 4 + 1
    for redraws in range(MAX_REDRAWS):
        sizes = [int(rng.integers(1, 33))] + [int(rng.integers(1, 25)) for _ in range(depth)]
        model = Model(timesteps=int(rng.integers(1, 13)),
                      layers=tuple(_layer(rng, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)))
        model.validate()
        density = rng.uniform(0.0, 0.8, size=(SAMPLES, 1, 1))
        x = (rng.random((SAMPLES, model.timesteps, model.n_in)) < density).astype(np.uint8)
        res = run(model, x)
        if _saturation_free(model, x, res) and _exercised(res):
            return model, x, res, redraws
    raise AssertionError(f"seed {seed}: no saturation-free, exercised draw in {MAX_REDRAWS} tries")


def snntorch_run(model: Model, x: np.ndarray, *, reset_delay: bool = True,
                 beta: dict | None = None, swap_reset: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run ``model`` as ``nn.Linear`` + ``snn.Leaky`` layers in float64; per-layer spikes and membranes
    [S, T, N] as numpy arrays. The keyword arguments other than the model and inputs build *wrong*
    mappings, to show that the comparison would see them."""
    beta = BETA if beta is None else beta
    swap = {"subtract": "zero", "zero": "subtract"}
    f64 = torch.float64
    fcs, lifs = [], []
    for layer in model.layers:
        values = np.asarray(layer.effective_codebook, dtype=np.int64)[layer.codes()]   # decode the codes
        fc = nn.Linear(layer.n_in, layer.n_out, bias=False, dtype=f64)
        with torch.no_grad():
            fc.weight.copy_(torch.from_numpy(values.T.astype(np.float64)))
        fcs.append(fc)
        lifs.append(snn.Leaky(beta=torch.tensor(beta[layer.leak_shift], dtype=f64),
                              threshold=torch.tensor(float(layer.threshold), dtype=f64),
                              reset_mechanism=swap[layer.reset] if swap_reset else layer.reset,
                              reset_delay=reset_delay))
    n, steps, _ = x.shape
    xs = torch.from_numpy(x.astype(np.float64))
    mems = [torch.zeros(n, layer.n_out, dtype=f64) for layer in model.layers]
    spk_rec = [np.zeros((n, steps, layer.n_out), np.float64) for layer in model.layers]
    mem_rec = [np.zeros((n, steps, layer.n_out), np.float64) for layer in model.layers]
    with torch.no_grad():
        for t in range(steps):
            inp = xs[:, t]
            for l, (fc, lif) in enumerate(zip(fcs, lifs, strict=True)):
                spk, mems[l] = lif(fc(inp), mems[l])
                spk_rec[l][:, t] = spk.numpy()
                mem_rec[l][:, t] = mems[l].numpy()
                inp = spk.to(f64)
    return spk_rec, mem_rec


def _mismatch(model: Model, res: Result, spikes: list[np.ndarray], mems: list[np.ndarray]) -> str | None:
    """The first difference between golden and snntorch, in words; None if there is none."""
    for l in range(len(model.layers)):
        for what, gold, other in (("spike", res.spikes[l], spikes[l]), ("membrane", res.membranes[l], mems[l])):
            bad = np.argwhere(gold.astype(np.float64) != other)
            if len(bad):
                n, t, i = (int(a) for a in bad[0])
                layer = model.layers[l]
                return (f"layer {l} ({layer.reset}, lam {layer.leak_shift}, theta {layer.threshold}), sample {n}, "
                        f"step {t}, neuron {i}: golden {what} {gold[n, t, i]}, snntorch {other[n, t, i]} "
                        f"({len(bad)} {what}s of the layer differ)")
    return None


@pytest.mark.parametrize("seed", range(N_MODELS))
def test_snntorch_leaky_equals_golden(seed):
    model, x, res, _ = _draw(seed)
    assert _saturation_free(model, x, res), f"seed {seed}: golden reaches a register bound"
    for v in res.membranes:                       # the recorded membranes too, said plainly
        assert v.min() > -(1 << (K - 1)) and v.max() < (1 << (K - 1)) - 1, f"seed {seed}"
    spikes, mems = snntorch_run(model, x)
    for m in mems:
        assert np.array_equal(m, np.round(m)), f"seed {seed}: snntorch membrane not an integer"
    diff = _mismatch(model, res, spikes, mems)
    assert diff is None, f"seed {seed} (reproduce: _draw({seed}) in tests/test_snntorch_oracle.py): {diff}"


def test_draws_exercise_every_exact_case():
    """What the compared draws did, measured from golden's records: each (lam, reset) pair with a reset
    that took effect, negative membranes, 1-4 layers, theta 0, custom codebooks, each b."""
    seen: dict[str, int] = {}

    def hit(key: str, n: int = 1) -> None:
        seen[key] = seen.get(key, 0) + n

    for seed in range(N_MODELS):
        model, _, res, _ = _draw(seed)
        hit(f"layers {len(model.layers)}")
        for layer, s, v in zip(model.layers, res.spikes, res.membranes, strict=True):
            hit(f"b {layer.weight_bits}")
            hit("custom codebook", layer.codebook is not None)
            hit("theta 0", layer.threshold == 0)
            hit("negative membrane", bool((v < 0).any()))
            # a reset took effect: a spike at t-1 followed by a step t
            hit(f"reset after spike, lam {layer.leak_shift}, {layer.reset}", bool(s[:, :-1].any()))
    want = ([f"layers {n}" for n in (1, 2, 3, 4)] + [f"b {b}" for b in (1, 2, 4, 8)]
            + ["custom codebook", "theta 0", "negative membrane"]
            + [f"reset after spike, lam {lam}, {r}" for lam in (None, 0) for r in ("subtract", "zero")])
    missing = {k: seen.get(k, 0) for k in want if seen.get(k, 0) < 5}
    assert not missing, f"rarely or never exercised (< 5 times in {N_MODELS} models): {missing}"


@pytest.mark.parametrize("wrong", ["reset_delay=False", "beta swapped", "reset swapped"])
def test_the_oracle_sees_a_wrong_mapping(wrong):
    """The comparison is not vacuous: each plausible wrong mapping of the contract onto snntorch differs
    from golden on some of the first 64 draws."""
    kwargs = {"reset_delay=False": {"reset_delay": False},
              "beta swapped": {"beta": {None: 0.0, 0: 1.0}},
              "reset swapped": {"swap_reset": True}}[wrong]
    differs = 0
    for seed in range(64):
        model, x, res, _ = _draw(seed)
        differs += _mismatch(model, res, *snntorch_run(model, x, **kwargs)) is not None
    assert differs >= 8, f"{wrong}: only {differs} of 64 draws differ from golden"
