"""A synapse memory in iCE40 UltraPlus single-port RAM (SPRAM), written once at start-up, then read.

SPRAM (``SB_SPRAM256KA``, 16 bits x 16384 words, four on the UP5K) is not initialised by the
bitstream, so unlike a block RAM it gets its contents from :class:`~qlif.hw.flash.FlashLoader` after
configuration. A ``depth`` x ``width`` memory takes ``ceil(width / 16)`` tiles side by side and
``ceil(depth / 16384)`` rows of them; the read data of the row addressed in the last cycle is selected
by a registered row index.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.vendor import LatticeICE40Platform

__all__ = ["TILE_WIDTH", "TILE_DEPTH", "SpramStore"]

TILE_WIDTH = 16
TILE_DEPTH = 16384


class SpramStore(wiring.Component):
    """``depth`` words of ``width`` bits in SPRAM tiles (on an iCE40 platform) or an equivalent memory (in
    simulation and on other platforms), with a synchronous read port and a write port.

    Parameters
    ----------
    width, depth : int

    Members
    -------
    read_addr : In(range(depth))
    read_data : Out(width)
        The word at ``read_addr`` of the previous cycle (one cycle of latency, as a block RAM read port).
    write_addr : In(range(depth))
    write_data : In(width)
    write_en : In(1)
        Write ``write_data`` at ``write_addr``. Single-port RAM: in a cycle with a write, the read port's
        address is ignored and ``read_data`` of the next cycle is undefined.

    Memory: ``ceil(width / 16) * ceil(depth / 16384)`` SPRAM tiles.
    """

    def __init__(self, *, width: int, depth: int):
        for name, value in (("width", width), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self._width = width
        self._depth = depth
        super().__init__({
            "read_addr": In(range(depth)),
            "read_data": Out(width),
            "write_addr": In(range(depth)),
            "write_data": In(width),
            "write_en": In(1),
        })

    @property
    def tiles(self) -> tuple[int, int]:
        """(tiles side by side, rows of tiles)."""
        return -(-self._width // TILE_WIDTH), -(-self._depth // TILE_DEPTH)

    def elaborate(self, platform):
        m = Module()
        if not isinstance(platform, LatticeICE40Platform):
            # Simulation (and devices without SPRAM): the same behaviour from an inferred memory.
            m.submodules.mem = mem = Memory(shape=self._width, depth=self._depth, init=[])
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(self.read_addr), self.read_data.eq(rd.data), wr.addr.eq(self.write_addr),
                         wr.data.eq(self.write_data), wr.en.eq(self.write_en)]
            return m
        across, rows = self.tiles
        addr = Signal(range(rows * TILE_DEPTH))
        m.d.comb += addr.eq(self.read_addr)
        with m.If(self.write_en):
            m.d.comb += addr.eq(self.write_addr)
        row = addr[14:] if rows > 1 else 0
        row_read = Signal(range(rows))
        m.d.sync += row_read.eq(row)
        data = Signal(across * TILE_WIDTH)
        m.d.comb += data.eq(self.write_data)
        outs = []
        for r in range(rows):
            out = Signal(across * TILE_WIDTH, name=f"row{r}_data")
            outs.append(out)
            for t in range(across):
                m.submodules[f"spram_{r}_{t}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=addr[:14], i_DATAIN=data[16 * t:16 * t + 16], i_MASKWREN=0b1111,
                    i_WREN=self.write_en & (row == r), i_CHIPSELECT=1, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=out[16 * t:16 * t + 16],
                )
        with m.Switch(row_read):
            for r, out in enumerate(outs):
                with m.Case(r):
                    m.d.comb += self.read_data.eq(out)
        return m
