"""iCEBreaker (iCE40 UP5K) top: the host link on the board's FTDI UART, status on the two user LEDs.

Pins (``amaranth_boards.icebreaker.ICEBreakerPlatform``): ``uart`` 0 (rx pin 6, tx pin 9, the second
channel of the on-board FT2232H, so the host sees the link as the board's second serial port), ``led_g``
0 (pin 37: the last reply was a prediction) and ``led_r`` 0 (pin 11: the last reply was an error). The
design runs from the 12 MHz oscillator (``clk12``); the clock is constrained to that frequency, and
nextpnr's timing report gives the maximum frequency the placed design would reach.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io
from amaranth_boards.icebreaker import ICEBreakerPlatform

from qlif.golden.model import Model

from .link import HostLink

__all__ = ["CLK_FREQ", "DEFAULT_BAUD", "ICEBreakerTop", "ICEBreakerPlatform"]

#: The board oscillator, the ``sync`` clock.
CLK_FREQ = ICEBreakerPlatform().default_clk_frequency
#: 12 MHz / 115200 = 104.2 cycles per bit, 0.16 % off: well inside the UART's tolerance.
DEFAULT_BAUD = 115_200


class ICEBreakerTop(Elaboratable):
    """The board top: :class:`~qlif.boards.link.HostLink` wired to the iCEBreaker's pins.

    Parameters
    ----------
    model : qlif.golden.model.Model
        The network, baked into the bitstream.
    lanes : int
        P of the core.
    baud : int
        UART baud rate (8N1); the FT2232H makes any rate up to 3 Mbaud, the limit here is the 12 MHz
        clock (:func:`qlif.boards.uart.baud_divisor`).
    """

    def __init__(self, *, model: Model, lanes: int, baud: int = DEFAULT_BAUD):
        # Built here, not in elaborate(), so that a bad model, lane count or baud rate fails at once.
        self._link = HostLink(model=model, lanes=lanes, clk_freq=CLK_FREQ, baud=baud)
        self._model = model
        self._lanes = lanes
        self._baud = baud

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def baud(self) -> int:
        return self._baud

    def elaborate(self, platform) -> Module:
        if not isinstance(platform, ICEBreakerPlatform):
            raise TypeError(f"platform must be an ICEBreakerPlatform, not {platform!r}")
        m = Module()
        m.submodules.link = link = self._link
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_ok = led_ok = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        m.submodules.led_fault = led_fault = io.Buffer("o", platform.request("led_r", 0, dir="-"))
        m.d.comb += [
            link.rx.eq(rx_buf.i),
            tx_buf.o.eq(link.tx),
            led_ok.o.eq(link.ok),
            led_fault.o.eq(link.fault),
        ]
        return m
