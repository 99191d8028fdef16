"""The LIF update datapath: P lanes of codebook decode, saturating integration, fire, leak and reset.

Purely combinational; :class:`qlif.hw.layer.NeuronLayer` wraps it in a read-modify-write pipeline around its
synapse and membrane memories (the datapath is shared by all neurons of the layer, time multiplexed).

Saturation is :func:`saturate`, a module-level function that :meth:`LifDatapath.elaborate` looks up
through this module's globals each time it runs. Tests rely on that: monkeypatching
``qlif.hw.lif.saturate`` with a wrong bound must make the RTL-versus-reference tests fail.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qlif.golden.spec.cycles import check_lanes
from qlif.golden.spec.model import Layer, default_codebook

__all__ = ["saturate", "weight_shape", "LifDatapath"]


def saturate(value, width: int):
    """Clip the Amaranth value ``value`` to ``[-2^(width-1), 2^(width-1)-1]``: the contract's ``sat``.

    Returns a signed value of at most ``width`` bits. It is called at elaboration time through the
    module global, so a mutation test can replace it (see the module docstring).
    """
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, C(0, 1)).as_signed()
    if len(value) <= width:
        return value
    # The value fits when all bits from the result's sign bit up are equal: a LUT test, where a
    # comparison with the bounds would be a carry chain on the iCE40.
    head = value[width - 1:]
    fits = (head == 0) | (head == (1 << len(head)) - 1)
    lo, hi = C(-(1 << (width - 1)), signed(width)), C((1 << (width - 1)) - 1, signed(width))
    return Mux(fits, value[:width].as_signed(), Mux(value[-1], lo, hi))


def weight_shape(layer: Layer) -> Shape:
    """The narrowest signed shape holding every value of the layer's codebook."""
    book = layer.effective_codebook
    return Shape.cast(range(min(min(book), -1), max(max(book), 0) + 1))


class LifDatapath(wiring.Component):
    """P lanes of the integer LIF update of one layer (combinational, no state).

    Lane ``i`` of every port belongs to the same neuron.

    * ``integrated = sat(membrane + codebook[code])`` (contract step 3, one input event);
    * ``spikes = membrane > theta`` (step 4);
    * ``leaked = leak(membrane)`` (step 1 of the next step);
    * ``reset_next = reset(pending, resets)`` (step 2 of the next step, lane by lane where ``resets``
      is set; ``pending`` unchanged elsewhere), so the layer stores the next step's pre-integration
      value. Separate inputs, so that the layer can register ``leaked`` and ``spikes`` between the
      fire test and leak on one side and the reset on the other (two pipeline stages, one subtraction
      each). With ``resets`` all 0 it passes ``pending`` through, so one write-back path serves every
      kind of pass.

    Parameters
    ----------
    layer : Layer
        The golden layer whose parameters (codebook, k, theta, leak shift, reset) are baked in.
    lanes : int
        P, neurons updated per cycle, in :data:`qlif.golden.spec.cycles.LANES`.
    threshold : Value or None
        For the formal proof only (sim/proofs/lif.py): theta as a ``signed(k)`` value (a free solver input)
        in place of the constant ``layer.threshold``, which is then never read. The same expressions use it
        either way, so one proof build stands for every theta. ``None`` (hardware): the layer's constant.

    Members
    -------
    codes : In(unsigned(P*b))
        P packed weight codes, lane ``i`` in bits ``[i*b, (i+1)*b)``.
    membrane : In(ArrayLayout(signed(k), P))
    integrated : Out(ArrayLayout(signed(k), P))
    spikes : Out(P)
    leaked : Out(ArrayLayout(signed(k), P))
    pending : In(ArrayLayout(signed(k), P))
    resets : In(P)
    reset_next : Out(ArrayLayout(signed(k), P))

    Latency 0 (combinational). Area: per lane an adder of ``max(k, weight width) + 1`` bits, a
    comparison with theta, the leak and reset subtractions, and a codebook mux only for custom codebooks
    (the default ones decode as plain two's complement or ``2c - 1``).
    """

    def __init__(self, *, layer: Layer, lanes: int, threshold: Value | None = None):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a qlif.golden.spec.model.Layer, not {layer!r}")
        check_lanes(lanes)
        k = layer.membrane_bits
        if threshold is not None:
            threshold = Value.cast(threshold)
            if threshold.shape() != signed(k):
                raise TypeError(f"threshold must be a signed({k}) value, not {threshold!r}")
        self._layer = layer
        self._lanes = lanes
        self._threshold = threshold
        super().__init__({
            "codes": In(unsigned(lanes * layer.weight_bits)),
            "membrane": In(data.ArrayLayout(signed(k), lanes)),
            "integrated": Out(data.ArrayLayout(signed(k), lanes)),
            "spikes": Out(lanes),
            "leaked": Out(data.ArrayLayout(signed(k), lanes)),
            "pending": In(data.ArrayLayout(signed(k), lanes)),
            "resets": In(lanes),
            "reset_next": Out(data.ArrayLayout(signed(k), lanes)),
        })

    @property
    def layer(self) -> Layer:
        return self._layer

    @property
    def lanes(self) -> int:
        return self._lanes

    def _decode(self, m: Module, code):
        """Code -> weight value. The default codebooks need no table, custom ones get a constant mux."""
        layer, b = self._layer, self._layer.weight_bits
        book = layer.effective_codebook
        if b > 1 and list(book) == default_codebook(b):
            return code.as_signed()
        if list(book) == [-1, 1]:
            return Mux(code, C(1, signed(2)), C(-1, signed(2)))
        value = Signal(weight_shape(layer))
        with m.Switch(code):
            for c, v in enumerate(book):
                with m.Case(c):
                    m.d.comb += value.eq(v)
        return value

    def elaborate(self, platform):
        m = Module()
        layer, b, k = self._layer, self._layer.weight_bits, self._layer.membrane_bits
        theta = C(layer.threshold, signed(k)) if self._threshold is None else self._threshold
        for i in range(self._lanes):
            v = self.membrane[i]
            w = self._decode(m, self.codes[i * b:(i + 1) * b])
            m.d.comb += self.integrated[i].eq(saturate(v + w, k))
            m.d.comb += self.spikes[i].eq(v > theta)
            # Leak: v - (v >> lam), arithmetic shift; it moves v towards 0 so it never leaves k bits.
            m.d.comb += self.leaked[i].eq(v if layer.leak_shift is None else v - (v >> layer.leak_shift))
            u, s = self.pending[i], self.resets[i]
            if layer.reset == "subtract":
                # No saturation: a reset lane spiked, v > theta >= 0, so its leaked value u is >= 0 and
                # u - theta >= -theta > -2^(k-1). A constant subtraction, then a 2:1 mux.
                u = Mux(s, (u - theta)[:k].as_signed(), u)
            else:
                u = Mux(s, 0, u)
            m.d.comb += self.reset_next[i].eq(u)
        return m
