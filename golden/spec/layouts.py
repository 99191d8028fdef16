"""Bit layouts that the RTL, its testbenches and the flow share with the integer model.

One home for each: the stream token (a spike address or the end of a timestep), the synapse memory
word (docs/architecture.md, memory map), and the spike queue entry of the serializer. The RTL builds its
Amaranth layouts from these widths; testbenches and reports pack and unpack words with them.
"""

from __future__ import annotations

from qlif.golden.spec.cycles import groups
from qlif.golden.spec.model import Layer

__all__ = ["TOKEN_ADDR_BITS", "EOT", "queue_entry_fields", "queue_entry_bits", "queue_ring_depth", "synapse_words"]

#: Address bits of a stream token (``events`` and ``spikes``): up to 65536 neurons per layer.
TOKEN_ADDR_BITS = 16
#: The ``eot`` flag of a token as a payload integer: the bit above the address (``addr | EOT``).
EOT = 1 << TOKEN_ADDR_BITS


def queue_entry_fields(max_groups: int, lanes: int) -> dict[str, int]:
    """The serializer's spike queue entry, field by field (name -> bits, lowest field first).

    ``group`` (``0 .. max_groups - 1``), ``mask`` (a lane's spike per bit), ``single`` (at most one lane
    left) and ``lane`` (the lowest lane left, ``0 .. lanes - 1``); the index fields are as wide as
    Amaranth makes a ``range`` shape (no bit for a range of one value).
    """
    return {"group": (max_groups - 1).bit_length(), "mask": lanes, "single": 1, "lane": (lanes - 1).bit_length()}


def queue_entry_bits(max_groups: int, lanes: int) -> int:
    """Bits of one spike queue entry (:func:`queue_entry_fields`), the width of the queue's ring words."""
    return sum(queue_entry_fields(max_groups, lanes).values())


def queue_ring_depth(max_groups: int) -> int:
    """Words of the spike queue's block RAM ring: the power of two above ``max_groups - 2`` (the first two
    entries of a train stay in registers), or 0 when ``max_groups <= 2`` (no ring)."""
    return 1 << (max_groups - 2).bit_length() if max_groups > 2 else 0


def synapse_words(layer: Layer, lanes: int) -> list[int]:
    """Synapse memory init: word ``g*n_in + j`` packs the codes of weights ``W[j][g*P + i]``, lane ``i``.

    Lanes past ``n_out`` (last group) hold code 0; their neurons are masked out of every result.
    Group-major order makes group 0 of event ``j`` word ``j``: the event address is the read address,
    with no multiplication on the path from the events port into the block RAM.
    """
    b, g_count = layer.weight_bits, groups(layer.n_out, lanes)
    codes = layer.codes().astype(int)
    words = []
    for g in range(g_count):
        for j in range(layer.n_in):
            word = 0
            for i, c in enumerate(codes[j, g * lanes:(g + 1) * lanes]):
                word |= int(c) << (i * b)
            words.append(word)
    return words
