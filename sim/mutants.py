"""Named mutants of the RTL, for the mutation score (``make mutation``, scripts/mutation.py).

A mutant is a small, deliberate bug in one function or method of ``hw/``: a regular expression and its
replacement applied to that function's source, which is then compiled in its module's namespace and
installed in place of the original (on its class, or in its module). Nothing in ``hw/`` is edited, and
the change is made before any Verilog is generated or Amaranth simulation built, so every way the
tests reach the RTL sees the same mutant::

    undo = apply("forward-1")      # NeuronLayer.elaborate without the distance-1 forwarding mux
    ...                            # generate Verilog, simulate: the mutant is in
    undo()

The test session applies the mutant named in ``QLIF_MUTANT`` (tests/conftest.py). Each mutant states
how many matches its pattern must have: when a change of ``hw/`` makes one stale, :func:`apply` fails
naming the mutant (:class:`StaleMutant`) instead of silently testing the unmutated RTL.

To add a mutant, append a :class:`Mutant` to :data:`MUTANTS`; tests/test_mutants.py then checks that it
applies and changes the Verilog of its small model (extend that model if the mutant needs something it
lacks).
"""

from __future__ import annotations
import __future__

import importlib
import inspect
import re
import sys
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Mutant", "MUTANTS", "StaleMutant", "names", "get", "apply", "install"]


class StaleMutant(RuntimeError):
    """A mutant's pattern no longer matches its target's source as often as it says (``hw/`` changed)."""


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: ``pattern`` replaced by ``replacement`` in the source of ``module.target``.

    Parameters
    ----------
    name : str
        Short kebab-case name (``QLIF_MUTANT``, ``--only``).
    breaks : str
        What the bug breaks, in one line.
    module : str
        The module holding the target (``"qlif.hw.layer"``).
    target : str
        The function's qualified name in that module: ``"saturate"`` or ``"NeuronLayer.elaborate"``.
    pattern, replacement : str
        For :func:`re.subn` on the dedented source (``re.MULTILINE``); the replacement may use groups.
    count : int
        The exact number of matches the pattern must have.
    """

    name: str
    breaks: str
    module: str
    target: str
    pattern: str
    replacement: str
    count: int = 1


_LIF, _LAYER, _SER, _NET = "qlif.hw.lif", "qlif.hw.layer", "qlif.hw.serializer", "qlif.hw.network"

#: The catalogue, in the order scripts/mutation.py runs it.
MUTANTS: tuple[Mutant, ...] = (
    Mutant("sat-top", "an upward overflow saturates to v_max - 1 instead of v_max",
           _LIF, "saturate",
           r"C\(\(1 << \(width - 1\)\) - 1, signed\(width\)\)", r"C((1 << (width - 1)) - 2, signed(width))"),
    Mutant("sat-bottom", "a downward overflow saturates to v_min + 1 instead of v_min",
           _LIF, "saturate",
           r"C\(-\(1 << \(width - 1\)\), signed\(width\)\)", r"C(-(1 << (width - 1)) + 1, signed(width))"),
    Mutant("leak-shift", "the leak shifts by lam + 1 (v - (v >> (lam + 1)))",
           _LIF, "LifDatapath.elaborate",
           r"\(v >> layer\.leak_shift\)", r"(v >> (layer.leak_shift + 1))"),
    Mutant("leak-negative", "a negative membrane is not leaked",
           _LIF, "LifDatapath.elaborate",
           r"v - \(v >> layer\.leak_shift\)", r"Mux(v < 0, v, v - (v >> layer.leak_shift))"),
    Mutant("reset-swapped", "subtract layers reset to zero and zero layers subtract theta",
           _LIF, "LifDatapath.elaborate",
           r'if layer\.reset == "subtract":', r'if layer.reset != "subtract":'),
    Mutant("spike-ge", "a neuron spikes at v >= theta instead of v > theta",
           _LIF, "LifDatapath.elaborate",
           r"self\.spikes\[i\]\.eq\(v > theta\)", r"self.spikes[i].eq(v >= theta)"),
    # Layer 0 runs an event that arrives while the one before it waits (G >= 2) first: the same sum,
    # a different result only where an intermediate value saturates.
    Mutant("integrate-order", "layer 0 integrates a waiting event after the good one that arrives behind it",
           _NET, "Network._input",
           r"head_next\.eq\(Mux\(head\.valid, head, Mux\(take, new, 0\)\)\),(\s+)"
           r"second_next\.eq\(Mux\(head\.valid & take, new, second\)\)",
           r"head_next.eq(Mux(head.valid, Mux(take & new.good & ~new.eot, new, head), Mux(take, new, 0))),\1"
           r"second_next.eq(Mux(head.valid & take, Mux(new.good & ~new.eot, head, new), second))"),
    Mutant("forward-1", "no forwarding from stage C (the op issued one cycle earlier; G = 1)",
           _LAYER, "NeuronLayer.elaborate",
           r"membrane = Mux\(c_writes, c_pending, membrane\)", r"membrane = membrane"),
    Mutant("forward-2", "no forwarding from stage D (the op issued two cycles earlier; G <= 2)",
           _LAYER, "NeuronLayer.elaborate",
           r"membrane = Mux\(d_writes & \(d_group == b_group\), d_pending, membrane\)", r"membrane = membrane"),
    Mutant("forward-3", "no forwarding of the last write (the op issued three cycles earlier; G <= 3)",
           _LAYER, "NeuronLayer.elaborate",
           r"membrane = Mux\(w_valid & \(w_group == b_group\), w_value, membrane\)", r"membrane = membrane"),
    Mutant("clear-last-group", "the clear pass leaves the membranes of each layer's last group",
           _LAYER, "NeuronLayer.elaborate",
           r"mem_wr\.en\.eq\(d_op != Op\.NONE\)",
           r"mem_wr.en.eq((d_op != Op.NONE) & ((d_op != Op.CLEAR) | (d_group != G - 1)))"),
    Mutant("padding-lanes", "lanes past n_out in a layer's last group are not masked out of v and s",
           _LAYER, "NeuronLayer.elaborate",
           r"lane_ok\.eq\(\(1 << tail\) - 1\)", r"lane_ok.eq((1 << P) - 1)"),
    Mutant("lowest-lane", "the serializer's lowest-lane search prefers the upper half (highest lane first)",
           _SER, "_lowest_two",
           r"low = Mux\(any_lo, lo\(low_lo\), hi\(low_hi\)\)", r"low = Mux(any_hi, hi(low_hi), lo(low_lo))"),
    Mutant("queue-wrap", "the spike queue's ring write pointer does not wrap at the ring's depth",
           _SER, "Serializer.elaborate",
           r"wr_ptr = Signal\(range\(depth\)\)", r"wr_ptr = Signal(range(2 * depth))"),
    Mutant("step-cycles", "step_cycles is cycles + 1 (one cycle short)",
           _NET, "Network.elaborate",
           r"self\.step_cycles\.eq\(cycles \+ 2\)", r"self.step_cycles.eq(cycles + 1)"),
    Mutant("argmax-tie", "the argmax's tie term is 0: a lower neuron that ties the maximum never wins",
           _NET, "Network._count",
           r"ties\.append\((.*)\)$", r"ties.append((\1) & 0)"),
    Mutant("argmax-overtake", "the argmax's overtake term is 0: a count above the maximum never wins",
           _NET, "Network._count",
           r"overtakes\.append\((.*)\)$", r"overtakes.append((\1) & 0)"),
    Mutant("input-range", "events addresses n_in .. 2^ceil(log2 n_in) - 1 are taken as good (no < n_in test)",
           _NET, "Network._input",
           r"in_range = \(addr\[addr_width:\] == 0\) & \(low < model\.n_in\)",
           r"in_range = (addr[addr_width:] == 0)"),
    Mutant("input-order", "an events address equal to the step's last good one is taken as ascending",
           _NET, "Network._input",
           r"ascending = low >= next_addr", r"ascending = low + 1 >= next_addr"),
)


def names() -> list[str]:
    """The mutants' names, in catalogue order."""
    return [mutant.name for mutant in MUTANTS]


def get(name: str) -> Mutant:
    """The mutant called ``name``; a one-line ``ValueError`` listing the valid names if there is none."""
    for mutant in MUTANTS:
        if mutant.name == name:
            return mutant
    raise ValueError(f"unknown mutant {name!r}; valid: {', '.join(names())}")


def _mutated(mutant: Mutant) -> tuple[object, str, Callable, Callable]:
    """The technique: ``(owner, attribute, original, mutated)`` for ``mutant``'s target.

    The target's source (``inspect.getsource``, dedented) is rewritten with ``re.subn``, whose match
    count must be ``mutant.count``, and compiled as if it stood at its place in its file (the same file
    name and line numbers, and ``from __future__ import annotations`` as every qlif module has). The
    result becomes a function whose globals are the module's own, so names it looks up at run time
    (``saturate`` in ``LifDatapath.elaborate``) are the module's current ones, as the original's are.
    """
    module = importlib.import_module(mutant.module)
    owner = module
    *outer, attr = mutant.target.split(".")
    for part in outer:
        owner = getattr(owner, part, None)
    original = getattr(owner, "__dict__", {}).get(attr)
    if not isinstance(original, types.FunctionType):
        raise StaleMutant(f"mutant {mutant.name!r}: {mutant.module}.{mutant.target} is not a function defined "
                          f"there (hw/ changed: update sim/mutants.py)")
    lines, first = inspect.getsourcelines(original)
    source, n = re.subn(mutant.pattern, mutant.replacement, textwrap.dedent("".join(lines)), flags=re.MULTILINE)
    if n != mutant.count:
        raise StaleMutant(f"mutant {mutant.name!r}: {n} matches of {mutant.pattern!r} in {mutant.module}."
                          f"{mutant.target}, not {mutant.count} (hw/ changed: update sim/mutants.py)")
    code = compile("\n" * (first - 1) + source, inspect.getsourcefile(original), "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    # Defaults are evaluated in a copy of the module's namespace, so the def binds nothing in the module.
    scope = dict(vars(module))
    exec(code, scope)
    made = scope[original.__name__]
    if made.__code__.co_freevars:
        raise StaleMutant(f"mutant {mutant.name!r}: {mutant.module}.{mutant.target} uses a closure (super()?), "
                          f"which a recompiled copy cannot keep")
    mutated = types.FunctionType(made.__code__, original.__globals__, original.__name__, made.__defaults__)
    mutated.__kwdefaults__, mutated.__annotations__ = made.__kwdefaults__, made.__annotations__
    mutated.__qualname__, mutated.__doc__ = original.__qualname__, original.__doc__
    mutated.__qlif_mutant__ = mutant.name
    return owner, attr, original, mutated


def install(mutant: Mutant) -> Callable[[], None]:
    """Install ``mutant``; returns the function that puts the original back.

    A module-level function is also replaced in every module that imported it by name (``from m import
    f`` binds its own name), so that no caller keeps the original.
    """
    owner, attr, original, mutated = _mutated(mutant)
    places = [owner]
    if isinstance(owner, types.ModuleType):
        places += [mod for mod in list(sys.modules.values())
                   if mod is not owner and getattr(mod, "__dict__", {}).get(attr) is original]
    for place in places:
        setattr(place, attr, mutated)

    def undo() -> None:
        for place in places:
            setattr(place, attr, original)
    return undo


def apply(name: str) -> Callable[[], None]:
    """Install the mutant called ``name`` (:func:`get`, :func:`install`); returns its undo function."""
    return install(get(name))
