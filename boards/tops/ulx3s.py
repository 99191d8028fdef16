"""ULX3S (ECP5 LFE5U-12F/25F/45F/85F) top: the host link on the board's FTDI UART, status on user LEDs.

Pins (``amaranth_boards.ulx3s``): ``uart`` 0 (FPGA rx M1, tx L4: the FT231X, the host's serial port
on the board's US1 connector), ``led`` 0 (B2: ``ok``, a prediction is final), ``led`` 1 (C2: ``fault``,
a request was rejected), ``led`` 7 (H3: ``wake``, high while the prediction is a wake class).

Clock: by default the 25 MHz oscillator (``clk25``, G2) clocks everything (``sync``). With ``clk_freq``
an ``EHXPLLL`` (:func:`~qlif.boards.tops.pll.ecp5_pll_config`) makes the core's clock from the oscillator,
which keeps clocking the host link (both on the PLL with ``separate_clocks=False``); the core is held in
reset until the PLL locks. Program with ``openFPGALoader -b ulx3s qlif.bit`` (or ``fujprog``).
"""

from __future__ import annotations

from amaranth.lib import io
from amaranth_boards import ulx3s as _boards

from qlif.boards.tops.pll import ECP5PLLConfig, ecp5_pll_config, ecp5_pll_domain
from qlif.boards.tops.top import BoardTop, Pin

__all__ = ["ULX3STop", "PLATFORMS"]

#: Board name suffix -> platform (the four ULX3S variants differ only in the FPGA).
PLATFORMS = {
    "12f": _boards.ULX3S_12F_Platform,
    "25f": _boards.ULX3S_25F_Platform,
    "45f": _boards.ULX3S_45F_Platform,
    "85f": _boards.ULX3S_85F_Platform,
}


class ULX3STop(BoardTop):
    """:class:`~qlif.boards.link.host_link.HostLink` on a ULX3S of any size (see the module docstring for the pins)."""

    platform_cls = _boards._ULX3SPlatform
    uart = Pin("uart")
    outputs = {"ok": Pin("led", 0), "fault": Pin("led", 1), "wake": Pin("led", 7)}

    @classmethod
    def osc_freq(cls) -> float:
        return _boards.ULX3S_85F_Platform().default_clk_frequency

    def pll_config(self, *, f_in: float, f_out: float) -> ECP5PLLConfig:
        return ecp5_pll_config(f_in=f_in, f_out=f_out)

    def pll_domain(self, m, platform) -> None:
        m.submodules.clk_buf = buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
        ecp5_pll_domain(m, clk_in=buf.i, f_in=self.osc_freq(), config=self.pll)
