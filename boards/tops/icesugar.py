"""iCESugar (iCE40 UP5K) top: the host link on the iCELink UART, status on the RGB LED.

Pins (``amaranth_boards.icesugar``): ``uart`` 0 (FPGA rx pin 4, tx pin 6: the iCELink's USB serial
port), ``led_g`` (pin 41: ``ok``, a prediction is final), ``led_r`` (pin 40: ``fault``, a request was
rejected), ``led_b`` (pin 39: ``wake``, high while the prediction is a wake class).

Clock: by default the 12 MHz oscillator (``clk12``, pin 35) clocks everything; with ``clk_freq`` the
``SB_PLL40_2_PAD`` on that pin (:func:`~qlif.boards.tops.pll.ice40_pll_config`) clocks the core and the
oscillator the host link, as on the iCEBreaker. Program by copying
``qlif.bin`` to the iCELink's USB drive (or ``icesprog qlif.bin``).
"""

from __future__ import annotations

from amaranth_boards.icesugar import ICESugarPlatform

from qlif.boards.tops.pll import ICE40PLLConfig, ice40_pll_config, ice40_pll_domain
from qlif.boards.tops.top import BoardTop, Pin

__all__ = ["ICESugarTop", "ICESugarPlatform"]


class ICESugarTop(BoardTop):
    """:class:`~qlif.boards.link.host_link.HostLink` on the iCESugar (see the module docstring for the pins)."""

    platform_cls = ICESugarPlatform
    uart = Pin("uart")
    outputs = {"ok": Pin("led_g"), "fault": Pin("led_r"), "wake": Pin("led_b")}

    def pll_config(self, *, f_in: float, f_out: float) -> ICE40PLLConfig:
        return ice40_pll_config(f_in=f_in, f_out=f_out)

    def pll_domain(self, m, platform) -> None:
        ice40_pll_domain(m, pin=platform.request(platform.default_clk, dir="-"), config=self.pll)
