"""Switching activity: the Verilog classifier and the waveform reader (VCD and FST) on small known inputs,
and one real Verilator measurement that must grow with the workload."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from qlif.boards.flow.activity import Activity, MemoryActivity
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run
from qlif.sim.activity import activity_from_waveform, measure_activity, parse_verilog

#: Yosys-style Verilog (the shapes Amaranth's back end writes): a register, a memory with an enabled
#: write port and an unconditional read port, a read register, a sub-module instance, comb logic.
VERILOG = r"""
module \top.sub (clk, a, y);
  input clk;
  wire clk;
  input [3:0] a;
  wire [3:0] a;
  output [3:0] y;
  reg [3:0] y = 4'h0;
  wire [3:0] \$1 ;
  assign \$1  = a + 4'h1;
  always @(posedge clk)
    y <= \$1 ;
endmodule

module top(clk, d, q);
  input clk;
  wire clk;
  input [3:0] d;
  wire [3:0] d;
  output [3:0] q;
  wire [3:0] q;
  wire we;
  wire [1:0] wa;
  reg [1:0] ra = 2'h0;
  reg [3:0] store [3:0];
  initial begin
    store[0] = 4'h0;
  end
  always @(posedge clk) begin
    if (we)
      store[wa] <= d;
  end
  reg [3:0] _0_;
  always @(posedge clk) begin
    _0_ <= store[ra];
  end
  assign q = _0_;
  always @(posedge clk)
    ra <= wa;
  assign we = d[0];
  assign wa = d[2:1];
  \top.sub  sub (
    .a(d),
    .clk(clk),
    .y(q)
  );
endmodule
"""


def test_parse_verilog():
    info = parse_verilog(VERILOG)
    top, sub = info.module("top"), info.module("top.sub")
    assert top.instances == {"sub": "top.sub"}
    assert top.registers == {"ra", "_0_"} and top.memory_outputs == {"_0_"}
    assert top.ports == {"clk", "d", "q"}
    store = top.memories["store"]
    assert (store.width, store.depth) == (4, 4)
    assert store.write_enables == ["we"] and store.read_enables == [None]
    assert "store" not in top.nets and top.nets["wa"] == 2
    assert sub.registers == {"y"} and sub.nets["$1"] == 4


#: A VCD of that design: 4 rising clock edges (at 10, 30, 50, 70). Known toggles:
#: top.ra (FF, 2 bits): 00 -> 11 at 30 (2), 11 -> 10 at 50 (1)           = 3
#: top.we (logic, 1 bit): 0 -> 1 at 20, 1 -> 0 at 60                     = 2
#: top.wa (logic, 2 bits): 00 -> 11 at 20, 11 -> 01 at 40 (1), x at 60 -> 01 at 65 (not counted) = 3
#: sub.y (FF, 4 bits): 0000 -> 0001 at 10 (1), -> 0010 at 30 (2)          = 3
#: sub.$1 (logic, 4 bits): 0001 -> 0010 at 10 (2)                          = 2
#: ports (top.d, sub.a, sub.y ... as ports) are not counted; sub.y is a port of sub but a register: the
#: VCD name `y` in scope sub is a port, so it is left out. The write enable `we` is high just before the
#: edges at 30 and 50 (it rises at 20 and falls at 60) and, at 50, also at the same time as nothing else.
VCD = """$timescale 1ps $end
$scope module top $end
$var wire 1 ! clk $end
$var wire 4 " d [3:0] $end
$var wire 1 # we $end
$var wire 2 $ wa [1:0] $end
$var wire 2 % ra [1:0] $end
$var wire 4 & q [3:0] $end
$scope module sub $end
$var wire 4 ' y [3:0] $end
$var wire 4 ( $1 [3:0] $end
$var wire 1 ) clk $end
$upscope $end
$upscope $end
$enddefinitions $end
#0
$dumpvars
0!
b0000 "
0#
b00 $
b00 %
b0000 &
b0000 '
b0001 (
0)
$end
#10
1!
b0010 (
b0001 '
#15
0!
#20
1#
b11 $
#30
1!
b11 %
b0010 '
#35
0!
#40
b01 $
#50
1!
b10 %
#55
0!
#60
0#
bxx $
#65
b01 $
#70
1!
#75
0!
"""


def test_activity_from_waveform(tmp_path):
    path = tmp_path / "dump.vcd"
    path.write_text(VCD)
    act = activity_from_waveform(path, VERILOG, top="top")
    assert act.cycles == 4
    # FFs: top.ra (2 bits, 3 toggles); sub.y is a port of sub (left out to count a net once).
    assert (act.ff_bits, act.ff_toggles) == (2, 3)
    # logic: we (1 bit, 2), wa (2 bits, 3), sub.$1 (4 bits, 2); clk is the clock, d and q are ports.
    assert (act.logic_bits, act.logic_toggles) == (7, 7)
    assert act.ff_rate == pytest.approx(3 / (2 * 4))
    assert act.logic_rate == pytest.approx(7 / (7 * 4))
    (store,) = act.memories
    # `we` was 1 just before the edges at 30 and 50, 0 before 10 and 70: 2 writes; reads every cycle.
    assert store == MemoryActivity(name="store", width=4, depth=4, reads=4, writes=2, read_ports=1, write_ports=1)


def test_activity_checks_and_json():
    with pytest.raises(ValueError, match="cycles"):
        Activity(cycles=0, ff_bits=1, ff_toggles=0, logic_bits=1, logic_toggles=0)
    with pytest.raises(ValueError, match="ff_toggles"):
        Activity(cycles=1, ff_bits=1, ff_toggles=-1, logic_bits=1, logic_toggles=0)
    mems = (MemoryActivity("a", 16, 1024, 100, 10, 1, 1),   # 4 blocks of 256 x 16
            MemoryActivity("b", 32, 256, 50, 50, 1, 1),     # 2 blocks
            MemoryActivity("c", 44, 3, 100, 100, 1, 1))     # shallow: flip-flops, left out
    act = Activity(cycles=100, ff_bits=10, ff_toggles=50, logic_bits=20, logic_toggles=10, memories=mems)
    reads, writes = act.memory_rates(block_width=16, block_depth=256)
    assert reads == pytest.approx((4 * 1.0 + 2 * 0.5) / 6) and writes == pytest.approx((4 * 0.1 + 2 * 0.5) / 6)
    assert Activity.from_json(json.loads(json.dumps(act.to_json()))) == act
    empty = Activity(cycles=5, ff_bits=0, ff_toggles=0, logic_bits=0, logic_toggles=0)
    assert empty.ff_rate == empty.logic_rate == 0 and empty.memory_rates(block_width=16, block_depth=256) == (0, 0)


def test_an_enable_is_sampled_just_before_the_edge(tmp_path):
    # `we` rises at the edge at 30 itself (as a net driven by a register does): the write port saw 0
    # there, and 1 only at the edge at 50.
    path = tmp_path / "dump.vcd"
    path.write_text(VCD.replace("#20\n1#\n", "#20\n").replace("#30\n1!\n", "#30\n1!\n1#\n"))
    act = activity_from_waveform(path, VERILOG, top="top")
    assert act.memories[0].writes == 1 and (act.logic_bits, act.logic_toggles) == (7, 7)


#: A testbench for VERILOG under Icarus: 8 clock cycles, ``d`` counting up by 7 after each.
TESTBENCH = r"""
module tb;
  reg clk = 0;
  reg [3:0] d = 0;
  wire [3:0] q;
  top top (.clk(clk), .d(d), .q(q));
  initial begin
    $dumpfile(`WAVES);
    $dumpvars(0, top);
    repeat (8) begin
      #5 clk = 1;
      #5 clk = 0;
      d = d + 4'd7;
    end
    $finish;
  end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_fst_and_vcd_of_one_simulation_give_the_same_counts(tmp_path):
    (tmp_path / "design.v").write_text(VERILOG + TESTBENCH)
    acts = []
    for fmt in ("vcd", "fst"):
        subprocess.run(["iverilog", "-g2005", f'-DWAVES="{fmt}.{fmt}"', "-o", f"{fmt}.vvp", "design.v"],
                       cwd=tmp_path, check=True, capture_output=True)
        subprocess.run(["vvp", "-n", f"{fmt}.vvp", f"-{fmt}"], cwd=tmp_path, check=True, capture_output=True)
        acts.append(activity_from_waveform(tmp_path / f"{fmt}.{fmt}", VERILOG, top="top"))
    from_vcd, from_fst = acts
    assert from_fst == from_vcd
    # d before the edges: 0, 7, 14, 5, 12, 3, 10, 1, so we = d[0] is 1 before every other edge, and
    # ra <= d[2:1] goes 0, 3, 3, 2, 2, 1, 1, 0: 2 + 1 + 2 + 1 bit changes.
    assert from_fst.cycles == 8 and (from_fst.ff_bits, from_fst.ff_toggles) == (2, 6)
    assert from_fst.memories[0].writes == 4 and from_fst.memories[0].reads == 8


def test_waveform_errors(tmp_path):
    (tmp_path / "bad.vcd").write_text("not a vcd\n")
    with pytest.raises(ValueError, match="not a VCD or FST"):
        activity_from_waveform(tmp_path / "bad.vcd", VERILOG, top="top")
    with pytest.raises(FileNotFoundError, match="no waveform"):
        activity_from_waveform(tmp_path / "missing.fst", VERILOG, top="top")
    with pytest.raises(ValueError, match="module 'nope'"):
        activity_from_waveform(tmp_path / "bad.vcd", VERILOG, top="nope")
    (tmp_path / "noclk.vcd").write_text(VCD.replace(" clk $end", " clock $end"))
    with pytest.raises(ValueError, match="clock"):
        activity_from_waveform(tmp_path / "noclk.vcd", VERILOG, top="top")


def test_measured_activity_grows_with_the_workload():
    """Verilator with a VCD on the real core: sane counts, and denser input spikes mean more toggles and
    more synapse reads than sparse ones over the same number of steps."""
    model = random_model([16, 8, 4], timesteps=3, seed=3)
    rng = np.random.default_rng(1)
    sparse = (rng.random((2, 3, 16)) < 0.1).astype(np.uint8)
    dense = (rng.random((2, 3, 16)) < 0.6).astype(np.uint8)
    acts = [measure_activity(model, x, lanes=2) for x in (sparse, dense)]
    for act, x in zip(acts, (sparse, dense), strict=True):
        assert act.cycles >= run(model, x, lanes=2).cycles.sum()       # waits and clears come on top
        assert act.ff_bits > 50 and act.logic_bits > act.ff_bits
        assert 0 < act.ff_rate < 1 and 0 < act.logic_rate < 1
        names = {m.name for m in act.memories}
        assert {"layer0.syn", "layer0.mem", "layer1.syn", "layer1.mem"} <= names
        assert act.meta["samples"] == 2 and act.meta["lanes"] == 2
    low, high = acts
    assert high.ff_toggles + high.logic_toggles > 1.5 * (low.ff_toggles + low.logic_toggles)
    mem = {a: {m.name: m for m in act.memories} for a, act in zip("lh", acts, strict=True)}
    assert mem["h"]["layer0.mem"].writes > mem["l"]["layer0.mem"].writes     # one write per event and group
