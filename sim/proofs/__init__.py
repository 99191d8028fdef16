"""The formal proofs of the RTL (:mod:`qlif.sim.formal`), gathered in :data:`PROOFS`.

Each module of this package proves one block's properties and exposes its own ``PROOFS``, a tuple of
:class:`qlif.sim.formal.Proof`. :data:`PROOFS` is their concatenation, in the order of :data:`MODULES`; the
default suite (tests/test_formal.py) and ``make formal`` (scripts/formal.py) run every proof in it and
every broken design of each.

To add a module: write ``sim/proofs/<block>.py`` with a ``PROOFS`` tuple, import it below and add it to
:data:`MODULES` (one line each). Proof names must be unique: they name the work folders
(``build/formal/<name>``) and the test ids.
"""

from __future__ import annotations

from qlif.sim.formal import Proof
from qlif.sim.proofs import frame_rx, lif, network, serializer

__all__ = ["MODULES", "PROOFS", "get"]

#: The proof modules, in the order their proofs run.
MODULES = (lif, network, serializer, frame_rx)

#: Every proof of every module.
PROOFS: tuple[Proof, ...] = tuple(proof for module in MODULES for proof in module.PROOFS)

_names = [proof.name for proof in PROOFS]
if len(set(_names)) != len(_names):
    raise RuntimeError(f"duplicate proof names in qlif.sim.proofs: {sorted(n for n in _names if _names.count(n) > 1)}")


def get(name: str) -> Proof:
    """The proof called ``name``; a one-line ``ValueError`` listing the valid names if there is none."""
    for proof in PROOFS:
        if proof.name == name:
            return proof
    raise ValueError(f"unknown proof {name!r}; valid: {', '.join(_names)}")
