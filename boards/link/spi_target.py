"""The SPI frame path: an SPI target through which a microcontroller or sensor writes a frame of input
intensities and reads the result, with no fast clock running while it waits.

SPI mode 0 (CPOL = 0, CPHA = 0: SCK idles low, both sides sample on SCK's rising edge and change on its
falling edge), most significant bit first, CS active low. The target runs on SCK itself: its receive
logic in a domain clocked by SCK's rising edge and reset (asynchronously) while CS is high, its
transmit register in one clocked by SCK's falling edge, and its state that outlives a transaction (the
frame handshake, the wake mask, the flags) in a third, on SCK's rising edge, never reset. So it needs
no clock of its own: between transactions nothing toggles.

The frame buffer (``n_in`` x 8 bits, one memory) is written from the SCK domain and read from the
core's (the component's ``sync``), whose clock runs only while a frame is being inferred. They never
use it at once: a frame is committed (``req`` toggles) on the SCK edge that completes its last byte,
the core reads it only after it has seen that toggle through a synchroniser, and a WRITE_FRAME that
begins before the core has toggled ``ack`` back is refused whole (no byte of it is written). A rising CS
aborts a transaction (nothing is committed before a write's last byte), and a write that follows a
transaction cut short is refused too: after a glitch on CS its first byte may be a frame byte. The
result (``prediction``, ``counts``, ``wake``) is read by the SCK side straight from the core's
registers: they change only while the target is busy, and it answers zeros then (a multi-cycle path,
not timed, as in :mod:`qlif.boards.link.crossing`).

The protocol (docs/host-protocol.md, "SPI frame path"): its command codes, flags and transactions live
in :mod:`qlif.boards.protocol` (``SPICmd``, ``SPIFlag``, ``spi_write_frame`` ...), the sans-I/O home
that the host side, the reference target and the testbenches build their transactions with.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, ClockDomain, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out

from qlif.boards.protocol import SPI_STATUS_BYTES, SPICmd, count_bytes, mask_bytes, spi_result_bytes

__all__ = ["SPITarget"]


class SPITarget(wiring.Component):
    """The SPI frame path (module docstring) in front of a core that infers one frame at a time.

    Parameters
    ----------
    n_in : int
        Bytes per frame (the model's inputs), 1..65535.
    n_out : int
        Classes (the model's outputs), 1..255.
    timesteps : int
        T of the model (the width of the counts, 1 or 2 bytes each in READ_RESULT).
    wake_classes : int
        The wake mask at power-up (bit ``i``: class ``i``), until a WRITE_MASK changes it.

    Members
    -------
    sck, cs_n, copi : In(1)
        The SPI bus (``cs_n`` idles high; ``init=1``).
    cipo : Out(1)
        To the controller, changed on SCK's falling edge (0 during the command byte).
    cipo_oe : Out(1)
        Drive ``cipo`` only while this is high (``cs_n`` low), so that other targets can share the bus.
    frame : Out(ReadPort.Signature(addr_width=ceil(log2 n_in), shape=8))
        The frame buffer's read port, in ``sync`` (the core's domain), one cycle of latency; read it only
        between ``start`` and ``done``.
    start : Out(1)
        ``sync``: high from a committed frame (seen through a two-stage synchroniser) until ``done``.
    done : In(1)
        ``sync``: a one-cycle pulse when the frame's result is final (``prediction``, ``counts``, ``wake``
        must hold from then on until the next ``start``).
    run : Out(1)
        High from the commit of a frame (the SCK edge of its last byte) until ``done`` (an XOR of two
        registers, one per clock, each toggling once per frame: no glitch). It turns the core's clock on,
        which is why it cannot be a register of the core's domain.
    clock_on : In(1)
        High while the core's clock is still on after ``run`` fell (its controller turns it off some time
        later: :class:`~qlif.boards.tops.wakeup.WakeupCore`); 0 if it stops with ``run``. The target
        stays BUSY, refusing frames, until it has seen this low through a two-stage synchroniser on
        SCK, so that ``run`` never rises again while the clock's controller is turning the clock off.
    mask : Out(n_out)
        The wake mask (SCK domain; changes only while ``run`` is low).
    prediction : In(range(n_out)), counts : In(ArrayLayout(unsigned(bit_length(T)), n_out)), wake : In(1)
        The core's result (read when not busy).
    error : In(1)
        The core's error flag (reported as CORE_ERROR).

    Latency: a frame of ``n_in`` bytes takes ``8 (n_in + 1)`` SCK cycles; ``run`` rises with its last SCK
    edge; ``start`` follows two core clock edges after the core's clock runs; BUSY clears, as a
    transaction's command byte sees it, once its 6th SCK edge comes after both ``done`` and the fall of
    ``clock_on``. Throughput: one frame per
    inference (a frame sent while busy is refused, not queued; so is a WRITE_FRAME or WRITE_MASK whose
    transaction follows one that CS cut short, before the length its command has). Memory: the frame
    buffer (``n_in`` x 8, one iCE40 block RAM up to 512 inputs) and about 80 flip-flops (a 16-bit byte
    counter, the shift registers, the mask) plus ``8 ceil(n_out / 8)`` for the mask being written.
    """

    def __init__(self, *, n_in: int, n_out: int, timesteps: int, wake_classes: int | None = None):
        for name, value, top in (("n_in", n_in, 0xFFFF), ("n_out", n_out, 0xFF), ("timesteps", timesteps, 0xFFFF)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ValueError(f"{name} must be an integer 1..{top}, not {value!r}")
        mask = (1 << n_out) - 1 if wake_classes is None else wake_classes
        if not isinstance(mask, int) or isinstance(mask, bool) or not 0 <= mask < 1 << n_out:
            raise ValueError(f"wake_classes must be a mask of {n_out} bits, not {wake_classes!r}")
        self._n_in, self._n_out, self._t = n_in, n_out, timesteps
        self._mask = mask
        self._addr_width = max(1, (n_in - 1).bit_length())
        super().__init__({
            "sck": In(1),
            "cs_n": In(1, init=1),
            "copi": In(1),
            "cipo": Out(1),
            "cipo_oe": Out(1),
            "frame": Out(ReadPort.Signature(addr_width=self._addr_width, shape=8)),
            "start": Out(1),
            "done": In(1),
            "run": Out(1),
            "clock_on": In(1),
            "mask": Out(n_out, init=mask),
            "prediction": In(range(n_out)),
            "counts": In(data.ArrayLayout(unsigned(timesteps.bit_length()), n_out)),
            "wake": In(1),
            "error": In(1),
        })

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def n_out(self) -> int:
        return self._n_out

    @property
    def timesteps(self) -> int:
        return self._t

    def elaborate(self, platform) -> Module:
        m = Module()
        n_in, n_out = self._n_in, self._n_out
        # Three domains on SCK: the transaction's (reset while CS is high), the transmit register's
        # (falling edge, reset too) and the persistent one (never reset: it only holds state that must
        # survive CS going high).
        m.domains.spi = cd_spi = ClockDomain("spi", async_reset=True, local=True)
        m.domains.spi_tx = cd_tx = ClockDomain("spi_tx", clk_edge="neg", async_reset=True, local=True)
        m.domains.spi_keep = cd_keep = ClockDomain("spi_keep", reset_less=True, local=True)
        m.d.comb += [cd.clk.eq(self.sck) for cd in (cd_spi, cd_tx, cd_keep)]
        m.d.comb += [cd_spi.rst.eq(self.cs_n), cd_tx.rst.eq(self.cs_n)]

        # -- bytes in --------------------------------------------------------------------------------
        bit = Signal(3)                       # bits of the current byte received so far
        shift = Signal(7)
        index = Signal(16)                    # bytes of the transaction completed so far
        cmd = Signal(8)
        byte = Cat(self.copi, shift)          # the byte completing at this edge (with bit == 7)
        complete = bit == 7
        m.d.spi += [bit.eq(bit + 1), shift.eq(byte[:7])]
        with m.If(complete):
            m.d.spi += index.eq(Mux(index == 0xFFFF, index, index + 1))
            with m.If(index == 0):
                m.d.spi += cmd.eq(byte)
        # The command as it is known at this edge (its own byte completes now when index is 0).
        cmd_now = Signal(8)
        m.d.comb += cmd_now.eq(Mux(index == 0, byte, cmd))

        # -- transactions cut short (persistent) -------------------------------------------------------
        # A rising CS resets the transaction's registers at once, so a command byte is only ever the first
        # byte after CS falls, and an interrupted transaction commits nothing (a frame commits with its
        # last byte, a mask takes effect with its last byte). But a glitch on CS in the middle of a write
        # makes the write's remaining bytes look like a transaction of their own, whose first byte (any
        # intensity) may read as WRITE_MASK or WRITE_FRAME. So the target remembers whether the last
        # transaction reached its command's length (``whole``), and refuses a write whose transaction
        # follows one that did not: the host sees REFUSED and the frame count unchanged, reads the status
        # (a whole transaction) and sends again.
        first = (index == 0) & (bit == 0)     # the first SCK edge of a transaction
        whole = Signal(init=1)                # the last transaction reached its length (power-up: none)
        after_whole = Signal()                # ``whole`` as of this transaction's first edge
        with m.If(first):
            m.d.spi += after_whole.eq(whole)
            m.d.spi_keep += whole.eq(0)
        n_mask = mask_bytes(n_out)
        last_index = Signal(16)               # the index of the command's last byte (the command's own: 0)
        with m.Switch(cmd_now):
            for code, length in ((SPICmd.WRITE_FRAME, n_in), (SPICmd.WRITE_MASK, n_mask),
                                 (SPICmd.READ_STATUS, SPI_STATUS_BYTES),
                                 (SPICmd.READ_RESULT, spi_result_bytes(n_out, self._t))):
                with m.Case(code):
                    m.d.comb += last_index.eq(length)
        with m.If(complete & (index == last_index)):
            m.d.spi_keep += whole.eq(1)

        # -- frame handshake (persistent) -------------------------------------------------------------
        req = Signal()                        # toggled on committing a frame
        ack = Signal()                        # toggled by the core side when the result is final
        ack_s, clock_on_s = Signal(), Signal()
        m.submodules.ack_sync = FFSynchronizer(ack, ack_s, o_domain="spi_keep")
        m.submodules.clock_on_sync = FFSynchronizer(self.clock_on, clock_on_s, o_domain="spi_keep")
        # Busy as the SCK side sees it, decided at a command byte's 8th edge from ``ack`` and
        # ``clock_on`` both sampled at its 6th (the synchronisers are equally deep, so the two are one
        # snapshot). Once ``done`` has toggled ``ack``, ``clock_on`` may still be high: the clock's
        # controller has not finished turning the clock off, and a frame committed now would raise
        # ``run`` under it (it could cut the clock off in the middle of that inference). So busy lasts
        # until the snapshot shows the clock off; from then on ``run`` low keeps it off.
        busy = (req ^ ack_s) | clock_on_s
        m.d.comb += self.run.eq(req ^ ack)
        refused = Signal()
        frames = Signal(8)
        inferred = Signal()                   # a frame has been committed once
        accepted = Signal()                   # the command byte of this transaction was not refused
        writes = (cmd_now == SPICmd.WRITE_FRAME) | (cmd_now == SPICmd.WRITE_MASK)
        with m.If(complete & (index == 0) & writes):
            m.d.spi += accepted.eq(~busy & after_whole)
            with m.If(busy | ~after_whole):
                m.d.spi_keep += refused.eq(1)

        # The frame buffer: byte k of the frame (transaction byte k + 1) to address k.
        m.submodules.buffer = buffer = Memory(shape=8, depth=n_in, init=[])
        wr = buffer.write_port(domain="spi")
        m.d.comb += [wr.addr.eq(index - 1), wr.data.eq(byte),
                     wr.en.eq(complete & accepted & (cmd_now == SPICmd.WRITE_FRAME) & (index >= 1) & (index <= n_in))]
        with m.If(wr.en & (index == n_in)):
            m.d.spi_keep += [req.eq(~req), frames.eq(frames + 1), inferred.eq(1)]

        # The wake mask, little-endian bytes; the new value takes effect with its last byte.
        staged = Signal(8 * n_mask)
        with m.If(complete & accepted & (cmd_now == SPICmd.WRITE_MASK) & (index >= 1) & (index <= n_mask)):
            m.d.spi += staged.word_select((index - 1)[:16], 8).eq(byte)
            with m.If(index == n_mask):
                m.d.spi_keep += self.mask.eq(Cat(staged[:8 * (n_mask - 1)], byte)[:n_out])

        # -- bytes out --------------------------------------------------------------------------------
        # The next byte to send, chosen at the edge that completes a byte (index: the byte's number),
        # loaded into the transmit register at the falling edge after it. Core values read as zero
        # while busy (they change then).
        ready = ~busy
        flags = Cat(busy, ready & inferred, ready & self.wake, refused, self.error)
        pred = Mux(ready, self.prediction, 0)
        status = [flags, pred, frames]
        cb = count_bytes(self._t)
        counts = []
        for i in range(n_out):
            value = Cat(self.counts[i], Const(0, 16))[:8 * cb]
            counts += [Mux(ready, value.word_select(cb - 1 - k, 8), 0) for k in range(cb)]
        result = [pred, *counts]
        tx_next = Signal(8)
        with m.If(complete):
            with m.Switch(cmd_now):
                with m.Case(SPICmd.READ_STATUS):
                    m.d.spi += tx_next.eq(_table(status, index))
                    # Cleared once the flags byte has gone out whole (a transaction cut short before
                    # then leaves REFUSED for the next READ_STATUS to report).
                    with m.If(index == 1):
                        m.d.spi_keep += refused.eq(0)
                with m.Case(SPICmd.READ_RESULT):
                    m.d.spi += tx_next.eq(_table(result, index))
                with m.Default():
                    m.d.spi += tx_next.eq(0)
        tx = Signal(8)
        with m.If(bit == 0):
            m.d.spi_tx += tx.eq(tx_next)
        with m.Else():
            m.d.spi_tx += tx.eq(tx << 1)
        m.d.comb += [self.cipo.eq(tx[7]), self.cipo_oe.eq(~self.cs_n)]

        # -- core side (sync) -------------------------------------------------------------------------
        req_s = Signal()
        m.submodules.req_sync = FFSynchronizer(req, req_s, o_domain="sync")
        m.d.comb += self.start.eq(req_s != ack)
        with m.If(self.done):
            m.d.sync += ack.eq(~ack)
        rd = buffer.read_port(domain="sync", transparent_for=())
        wiring.connect(m, wiring.flipped(self.frame), rd)
        return m


def _table(values: list, index):
    """``values[index]`` as a multiplexer; 0 past the end."""
    n = len(values)
    return Array([*values, Const(0, 8)])[Mux(index < n, index, n)]
