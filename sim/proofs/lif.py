"""The LIF datapath equals the contract for every input: a proof written from docs/semantics.md.

:class:`~qlif.hw.lif.LifDatapath` bakes a layer's parameters (``b``, ``k``, codebook, ``theta``, ``lam``,
reset kind) into its logic, so the harness holds one datapath per parameter set and lets the solver choose
every port input of each (``AnyConst``): the membrane ``v``, the weight code of each lane, and the
previous step's recorded membrane. Beside each it restates the contract in a few lines of Amaranth
written from docs/semantics.md (not from hw/lif.py: the codebook is a table of the documented values,
saturation a min/max, the leak and the resets as the page writes them), and asserts, lane by lane:

* ``integrated == sat(v + W[code])`` (step 3, one input event);
* ``spikes == (v > theta)`` (step 4);
* ``leaked == leak(v)`` (step 1 of the next step);
* ``reset_next == reset(leak(p), p > theta)`` for ``pending = leak(p)`` and ``resets = (p > theta)``
  (step 2 of the next step), where ``p`` is any membrane of the previous step.

The reset's inputs are those of the contract's state: step 4 records ``s = u > theta`` with ``v = u``, and a
clear gives ``v = s = 0`` (where ``0 > theta`` is false, as ``theta >= 0``), so the previous spike is
always ``p > theta`` of the recorded membrane ``p``. Other pairs (a spike with ``p <= theta``) are not
states of the contract; the datapath's subtract reset does not saturate and relies on that (see its
comment in hw/lif.py).

The datapath is combinational and its inputs are free in the first step, so a bounded check of depth 1
is a complete proof. What the default suite narrows is the parameter sets, not the depth
(:func:`configs`): one per ``k`` (:data:`QUICK`), three per ``k`` in ``make formal`` (with :data:`FULL`),
chosen to hold the extreme and odd values of each parameter. Not every combination: smtbmc checks all
assertions of a design in one query, whose time grows much faster than the number of datapaths in it,
and one run per parameter set costs seconds of tool start-up (docs/verification.md, "Formal proofs").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, C, Elaboratable, Module, Mux, Signal, signed

from qlif.golden.spec.model import Layer
from qlif.hw.lif import LifDatapath
from qlif.sim.formal import Proof
from qlif.sim.mutants import Mutant
from qlif.sim.mutants import get as _mutant

__all__ = ["Config", "configs", "LifHarness", "PROOFS"]

#: The membrane widths proved (the issue's ``k <= 8``; 1-bit membranes are not in the format).
K_RANGE = range(2, 9)
#: ``b`` of the format (docs/semantics.md).
WEIGHT_BITS = (1, 2, 4, 8)
#: Lanes per datapath: two, so that the lane slicing of ``codes`` and the per-lane ports are checked too.
LANES = 2


@dataclass(frozen=True)
class Config:
    """One parameter set of a layer (the datapath's elaboration parameters)."""

    b: int
    k: int
    theta: int
    lam: int | None
    reset: str
    codebook: tuple[int, ...] | None

    def layer(self) -> Layer:
        """A one-synapse :class:`Layer` with these parameters (its weight: the codebook's first value)."""
        first = contract_codebook(self)[0]
        layer = Layer(weights=np.full((1, 1), first, np.int64), weight_bits=self.b, membrane_bits=self.k,
                      threshold=self.theta, leak_shift=self.lam, reset=self.reset, codebook=self.codebook)
        layer.validate("proof")
        return layer


def contract_codebook(config: Config) -> tuple[int, ...]:
    """The value of each code as docs/semantics.md states it: the layer's codebook, or by default the
    two's complement value of the b-bit code (for ``b = 1``: code 0 is -1, code 1 is +1)."""
    if config.codebook is not None:
        return config.codebook
    b = config.b
    if b == 1:
        return (-1, 1)
    return tuple(c - (1 << b) if c >> (b - 1) else c for c in range(1 << b))


def custom_codebook(b: int, k: int) -> tuple[int, ...]:
    """A custom codebook for the proof: the format's extremes -32768 and 32768 first (all a 1-bit book
    holds), then 0 and -1, then values just past both membrane bounds (one weight saturates), then random
    values within twice the membrane range."""
    span = 1 << k
    values = [-(1 << 15), 1 << 15, 0, -1, 1, -span - 3, span + 5, 3]
    rng = np.random.default_rng(1000 * b + k)
    values += [int(x) for x in rng.integers(-2 * span, 2 * span + 1, size=max(0, (1 << b) - len(values)))]
    return tuple(values[:1 << b])


#: The default suite's parameter set per ``k``: ``(theta, lam, reset, custom codebook)``. Together they hold
#: ``theta`` 0, 1, odd and even values and the largest (``2^(k-1) - 2``), no leak, ``lam`` 0, 1, ``k - 1``
#: and 15, both resets (the subtract one with an odd ``theta``) and a custom codebook.
QUICK = {2: (0, None, "subtract", False), 3: (1, 0, "zero", False), 4: (6, 1, "subtract", False),
         5: (7, 4, "subtract", False), 6: (30, 15, "zero", False), 7: (62, 6, "subtract", True),
         8: (126, 2, "zero", False)}
#: What ``make formal`` adds per ``k``: two more parameter sets, pairing other values of ``theta`` (0, 1,
#: middle and near-largest), ``lam`` and reset kind, seven of the 14 with the custom codebook.
FULL = {2: ((0, 15, "zero", True), (0, 1, "subtract", False)),
        3: ((0, 15, "subtract", False), (1, None, "zero", True)),
        4: ((1, None, "zero", True), (3, 3, "subtract", False)),
        5: ((13, 0, "subtract", True), (1, 5, "zero", False)),
        6: ((1, 5, "subtract", True), (15, 2, "zero", False)),
        7: ((31, None, "zero", False), (1, 15, "subtract", False)),
        8: ((125, 7, "subtract", True), (63, 0, "zero", True))}


def configs(b: int, *, full: bool) -> list[Config]:
    """The parameter sets proved for ``b``: :data:`QUICK`, and with ``full`` also :data:`FULL`."""
    out = []
    for k in K_RANGE:
        picks = [QUICK[k], *(FULL[k] if full else ())]
        out += [Config(b, k, theta, lam, reset, custom_codebook(b, k) if custom else None)
                for theta, lam, reset, custom in picks]
    return out


def _sat(x, k: int):
    """``sat(x) = min(max(x, -2^(k-1)), 2^(k-1) - 1)``."""
    lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
    return Mux(x < lo, lo, Mux(x > hi, hi, x))


def _leak(v, lam: int | None):
    """``v`` if ``lam`` is null, else ``v - (v >> lam)``, ``>>`` an arithmetic shift (``v`` is signed)."""
    return v if lam is None else v - (v >> lam)


def _reset(u, s, theta: int, k: int, kind: str):
    """subtract: ``sat(u - theta * s)``; zero: ``0`` if ``s`` else ``u``."""
    if kind == "subtract":
        return _sat(u - Mux(s, theta, 0), k)
    return Mux(s, 0, u)


def _weight(m: Module, code, book: tuple[int, ...]):
    """``W = book[code]``, a table of constants."""
    width = max(max(abs(x) for x in book).bit_length() + 1, 2)
    value = Signal(signed(width))
    with m.Switch(code):
        for c, w in enumerate(book):
            with m.Case(c):
                m.d.comb += value.eq(w)
    return value


class LifHarness(Elaboratable):
    """One :class:`~qlif.hw.lif.LifDatapath` per :class:`Config`, each checked against the contract.

    Parameters
    ----------
    configs : list of Config
    """

    def __init__(self, configs: list[Config]):
        self.configs = list(configs)

    def elaborate(self, platform):
        m = Module()
        free = {}
        for n, config in enumerate(self.configs):
            k, b, theta = config.k, config.b, config.theta
            m.submodules[f"dp{n}"] = dp = LifDatapath(layer=config.layer(), lanes=LANES)
            book = contract_codebook(config)
            for i in range(LANES):
                if (k, b, i) not in free:
                    free[k, b, i] = AnyConst(signed(k)), AnyConst(b), AnyConst(signed(k))
                v, code, prev = free[k, b, i]
                m.d.comb += [dp.membrane[i].eq(v), dp.codes[i * b:(i + 1) * b].eq(code),
                             dp.pending[i].eq(_leak(prev, config.lam)), dp.resets[i].eq(prev > theta)]
                w = _weight(m, code, book)
                m.d.comb += [
                    Assert(dp.integrated[i] == _sat(v + w, k)),
                    Assert(dp.spikes[i] == (v > C(theta, signed(k)))),
                    Assert(dp.leaked[i] == _leak(v, config.lam)),
                    Assert(dp.reset_next[i] == _reset(_leak(prev, config.lam), prev > theta, theta, k,
                                                      config.reset)),
                ]
        return m


def _build(b: int, full: bool):
    return lambda: (LifHarness(configs(b, full=full)), [])


#: Formal-only broken designs (not in the mutation score, :data:`qlif.sim.mutants.MUTANTS`).
#: The subtract reset zeroes instead of subtracting theta where theta is odd: a bug only some theta show.
RESET_ODD_THETA = Mutant(
    "lif-reset-odd-theta", "the subtract reset of a layer with an odd theta resets to zero",
    "qlif.hw.lif", "LifDatapath.elaborate",
    r"u = Mux\(s, \(u - theta\)\[:k\]\.as_signed\(\), u\)",
    r"u = Mux(s, 0 if layer.threshold % 2 else (u - theta)[:k].as_signed(), u)")
#: The leak of a shift of 15 is taken as no leak (a bug only the largest leak shows).
LEAK_15 = Mutant(
    "lif-leak-15", "a layer with leak shift 15 does not leak",
    "qlif.hw.lif", "LifDatapath.elaborate",
    r"v if layer\.leak_shift is None else", r"v if layer.leak_shift in (None, 15) else")
#: Lanes of the codes port taken from the wrong bits (lane i reads lane 0's code).
CODE_LANES = Mutant(
    "lif-code-lane", "every lane decodes lane 0's weight code",
    "qlif.hw.lif", "LifDatapath.elaborate",
    r"self\.codes\[i \* b:\(i \+ 1\) \* b\]", r"self.codes[0:b]")


#: The broken designs each ``b``'s proof runs (each once in all, to keep the default suite short; every one
#: breaks all ``b``).
BROKEN = {1: ("sat-top", "spike-ge"), 2: ("sat-bottom", "reset-swapped"),
          4: ("leak-shift", "leak-negative", CODE_LANES), 8: (RESET_ODD_THETA, LEAK_15)}


def _proof(b: int) -> Proof:
    broken = tuple(_mutant(x) if isinstance(x, str) else x for x in BROKEN[b])
    return Proof(
        name=f"lif-b{b}",
        claim=(f"LifDatapath with b = {b}, k = 2..8, equals the contract (integrate, fire, leak, reset) for "
               "every membrane, code and previous membrane, lane by lane"),
        build=_build(b, full=False), full_build=_build(b, full=True),
        mode="bmc", depth=1, quick_depth=1, solver="yices",
        why_depth=("combinational: no state, so one step from any input is every case (a BMC of depth 1 is a "
                   "complete proof); the default suite proves one parameter set per k, make formal three"),
        broken=broken)


PROOFS: tuple[Proof, ...] = tuple(_proof(b) for b in WEIGHT_BITS)
