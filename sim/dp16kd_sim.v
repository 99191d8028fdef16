// Simulation model of the ECP5 block RAM DP16KD, for the gate-level netlists of qlif.sim.gate.
//
// Yosys ships DP16KD as a blackbox only (share/lattice/cells_sim_ecp5.v), so qlif.sim.gate puts this
// model in its place. It covers what Yosys' own mapping (share/lattice/brams_map_16kd.v: the true dual
// port $__DP16KD_ and the pseudo dual port $__PDPW16KD_) emits and stops the simulation on anything else:
//
// * widths 1, 2, 4, 9, 18 per port, and 36 (the pseudo dual port: port A writes DIB:DIA, port B reads
//   DOB:DOA); REGMODE "NOREG"; CSDECODE "0b000" (a port works while its CS pins are all 0); CLKxMUX
//   "CLKx" or "INV"; WRITEMODE "NORMAL" (the output keeps its value during a write), "WRITETHROUGH"
//   (reads the new word), "READBEFOREWRITE" (reads the old word);
// * RESETMODE "SYNC" (RST clears the output at the clock edge, over CE) or "ASYNC" (at once);
// * the 18 Kbit array as 1024 rows of 18 bits, row 16*i + j in INITVAL_i[20*j +: 18] (brams_map_16kd.v's
//   init_slice); the words of each width nest as Yosys' memory library describes it
//   (passes/memory/memlib.md: a 36-bit word is two rows, an 18-bit word two 9-bit words, a 9-bit word
//   two 4-bit words and an extra bit, a 4-bit word two 2-bit words, ...), so a w-bit port's address
//   bits above those of the word (AD13 down to AD5, AD4, AD3, AD2, AD1, AD0 for w = 36, 18, 9, 4, 2, 1)
//   pick the row and the nested half;
// * byte enables of wide writes on the low address pins, as brams_map_16kd.v puts them: AD0, AD1 for
//   the 9-bit halves of an 18-bit word, AD0..AD3 for the 9-bit quarters of a 36-bit word.
//
// A read and a write of the same word at the same clock edge by the two ports read either word (the
// hardware leaves it undefined, and Yosys does not rely on it).
`timescale 1ps / 1ps
module DP16KD(
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA,
  input CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,

  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB,
  input CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
	parameter DATA_WIDTH_A = 18;
	parameter DATA_WIDTH_B = 18;
	parameter REGMODE_A = "NOREG";
	parameter REGMODE_B = "NOREG";
	parameter RESETMODE = "SYNC";
	parameter ASYNC_RESET_RELEASE = "SYNC";
	parameter CSDECODE_A = "0b000";
	parameter CSDECODE_B = "0b000";
	parameter WRITEMODE_A = "NORMAL";
	parameter WRITEMODE_B = "NORMAL";
	parameter CLKAMUX = "CLKA";
	parameter CLKBMUX = "CLKB";
	parameter GSR = "ENABLED";
	parameter INIT_DATA = "STATIC";
	parameter INITVAL_00 = 320'h0; parameter INITVAL_01 = 320'h0; parameter INITVAL_02 = 320'h0; parameter INITVAL_03 = 320'h0;
	parameter INITVAL_04 = 320'h0; parameter INITVAL_05 = 320'h0; parameter INITVAL_06 = 320'h0; parameter INITVAL_07 = 320'h0;
	parameter INITVAL_08 = 320'h0; parameter INITVAL_09 = 320'h0; parameter INITVAL_0A = 320'h0; parameter INITVAL_0B = 320'h0;
	parameter INITVAL_0C = 320'h0; parameter INITVAL_0D = 320'h0; parameter INITVAL_0E = 320'h0; parameter INITVAL_0F = 320'h0;
	parameter INITVAL_10 = 320'h0; parameter INITVAL_11 = 320'h0; parameter INITVAL_12 = 320'h0; parameter INITVAL_13 = 320'h0;
	parameter INITVAL_14 = 320'h0; parameter INITVAL_15 = 320'h0; parameter INITVAL_16 = 320'h0; parameter INITVAL_17 = 320'h0;
	parameter INITVAL_18 = 320'h0; parameter INITVAL_19 = 320'h0; parameter INITVAL_1A = 320'h0; parameter INITVAL_1B = 320'h0;
	parameter INITVAL_1C = 320'h0; parameter INITVAL_1D = 320'h0; parameter INITVAL_1E = 320'h0; parameter INITVAL_1F = 320'h0;
	parameter INITVAL_20 = 320'h0; parameter INITVAL_21 = 320'h0; parameter INITVAL_22 = 320'h0; parameter INITVAL_23 = 320'h0;
	parameter INITVAL_24 = 320'h0; parameter INITVAL_25 = 320'h0; parameter INITVAL_26 = 320'h0; parameter INITVAL_27 = 320'h0;
	parameter INITVAL_28 = 320'h0; parameter INITVAL_29 = 320'h0; parameter INITVAL_2A = 320'h0; parameter INITVAL_2B = 320'h0;
	parameter INITVAL_2C = 320'h0; parameter INITVAL_2D = 320'h0; parameter INITVAL_2E = 320'h0; parameter INITVAL_2F = 320'h0;
	parameter INITVAL_30 = 320'h0; parameter INITVAL_31 = 320'h0; parameter INITVAL_32 = 320'h0; parameter INITVAL_33 = 320'h0;
	parameter INITVAL_34 = 320'h0; parameter INITVAL_35 = 320'h0; parameter INITVAL_36 = 320'h0; parameter INITVAL_37 = 320'h0;
	parameter INITVAL_38 = 320'h0; parameter INITVAL_39 = 320'h0; parameter INITVAL_3A = 320'h0; parameter INITVAL_3B = 320'h0;
	parameter INITVAL_3C = 320'h0; parameter INITVAL_3D = 320'h0; parameter INITVAL_3E = 320'h0; parameter INITVAL_3F = 320'h0;

	localparam [64*320-1:0] INITVAL = {
		INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A, INITVAL_39, INITVAL_38,
		INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32, INITVAL_31, INITVAL_30,
		INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A, INITVAL_29, INITVAL_28,
		INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22, INITVAL_21, INITVAL_20,
		INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A, INITVAL_19, INITVAL_18,
		INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12, INITVAL_11, INITVAL_10,
		INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A, INITVAL_09, INITVAL_08,
		INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02, INITVAL_01, INITVAL_00};

	// The array, flat: row r in bits [18*r +: 18].
	reg [18*1024-1:0] mem;
	integer r;
	initial begin
		for (r = 0; r < 1024; r = r + 1)
			mem[18*r +: 18] = INITVAL[20*r +: 18];
		if (DATA_WIDTH_A != 1 && DATA_WIDTH_A != 2 && DATA_WIDTH_A != 4 && DATA_WIDTH_A != 9 && DATA_WIDTH_A != 18
		    && DATA_WIDTH_A != 36
		    || DATA_WIDTH_B != 1 && DATA_WIDTH_B != 2 && DATA_WIDTH_B != 4 && DATA_WIDTH_B != 9 && DATA_WIDTH_B != 18
		    && DATA_WIDTH_B != 36
		    || REGMODE_A != "NOREG" || REGMODE_B != "NOREG" || CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
		    || RESETMODE != "SYNC" && RESETMODE != "ASYNC") begin
			$display("DP16KD %m: configuration not modelled (DATA_WIDTH %0d/%0d, REGMODE, CSDECODE or RESETMODE)",
			         DATA_WIDTH_A, DATA_WIDTH_B);
			$finish;
		end
	end

	// Bit offset of a word of `width` bits at address `ad` (the pins AD13..AD0) in the flat array.
	function integer offset(input integer width, input [13:0] ad);
		case (width)
			36: offset = 36 * ad[13:5];
			18: offset = 18 * ad[13:4];
			9: offset = 18 * ad[13:4] + 9 * ad[3];
			4: offset = 18 * ad[13:4] + 9 * ad[3] + 4 * ad[2];
			2: offset = 18 * ad[13:4] + 9 * ad[3] + 4 * ad[2] + 2 * ad[1];
			default: offset = 18 * ad[13:4] + 9 * ad[3] + 4 * ad[2] + 2 * ad[1] + ad[0];
		endcase
	endfunction

	wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
	wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
	wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
	wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
	wire clka = CLKAMUX == "INV" ? ~CLKA : CLKA;
	wire clkb = CLKBMUX == "INV" ? ~CLKB : CLKB;
	wire ena = {CSA2, CSA1, CSA0} == 3'b000;
	wire enb = {CSB2, CSB1, CSB0} == 3'b000;

	// Port B's output register holds 36 bits (a 36-bit read drives DOB:DOA), port A's 18.
	reg [17:0] doa = 0;
	reg [35:0] dob = 0;
	wire [17:0] doa_pins = DATA_WIDTH_B == 36 ? dob[17:0] : doa;
	wire [17:0] dob_pins = DATA_WIDTH_B == 36 ? dob[35:18] : dob[17:0];
	assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa_pins;
	assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob_pins;

	// One port's access at its clock edge: the write, and the output the write mode gives (ports A and B
	// alike); `dout` is the output before the edge, `next` after it.
	task automatic access(input integer width, input [13:0] ad, input [35:0] di, input we,
	                      input [8*15:1] mode, input [35:0] dout, output [35:0] next);
		integer base, i;
		reg [35:0] old;
		begin
			base = offset(width, ad);
			old = 0;
			for (i = 0; i < width; i = i + 1)
				old[i] = mem[base + i];
			next = dout;
			if (we) begin
				for (i = 0; i < width; i = i + 1)
					if (width < 18 || ad[i / 9])
						mem[base + i] = di[i];
			end
			if (!we || mode == "READBEFOREWRITE")
				next = old;
			else if (mode == "WRITETHROUGH") begin
				next = 0;
				for (i = 0; i < width; i = i + 1)
					next[i] = mem[base + i];
			end
		end
	endtask

	// RESETMODE "ASYNC": the reset clears the output at once; "SYNC": at the clock edge, over CE.
	wire arsta = RESETMODE == "ASYNC" && RSTA;
	wire arstb = RESETMODE == "ASYNC" && RSTB;
	reg [35:0] nexta, nextb;
	always @(posedge clka or posedge arsta) begin
		if (arsta || RSTA && ena)
			doa <= 0;
		else if (CEA && ena) begin
			// A 36-bit port A writes DIB:DIA (and has no read data of its own).
			access(DATA_WIDTH_A, ada, DATA_WIDTH_A == 36 ? {dib, dia} : {18'b0, dia}, WEA, WRITEMODE_A,
			       {18'b0, doa}, nexta);
			doa <= nexta[17:0];
		end
	end
	always @(posedge clkb or posedge arstb) begin
		if (arstb || RSTB && enb)
			dob <= 0;
		else if (CEB && enb) begin
			access(DATA_WIDTH_B, adb, {18'b0, dib}, WEB, WRITEMODE_B, dob, nextb);
			dob <= nextb;
		end
	end
endmodule
