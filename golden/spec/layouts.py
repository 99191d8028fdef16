"""Bit layouts that the RTL, its testbenches and the flow share with the integer model.

One home for each: the stream token (a spike address or the end of a timestep), the synapse memory
word (docs/architecture.md, memory map), and the spike queue entry of the serializer. The RTL builds its
Amaranth layouts from these widths; testbenches and reports pack and unpack words with them.
"""

from __future__ import annotations

from qlif.golden.spec.cycles import groups
from qlif.golden.spec.model import Layer

__all__ = ["TOKEN_ADDR_BITS", "EOT", "synapse_words"]

#: Address bits of a stream token (``events`` and ``spikes``): up to 65536 neurons per layer.
TOKEN_ADDR_BITS = 16
#: The ``eot`` flag of a token as a payload integer: the bit above the address (``addr | EOT``).
EOT = 1 << TOKEN_ADDR_BITS


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
