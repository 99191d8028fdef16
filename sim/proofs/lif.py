"""The LIF datapath equals the contract for every input and every parameter set: a proof written from
docs/semantics.md.

:class:`~qlif.hw.lif.LifDatapath` bakes a layer's parameters (``b``, ``k``, codebook, ``theta``, ``lam``,
reset kind) into its logic. The proof covers every parameter set of the format for each ``b`` in 1, 2, 4, 8
and ``k`` in 2..8 with the default codebook: every ``theta`` in ``0 .. 2^(k-1) - 2`` (the format's range,
:meth:`~qlif.golden.spec.model.Layer.validate`), every ``lam`` in ``None, 0 .. 15`` and both resets, 8,398
sets per ``b``, 33,592 in all. How, and why it is sound:

* ``theta`` is a free solver input. The datapath's one use of the layer's threshold is
  ``theta = C(layer.threshold, signed(k))``; its ``threshold`` parameter (proof only) puts a ``signed(k)``
  signal there instead, and the same expressions (``v > theta``, ``u - theta``) take it. The built
  hardware of a layer is therefore this proof build with the constant substituted, and one build proves
  every ``theta`` (the harness assumes the format's range). That holds only while the generator does not
  read ``theta`` as a Python value (a branch on it would build other logic for other values): the
  harness hands it a layer whose threshold raises on any use (:data:`UNREAD`), so such a branch fails
  the build instead of passing unproved.
* ``lam``, the reset kind and ``k``/``b`` are Python values the generator branches on (``lam is None``,
  a shift by a constant is a slice, ``reset == "subtract"``, widths), so each combination is its own
  build: 7 ``k`` x 17 ``lam`` x 2 resets = 238 builds per ``b`` (:func:`builds`).
* Codebooks: the default codebook of each ``b`` (two's complement, ``-1/+1`` for ``b = 1``) is proved
  for every set. A custom codebook is a table of constants the generator builds from the values (its
  width depends on them), so a proof holds for the codebooks it was built with: ``make formal`` adds,
  per ``b`` and ``k``, a custom book (:func:`custom_codebook`: the format's extremes, values past both
  membrane bounds, random ones) under both resets, no leak and every ``theta`` -- not every codebook.

Each build's harness (:class:`LifHarness`) lets the solver choose every input of two lanes (so the
lane slicing of ``codes`` is checked): the membrane ``v``, the weight code, and the previous step's
recorded membrane ``p``; beside the datapath it restates the contract in a few lines of Amaranth written
from docs/semantics.md (not from hw/lif.py: the codebook is a table of the documented values, saturation
a min/max, the leak and the resets as the page writes them), and asserts, lane by lane:

* ``integrated == sat(v + W[code])`` (step 3, one input event);
* ``spikes == (v > theta)`` (step 4);
* ``leaked == leak(v)`` (step 1 of the next step);
* ``reset_next == reset(leak(p), p > theta)`` for ``pending = leak(p)`` and ``resets = (p > theta)``
  (step 2 of the next step).

The reset's inputs are those of the contract's state: step 4 records ``s = u > theta`` with ``v = u``, and a
clear gives ``v = s = 0`` (where ``0 > theta`` is false, as ``theta >= 0``), so the previous spike is
always ``p > theta`` of the recorded membrane ``p``. Other pairs (a spike with ``p <= theta``) are not
states of the contract; the datapath's subtract reset does not saturate and relies on that (see its
comment in hw/lif.py).

The datapath is combinational, so one step from free inputs is every case. The builds are proved by
Yosys' SAT solver in one Yosys process per ``b`` (:func:`qlif.sim.formal.prove_each`): a SymbiYosys run
each would spend seconds of start-up on each of the 952 builds. The default suite proves a subset
(:data:`QUICK_LAMS`: every ``k`` and every ``theta``, five ``lam`` values, both resets); ``make formal``
every build.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal, signed

from qlif.golden.spec.model import LEAK_SHIFTS, RESETS, Layer
from qlif.hw.lif import LifDatapath
from qlif.sim.formal import Proof
from qlif.sim.mutants import Mutant
from qlif.sim.mutants import get as _mutant

__all__ = ["Build", "builds", "thetas", "parameter_sets", "LifHarness", "designs", "UNREAD", "PROOFS"]

#: The membrane widths proved (the issue's ``k <= 8``; 1-bit membranes are not in the format).
K_RANGE = range(2, 9)
#: ``b`` of the format (docs/semantics.md).
WEIGHT_BITS = (1, 2, 4, 8)
#: Lanes per datapath: two, so that the lane slicing of ``codes`` and the per-lane ports are checked too.
LANES = 2
#: Every leak shift of the format: none, or 0..15.
LAMS: tuple[int | None, ...] = (None, *LEAK_SHIFTS)
#: The default suite's leak shifts per ``k``: none, 0, 1, ``k - 1`` and 15 (the largest), with both resets.
QUICK_LAMS = (None, 0, 1, "k-1", 15)


def thetas(k: int) -> range:
    """Every threshold of the format for ``k``-bit membranes: ``0 <= theta < 2^(k-1) - 1``."""
    return range(0, (1 << (k - 1)) - 1)


@dataclass(frozen=True)
class Build:
    """One build of the datapath: the parameters the generator branches on; ``theta`` is free."""

    b: int
    k: int
    lam: int | None
    reset: str
    codebook: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        book = "" if self.codebook is None else " custom-codebook"
        return f"b={self.b} k={self.k} lam={self.lam} reset={self.reset}{book}"

    def layer(self) -> Layer:
        """The layer the datapath is built from, its threshold :data:`UNREAD` (``theta`` is a port)."""
        first = contract_codebook(self)[0]
        layer = Layer(weights=np.full((1, 1), first, np.int64), weight_bits=self.b, membrane_bits=self.k,
                      threshold=0, leak_shift=self.lam, reset=self.reset, codebook=self.codebook)
        layer.validate("proof")
        return replace(layer, threshold=UNREAD)


def builds(b: int, *, full: bool) -> list[Build]:
    """The builds proved for ``b``: with ``full`` every ``(k, lam, reset)`` and a custom codebook per ``k``
    (both resets, no leak); else every ``k`` and reset with the leak shifts of :data:`QUICK_LAMS`."""
    out = []
    for k in K_RANGE:
        lams = LAMS if full else tuple(dict.fromkeys(k - 1 if x == "k-1" else x for x in QUICK_LAMS))
        out += [Build(b, k, lam, reset) for lam in lams for reset in RESETS]
        if full:
            out += [Build(b, k, None, reset, custom_codebook(b, k)) for reset in RESETS]
    return out


def parameter_sets(selected: list[Build]) -> int:
    """The parameter sets ``(b, k, theta, lam, reset, codebook)`` the builds stand for."""
    return sum(len(thetas(build.k)) for build in selected)


class _Unread:
    """A layer threshold that raises on any use: the proof's builds must take theta from the port only."""

    def _used(self, *args):
        raise TypeError("LifDatapath read layer.threshold at elaboration: theta must only come from the "
                        "threshold port, or the formal proof's free theta does not stand for every theta "
                        "(sim/proofs/lif.py)")

    __index__ = __int__ = __float__ = __bool__ = __hash__ = _used
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _used
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __mod__ = __floordiv__ = _used
    __and__ = __or__ = __xor__ = __lshift__ = __rshift__ = __neg__ = __invert__ = __format__ = _used

    def __repr__(self) -> str:
        return "UNREAD"


#: The threshold of the layers the proof builds from (:class:`_Unread`).
UNREAD = _Unread()


def contract_codebook(build: Build) -> tuple[int, ...]:
    """The value of each code as docs/semantics.md states it: the layer's codebook, or by default the
    two's complement value of the b-bit code (for ``b = 1``: code 0 is -1, code 1 is +1)."""
    if build.codebook is not None:
        return build.codebook
    b = build.b
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


def _sat(x, k: int):
    """``sat(x) = min(max(x, -2^(k-1)), 2^(k-1) - 1)``."""
    lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
    return Mux(x < lo, lo, Mux(x > hi, hi, x))


def _leak(v, lam: int | None):
    """``v`` if ``lam`` is null, else ``v - (v >> lam)``, ``>>`` an arithmetic shift (``v`` is signed)."""
    return v if lam is None else v - (v >> lam)


def _reset(u, s, theta, k: int, kind: str):
    """subtract: ``sat(u - theta * s)``; zero: ``0`` if ``s`` else ``u``."""
    if kind == "subtract":
        return _sat(u - Mux(s, theta, 0), k)
    return Mux(s, 0, u)


def _weight(m: Module, code, build: Build):
    """``W[code]``: for the default codebook of ``b > 1`` the two's complement value of the code as the page
    defines it (``code - 2^b`` where ``code >= 2^(b-1)``); else a table of the codebook's constants (a
    256-entry table costs the SAT solver several times the formula)."""
    b = build.b
    if build.codebook is None and b > 1:
        return Mux(code >= (1 << (b - 1)), code - (1 << b), code)
    book = contract_codebook(build)
    width = max(max(abs(x) for x in book).bit_length() + 1, 2)
    value = Signal(signed(width))
    with m.Switch(code):
        for c, w in enumerate(book):
            with m.Case(c):
                m.d.comb += value.eq(w)
    return value


class LifHarness(Elaboratable):
    """One :class:`~qlif.hw.lif.LifDatapath` of ``build`` with a free ``theta``, checked against the contract.

    Parameters
    ----------
    build : Build

    Members
    -------
    ports : list of Signal
        The free inputs: ``theta``, then per lane the membrane, the code and the previous membrane.
    """

    def __init__(self, build: Build):
        k, b = build.k, build.b
        self.build = build
        self.theta = Signal(signed(k), name="theta")
        self.lanes = [(Signal(signed(k), name=f"v{i}"), Signal(b, name=f"code{i}"), Signal(signed(k), name=f"p{i}"))
                      for i in range(LANES)]
        self.ports = [self.theta, *(x for lane in self.lanes for x in lane)]

    def elaborate(self, platform):
        m = Module()
        build, theta = self.build, self.theta
        k, b, lam = build.k, build.b, build.lam
        m.d.comb += Assume((theta >= thetas(k).start) & (theta < thetas(k).stop))
        m.submodules.dp = dp = LifDatapath(layer=build.layer(), lanes=LANES, threshold=theta)
        for i, (v, code, prev) in enumerate(self.lanes):
            m.d.comb += [dp.membrane[i].eq(v), dp.codes[i * b:(i + 1) * b].eq(code),
                         dp.pending[i].eq(_leak(prev, lam)), dp.resets[i].eq(prev > theta)]
            w = _weight(m, code, build)
            m.d.comb += [
                Assert(dp.integrated[i] == _sat(v + w, k)),
                Assert(dp.spikes[i] == (v > theta)),
                Assert(dp.leaked[i] == _leak(v, lam)),
                Assert(dp.reset_next[i] == _reset(_leak(prev, lam), prev > theta, theta, k, build.reset)),
            ]
        return m


def designs(selected: list[Build]) -> dict[str, tuple[LifHarness, list[Signal]]]:
    """A harness per build, by label, for :func:`qlif.sim.formal.prove_each`."""
    out = {}
    for build in selected:
        harness = LifHarness(build)
        out[build.label] = (harness, harness.ports)
    return out


def _build(b: int, full: bool):
    return lambda: (designs(builds(b, full=full)), None)


#: Formal-only broken designs (not in the mutation score, :data:`qlif.sim.mutants.MUTANTS`).
#: The subtract reset zeroes instead of subtracting theta where theta is odd: a bug only some theta show.
RESET_ODD_THETA = Mutant(
    "lif-reset-odd-theta", "the subtract reset of a layer with an odd theta resets to zero",
    "qlif.hw.lif", "LifDatapath.elaborate",
    r"u = Mux\(s, \(u - theta\)\[:k\]\.as_signed\(\), u\)",
    r"u = Mux(s, Mux(theta[0], 0, (u - theta)[:k].as_signed()), u)")
#: The same bug as a Python branch on the layer's threshold, which the free theta cannot see: the proof's
#: build must refuse it (:data:`UNREAD`), not pass it (tests/test_formal.py).
READS_THETA = Mutant(
    "lif-reads-theta", "the subtract reset of a layer with an odd theta resets to zero (a Python branch)",
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


def _scope(b: int, full: bool) -> str:
    selected = builds(b, full=full)
    default = [x for x in selected if x.codebook is None]
    custom = parameter_sets(selected) - parameter_sets(default)
    return (f"{parameter_sets(default):,} parameter sets with the default codebook"
            + (f" and {custom:,} with custom ones" if custom else "") + f", in {len(selected)} builds")


def _proof(b: int) -> Proof:
    broken = tuple(_mutant(x) if isinstance(x, str) else x for x in BROKEN[b])
    return Proof(
        name=f"lif-b{b}",
        claim=(f"LifDatapath with b = {b}, k = 2..8, every theta, lam and reset (default codebook) equals the "
               "contract (integrate, fire, leak, reset) for every membrane, code and previous membrane, lane by "
               "lane"),
        build=_build(b, full=False), full_build=_build(b, full=True),
        mode="sat", depth=1, quick_depth=1, scope=lambda full: _scope(b, full),
        why_depth=("combinational: no state, so one step from any input is every case; the default suite "
                   f"proves {len(builds(b, full=False))} builds ({parameter_sets(builds(b, full=False))} "
                   f"parameter sets), make formal all {len(builds(b, full=True))} "
                   f"({parameter_sets(builds(b, full=True))})"),
        broken=broken)


PROOFS: tuple[Proof, ...] = tuple(_proof(b) for b in WEIGHT_BITS)
