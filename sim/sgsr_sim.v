// Simulation model of the ECP5's SGSR (the global set/reset, synchronous to CLK), for the board netlists
// of qlif.sim.gate.
//
// Yosys ships SGSR as a blackbox only (share/lattice/cells_bb_ecp5.v), so qlif.sim.gate adds this model.
// On the device, GSR low holds every flip-flop configured GSR="ENABLED" at its init value. Amaranth's
// ECP5 platform drives it from a two-stage synchroniser (two FD1S3AX with GSR="DISABLED", init 0), so it
// is low from configuration until the second clock edge (longer while the board's reset pin, if it has
// one, is held), and high from then on. Yosys' cell models take no part in a global reset: TRELLIS_FF
// starts at its init value (what configuration gives it) and runs from the first clock edge. This model
// holds the netlist to what that covers, and stops the simulation with a message otherwise:
//
// * GSR is released within RELEASE clock edges of the start (the flip-flops that run during those edges,
//   held on the device, see only the idle inputs of a design leaving configuration);
// * it is never asserted again (a global reset in mid-run, which the cell models would not carry out).
`timescale 1ps / 1ps
module SGSR(input GSR, input CLK);
	parameter RELEASE = 16;
	integer edges = 0;
	reg released = 1'b0;

	always @(posedge CLK) begin
		edges = edges + 1;
		if (GSR === 1'b1)
			released = 1'b1;
		else if (released || edges > RELEASE) begin
			$display("SGSR %m: GSR is %b at clock edge %0d (%s): a global reset the cell models do not carry out",
			         GSR, edges, released ? "after its release" : "still not released");
			$finish;
		end
	end
endmodule
