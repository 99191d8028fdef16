"""The LIF datapath on its own: every membrane value against every code, all lanes at once."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from qlif.golden.spec.model import Layer, default_codebook
from qlif.golden.spec.reference import run_layer
from qlif.hw.lif import LifDatapath, weight_shape


def make_layer(b, k, theta, leak, reset, codebook=None) -> Layer:
    first = (codebook or default_codebook(b))[0]
    layer = Layer(weights=np.full((1, 1), first, np.int64), weight_bits=b, membrane_bits=k, threshold=theta,
                  leak_shift=leak, reset=reset, codebook=None if codebook is None else tuple(codebook))
    layer.validate("layer")
    return layer


def golden_step(layer: Layer, v: int, w: int) -> tuple[int, int, int]:
    """(sat(v + w), v > theta, next pre-integration value) from the reference model itself.

    A one-neuron layer reaches membrane ``v`` at step 0 through inputs of weight 1 each (or -1), then
    step 1 with one input of weight ``w`` gives ``reset(leak(v), s) + w``; step 2 with no input gives
    the next pre-integration value of ``v`` directly.
    """
    v_max, v_min = layer.v_max, layer.v_min
    sat = min(max(v + w, v_min), v_max)
    s = int(v > layer.threshold)
    n = abs(v)
    weights = np.full((max(n, 1), 1), 1 if v >= 0 else -1, np.int64)
    probe = Layer(weights=weights, weight_bits=8, membrane_bits=layer.membrane_bits,
                  threshold=layer.threshold, leak_shift=layer.leak_shift, reset=layer.reset)
    x = np.zeros((1, 2, weights.shape[0]), np.uint8)
    x[0, 0, :n] = 1
    _, mem = run_layer(probe, x)
    assert mem[0, 0, 0] == v
    return sat, s, int(mem[0, 1, 0])


@pytest.mark.parametrize("b,k,theta,leak,reset,book", [
    (2, 4, 3, 1, "subtract", None),
    (1, 5, 0, None, "zero", None),
    (4, 4, 5, 0, "subtract", [-9, -7, -5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 12]),
    (2, 6, 30, 3, "zero", [-40, 0, 7, 33]),
])
def test_lanes_match_reference(b, k, theta, leak, reset, book):
    layer = make_layer(b, k, theta, leak, reset, book)
    lanes = 2
    dut = LifDatapath(layer=layer, lanes=lanes)
    values = list(range(layer.v_min, layer.v_max + 1))
    codes = range(1 << b)
    book = layer.effective_codebook
    expect = {v: {c: golden_step(layer, v, book[c]) for c in codes} for v in values}
    assert weight_shape(layer).width <= 7

    async def tb(ctx):
        for v in values:
            for c in codes:
                other = values[(values.index(v) * 7 + 3) % len(values)]
                c2 = (c * 5 + 1) % (1 << b)
                ctx.set(dut.membrane, [v, other])
                ctx.set(dut.codes, c | c2 << b)
                ctx.set(dut.pending, [ctx.get(dut.leaked[0]), ctx.get(dut.leaked[1])])
                ctx.set(dut.resets, ctx.get(dut.spikes))
                for lane, (vv, cc) in enumerate([(v, c), (other, c2)]):
                    sat, s, nxt = expect[vv][cc]
                    assert ctx.get(dut.integrated[lane]) == sat, (vv, cc)
                    assert (ctx.get(dut.spikes) >> lane) & 1 == s, vv
                    assert ctx.get(dut.reset_next[lane]) == nxt, vv

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
