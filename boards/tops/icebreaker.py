"""iCEBreaker (iCE40 UP5K) top: the host link on the board's FTDI UART, status on the two user LEDs and a
PMOD pin.

Pins (``amaranth_boards.icebreaker.ICEBreakerPlatform``): ``uart`` 0 (rx pin 6, tx pin 9, the second
channel of the on-board FT2232H, so the host sees the link as the board's second serial port), ``led_g``
0 (pin 37: ``ok``, a prediction is final), ``led_r`` 0 (pin 11: ``fault``, a request was rejected) and
``wake`` on PMOD1A pin 1 (FPGA pin 4, 3.3 V push-pull: high while the prediction is a wake class, for a
host processor's interrupt or enable input).

Clock: by default the 12 MHz oscillator (``clk12``, pin 35) clocks everything (``sync``). With
``clk_freq`` the on-chip PLL (``SB_PLL40_2_PAD`` on the same pin) makes the core's clock (``core``
domain) and its port A passes the oscillator on to the host link (``sync``); with
``separate_clocks=False`` both run on the PLL's clock. Each clock is constrained to its frequency, and
nextpnr's timing report gives the Fmax the placed design reaches on each.
"""

from __future__ import annotations

from amaranth.build import Pins, Resource
from amaranth.build.dsl import Attrs
from amaranth_boards import icebreaker as _boards

from qlif.boards.tops.pll import ICE40PLLConfig, ice40_pll_config, ice40_pll_domain
from qlif.boards.tops.top import BoardTop, Pin

__all__ = ["OSC_FREQ", "PLLConfig", "pll_config", "ICEBreakerPlatform", "ICEBreakerTop"]

#: The iCE40 PLL settings and search (kept under these names for existing users).
PLLConfig = ICE40PLLConfig
pll_config = ice40_pll_config


class ICEBreakerPlatform(_boards.ICEBreakerPlatform):
    """The ``amaranth-boards`` iCEBreaker, plus ``wake`` on PMOD1A pin 1 (FPGA pin 4)."""

    resources = [
        *_boards.ICEBreakerPlatform.resources,
        Resource("wake", 0, Pins("1", dir="o", conn=("pmod", 0)), Attrs(IO_STANDARD="SB_LVCMOS")),
    ]


#: The board oscillator.
OSC_FREQ = ICEBreakerPlatform().default_clk_frequency


class ICEBreakerTop(BoardTop):
    """:class:`~qlif.boards.link.host_link.HostLink` on the iCEBreaker (see the module docstring for the pins).

    Parameters: see :class:`~qlif.boards.tops.top.BoardTop`; ``clk_freq`` is made by the ``SB_PLL40_2_PAD``
    (:func:`pll_config`), and the design waits 15 us after lock for the block RAMs.
    """

    platform_cls = ICEBreakerPlatform
    uart = Pin("uart")
    outputs = {"ok": Pin("led_g"), "fault": Pin("led_r"), "wake": Pin("wake")}

    def pll_config(self, *, f_in: float, f_out: float) -> ICE40PLLConfig:
        return ice40_pll_config(f_in=f_in, f_out=f_out)

    def pll_domain(self, m, platform) -> None:
        ice40_pll_domain(m, pin=platform.request(platform.default_clk, dir="-"), config=self.pll)
