"""The host link: a UART byte protocol in front of the :class:`~qlif.hw.network.Network` core.

The protocol is specified in ``docs/host-protocol.md``: the host sends 16-bit big-endian tokens (an input
spike address, :data:`EOT` to end a timestep, :data:`CLEAR` to start a sample), and after the ``T``-th
step of a sample the board answers with one byte, the prediction or :data:`ERROR_FLAG` with error bits.
:class:`HostLink` is board independent; a board top (``boards/icebreaker.py``) only adds pins and a clock.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from qlif.golden.model import Model
from qlif.hw.network import Network

from .uart import UARTRX, UARTTX

__all__ = [
    "EOT", "CLEAR", "ERROR_FLAG", "ERR_ADDRESS", "ERR_ORDER", "ERR_UART", "MAX_CLASSES",
    "HostToken", "TokenAssembler", "HostLink", "encode_sample", "decode_reply",
]

EOT = 0xFFFF                 #: token: end of the current timestep
CLEAR = 0xFFFE               #: token: start a new sample (zero all state, counters and error flags)
ERROR_FLAG = 0x80            #: reply bit 7: the byte carries error bits instead of a prediction
ERR_ADDRESS = 0x01           #: error bit: an address >= n_in was sent (the token was dropped)
ERR_ORDER = 0x02             #: error bit: addresses of a step were not strictly ascending (dropped)
ERR_UART = 0x04              #: error bit: a UART framing error or receive overrun (a byte was lost)
MAX_CLASSES = ERROR_FLAG     #: a prediction must fit in the 7 bits below the error flag

#: Host bytes buffered on the board while the core is busy with a timestep.
RX_FIFO_DEPTH = 16
#: A half token older than this is dropped, so a host can regain token alignment by pausing.
RESYNC_SECONDS = 0.01


#: A host token with its command decoded (registered, so no comparator sits before the core's input).
HostToken = data.StructLayout({
    "word": 16,     # the token as sent: an input address, or a command below
    "eot": 1,       # word == EOT
    "clear": 1,     # word == CLEAR
})


class TokenAssembler(wiring.Component):
    """Pairs of bytes (big-endian) to 16-bit tokens, with resynchronisation by an idle timeout.

    Parameters
    ----------
    timeout : int
        Clock cycles after a first byte within which its second byte must arrive; a later one starts a
        new token instead (the lone first byte is dropped).

    Members
    -------
    bytes : In(stream.Signature(8))
    tokens : Out(stream.Signature(HostToken))
        A token is offered the cycle after its second byte is taken and held until accepted; no
        further byte is taken meanwhile (the backpressure goes to the byte stream). Throughput: one
        token per two byte handshakes.
    """

    def __init__(self, *, timeout: int):
        if not isinstance(timeout, int) or timeout < 1:
            self._MustUse__silence = True     # refused: no "never elaborated" warning
            raise ValueError(f"timeout must be a positive integer of cycles, not {timeout!r}")
        self._timeout = timeout
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "tokens": Out(stream.Signature(HostToken)),
        })

    @property
    def timeout(self) -> int:
        return self._timeout

    def elaborate(self, platform) -> Module:
        m = Module()
        high = Signal(8)
        have_high = Signal()
        age = Signal(range(self._timeout + 1))

        m.d.comb += self.bytes.ready.eq(~self.tokens.valid)
        with m.If(self.tokens.ready):
            m.d.sync += self.tokens.valid.eq(0)
        with m.If(self.bytes.valid & self.bytes.ready):
            with m.If(have_high):
                word = Cat(self.bytes.payload, high)
                m.d.sync += [self.tokens.payload.word.eq(word),
                             self.tokens.payload.eot.eq(word == EOT),
                             self.tokens.payload.clear.eq(word == CLEAR),
                             self.tokens.valid.eq(1), have_high.eq(0)]
            with m.Else():
                m.d.sync += [high.eq(self.bytes.payload), have_high.eq(1), age.eq(0)]
        with m.Elif(have_high):
            m.d.sync += age.eq(age + 1)
            with m.If(age == self._timeout - 1):
                m.d.sync += have_high.eq(0)
        return m


class HostLink(wiring.Component):
    """UART host protocol around a :class:`~qlif.hw.network.Network` (``docs/host-protocol.md``).

    ``rx`` -> :class:`~.uart.UARTRX` -> byte FIFO (:data:`RX_FIFO_DEPTH`, one block RAM) ->
    :class:`TokenAssembler` -> sequencer -> a register stage -> ``Network.events``; the network's
    output spikes are drained (only its counters matter); after the ``T``-th ``step_done`` of a sample
    the reply byte goes to :class:`~.uart.UARTTX`. A ``CLEAR`` waits until the core is idle (ending an
    open step with an eot first) and then pulses ``Network.clear``.

    Parameters
    ----------
    model : qlif.golden.model.Model
        The network (baked into the bitstream); at most :data:`MAX_CLASSES` outputs.
    lanes : int
        P of the core.
    clk_freq : int or float
        Clock frequency in Hz.
    baud : int
        UART baud rate (8N1).
    resync_cycles : int or None
        Timeout of :class:`TokenAssembler`; ``None``: :data:`RESYNC_SECONDS` of ``clk_freq``.
    wake_classes : iterable of int or None
        The classes that raise ``wake``; ``None`` (the default): every class, so ``wake`` marks each
        finished classification until a subset is configured.

    Members
    -------
    rx : In(1)
        UART from the host (asynchronous, idle high).
    tx : Out(1)
        UART to the host.
    ok : Out(1)
        High after a prediction reply, until the next ``CLEAR`` (an LED: "answered").
    fault : Out(1)
        High after an error reply, until the next ``CLEAR``.
    wake : Out(1)
        High after a prediction reply whose class is in ``wake_classes``, until the next ``CLEAR`` (a
        wake-up pin for a host processor).

    Latency: the reply starts one cycle after the ``T``-th step's ``step_done``. Throughput is set by
    the UART (two frame times per token) unless the core is slower; the FIFO absorbs the bytes that
    arrive while a step is computed.
    """

    def __init__(self, *, model: Model, lanes: int, clk_freq: int | float, baud: int,
                 resync_cycles: int | None = None, wake_classes=None):
        try:
            self._init(model, lanes, clk_freq, baud, resync_cycles, wake_classes)
        except (TypeError, ValueError):
            self._MustUse__silence = True     # refused: no "never elaborated" warning
            raise
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "ok": Out(1),
            "fault": Out(1),
            "wake": Out(1),
        })

    def _init(self, model, lanes, clk_freq, baud, resync_cycles, wake_classes) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be a qlif.golden.model.Model, not {model!r}")
        if model.n_out > MAX_CLASSES:
            raise ValueError(f"model must have at most {MAX_CLASSES} outputs for the 1-byte reply, "
                             f"not {model.n_out!r}")
        if model.n_in > CLEAR:
            raise ValueError(f"model must have at most {CLEAR} inputs (0x{CLEAR:04X} and up are commands), "
                             f"not {model.n_in!r}")
        self._wake_mask = _wake_mask(model, wake_classes)
        self._model = model
        self._lanes = lanes
        self._rx = UARTRX(clk_freq=clk_freq, baud=baud)
        self._tx = UARTTX(clk_freq=clk_freq, baud=baud)
        self._net = Network(model=model, lanes=lanes)
        if resync_cycles is None:
            resync_cycles = max(1, round(clk_freq * RESYNC_SECONDS))
        self._asm = TokenAssembler(timeout=resync_cycles)

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def wake_classes(self) -> frozenset[int]:
        return frozenset(i for i in range(self._model.n_out) if self._wake_mask >> i & 1)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.uart_rx = rx = self._rx
        m.submodules.uart_tx = tx = self._tx
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=RX_FIFO_DEPTH)
        m.submodules.assembler = asm = self._asm
        m.submodules.network = net = self._net

        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        # The FIFO's w_rdy is its stream ready; the receiver reports an overrun when it is full.
        wiring.connect(m, rx.data, rx_fifo.w_stream)
        wiring.connect(m, rx_fifo.r_stream, asm.bytes)
        m.d.comb += net.spikes.ready.eq(1)

        tok = asm.tokens
        steps = Signal(range(self._model.timesteps))   # steps of this sample finished, modulo T
        step_open = Signal()                          # an address of the current step went to the core
        uart_error = Signal()
        reply = tx.data
        wake_mask = Signal(self._model.n_out, init=self._wake_mask)

        with m.If(rx.error.frame | rx.error.overrun):
            m.d.sync += uart_error.eq(1)
        with m.If(reply.ready):
            m.d.sync += reply.valid.eq(0)
        with m.If(net.step_done):
            last = steps == self._model.timesteps - 1
            m.d.sync += steps.eq(Mux(last, 0, steps + 1))
            with m.If(last):
                # The step's spikes, eot last, were all consumed before step_done, so the counters and
                # prediction are final in this cycle (and the core is idle; test_boards_link checks it).
                errors = Cat(net.error, uart_error)
                m.d.sync += [
                    reply.valid.eq(1),
                    reply.payload.eq(Mux(errors != 0, ERROR_FLAG | errors, net.prediction)),
                    self.ok.eq(errors == 0),
                    self.fault.eq(errors != 0),
                    self.wake.eq((errors == 0) & wake_mask.bit_select(net.prediction, 1)),
                ]

        # The core's input is a register stage (valid and payload from flip-flops): the core's own
        # accept logic is long, so nothing of ours may sit in front of it.
        ev = net.events
        ev_free = ~ev.valid | ev.ready            # the stage is empty or being emptied this cycle
        with m.If(ev.ready):
            m.d.sync += ev.valid.eq(0)

        with m.FSM():
            with m.State("RUN"):
                # Nothing goes to the core while a reply waits for the transmitter, so no later step
                # can complete a sample and overwrite it.
                with m.If(tok.valid & ~reply.valid):
                    with m.If(tok.payload.clear):
                        with m.If(step_open):
                            m.next = "FLUSH"
                        with m.Else():
                            m.next = "CLEAR"
                    with m.Elif(ev_free):
                        m.d.comb += tok.ready.eq(1)
                        m.d.sync += [ev.valid.eq(1), ev.payload.addr.eq(tok.payload.word),
                                     ev.payload.eot.eq(tok.payload.eot), step_open.eq(~tok.payload.eot)]
            with m.State("FLUSH"):
                # CLEAR in the middle of a step: end the step first, since the core only clears between
                # steps. The step does not count towards the sample (``steps`` is reset below).
                with m.If(ev_free):
                    m.d.sync += [ev.valid.eq(1), ev.payload.eot.eq(1), step_open.eq(0)]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                # Once the stage is empty the core has every token; ``idle`` is then low from the last
                # eot until its step_done, so any step in flight (a flushed one too) ends before this.
                with m.If(~ev.valid & net.idle & ~net.step_done):
                    m.d.comb += [net.clear.eq(1), tok.ready.eq(1)]
                    m.d.sync += [steps.eq(0), uart_error.eq(0), self.ok.eq(0), self.fault.eq(0),
                                     self.wake.eq(0)]
                    m.next = "RUN"
        return m


def _wake_mask(model, wake_classes) -> int:
    """``wake_classes`` (None: all) checked against the model's classes, as a bit mask."""
    if wake_classes is None:
        return (1 << model.n_out) - 1
    try:
        classes = set(wake_classes)
    except TypeError:
        raise TypeError(f"wake_classes must be an iterable of class indices or None, not {wake_classes!r}") from None
    bad = [c for c in classes if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < model.n_out]
    if bad:
        raise ValueError(f"wake_classes must be classes 0..{model.n_out - 1}, not {bad[0]!r}")
    return sum(1 << c for c in classes)


def encode_sample(x_sample, *, clear: bool = True) -> bytes:
    """The host bytes for one sample: ``CLEAR``, then per step the active addresses and ``EOT``.

    ``x_sample`` is uint8/bool [T, n_in] of 0/1 (one sample of the golden stimuli).
    """
    words = [CLEAR] if clear else []
    for step in x_sample:
        words.extend(int(j) for j in step.nonzero()[0])
        words.append(EOT)
    return b"".join(w.to_bytes(2, "big") for w in words)


def decode_reply(byte: int) -> tuple[int | None, int]:
    """A reply byte as ``(prediction or None, error bits)``."""
    if byte & ERROR_FLAG:
        return None, byte & ~ERROR_FLAG
    return byte, 0
