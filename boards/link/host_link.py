"""The host link: the framed UART protocol of docs/host-protocol.md around the :class:`~qlif.hw.network.Network`.

``rx`` -> :class:`~.uart.UARTRX` -> receive FIFO (:data:`RX_FIFO_DEPTH` bytes, one block RAM) ->
:class:`~.frame_rx.FrameReceiver` (CRC, timeout, checks, payload buffer) -> command sequencer (this
module) -> ``Network``; replies: sequencer -> :class:`~.frame_tx.FrameSender` -> :class:`~.uart.UARTTX`
-> ``tx``. :class:`HostLink` is board independent; a board top only adds pins and a clock. With
``encoder=True`` the link also takes whole frames (``FRAME``) and runs their samples through a
:class:`~qlif.hw.encoder.SpikeEncoder` in front of the core.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, Value
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qlif.boards.link.crossing import CoreCrossing, check_core_domain
from qlif.boards.link.frame_rx import FrameReceiver
from qlif.boards.link.frame_tx import FrameSender
from qlif.boards.link.uart import UARTRX, UARTTX, baud_divisor
from qlif.boards.protocol import (
    COUNTERS,
    ERR_COUNTER,
    MAX_PAYLOAD,
    STATUS_LEN,
    VERSION,
    Cmd,
    Err,
    Flag,
    count_bytes,
    encode_wake_mask,
    mask_bytes,
    model_id,
    result_len,
)
from qlif.golden.spec.coding import frame_levels_of, max_rate_of, parse_max_rate
from qlif.golden.spec.model import Model
from qlif.hw.encoder import SpikeEncoder
from qlif.hw.flash import FlashSignature
from qlif.hw.memory import MemoryPlan
from qlif.hw.network import Network, check_network
from qlif.hw.serializer import Token

__all__ = ["RX_FIFO_DEPTH", "FRAME_TIMEOUT", "HostLink", "wake_mask"]

#: Bytes the board buffers between the UART and the frame receiver (one iCE40 block RAM, 512 x 8). The
#: host never sends more than this ahead of the replies, so no byte is lost whatever the core's pace.
RX_FIFO_DEPTH = 512
#: Seconds of silence inside a frame after which the board drops it as truncated (TIMEOUT reply).
FRAME_TIMEOUT = 0.01
#: A frame timeout must leave room for this many UART frames between two bytes of a frame.
_MIN_TIMEOUT_BYTES = 3

_KIND_STATUS, _KIND_RESULT, _KIND_MASK = range(3)


def wake_mask(model: Model, wake_classes) -> int:
    """``wake_classes`` (``None``: every class) checked against the model's classes, as a bit mask."""
    if wake_classes is None:
        return (1 << model.n_out) - 1
    try:
        classes = list(wake_classes)
    except TypeError:
        raise TypeError(f"wake_classes must be an iterable of class indices or None, not {wake_classes!r}") from None
    try:
        return int.from_bytes(encode_wake_mask(classes, model.n_out), "little")
    except ValueError as e:
        raise ValueError(f"wake_classes: {e}") from None


def _bytes(value, n: int) -> list:
    """The ``n`` bytes of ``value``, most significant first."""
    value = Const(value, 8 * n) if isinstance(value, int) else Value.cast(value)
    value = value.as_unsigned()
    return [Cat(value, Const(0, 8 * n))[8 * i: 8 * i + 8] for i in reversed(range(n))]


class HostLink(wiring.Component):
    """The host protocol (``docs/host-protocol.md``, version 1) in front of a ``Network`` core.

    Every request frame gets one reply frame; a rejected frame (bad CRC, truncated, unknown command,
    bad length, bad address or order, bad wake mask) gets an error reply and changes nothing but the
    error counters and ``fault``. Requests are executed one after the other: a frame is checked in
    full before it acts, and the next frame is parsed once the reply of this one has been handed to
    the transmitter (meanwhile bytes wait in the receive FIFO).

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
        The network (baked into the bitstream); ``n_in`` and ``T`` at most 65535, and the RESULT reply
        (8 bytes plus ``n_out`` counts of 1 byte, 2 when ``T > 255``) at most 255 bytes.
    lanes : int
        P of the core.
    clk_freq : int or float
        Clock frequency in Hz.
    baud : int
        UART baud rate (8N1), :func:`~.uart.baud_divisor` checks it against ``clk_freq``.
    frame_timeout : float
        Seconds of silence after which an open frame is dropped (TIMEOUT); at least three UART frames.
    wake_classes : iterable of int or None
        Classes whose prediction raises ``wake`` at power-up (``SET_WAKE`` changes them). ``None``, the
        default: every class, so ``wake`` marks every finished classification until the host narrows
        it (an unconfigured board wakes its host rather than stay silent).
    core_domain : str or None
        ``None`` (default): the core runs in the link's ``sync`` domain. A domain name: the core runs in
        that clock domain (made by the board top, e.g. from a PLL; any frequency, unrelated to
        ``clk_freq``), behind a :class:`~.crossing.CoreCrossing`; ``clk_freq`` is the link's clock.
    memory : MemoryPlan or None
        The core's memory plan (:func:`qlif.hw.memory.plan_memories`), made by the board top for its
        device; ``None``: the generic one (simulation, Verilog).
    encoder : bool
        ``False`` (default): ``FRAME`` is an unknown command. ``True``: the on-chip encoder
        (:class:`~qlif.hw.encoder.SpikeEncoder`, its levels and rate from the model's metadata) sits in
        front of the core, and ``FRAME`` requests run whole samples on it. The encoder runs in the link's
        domain: with ``core_domain`` its tokens and its clear reach the core through the crossing, as the
        link's own do (one token per handshake round trip, a few cycles of each clock, against a frame of
        ``n_in`` bytes on the line per sample).

    Members
    -------
    flash : Out(FlashSignature())
        Only with a ``memory`` plan that puts synapses in SPRAM: the SPI flash their weights are loaded
        from after reset (the board top puts it on the configuration flash's pins).
    rx : In(1)
        UART from the host (asynchronous, idle high).
    tx : Out(1)
        UART to the host.
    ok : Out(1)
        High while at least ``T`` steps have run since the last RESET (the prediction is final).
    fault : Out(1)
        High from a rejected request until the next RESET.
    wake : Out(1)
        High while ``ok`` and the prediction is one of the wake classes (a wake-up pin for a host
        processor); one cycle after the last step's ``step_done`` at the earliest.

    Latency: a request's reply starts a few cycles after its last byte (a STEP: after the core's
    ``step_done``). Throughput: one received byte per cycle into the FIFO side; the UART sets the pace
    (docs/host-protocol.md has the figures). Memory: the receive FIFO (512 x 8), the frame buffer
    (128 x 16) and the frame counters (8 x 16), one block RAM each on an iCE40; with the encoder, its
    state (``n_in`` words, :class:`~qlif.hw.encoder.SpikeEncoder`). A ``FRAME`` that completes a frame is
    answered after the sample's last ``step_done``: the encoder's clear, then ``T`` steps of the cycle
    model plus the encoder's scan (at most ``n_in + 1`` cycles per step).

    The core (and its crossing), the UARTs and the frame blocks are built when the link is elaborated;
    the constructor makes their parameter checks, so that a bad model, lane count, clock or baud rate
    fails at once.
    """

    def __init__(self, *, model: Model, lanes: int, clk_freq: int | float, baud: int,
                 frame_timeout: float = FRAME_TIMEOUT, wake_classes=None, core_domain: str | None = None,
                 memory: MemoryPlan | None = None, encoder: bool = False):
        self._divisor, self._timeout_cycles, self._wake_mask = HostLink.check(
            model=model, lanes=lanes, clk_freq=clk_freq, baud=baud, frame_timeout=frame_timeout,
            wake_classes=wake_classes, core_domain=core_domain, memory=memory, encoder=encoder)
        self._encoder = encoder
        self._core_domain = core_domain
        self._memory = memory
        self._model = model
        self._lanes = lanes
        self._clk_freq = clk_freq
        self._baud = baud
        flash = {"flash": Out(FlashSignature())} if memory is not None and memory.uses_spram else {}
        super().__init__({
            **flash,
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "ok": Out(1),
            "fault": Out(1),
            "wake": Out(1),
        })

    @staticmethod
    def check(*, model: Model, lanes: int, clk_freq: int | float, baud: int, frame_timeout: float = FRAME_TIMEOUT,
              wake_classes=None, core_domain: str | None = None, memory: MemoryPlan | None = None,
              encoder: bool = False) -> tuple[int, int, int]:
        """The constructor's checks (``TypeError``, ``ValueError``, ``ModelError``), with no link built: for
        a board top that builds its link when elaborated. Returns (clock cycles per UART bit, the frame
        timeout in cycles, the wake mask)."""
        # The checks of the core built in elaborate(), first: they validate the model the rest reads.
        check_network(model, lanes, memory)
        if model.n_in > 0xFFFF:
            raise ValueError(f"model must have at most 65535 inputs (16-bit addresses), not {model.n_in!r}")
        if model.timesteps > 0xFFFF:
            raise ValueError(f"model must have at most 65535 timesteps, not {model.timesteps!r}")
        if result_len(model.n_out, model.timesteps) > MAX_PAYLOAD:
            raise ValueError(f"model must have few enough outputs for the RESULT reply ({MAX_PAYLOAD} bytes: "
                             f"8 + {count_bytes(model.timesteps)} per class), not {model.n_out!r}")
        mask = wake_mask(model, wake_classes)
        if not isinstance(frame_timeout, (int, float)) or isinstance(frame_timeout, bool):
            raise TypeError(f"frame_timeout must be a number of seconds, not {frame_timeout!r}")
        divisor = baud_divisor(clk_freq=clk_freq, baud=baud)    # the UARTs' check
        timeout_cycles = round(clk_freq * frame_timeout)
        shortest = _MIN_TIMEOUT_BYTES * 10 * divisor
        if timeout_cycles < shortest:
            raise ValueError(f"frame_timeout must be at least {_MIN_TIMEOUT_BYTES} UART frames "
                             f"({shortest / clk_freq:.3g} s at {baud} baud), not {frame_timeout!r}")
        # The crossing's check (the frame receiver's are the ones above).
        if core_domain is not None:
            check_core_domain(core_domain)
        if not isinstance(encoder, bool):
            raise TypeError(f"encoder must be a bool, not {encoder!r}")
        if encoder:
            try:
                frame_levels_of(model.metadata)
                parse_max_rate(max_rate_of(model.metadata))
            except ValueError as e:
                raise ValueError(f"encoder=True: the model's {e}") from None
        return divisor, timeout_cycles, mask

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def core_domain(self) -> str | None:
        """The core's clock domain, or ``None`` when it shares the link's."""
        return self._core_domain

    @property
    def encoder(self) -> bool:
        """Whether the build has the on-chip encoder (and takes ``FRAME``)."""
        return self._encoder

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def timeout_cycles(self) -> int:
        """The frame timeout in clock cycles."""
        return self._timeout_cycles

    @property
    def wake_classes(self) -> frozenset[int]:
        return frozenset(i for i in range(self._model.n_out) if self._wake_mask >> i & 1)

    def elaborate(self, platform) -> Module:
        m = Module()
        model = self._model
        m.submodules.uart_rx = urx = UARTRX(clk_freq=self._clk_freq, baud=self._baud)
        m.submodules.uart_tx = utx = UARTTX(clk_freq=self._clk_freq, baud=self._baud)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=RX_FIFO_DEPTH)
        levels = frame_levels_of(model.metadata) if self._encoder else None
        m.submodules.receiver = recv = FrameReceiver(n_in=model.n_in, n_out=model.n_out, timeout=self._timeout_cycles,
                                                     levels=levels)
        m.submodules.sender = send = FrameSender()
        # The core, or the crossing to it in its own clock domain: both a CoreSignature, the same ports
        # with the same meaning; ``net`` is the link's side of them.
        core = Network(model=model, lanes=self._lanes, memory=self._memory)
        addr_width = core.addr_width
        if self._core_domain is None:
            m.d.comb += core.spikes.ready.eq(1)
        else:
            core = CoreCrossing(network=core, core_domain=self._core_domain)
        m.submodules.network = core
        net = core.signature.core().flip().create(path=("core",))
        wiring.connect(m, net, core.signature.face(core))
        if "flash" in self.signature.members:
            wiring.connect(m, wiring.flipped(self.flash), core.flash)

        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        # The FIFO's w_rdy is the receiver's ready: a byte that completes while the FIFO is full is an
        # overrun (counted), which the window of the host driver rules out.
        wiring.connect(m, urx.data, rx_fifo.w_stream)
        wiring.connect(m, rx_fifo.r_stream, recv.bytes)
        wiring.connect(m, send.bytes, utx.data)

        # -- counters ------------------------------------------------------------------------------
        # frames_ok and the seven frame-error counters live in a memory addressed by the verdict (0 is
        # OK): at most one of them changes per frame, so one incrementer serves them all (read in the
        # cycle the frame is taken, written back in the next). junk and the UART counters change at any
        # time and have flip-flops of their own. All 16 bits, saturating; frames_ok wraps.
        m.submodules.frame_counts = frame_counts = Memory(shape=16, depth=8, init=[])
        fc_rd = frame_counts.read_port()
        fc_wr = frame_counts.write_port()
        events = {"junk": recv.junk, "uart_frame": urx.error.frame, "uart_overrun": urx.error.overrun}
        counters = {name: Signal(16, name=f"count_{name}") for name in events}
        clear_counters = Signal()
        for name, counter in counters.items():
            with m.If(clear_counters):
                m.d.sync += counter.eq(events[name])      # an event in that very cycle is not lost
            with m.Elif(events[name] & (counter != 0xFFFF)):
                m.d.sync += counter.eq(counter + 1)
        # The UART counters change at any time; STATUS reports them as of its start, so that a 16-bit
        # value is never read half before and half after an increment. (junk only changes while the
        # receiver runs, and it waits for the reply.)
        snap = {name: Signal(16, name=f"snap_{name}") for name in ("uart_frame", "uart_overrun")}

        # -- sample state --------------------------------------------------------------------------
        step_open = Signal()                 # addresses of the current step went to the core
        # ... and this was the last one. Addresses reach the core only from frames the receiver checked in
        # full (every address below n_in), so their bits from ceil(log2 n_in) up are zero: neither this
        # register nor the core's input stage keeps them (the core's own range check then has nothing
        # to find, as the receiver answered BAD_ADDRESS already).
        last_addr = Signal(addr_width)
        steps = Signal(16)                   # steps finished since RESET (saturating)
        cycles = Signal(32)                  # their step_cycles, summed (wrapping)
        done = Signal()                      # steps >= T
        fault = Signal()
        mask = Signal(model.n_out, init=self._wake_mask)
        fill = Signal(range(model.n_in + 1))  # bytes of the open frame (FRAME) in the encoder so far
        m.d.comb += [recv.last.valid.eq(step_open), recv.last.addr.eq(last_addr),
                     self.ok.eq(done), self.fault.eq(fault)]
        m.d.sync += self.wake.eq(done & mask.bit_select(net.prediction, 1))

        # -- reply payloads: byte tables, one registered byte at a time -------------------------------
        hdr = send.header.payload
        kind = Signal(range(3))
        index = Signal(8)                    # payload byte being sent
        flags = Cat(step_open, done, self.wake, fault, net.error != 0, fill != 0, Const(self._encoder, 1),
                    Const(0, 1))
        assert (Flag.FRAME_OPEN, Flag.ENCODER) == (1 << 5, 1 << 6)
        fc_first = 17                        # STATUS offset of the memory's counters (2 bytes each)
        fc_byte = Signal(8)                  # the memory half named by the index (its word is read below)
        m.d.comb += fc_byte.eq(Mux((index - fc_first)[0], fc_rd.data[:8], fc_rd.data[8:]))
        status_fields = [
            (VERSION, 1), (flags, 1), (model_id(model), 4), (model.n_in, 2), (model.n_out, 2),
            (model.timesteps, 2), (self._lanes, 1), (RX_FIFO_DEPTH, 2), (min(self.divisor, 0xFFFF), 2),
        ]
        status_bytes = [b for value, n in status_fields for b in _bytes(value, n)]
        assert len(status_bytes) == fc_first
        status_bytes += [fc_byte] * 16
        status_bytes += [b for name in COUNTERS[8:] for b in _bytes(snap.get(name, counters.get(name)), 2)]
        assert len(status_bytes) == STATUS_LEN and list(COUNTERS[:8]) == ["frames_ok", *ERR_COUNTER.values()]
        cb = count_bytes(model.timesteps)
        result_bytes = [*_bytes(flags, 1), *_bytes(net.prediction, 1), *_bytes(steps, 2), *_bytes(cycles, 4),
                        *(b for i in range(model.n_out) for b in _bytes(net.counts[i], cb))]
        assert len(result_bytes) == result_len(model.n_out, model.timesteps)
        n_mask = mask_bytes(model.n_out)
        mask_table = _bytes(mask, n_mask)[::-1]           # little-endian: class 0 in byte 0
        tables = {_KIND_STATUS: status_bytes, _KIND_RESULT: result_bytes, _KIND_MASK: mask_table}
        # Two register stages between the index and the transmitter: each table's byte, then the kind's.
        table_regs = {k: Signal(8, name=f"table{k}_byte") for k in tables}
        phase = Signal(2)                    # 0: the counter memory reads; 1: the tables; 2: the byte

        # -- the core's input: a register stage (the core's accept logic is long) -----------------
        # A token enters only when the stage is empty, so nothing here depends on the core's ready
        # combinationally: at most one token per two cycles, against one per G0 >= 1 cycles that the
        # core takes and one per 20 bit times that the line brings.
        # The link's tokens, and with the encoder the encoder's, which drive the core while it is busy
        # (the link then waits for the sample's end, so its own stage is empty).
        ev = stream.Signature(Token).create(path=("link_events",))
        ev_free = ~ev.valid
        if self._encoder:
            enc = SpikeEncoder.for_model(model)
            enc_reset = Signal()             # RESET drops a partial frame
            m.submodules.encoder = ResetInserter(enc_reset)(enc)
            sel = enc.busy
            m.d.comb += [net.events.valid.eq(Mux(sel, enc.events.valid, ev.valid)),
                         net.events.payload.eq(Mux(sel, enc.events.payload, ev.payload)),
                         ev.ready.eq(net.events.ready & ~sel), enc.events.ready.eq(net.events.ready & sel),
                         enc.core_idle.eq(net.idle), recv.room.eq(model.n_in - fill)]
            # The encoder holds clear until the core is idle and leaves CLEAR in that cycle; the core (and
            # the crossing, which turns any cycle of clear into a request) must see it then only.
            with m.If(enc.clear & net.idle):
                m.d.comb += net.clear.eq(1)
        else:
            m.d.comb += [net.events.valid.eq(ev.valid), net.events.payload.eq(ev.payload),
                         ev.ready.eq(net.events.ready)]
        with m.If(ev.ready):
            m.d.sync += ev.valid.eq(0)

        frame, info = recv.frame, recv.frame.payload
        go = {c: Signal(name=f"go_{c.name.lower()}") for c in Cmd}   # a good frame of this command
        left = Signal(7)                      # words of this frame still to hand to the core ...
        none_left = Signal()                  # ... and whether that is none (a register, for a short path)
        zero = Signal(3)                      # CLEAR_COUNTERS: the memory word being zeroed
        final = Signal()                      # FRAME: this chunk completes the frame (runs the sample)
        high_next = Signal()                  # FRAME: the next byte is a word's high half
        bytes_left = Signal(8)                # FRAME: bytes of this chunk still to hand to the encoder
        m.d.comb += [fc_rd.addr.eq(info.error), fc_wr.addr.eq(info.error), fc_wr.data.eq(
            Mux((fc_rd.data != 0xFFFF) | (info.error == Err.OK), fc_rd.data + 1, fc_rd.data))]

        with m.FSM():
            with m.State("IDLE"):
                # The frame's counter is read now (its address is the verdict) and written back next.
                with m.If(frame.valid):
                    m.d.sync += [hdr.cmd.eq(info.cmd), hdr.seq.eq(info.seq), hdr.status.eq(info.error),
                                 hdr.length.eq(0), index.eq(0), phase.eq(0),
                                 left.eq(info.length[1:]), none_left.eq(info.length[1:] == 0)]
                    if self._encoder:
                        m.d.sync += [final.eq(info.length == recv.room), high_next.eq(1),
                                     bytes_left.eq(info.length)]
                    # The command decoded into flags, so that TAKE's choices come from flip-flops.
                    m.d.sync += [go[c].eq((info.error == Err.OK) & (info.cmd == c)) for c in Cmd]
                    m.next = "TAKE"

            with m.State("TAKE"):
                m.d.comb += fc_wr.en.eq(1)
                m.next = "REPLY"
                with m.If(info.error != Err.OK):
                    m.d.sync += fault.eq(1)
                with m.If(go[Cmd.STATUS]):
                    m.d.sync += [hdr.length.eq(STATUS_LEN), kind.eq(_KIND_STATUS)]
                    m.d.sync += [snap[name].eq(counters[name]) for name in snap]
                with m.If(go[Cmd.RESET]):
                    m.next = "FLUSH"
                    if self._encoder:
                        m.d.comb += enc_reset.eq(1)
                        m.d.sync += fill.eq(0)
                if self._encoder:
                    with m.If(go[Cmd.FRAME]):
                        # The last chunk starts a sample as RESET does: an open step is ended first.
                        m.next = "FRAME_FEED"
                        with m.If(final):
                            m.next = "FLUSH"
                with m.If(go[Cmd.SPIKES] | go[Cmd.STEP]):
                    m.next = "FEED"
                with m.If(go[Cmd.RESULT]):
                    m.d.sync += [hdr.length.eq(len(result_bytes)), kind.eq(_KIND_RESULT)]
                with m.If(go[Cmd.SET_WAKE]):
                    m.d.sync += mask.eq(recv.arg[:model.n_out])
                with m.If(go[Cmd.GET_WAKE]):
                    m.d.sync += [hdr.length.eq(n_mask), kind.eq(_KIND_MASK)]
                with m.If(go[Cmd.CLEAR_COUNTERS]):
                    m.d.comb += [clear_counters.eq(1), fc_wr.en.eq(0)]
                    m.d.sync += zero.eq(0)
                    m.next = "ZERO"

            with m.State("ZERO"):
                # CLEAR_COUNTERS: the eight memory counters, one per cycle.
                m.d.comb += [fc_wr.addr.eq(zero), fc_wr.data.eq(0), fc_wr.en.eq(1)]
                m.d.sync += zero.eq(zero + 1)
                with m.If(zero == 7):
                    m.next = "REPLY"

            with m.State("FEED"):
                # The frame's addresses to the core, one per two cycles at most (the stage fills when empty).
                m.d.comb += recv.words.ready.eq(ev_free)
                with m.If(recv.words.valid & ev_free):
                    checked = recv.words.payload[:addr_width]
                    m.d.sync += [ev.valid.eq(1), ev.payload.addr.eq(checked), ev.payload.eot.eq(0),
                                 step_open.eq(1), last_addr.eq(checked), left.eq(left - 1),
                                 none_left.eq(left == 1)]
                with m.Elif(none_left):
                    with m.If(go[Cmd.SPIKES]):
                        m.next = "REPLY"
                    with m.Elif(ev_free):
                        m.d.sync += [ev.valid.eq(1), ev.payload.eot.eq(1), step_open.eq(0)]
                        m.next = "STEP"

            with m.State("STEP"):
                with m.If(net.step_done):
                    with m.If(steps != 0xFFFF):
                        m.d.sync += steps.eq(steps + 1)
                    with m.If(steps == model.timesteps - 1):
                        m.d.sync += done.eq(1)
                    m.d.sync += cycles.eq(cycles + net.step_cycles)
                    m.next = "REPLY"

            def after_flush():
                """RESET then clears the core; a frame's last chunk goes to the encoder, which does."""
                if not self._encoder:
                    m.next = "CLEAR"
                    return
                with m.If(go[Cmd.FRAME]):
                    m.next = "FRAME_FEED"
                with m.Else():
                    m.next = "CLEAR"

            with m.State("FLUSH"):
                # RESET in the middle of a step: end the step first (the core clears between steps only).
                with m.If(~step_open):
                    after_flush()
                with m.Elif(ev_free):
                    m.d.sync += [ev.valid.eq(1), ev.payload.eot.eq(1), step_open.eq(0)]
                    m.next = "FLUSH_WAIT"

            with m.State("FLUSH_WAIT"):
                with m.If(net.step_done):
                    after_flush()

            if self._encoder:
                with m.State("FRAME_FEED"):
                    # The chunk's bytes to the encoder (it takes one per cycle while loading): each word's
                    # high half, then its low half; an odd last byte is a word's high half alone.
                    word = recv.words.payload
                    m.d.comb += [enc.frame.valid.eq(recv.words.valid & (bytes_left != 0)),
                                 enc.frame.payload.eq(Mux(high_next, word[8:], word[:8]))]
                    with m.If(enc.frame.valid & enc.frame.ready):
                        m.d.sync += [bytes_left.eq(bytes_left - 1), high_next.eq(~high_next)]
                        with m.If(~high_next | (bytes_left == 1)):
                            m.d.comb += recv.words.ready.eq(1)
                    with m.If(bytes_left == 0):
                        with m.If(final):
                            # The encoder clears the core and runs the sample: the state of a new one.
                            m.d.sync += [fill.eq(0), steps.eq(0), cycles.eq(0), done.eq(0), fault.eq(0)]
                            m.next = "ENCODE"
                        with m.Else():
                            m.d.sync += fill.eq(fill + info.length)
                            m.next = "REPLY"

                with m.State("ENCODE"):
                    # The encoder's T steps; the reply, after the last one, is RESULT's.
                    with m.If(net.step_done):
                        with m.If(steps != 0xFFFF):
                            m.d.sync += steps.eq(steps + 1)
                        m.d.sync += cycles.eq(cycles + net.step_cycles)
                        with m.If(steps == model.timesteps - 1):
                            m.d.sync += [done.eq(1), hdr.length.eq(len(result_bytes)), kind.eq(_KIND_RESULT)]
                            m.next = "REPLY"

            with m.State("CLEAR"):
                # The stage is empty and the core idle: every token reached it and its step ended.
                with m.If(~ev.valid & net.idle & ~net.step_done):
                    m.d.comb += net.clear.eq(1)
                    m.d.sync += [steps.eq(0), cycles.eq(0), done.eq(0), fault.eq(0)]
                    m.next = "CLEARING"

            with m.State("CLEARING"):
                # The core is busy (not idle) from the cycle after the clear until its state is zero (a
                # crossing to its own clock domain takes a few cycles more): the reply waits for it, so
                # that a request after RESET finds the counts and the prediction cleared.
                with m.If(net.idle):
                    m.next = "REPLY"

            with m.State("REPLY"):
                m.d.comb += send.header.valid.eq(1)
                with m.If(send.header.ready):
                    m.next = "DATA"
                    with m.If(hdr.length == 0):
                        m.next = "FINISH"

            with m.State("DATA"):
                # Per byte: a cycle for the counter memory to read the word of the index, one for each
                # table's byte, one for the kind's; then it waits for the transmitter (a UART frame).
                m.d.comb += fc_rd.addr.eq((index - fc_first)[1:4])
                payload = send.payload
                with m.If(payload.valid):
                    with m.If(payload.ready):
                        m.d.sync += [payload.valid.eq(0), phase.eq(0), index.eq(index + 1)]
                        with m.If(index + 1 == hdr.length):
                            m.next = "FINISH"
                with m.Elif(phase == 0):
                    m.d.sync += phase.eq(1)
                with m.Elif(phase == 1):
                    m.d.sync += [reg.eq(Array(tables[k])[index]) for k, reg in table_regs.items()]
                    m.d.sync += phase.eq(2)
                with m.Else():
                    m.d.sync += [payload.payload.eq(Array(table_regs[k] for k in sorted(tables))[kind]),
                                 payload.valid.eq(1)]

            with m.State("FINISH"):
                # Release the frame: the receiver goes on with the next one.
                m.d.comb += frame.ready.eq(1)
                m.next = "IDLE"
        return m
