// Simulation models of the iCE40 UltraPlus oscillators SB_HFOSC and SB_LFOSC, for the cocotb bench of
// the wake-up build (qlif.sim.wakeup_runner). Yosys' cells_sim.v models them with delays, for which
// the Verilator build would need --timing.
//
// Each model's oscillator is a register, `osc`, that the testbench toggles (a cocotb Clock on
// dut.hfosc.osc and dut.lfosc.osc): no delay statements, so Icarus and Verilator run the same models.
// The output gate is a plain AND, the worst a gate can do: Lattice does not say that SB_HFOSC's is
// glitch-free, so a change of CLKHFEN may cut a high phase short or make a runt pulse (in simulation a
// pulse of zero width when the enable changes with `osc`, which the bench's clock periods make happen).
// The design must not care: it changes CLKHFEN only while the core's registers hold their values.
//
// SB_HFOSC's power-up rule (iCE40 UltraPlus data sheet: CLKHFEN may rise only once CLKHFPU has been high
// for 100 us) is checked in oscillator cycles: `early` goes high, and stays high, when the output is
// enabled less than `startup` cycles of `osc` after CLKHFPU rose (the bench sets `startup` to the
// cycles of 100 us at its clock ratio) and the bench asserts it low. `edges` counts the output's rising
// edges (the bench reads it to see the clock stopped and started).
`timescale 1ns / 1ps
module SB_HFOSC #(
  parameter CLKHF_DIV = "0b00",
  parameter TRIM_EN = "0b0"
) (
  input CLKHFPU,
  input CLKHFEN,
  output CLKHF
);
  reg osc = 1'b0;
  reg early = 1'b0;
  reg [15:0] warm = 16'd0;
  reg [15:0] startup = 16'd4;
  reg [31:0] edges = 32'd0;
  always @(negedge osc) begin
    if (!CLKHFPU)
      warm <= 16'd0;
    else if (warm != startup)
      warm <= warm + 16'd1;
    if (CLKHFEN && (!CLKHFPU || warm != startup))
      early <= 1'b1;
  end
  assign CLKHF = osc & CLKHFPU & CLKHFEN;
  always @(posedge CLKHF)
    edges <= edges + 32'd1;
endmodule

module SB_LFOSC (
  input CLKLFPU,
  input CLKLFEN,
  output CLKLF
);
  reg osc = 1'b0;
  assign CLKLF = osc & CLKLFPU & CLKLFEN;
endmodule
