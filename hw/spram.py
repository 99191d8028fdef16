"""A synapse memory in iCE40 UltraPlus single-port RAM (SPRAM), written once at start-up, then read.

SPRAM (``SB_SPRAM256KA``, 16 bits x 16384 words, four on the UP5K) is not initialised by the
bitstream, so unlike a block RAM it gets its contents from :class:`~qlif.hw.flash.FlashLoader` after
configuration. A ``depth`` x ``width`` memory takes ``ceil(width / 16)`` tiles side by side and
``ceil(depth / 16384)`` rows of them; the read data of the row addressed in the last cycle is selected
by a registered row index.

While idle the tiles can sleep (``sleep``, the primitive's ``SLEEP``): the array keeps its contents at the
lowest current that retains them (``POWEROFF``, which loses them, is never used: the weights would have to
come from the flash again). The owner of ``sleep`` releases it long enough before the next access for the
tiles to wake (:class:`~qlif.boards.tops.wakeup.WakeupCore` releases it with the oscillator's power-up,
200 us or more before the core's clock runs).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
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
    read : Out(memory.ReadPort.Signature(addr_width=ceil(log2 depth), shape=width))
        A synchronous read port, as a block RAM's: ``data`` is the word at ``addr`` of the previous cycle.
        ``en`` must stay 1 (its default): the SPRAM reads every cycle.
    write : Out(memory.WritePort.Signature(addr_width=ceil(log2 depth), shape=width))
        Write ``data`` at ``addr`` while ``en``. Single-port RAM: in a cycle with a write, the read port's
        address is ignored and the read ``data`` of the next cycle is undefined.
    sleep : In(1)
        Low (its default: every build that leaves it undriven is unchanged): normal operation. High: the
        tiles sleep, keeping their contents; no clock edge may reach the memory meanwhile (the read port
        reads at every edge), nor until they have woken. The model used off iCE40 (simulation) keeps its
        contents as well, and sets the sticky :attr:`asleep_access` at any edge while ``sleep`` is high
        (a bench reads it; its read data is then all ones, so that a result built on it is wrong too).

    Memory: ``ceil(width / 16) * ceil(depth / 16384)`` SPRAM tiles.
    """

    def __init__(self, *, width: int, depth: int):
        for name, value in (("width", width), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self._width = width
        self._depth = depth
        addr_width = max(0, (depth - 1).bit_length())
        super().__init__({
            "read": Out(ReadPort.Signature(addr_width=addr_width, shape=width)),
            "write": Out(WritePort.Signature(addr_width=addr_width, shape=width)),
            "sleep": In(1),
        })
        #: Not a port: in the model off iCE40, set (for good) by a clock edge while ``sleep`` is high.
        self.asleep_access = Signal()

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
            m.d.comb += [rd.addr.eq(self.read.addr), rd.en.eq(self.read.en & ~self.sleep),
                         wr.addr.eq(self.write.addr), wr.data.eq(self.write.data),
                         wr.en.eq(self.write.en & ~self.sleep)]
            # An access while asleep: flagged, written nothing, read all ones (the data of the next cycle).
            was_asleep = Signal()
            m.d.sync += was_asleep.eq(self.sleep)
            with m.If(self.sleep):
                m.d.sync += self.asleep_access.eq(1)
            m.d.comb += self.read.data.eq(Mux(was_asleep, ~0, rd.data))
            return m
        across, rows = self.tiles
        addr = Signal(range(rows * TILE_DEPTH))
        m.d.comb += addr.eq(self.read.addr)
        with m.If(self.write.en):
            m.d.comb += addr.eq(self.write.addr)
        row = addr[14:] if rows > 1 else 0
        row_read = Signal(range(rows))
        m.d.sync += row_read.eq(row)
        data = Signal(across * TILE_WIDTH)
        m.d.comb += data.eq(self.write.data)
        outs = []
        for r in range(rows):
            out = Signal(across * TILE_WIDTH, name=f"row{r}_data")
            outs.append(out)
            for t in range(across):
                m.submodules[f"spram_{r}_{t}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=addr[:14], i_DATAIN=data[16 * t:16 * t + 16], i_MASKWREN=0b1111,
                    i_WREN=self.write.en & (row == r), i_CHIPSELECT=1, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=self.sleep, i_POWEROFF=1,
                    o_DATAOUT=out[16 * t:16 * t + 16],
                )
        with m.Switch(row_read):
            for r, out in enumerate(outs):
                with m.Case(r):
                    m.d.comb += self.read.data.eq(out)
        return m
