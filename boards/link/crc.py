"""CRC-16/CCITT-FALSE in hardware, one byte per cycle (the host protocol's checksum).

The CRC register after a byte is a linear function over GF(2) of the register before it and the byte
(no init or final XOR enters a single step), so each of the 16 next-state bits is the XOR of a fixed
subset of the 24 input bits. The subsets are derived here from the bit-serial reference
:func:`qlif.boards.protocol.crc16_byte` by feeding it one input bit at a time, so the hardware cannot
disagree with the host's CRC: there is no hand-written XOR table to get wrong.
"""

from __future__ import annotations

from functools import cache

from amaranth.hdl import Cat, Value

from qlif.boards.protocol import crc16_byte

__all__ = ["crc16_taps", "crc16_next"]


@cache
def crc16_taps() -> tuple[tuple[int, ...], ...]:
    """For each next-state bit ``k``, the input bits it is the XOR of (0..15: CRC, 16..23: the byte)."""
    columns = [crc16_byte(1 << i, 0) for i in range(16)] + [crc16_byte(0, 1 << i) for i in range(8)]
    return tuple(tuple(i for i, col in enumerate(columns) if col >> k & 1) for k in range(16))


def crc16_next(crc: Value, byte: Value) -> Value:
    """The CRC register after ``byte`` (combinational): an XOR of at most 7 inputs per bit, two LUT4
    levels on an iCE40."""
    bits = Cat(crc, byte)
    return Cat(*(Cat(*(bits[i] for i in taps)).xor() for taps in crc16_taps()))
