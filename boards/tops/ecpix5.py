"""ECPIX-5 (ECP5-5G LFE5UM5G-45F/85F, speed grade 8) top: the host link on the board's FTDI UART, status on
the RGB LEDs.

Pins (``amaranth_boards.ecpix5``): ``uart`` 0 (FPGA rx R26, tx R24: channel B of the FT2232H, the host's
second serial port), ``rgb_led`` 0 green (R21: ``ok``, a prediction is final), ``rgb_led`` 0 red (T23:
``fault``, a request was rejected), ``rgb_led`` 1 blue (T24: ``wake``, high while the prediction is a
wake class).

Clock: by default the 100 MHz oscillator (``clk100``, K23) clocks everything (``sync``), with the
``rst`` button (AB1) as reset. With ``clk_freq`` an ``EHXPLLL`` (:func:`~qlif.boards.tops.pll.ecp5_pll_config`)
makes the core's clock from the oscillator, which keeps clocking the host link (both on the PLL with
``separate_clocks=False``); the core is held in reset until the PLL locks. Program with
``openFPGALoader -b ecpix5 qlif.bit``.
"""

from __future__ import annotations

from amaranth.lib import io
from amaranth_boards import ecpix5 as _boards

from qlif.boards.tops.pll import ECP5PLLConfig, ecp5_pll_config, ecp5_pll_domain
from qlif.boards.tops.top import BoardTop, Pin

__all__ = ["ECPIX5Top", "PLATFORMS"]

#: Board name suffix -> platform.
PLATFORMS = {"45f": _boards.ECPIX545Platform, "85f": _boards.ECPIX585Platform}


class ECPIX5Top(BoardTop):
    """:class:`~qlif.boards.link.host_link.HostLink` on an ECPIX-5 (see the module docstring for the pins)."""

    platform_cls = _boards._ECPIX5Platform
    uart = Pin("uart")
    outputs = {"ok": Pin("rgb_led", 0, "g"), "fault": Pin("rgb_led", 0, "r"), "wake": Pin("rgb_led", 1, "b")}

    @classmethod
    def osc_freq(cls) -> float:
        return _boards.ECPIX585Platform().default_clk_frequency

    def pll_config(self, *, f_in: float, f_out: float) -> ECP5PLLConfig:
        return ecp5_pll_config(f_in=f_in, f_out=f_out)

    def pll_domain(self, m, platform) -> None:
        m.submodules.clk_buf = buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        ecp5_pll_domain(m, clk_in=buf.i, f_in=self.osc_freq(), config=self.pll)
