"""The generated core's Verilog ports: the names and order that the cocotb benches and users' wrappers rely on."""

from qlif.golden.spec.random_model import random_model
from qlif.hw.verilog import generate

#: The module header of ``generate()`` for a core without SPRAM, as it was before the core's ports became
#: signatures (commit c7f5d53): a positional instantiation keeps working.
PORTS = ["events__valid", "spikes__ready", "clear", "clk", "rst", "events__ready", "spikes__payload", "spikes__valid",
         "trace__valid", "trace__layer", "trace__group", "trace__spikes", "trace__membrane", "step_done",
         "step_cycles", "idle", "error", "counts", "prediction", "events__payload"]


def test_core_ports_keep_their_names_and_order():
    text = generate(random_model([6, 5, 3]), lanes=2)
    header = next(line for line in text.splitlines() if line.startswith("module qlif_top("))
    assert header[len("module qlif_top("):-len(");")].split(", ") == PORTS
