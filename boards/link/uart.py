"""8N1 UART receiver and transmitter with byte streams, for the host link of the board tops.

Both blocks take the clock frequency and the baud rate and derive one integer divisor (clock cycles per
bit); the constructor refuses a pair whose rounding error would exceed :data:`MAX_BAUD_ERROR`, since a
UART frame tolerates only a few percent of accumulated drift over its ten bits.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MAX_BAUD_ERROR", "MIN_DIVISOR", "baud_divisor", "RxError", "UARTRX", "UARTTX"]

#: Largest relative difference between the requested baud rate and ``clk_freq / divisor``. 8N1 frames are
#: sampled at the middle of each bit, so the receiver tolerates about 5 % between the two ends; half of
#: that is left to the other end of the link.
MAX_BAUD_ERROR = 0.02
#: Fewest clock cycles per bit. The receiver samples at divisor // 2 after the start edge and needs the
#: two synchroniser cycles to fall well inside the first half of the start bit.
MIN_DIVISOR = 8

#: The receiver's error pulses.
RxError = data.StructLayout({
    "frame": 1,     # the stop bit was 0 (wrong baud rate, noise or a break); the byte is dropped
    "overrun": 1,   # a byte arrived while the previous one was still not taken; the new one is dropped
})


def baud_divisor(*, clk_freq: int | float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz, checked against :data:`MAX_BAUD_ERROR`."""
    if not isinstance(clk_freq, (int, float)) or isinstance(clk_freq, bool) or not clk_freq > 0:
        raise ValueError(f"clk_freq must be a positive number of Hz, not {clk_freq!r}")
    if not isinstance(baud, int) or isinstance(baud, bool) or baud <= 0:
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    divisor = round(clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(
            f"baud {baud} is too fast for a {clk_freq} Hz clock: {clk_freq / baud:.2f} cycles per bit, "
            f"need at least {MIN_DIVISOR}")
    error = abs(clk_freq / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(
            f"baud {baud} cannot be made from a {clk_freq} Hz clock: the nearest divisor {divisor} gives "
            f"{clk_freq / divisor:.0f} baud, {error:.1%} off (at most {MAX_BAUD_ERROR:.0%})")
    return divisor


class _BaudParams:
    """The checked ``clk_freq``/``baud`` pair shared by :class:`UARTRX` and :class:`UARTTX`."""

    def _init_baud(self, clk_freq, baud):
        self._divisor = baud_divisor(clk_freq=clk_freq, baud=baud)
        self._clk_freq = clk_freq
        self._baud = baud

    @property
    def clk_freq(self) -> int | float:
        return self._clk_freq

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def divisor(self) -> int:
        """Clock cycles per bit."""
        return self._divisor


class UARTRX(_BaudParams, wiring.Component):
    """8N1 UART receiver.

    The ``rx`` pin goes through a two-flip-flop synchroniser (it is asynchronous to the clock). A falling
    edge starts a frame; the start bit is checked again half a bit later (a shorter glitch is ignored),
    then each data bit, LSB first, and the stop bit are sampled in the middle of their bit time. The
    receiver is ready for the next start edge right after the middle of the stop bit, so back-to-back
    frames from a slightly faster sender are still received.

    Parameters
    ----------
    clk_freq : int or float
        Clock frequency in Hz.
    baud : int
        Baud rate; ``round(clk_freq / baud)`` cycles per bit, see :func:`baud_divisor`.

    Members
    -------
    rx : In(1)
        The serial line (idle high), asynchronous.
    data : Out(stream.Signature(8))
        Received bytes. A byte is held until taken; ``valid`` rises 9.5 bit times plus 3 cycles after the
        start edge (the middle of the stop bit, the synchroniser and the output register).
    error : Out(RxError)
        One-cycle pulses: ``frame`` when the stop bit is 0 (the byte is dropped; the receiver then waits
        for the line to go idle, so a break counts once), ``overrun`` when a byte completes while the
        previous one is still held (the new byte is dropped).

    Throughput is one byte per frame time; the only buffer is the held output byte.
    """

    def __init__(self, *, clk_freq: int | float, baud: int):
        self._init_baud(clk_freq, baud)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "error": Out(RxError),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1, stages=2)

        # The bit timers count up from 0 and restart at 0, so they map onto the iCE40 carry chain and the
        # flip-flops' synchronous reset with nothing in between (a down-counter reloaded with a constant
        # puts a multiplexer into the chain, and nextpnr then splits it into slow pieces).
        timer = Signal(range(self.divisor))
        half_bit = timer == self.divisor // 2 - 1
        full_bit = timer == self.divisor - 1
        bit = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        m.d.sync += [self.error.eq(0), timer.eq(timer + 1)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += timer.eq(0)
                with m.If(~rx):
                    m.next = "START"
            with m.State("START"):
                with m.If(half_bit):
                    m.d.sync += [timer.eq(0), bit.eq(0)]
                    with m.If(rx):
                        m.next = "IDLE"     # a glitch, not a start bit
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(full_bit):
                    # LSB first: shift right, the new bit enters at the top.
                    m.d.sync += [timer.eq(0), shreg.eq(Cat(shreg[1:], rx)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(full_bit):
                    m.d.sync += timer.eq(0)
                    with m.If(~rx):
                        m.d.sync += self.error.frame.eq(1)
                        m.next = "BREAK"
                    with m.Else():
                        with m.If(self.data.valid & ~self.data.ready):
                            m.d.sync += self.error.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.data.payload.eq(shreg), self.data.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                # Wait for the idle level, so that a held-low line is reported once, not every frame time.
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTX(_BaudParams, wiring.Component):
    """8N1 UART transmitter.

    Parameters
    ----------
    clk_freq : int or float
        Clock frequency in Hz.
    baud : int
        Baud rate; ``round(clk_freq / baud)`` cycles per bit, see :func:`baud_divisor`.

    Members
    -------
    data : In(stream.Signature(8))
        Bytes to send. ``ready`` is high while the transmitter is idle; a byte is taken in one cycle and
        its start bit begins on the next.
    tx : Out(1)
        The serial line, idle high, driven from a flip-flop (no glitches).

    Throughput: one byte per 10 bit times, back to back (the next byte is taken in the last cycle of the
    stop bit).
    """

    def __init__(self, *, clk_freq: int | float, baud: int):
        self._init_baud(clk_freq, baud)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        timer = Signal(range(self.divisor))
        # The bits after the one on the line, LSB first: data then stop. Ones shift in from the top, so
        # the line returns to idle (1) by itself after the stop bit.
        shreg = Signal(9)
        left = Signal(range(11))

        bit_end = timer == self.divisor - 1     # counting up from 0, as in UARTRX (the carry chain)

        m.d.comb += self.data.ready.eq((left == 0) | ((left == 1) & bit_end))
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                self.tx.eq(0),
                shreg.eq(Cat(self.data.payload, 1)),
                left.eq(10),
                timer.eq(0),
            ]
        with m.Elif(left != 0):
            with m.If(~bit_end):
                m.d.sync += timer.eq(timer + 1)
            with m.Else():
                m.d.sync += [
                    self.tx.eq(shreg[0]),
                    shreg.eq(Cat(shreg[1:], 1)),
                    left.eq(left - 1),
                    timer.eq(0),
                ]
        return m

