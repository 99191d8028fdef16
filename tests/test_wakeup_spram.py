# amaranth: UnusedElaboratable=no
"""The SPRAM's sleep input (issue 12): the simulation model keeps its contents over a sleep and flags an
access while asleep; on iCE40 the port drives the tiles' SLEEP pin (never POWEROFF); the core passes it
down to every SPRAM synapse memory and leaves it low unless driven."""

from __future__ import annotations

import re

import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from qlif.boards.tops.icebreaker import ICEBreakerPlatform
from qlif.golden.spec.random_model import random_model
from qlif.hw.encoder import EncodedNetwork
from qlif.hw.memory import plan_memories
from qlif.hw.network import Network
from qlif.hw.spram import SpramStore


def _run_store(sleep_cycles: int, wake_before_read: bool = True):
    """Write 8 words, sleep for ``sleep_cycles`` clock edges, wake, read them back: (words, flag)."""
    dut = SpramStore(width=16, depth=8)
    words = [(0x1234 * (i + 1)) & 0xFFFF for i in range(8)]
    got, flags = [], []

    async def bench(ctx):
        for i, w in enumerate(words):
            ctx.set(dut.write.addr, i)
            ctx.set(dut.write.data, w)
            ctx.set(dut.write.en, 1)
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        ctx.set(dut.sleep, 1)
        await ctx.tick().repeat(sleep_cycles) if sleep_cycles else None
        if wake_before_read:
            ctx.set(dut.sleep, 0)
        for i in range(8):
            ctx.set(dut.read.addr, i)
            await ctx.tick()
            got.append(ctx.get(dut.read.data))
        flags.append(ctx.get(dut.asleep_access))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return words, got, flags[0]


def test_model_keeps_contents_and_flags_access_while_asleep():
    # Asleep with no clock edge (as in the wake-up build, whose clock is stopped): nothing flagged.
    words, got, flag = _run_store(0)
    assert got == words and not flag
    # Edges while asleep: flagged for good; the contents are still there after waking.
    words, got, flag = _run_store(3)
    assert got == words and flag
    # Read while still asleep: all ones, flagged.
    words, got, flag = _run_store(0, wake_before_read=False)
    assert got == [0xFFFF] * 8 and flag


def test_ice40_tiles_sleep_from_the_port_and_never_power_off():
    text = rtlil.convert(SpramStore(width=32, depth=20000), platform=ICEBreakerPlatform())
    cells = re.findall(r"cell \\SB_SPRAM256KA .*?\n  end", text, re.S)
    assert len(cells) == 4                                       # 2 wide, 2 deep
    for cell in cells:
        assert re.search(r"connect \\SLEEP \\sleep\b", cell), cell
        assert re.search(r"connect \\POWEROFF 1'1", cell) and re.search(r"connect \\STANDBY 1'0", cell)


@pytest.mark.parametrize("block", [Network, EncodedNetwork])
def test_core_has_the_port_only_with_spram(block):
    model = random_model([6, 5, 3], timesteps=2, weight_bits=2, membrane_bits=8, seed=1)
    plan = plan_memories(model, 2, "iCE40UP5K", spram=True)
    assert plan.uses_spram
    members = block(model=model, lanes=2, memory=plan).signature.members
    assert "spram_sleep" in members and members["spram_sleep"].flow.name == "In"
    assert "spram_sleep" not in Network(model=model, lanes=2).signature.members
