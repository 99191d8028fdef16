"""Start-up loader: weights from the configuration SPI flash into the SPRAM synapse memories.

After reset :class:`FlashLoader` wakes the flash (command ``0xAB``, release from deep power-down),
waits, then reads the weight image (command ``0x03``, plain SPI read, mode 0, SCK = clock / 2) from
``offset`` and writes it word by word into its targets, one after the other, and puts the flash back into
deep power-down (command ``0xB9``): nothing reads it again until the next configuration, and the iCE40's
configuration engine itself sends ``0xAB`` before it reads a bitstream, so a flash left powered down
does not stop a later CRESET_B or power cycle. On the iCEBreaker's W25Q128JV that is about 1 uA instead
of its standby current (about 10 uA typical, 50 uA at most: docs/boards.md, "The wake-up build"). The image (written by
:func:`weight_image`, and placed in the flash by the build's ``.flash.bin``) is, for each target in
order, its ``depth`` words of ``width`` bits, each as ``ceil(width / 8)`` bytes, least significant byte
first.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["READ", "RELEASE_POWER_DOWN", "POWER_DOWN", "DEFAULT_OFFSET", "FlashSignature", "WriteSignature",
           "FlashLoader", "weight_image"]

READ = 0x03                   #: SPI flash command: read data (24-bit address)
RELEASE_POWER_DOWN = 0xAB     #: SPI flash command: release from deep power-down
POWER_DOWN = 0xB9             #: SPI flash command: deep power-down (only 0xAB is obeyed until released)
#: Where the weight image sits in the flash: 1 MiB, past any iCE40 or ECP5-25F bitstream.
DEFAULT_OFFSET = 0x100000


class FlashSignature(wiring.Signature):
    """An SPI flash, controller side: ``sck``, ``cs`` (active high), ``copi`` out, ``cipo`` in."""

    def __init__(self):
        super().__init__({"sck": Out(1), "cs": Out(1), "copi": Out(1), "cipo": In(1)})


class WriteSignature(wiring.Signature):
    """A memory write port driven by the loader: ``addr``, ``data``, ``en`` (one word per pulse)."""

    def __init__(self, width: int, depth: int):
        super().__init__({"addr": Out(range(depth)), "data": Out(width), "en": Out(1)})


def weight_image(words: list[list[int]], widths: list[int]) -> bytes:
    """The flash image of the loader's targets: ``words[i]`` of ``widths[i]`` bits each."""
    out = bytearray()
    for target, width in zip(words, widths, strict=True):
        n = -(-width // 8)
        for w in target:
            if not 0 <= w < 1 << width:
                raise ValueError(f"word {w:#x} does not fit {width} bits")
            out += int(w).to_bytes(n, "little")
    return bytes(out)


class FlashLoader(wiring.Component):
    """Reads the weight image from an SPI flash after reset and writes it into memories.

    Parameters
    ----------
    targets : list of (width, depth)
        The memories to fill, in image order.
    offset : int
        Byte address of the image in the flash (24 bits).
    wake_cycles : int
        Cycles between the release-from-power-down command and the read (the flash needs 3 to 30 us:
        the default, 4096, is 40 us at 100 MHz).

    Members
    -------
    flash : Out(FlashSignature())
        The flash: SPI clock ``sck``, chip select ``cs`` (active high: the board resource inverts it),
        controller data out ``copi``, flash data out ``cipo``.
    t{i} : Out(WriteSignature(width, depth))
        Write port of target ``i``.
    done : Out(1)
        High once every target is written and the flash has been sent back into deep power-down (and
        from then on: the loader never selects the flash again).

    Throughput: one byte per 16 cycles (SCK is half the clock): ``16 * sum(depth * ceil(width / 8))``
    cycles plus about ``wake_cycles + 100`` (the power-down command is 18 of them).
    """

    def __init__(self, *, targets: list[tuple[int, int]], offset: int = DEFAULT_OFFSET, wake_cycles: int = 4096):
        if not targets:
            raise ValueError("targets must list at least one (width, depth)")
        for width, depth in targets:
            if not (isinstance(width, int) and isinstance(depth, int) and width >= 1 and depth >= 1):
                raise ValueError(f"targets must be (width, depth) pairs of positive integers, not {(width, depth)!r}")
        if not isinstance(offset, int) or not 0 <= offset < 1 << 24:
            raise ValueError(f"offset must be a 24-bit byte address, not {offset!r}")
        if not isinstance(wake_cycles, int) or wake_cycles < 1:
            raise ValueError(f"wake_cycles must be a positive integer, not {wake_cycles!r}")
        self._targets = [tuple(t) for t in targets]
        self._offset = offset
        self._wake = wake_cycles
        super().__init__({
            "flash": Out(FlashSignature()), "done": Out(1),
            **{f"t{i}": Out(WriteSignature(width, depth)) for i, (width, depth) in enumerate(self._targets)},
        })

    @property
    def image_bytes(self) -> int:
        return sum(depth * -(-width // 8) for width, depth in self._targets)

    def elaborate(self, platform):
        m = Module()
        spi = self.flash
        # The bit engine: a bit takes two cycles, SCK low then high. copi changes with SCK's fall, cipo is
        # sampled at the clock edge that ends SCK's high half (the flash changes it after SCK falls).
        out_sr = Signal(32)
        bits = Signal(range(33))
        in_sr = Signal(8)
        byte_done = Signal()
        m.d.comb += spi.copi.eq(out_sr[-1])
        m.d.sync += byte_done.eq(0)
        shifting = bits != 0
        with m.If(shifting):
            m.d.sync += spi.sck.eq(~spi.sck)
            with m.If(spi.sck):
                m.d.sync += [out_sr.eq(out_sr << 1), in_sr.eq((in_sr << 1) | spi.cipo), bits.eq(bits - 1)]
                with m.If(bits[:3] == 1):
                    m.d.sync += byte_done.eq(1)

        widest = max(-(-w // 8) for w, _ in self._targets)
        word = Signal(8 * widest)
        nbyte = Signal(range(widest + 1))
        timer = Signal(range(self._wake + 1))
        writes = [getattr(self, f"t{i}") for i in range(len(self._targets))]
        for w in writes:
            m.d.sync += w.en.eq(0)

        with m.FSM():
            with m.State("START"):
                m.d.sync += [spi.cs.eq(1), out_sr.eq(RELEASE_POWER_DOWN << 24), bits.eq(8)]
                m.next = "WAKE"
            with m.State("WAKE"):
                with m.If(~shifting & ~spi.sck):
                    m.d.sync += [spi.cs.eq(0), timer.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.sync += timer.eq(timer + 1)
                with m.If(timer == self._wake):
                    m.d.sync += [spi.cs.eq(1), out_sr.eq((READ << 24) | self._offset), bits.eq(32)]
                    m.next = "COMMAND"
            with m.State("COMMAND"):
                with m.If(~shifting):
                    m.d.sync += [bits.eq(8), nbyte.eq(0)]
                    m.next = "T0"
            for i, ((width, depth), w) in enumerate(zip(self._targets, writes, strict=True)):
                nbytes = -(-width // 8)
                last = i == len(self._targets) - 1
                with m.State(f"T{i}"):
                    # The address of the next word: advanced in the cycle after each write.
                    with m.If(w.en):
                        m.d.sync += w.addr.eq(w.addr + 1)
                    with m.If(byte_done):
                        # Bytes arrive least significant first: each goes in at the top of the word.
                        new_word = Signal(8 * nbytes, name=f"word{i}")
                        m.d.comb += new_word.eq((word[:8 * nbytes] >> 8) | (in_sr << (8 * (nbytes - 1))))
                        m.d.sync += [word.eq(new_word), nbyte.eq(nbyte + 1), bits.eq(8)]
                        with m.If(nbyte == nbytes - 1):
                            m.d.sync += [w.data.eq(new_word[:width]), w.en.eq(1), nbyte.eq(0), word.eq(0)]
                            with m.If(w.addr == depth - 1):
                                if last:
                                    m.d.sync += bits.eq(0)
                                    m.next = "FINISH"
                                else:
                                    m.next = f"T{i + 1}"
            with m.State("FINISH"):
                # The read ends (CS high for a cycle: the flash needs 10..50 ns), then the power-down
                # command. In one state, with a flag, so that the FSM keeps a spare code of its 3-bit
                # register (sim/proofs/network.py proves the register never takes it).
                powering_down = Signal()
                with m.If(~shifting & ~spi.sck & spi.cs):
                    m.d.sync += spi.cs.eq(0)
                    with m.If(powering_down):
                        m.d.sync += self.done.eq(1)
                        m.next = "DONE"
                with m.If(~spi.cs & ~powering_down):
                    m.d.sync += [spi.cs.eq(1), out_sr.eq(POWER_DOWN << 24), bits.eq(8), powering_down.eq(1)]
            with m.State("DONE"):
                pass
        return m
