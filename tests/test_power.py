"""The power model: sources for every coefficient, exact arithmetic, and the right direction of change
with clock, activity and width; resource counts from build reports."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from qlif.boards.flow.activity import Activity, MemoryActivity
from qlif.boards.flow.power import ECP5, FAMILIES, ICE40UP, Coefficient, Resources, estimate_power, family_of

UP5K = "iCE40UP5K-SG48"
ECP5_85 = "LFE5U-85F-CABGA381"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "power.md"


def activity(ff=0.1, logic=0.05, reads=1.0, writes=0.25, cycles=1000) -> Activity:
    """A workload of ``cycles`` cycles: 100 FF bits, 400 logic bits, one 512 x 16 memory."""
    return Activity(cycles=cycles, ff_bits=100, ff_toggles=round(ff * 100 * cycles), logic_bits=400,
                    logic_toggles=round(logic * 400 * cycles),
                    memories=(MemoryActivity("layer0.syn", 16, 512, round(reads * cycles), round(writes * cycles),
                                             1, 1),))


RES = Resources(luts=1000, carries=200, ffs=500, ebr=10)


def power(device=UP5K, res=RES, act=None, clk=10e6, **kw):
    return estimate_power(device=device, resources=res, activity=act or activity(), clk_hz=clk, **kw)


def test_every_coefficient_has_a_source_and_is_documented():
    doc = DOCS.read_text()
    for fam in FAMILIES.values():
        for name, coef in fam.coefficients().items():
            assert coef.kind in ("datasheet", "measured", "estimate") and len(coef.source) > 20, name
            # docs/power.md lists each coefficient by family and name.
            assert f"`{fam.family}.{name}`" in doc, f"docs/power.md does not list {fam.family}.{name}"
    # The UP5K's core static figure is the measured blank design (85.6 uA at 1.219 V); the other rails'
    # standby currents are those of FPGA-DS-02008 Table 4.6.
    assert ICE40UP.static["iCE40UP5K"].value == pytest.approx(85.6e-6 * 1.219)
    assert "Table 4.6" in ICE40UP.static_aux["iCE40UP5K"].source
    assert ICE40UP.static_aux["iCE40UP5K"].value == pytest.approx(0.55e-6 * 2.5 + 2 * 0.5e-6 * 3.3)
    # Every ECP5 dynamic coefficient says it is an estimate (no vendor figure was at hand).
    assert all(c.kind == "estimate" for n, c in ECP5.coefficients().items() if n not in ("vcc", "vccio"))


def test_coefficient_checks():
    with pytest.raises(ValueError, match="source"):
        Coefficient(1.0, "W", "estimate", "")
    with pytest.raises(ValueError, match="kind"):
        Coefficient(1.0, "W", "guess", "because")
    with pytest.raises(ValueError, match="finite"):
        Coefficient(float("nan"), "W", "estimate", "because")


def test_exact_arithmetic():
    """Every term of the formula in the module docstring, by hand, for the UP5K at 10 MHz."""
    p = power(pll=True, oscillator="hfosc", io_toggles_per_s=1e4)
    f, c = 10e6, ICE40UP
    e_t = c.toggle.value
    core_static = c.static["iCE40UP5K"].value + c.configured.value + 1000 * c.lc_leak.value    # max(luts, ffs)
    aux = c.static_aux["iCE40UP5K"].value
    assert p.static_w == pytest.approx(core_static + aux)
    d = p.dynamic_w
    assert d["clock"] == pytest.approx(f * c.clock["iCE40UP5K"].value)
    assert d["flip-flop clocks"] == pytest.approx(f * 500 * c.clock_ff.value)
    assert d["flip-flops"] == pytest.approx(f * e_t * 500 * 0.1)
    assert d["logic"] == pytest.approx(f * e_t * 1200 * 0.05)
    # one 512 x 16 memory: 2 blocks of 256 x 16, each read every cycle and written every 4th
    assert d["block RAM"] == pytest.approx(f * 10 * (1.0 * 3e-12 + 0.25 * 3e-12))
    assert d["SPRAM"] == 0 and d["DSP"] == 0
    assert d["oscillator"] == pytest.approx(c.hfosc.value)
    assert d["PLL"] == pytest.approx(c.pll.value + c.pll_rail.value)
    assert d["I/O"] == pytest.approx(1e4 * 16e-12 * 3.3 ** 2)
    assert p.total_w == pytest.approx(p.static_w + sum(d.values()))
    # The core rail: everything but the other rails' standby, the PLL's own supply and the pins.
    assert p.core_w == pytest.approx(p.total_w - aux - c.pll_rail.value - d["I/O"])
    # energy = power x latency
    assert p.energy_per_inference(1000) == pytest.approx(p.total_w * 1000 / f)
    # A family without the calibrated terms (ECP5) leaves them out and counts its static power as core.
    q = power(ECP5_85)
    assert q.dynamic_w["flip-flop clocks"] == 0 and q.dynamic_w["oscillator"] == 0
    assert q.static_w == ECP5.static["LFE5U-85"].value and q.core_w == q.total_w


@pytest.mark.parametrize("device", [UP5K, ECP5_85])
def test_clock_moves_dynamic_power_not_static(device):
    slow, fast = power(device, clk=12e6), power(device, clk=48e6)
    assert fast.static_w == slow.static_w > 0
    for name in ("clock", "flip-flops", "logic", "block RAM"):
        assert fast.dynamic_w[name] == pytest.approx(4 * slow.dynamic_w[name]) and slow.dynamic_w[name] > 0
    assert fast.total_w > slow.total_w
    # Per inference the dynamic energy is the same at any clock; the static share shrinks as the clock rises.
    cycles = 10_000
    assert fast.energy_per_inference(cycles) < slow.energy_per_inference(cycles)
    dyn = [(p.total_w - p.static_w) * cycles / p.clk_hz for p in (slow, fast)]
    assert dyn[0] == pytest.approx(dyn[1])


@pytest.mark.parametrize("device", [UP5K, ECP5_85])
def test_more_activity_more_power(device):
    base = power(device).total_w
    assert power(device, act=activity(ff=0.3)).total_w > base
    assert power(device, act=activity(logic=0.2)).total_w > base
    assert power(device, act=activity(reads=1.0, writes=1.0)).total_w > base
    assert power(device, act=activity(ff=0, logic=0, reads=0, writes=0)).total_w < base
    # an idle design still pays static power and its clock network
    idle = power(device, act=activity(ff=0, logic=0, reads=0, writes=0))
    assert idle.dynamic_w["clock"] > 0 and idle.dynamic_w["logic"] == 0 and idle.dynamic_w["block RAM"] == 0


@pytest.mark.parametrize("device", [UP5K, ECP5_85])
def test_wider_design_more_power(device):
    base = power(device).total_w
    assert power(device, res=replace(RES, luts=2000)).total_w > base
    assert power(device, res=replace(RES, ffs=1000)).total_w > base
    assert power(device, res=replace(RES, ebr=20)).total_w > base
    assert power(device, res=replace(RES, carries=400)).total_w > base


def test_pll_oscillators_and_io_add_power():
    assert power(pll=True).total_w > power().total_w
    assert power(oscillator="hfosc").total_w > power(oscillator="lfosc").total_w > power().total_w
    assert power(io_toggles_per_s=1e6).total_w > power().total_w


def test_bigger_device_more_static():
    assert power(ECP5_85).static_w > power("LFE5U-25F-CABGA381").static_w > power(UP5K).static_w


def test_bad_arguments():
    with pytest.raises(ValueError, match="no power model"):
        family_of("XC7A35T")
    with pytest.raises(ValueError, match="clk_hz"):
        power(clk=0)
    with pytest.raises(ValueError, match="clk_hz"):
        power(clk=float("inf"))
    with pytest.raises(ValueError, match="io_toggles"):
        power(io_toggles_per_s=-1)
    with pytest.raises(ValueError, match="oscillator"):
        power(oscillator="ring")
    with pytest.raises(ValueError, match="no hfosc figure"):
        power(ECP5_85, oscillator="hfosc")
    with pytest.raises(ValueError, match="no static figure"):
        estimate_power(device="iCE40UP3K-SG48", resources=RES, activity=activity(), clk_hz=1e6)
    with pytest.raises(ValueError, match="luts"):
        Resources(luts=-1, carries=0, ffs=0)
    with pytest.raises(ValueError, match="cycles"):
        power().energy_per_inference(-5)


def test_resources_from_reports():
    ice40 = {"device": UP5K,
             "resources": {"lc": {"used": 1500, "available": 5280}, "ff": {"used": 600, "available": 5280},
                           "ebr": {"used": 14, "available": 30}, "spram": {"used": 0, "available": 4},
                           "dsp": {"used": 0, "available": 8}},
             "cells": {"SB_LUT4": 1100, "SB_CARRY": 340, "SB_DFFE": 600, "SB_RAM40_4K": 14}}
    assert Resources.from_report(ice40) == Resources(luts=1100, carries=340, ffs=600, ebr=14, spram=0, dsp=0)
    # An ECP5 report whose utilisation names differ: counts come from the Yosys cells.
    ecp5 = {"device": ECP5_85, "resources": {},
            "cells": {"LUT4": 900, "CCU2C": 100, "TRELLIS_FF": 450, "DP16KD": 6, "MULT18X18D": 1, "PFUMX": 20}}
    assert Resources.from_report(ecp5) == Resources(luts=900, carries=200, ffs=450, ebr=6, spram=0, dsp=1)


def test_docs_formula_matches_components():
    """docs/power.md names every dynamic component the estimate reports."""
    doc = DOCS.read_text()
    for name in power().dynamic_w:
        assert re.search(rf"\| {re.escape(name)} \|", doc), name
