"""The internal signals of a block under proof, by name, for a harness' auxiliary invariants; and
several harnesses proved as one design.

k-induction on port properties alone rarely closes: an unreachable state can hide behind a stalled port
for any number of steps. Its invariants have to talk about the block's state, which its ports do not
show, so the harness elaborates the block itself and looks its signals up by name::

    fragment = Fragment.get(dut, platform)
    m.submodules.dut = fragment
    find = signal_lookup(fragment, "hw/serializer.py", "Serializer.elaborate")
    head_valid = find("head_valid")

A name that is gone or no longer unique fails the harness' construction with the name and the place to
update, instead of a proof about the wrong signal. This reads Amaranth's fragment statements
(``_lhs_signals``, not a public API in Amaranth 0.5): a harness is tied to the RTL's internals anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Elaboratable, Fragment, Module, Signal

__all__ = ["signal_lookup", "together"]


def signal_lookup(fragment: Fragment, source: str, function: str) -> Callable[[str], Signal]:
    """A function from a name to the one signal of that name that ``fragment`` itself drives.

    Parameters
    ----------
    fragment : amaranth.hdl.Fragment
        The block, elaborated (its submodules' signals are not searched).
    source, function : str
        Where the signals are made, for the message when one is not found.
    """
    found: dict[str, dict[int, Signal]] = {}
    for statements in fragment.statements.values():
        for statement in statements:
            for signal in statement._lhs_signals():
                found.setdefault(signal.name, {})[id(signal)] = signal

    def find(name: str) -> Signal:
        signals = found.get(name, {})
        if len(signals) != 1:
            raise LookupError(f"{source}: {len(signals)} signals named {name!r} in {function}, not 1 "
                              f"(renamed? update the proof's harness)")
        return next(iter(signals.values()))
    return find


def together(*harnesses: Elaboratable) -> Module:
    """One design of several harnesses (each a submodule), whose assertions are proved together: a full
    run over more parameter sets than the default suite's (``Proof.full_build``)."""
    m = Module()
    for i, harness in enumerate(harnesses):
        m.submodules[f"harness{i}"] = harness
    return m
