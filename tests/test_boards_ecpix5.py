"""The ECPIX-5 (ECP5-5G) top: pins, the 100 MHz oscillator, the PLL (no tools needed)."""

from __future__ import annotations

from qlif.boards.tops.ecpix5 import PLATFORMS, ECPIX5Top
from qlif.golden.spec.random_model import random_model


def test_pins_and_clock():
    model = random_model([8, 4], timesteps=2)
    plan = PLATFORMS["85f"]().build(ECPIX5Top(model=model, lanes=2), name="top", do_build=False,
                                    debug_verilog=False)
    lpf = plan.files["top.lpf"]
    for site in ("R26", "R24", "R21", "T23", "T24", "K23"):     # uart rx/tx, ok, fault, wake, clock
        assert f'SITE "{site}"' in lpf, site
    assert 'FREQUENCY PORT "clk100_0__io" 100000000' in lpf
    assert ECPIX5Top.pins() == {"uart": "uart 0", "ok": "rgb_led 0 (g)", "fault": "rgb_led 0 (r)",
                                "wake": "rgb_led 1 (b)"}


def test_pll_from_100_mhz():
    model = random_model([8, 4], timesteps=2)
    top = ECPIX5Top(model=model, lanes=2, clk_freq=125e6, device="LFE5UM5G-85F")
    assert top.clk_freq == 125e6 and top.pll.f_vco >= 400e6
    assert top.memory.device == "LFE5UM5G-85F"
    rtlil = PLATFORMS["85f"]().build(top, name="top", do_build=False, debug_verilog=False).files["top.il"]
    assert "cell \\EHXPLLL" in rtlil
