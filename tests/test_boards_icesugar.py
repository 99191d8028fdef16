"""The iCESugar (iCE40 UP5K) top: pins and the PLL (no tools needed)."""

from __future__ import annotations

from qlif.boards.tops.icesugar import ICESugarPlatform, ICESugarTop
from qlif.golden.spec.random_model import random_model


def test_pins_and_pll():
    model = random_model([8, 4], timesteps=2)
    pcf = ICESugarPlatform().build(ICESugarTop(model=model, lanes=2), name="top", do_build=False,
                                   debug_verilog=False).files["top.pcf"]
    for line in ("uart_0__rx__io 4", "uart_0__tx__io 6", "led_g_0__io 41", "led_r_0__io 40", "led_b_0__io 39",
                 "set_frequency clk12_0__io 12.0"):
        assert line in pcf, line
    top = ICESugarTop(model=model, lanes=2, clk_freq=36e6)
    assert top.clk_freq == 36e6 and top.memory.device == "iCE40UP5K"
    rtlil = ICESugarPlatform().build(top, name="top", do_build=False, debug_verilog=False).files["top.il"]
    assert "cell \\SB_PLL40_2_PAD" in rtlil
