"""The host link's frame receiver never passes on a frame with a bad CRC or length: a proof from the wire
format (docs/host-protocol.md) and the receiver's port contract.

The harness sees only the ports, with free bytes, a free ``frame.ready`` and a free ``last``. It models
the input register the contract describes (a byte crosses the port into it; it is taken in a cycle
where it is full and ``bytes.ready`` is high, since the receiver refills it in the cycle it takes a
byte) and parses the bytes the receiver takes by the wire format: junk until ``SYNC``, then ``CMD SEQ
LEN``, ``LEN`` payload bytes and the two CRC bytes, after which the frame waits for its verdict and no
byte may be taken until the consumer accepts it. The CRC-16/CCITT-FALSE of ``CMD SEQ LEN PAYLOAD`` is
computed bit by bit in the harness, from the protocol's polynomial and initial value (not with the
RTL's CRC block). A frame that times out (its verdict, ``TIMEOUT``, comes while it is still open) ends
there. The claim, at each verdict's first cycle on ``frame``:

* a verdict ``OK`` is for a frame received whole, whose CRC bytes are the CRC of ``CMD SEQ LEN
  PAYLOAD``, whose command is one of the protocol's and whose ``LEN`` is legal for it (even for
  ``SPIKES``/``STEP``, ``ceil(n_out/8)`` for ``SET_WAKE``, 0 for the others), and it presents that
  frame's ``CMD``, ``SEQ`` and ``LEN``;
* any other verdict but ``TIMEOUT`` also comes after a whole frame, and ``TIMEOUT`` only while one is
  open (so the receiver and the wire format agree on where frames begin and end);
* no byte is taken between a frame's last byte and the acceptance of its verdict.

k-induction closes with auxiliary invariants that tie the receiver's state to the harness' (state
machine, CRC register, header and count registers, input register), which the induction step assumes.
They name the RTL's internal signals, found by name in its elaborated fragment; a rename in
``boards/link/frame_rx.py`` fails the harness' construction with the name.
"""

from __future__ import annotations

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Cat, Const, Elaboratable, Fragment, Module, Mux, Signal

from qlif.boards.link.frame_rx import FrameReceiver
from qlif.boards.protocol import CRC_INIT, CRC_POLY, SYNC, Cmd, Err, mask_bytes
from qlif.sim.formal import Proof
from qlif.sim.mutants import Mutant
from qlif.sim.proofs.internals import signal_lookup, together

__all__ = ["crc16_step", "FrameReceiverHarness", "PROOFS"]


def crc16_step(m: Module, crc, byte) -> Signal:
    """CRC-16/CCITT-FALSE after one more ``byte``, as the protocol defines it: the byte into the top of
    the register, then eight shifts, each XORing the polynomial in when a one leaves (bit-serial, MSB
    first; independent of the RTL's tap table in ``boards/link/crc.py``). A signal per shift keeps the
    expression linear in size."""
    value = Signal(16)
    m.d.comb += value.eq(crc ^ Cat(Const(0, 8), byte))
    for _ in range(8):
        shifted = Signal(16)
        m.d.comb += shifted.eq((value << 1)[:16] ^ Mux(value[15], CRC_POLY, 0))
        value = shifted
    return value


# The harness' parser states (the wire format's fields, and WAIT: a whole frame awaits its verdict).
_PARSE = ("HUNT", "CMD", "SEQ", "LEN", "DATA", "CRC1", "CRC2", "WAIT")
_OPEN = ("CMD", "SEQ", "LEN", "DATA", "CRC1", "CRC2")


class FrameReceiverHarness(Elaboratable):
    """A :class:`~qlif.boards.link.frame_rx.FrameReceiver` with free inputs, checked against the wire format.

    Parameters
    ----------
    n_in, n_out, timeout : int
        The receiver's parameters.
    invariants : bool
        Assert the auxiliary invariants (for k-induction); without them only the claim is asserted (a
        bounded check then shows what the claim alone catches).
    """

    def __init__(self, *, n_in: int, n_out: int, timeout: int, invariants: bool = True):
        self.n_in, self.n_out, self.timeout, self.invariants = n_in, n_out, timeout, invariants

    def elaborate(self, platform):
        m = Module()
        dut = FrameReceiver(n_in=self.n_in, n_out=self.n_out, timeout=self.timeout)
        # Elaborated here, so that the invariants can name its internal signals.
        fragment = Fragment.get(dut, platform)
        m.submodules.dut = fragment
        find = signal_lookup(fragment, "boards/link/frame_rx.py", "FrameReceiver.elaborate")

        # The state machine's encoding, from the names its state signal decodes to ("NAME/value").
        state = find("fsm_state")
        encoding = {}
        for value in range(1 << len(state)):
            try:
                encoding[state.decoder(value).split("/")[0]] = value
            except KeyError:
                pass

        def dut_in(*names):
            return Cat(*(state == encoding[n] for n in names)).any()

        info = dut.frame.payload
        m.d.comb += [dut.bytes.valid.eq(AnySeq(1)), dut.bytes.payload.eq(AnySeq(8)),
                     dut.frame.ready.eq(AnySeq(1)), dut.last.eq(AnySeq(len(dut.last.as_value())))]

        # The input register of the contract, from the port alone.
        h_valid = Signal()
        h_byte = Signal(8)
        crossed = dut.bytes.valid & dut.bytes.ready
        taken = h_valid & dut.bytes.ready
        with m.If(crossed):
            m.d.sync += [h_valid.eq(1), h_byte.eq(dut.bytes.payload)]
        with m.Elif(taken):
            m.d.sync += h_valid.eq(0)

        # The wire format's parser, over the bytes taken.
        parse = Signal(range(len(_PARSE)))
        p = {name: parse == i for i, name in enumerate(_PARSE)}

        def go(name):
            return parse.eq(_PARSE.index(name))
        cmd, seq, length, count = Signal(8), Signal(8), Signal(8), Signal(8)
        crc = Signal(16)                    # CRC of CMD SEQ LEN PAYLOAD so far
        resid = Signal(16)                  # ... and of the CRC bytes after them
        crc_hi, crc_lo = Signal(8), Signal(8)
        b = h_byte
        crc_next, resid_next = crc16_step(m, crc, b), crc16_step(m, resid, b)
        with m.If(taken):
            with m.If(p["HUNT"]):
                with m.If(b == SYNC):
                    m.d.sync += [go("CMD"), crc.eq(CRC_INIT), resid.eq(CRC_INIT), count.eq(0)]
            with m.Elif(p["WAIT"]):
                pass
            with m.Else():
                m.d.sync += resid.eq(resid_next)
                with m.If(p["CMD"] | p["SEQ"] | p["LEN"] | p["DATA"]):
                    m.d.sync += crc.eq(crc_next)
                with m.If(p["CMD"]):
                    m.d.sync += [cmd.eq(b), go("SEQ")]
                with m.If(p["SEQ"]):
                    m.d.sync += [seq.eq(b), go("LEN")]
                with m.If(p["LEN"]):
                    m.d.sync += [length.eq(b), go("CRC1")]
                    with m.If(b != 0):
                        m.d.sync += go("DATA")
                with m.If(p["DATA"]):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == length):
                        m.d.sync += go("CRC1")
                with m.If(p["CRC1"]):
                    m.d.sync += [crc_hi.eq(b), go("CRC2")]
                with m.If(p["CRC2"]):
                    m.d.sync += [crc_lo.eq(b), go("WAIT")]

        # Verdicts: the first cycle of each (``fresh``), and the end of the frame at its acceptance.
        shown = Signal()
        fresh = dut.frame.valid & ~shown
        accepted = dut.frame.valid & dut.frame.ready
        m.d.sync += shown.eq((shown | dut.frame.valid) & ~accepted)
        with m.If(accepted):
            m.d.sync += go("HUNT")
        with m.Elif(fresh & (info.error == Err.TIMEOUT)):
            m.d.sync += go("WAIT")

        # The claim.
        known = (cmd >= int(min(Cmd))) & (cmd <= int(max(Cmd)))
        words = (cmd == Cmd.SPIKES) | (cmd == Cmd.STEP)
        legal = Mux(words, ~length[0], Mux(cmd == Cmd.SET_WAKE, length == mask_bytes(self.n_out), length == 0))
        is_open = Cat(*(p[n] for n in _OPEN)).any()
        with m.If(fresh & (info.error == Err.OK)):
            m.d.comb += Assert(p["WAIT"] & (crc == Cat(crc_lo, crc_hi)) & known & legal
                               & (info.cmd == cmd) & (info.seq == seq) & (info.length == length))
        with m.If(fresh & (info.error != Err.OK) & (info.error != Err.TIMEOUT)):
            m.d.comb += Assert(p["WAIT"])
        with m.If(fresh & (info.error == Err.TIMEOUT)):
            m.d.comb += Assert(is_open)
        with m.If(p["WAIT"]):
            m.d.comb += Assert(~taken)

        if not self.invariants:
            return m
        # Auxiliary invariants (module docstring): the receiver's state is the harness'.
        in_valid, in_byte, is_sync = find("in_valid"), find("byte"), find("is_sync")
        m.d.comb += [Assert(in_valid == h_valid), Assert(in_byte == h_byte), Assert(is_sync == (h_byte == SYNC)),
                     Assert(dut.frame.valid == dut_in("PRESENT")), Assert(~shown | dut.frame.valid),
                     Assert(count <= length)]
        # A verdict of TIMEOUT is presented (its first cycle) while the harness still has the frame open.
        timed_out = dut_in("PRESENT") & (info.error == Err.TIMEOUT)
        m.d.comb += Assert(dut_in(*encoding))
        for name in ("HUNT", *_OPEN):
            m.d.comb += Assert(~dut_in(name) | p[name])
        m.d.comb += [Assert(~dut_in("CHECK") | p["WAIT"]), Assert(~(timed_out & ~shown) | is_open),
                     Assert(~dut_in("PRESENT") | (timed_out & ~shown) | p["WAIT"])]
        with m.If(is_open | dut_in("CHECK")):
            m.d.comb += Assert(find("crc") == resid)
        with m.If(p["CMD"] | p["SEQ"] | p["LEN"]):
            m.d.comb += [Assert(count == 0), Assert(find("count") == 0)]
        with m.If(~p["HUNT"] & ~p["CMD"] & ~timed_out):
            m.d.comb += Assert(info.cmd == cmd)
            with m.If(~p["SEQ"]):
                m.d.comb += Assert(info.seq == seq)
                with m.If(~p["LEN"]):
                    m.d.comb += [Assert(info.length == length), Assert(find("count") == count)]
                    with m.If(p["DATA"]):
                        m.d.comb += Assert(count < length)
                    with m.Else():
                        m.d.comb += Assert(count == length)
        # The CRC over the CRC bytes as far as they came.
        after_hi = crc16_step(m, crc, crc_hi)
        after_lo = crc16_step(m, after_hi, crc_lo)
        with m.If(p["CMD"] | p["SEQ"] | p["LEN"] | p["DATA"] | p["CRC1"]):
            m.d.comb += Assert(resid == crc)
        with m.If(p["CRC2"]):
            m.d.comb += Assert(resid == after_hi)
        with m.If(p["WAIT"] & ~timed_out):
            m.d.comb += Assert(resid == after_lo)
        return m



_RX = "qlif.boards.link.frame_rx"
_ELAB = "FrameReceiver.elaborate"
#: Formal-only broken designs (the mutation score's catalogue, :data:`qlif.sim.mutants.MUTANTS`, is the
#: core's): each lets one kind of bad frame through.
CRC_UNCHECKED = Mutant("rx-crc-unchecked", "the CRC is not checked", _RX, _ELAB,
                       r"with m\.If\(crc != 0\):", r"with m.If((crc != 0) & 0):")
CRC_LOW_BYTE = Mutant("rx-crc-low-byte", "only the low byte of the CRC residue is checked", _RX, _ELAB,
                      r"with m\.If\(crc != 0\):", r"with m.If(crc[:8] != 0):")
ODD_WORDS = Mutant("rx-odd-words", "SPIKES/STEP take an odd LEN", _RX, _ELAB,
                   r"Mux\(is_words, ~length\[0\],", r"Mux(is_words, 1,")
SHORT_WAKE = Mutant("rx-short-wake", "SET_WAKE takes a LEN below ceil(n_out/8)", _RX, _ELAB,
                    r"length == self\._arg_bytes", r"length <= self._arg_bytes")
SHORT_DATA = Mutant("rx-short-data", "the payload ends a byte early (LEN - 1 bytes taken)", _RX, _ELAB,
                    r"with m\.If\(count \+ 1 == info\.length\):", r"with m.If(count + 2 >= info.length):")

PROOFS: tuple[Proof, ...] = (
    Proof(
        name="frame-rx",
        claim="the host link's frame receiver never passes on a frame with a bad CRC or length: an OK verdict "
              "is for a whole frame whose CRC bytes match CMD SEQ LEN PAYLOAD and whose LEN is legal for its "
              "(known) command, with that CMD, SEQ and LEN (n_out = 12, timeout 2; the full run adds n_out = 17, "
              "timeout 5, n_in = 100)",
        build=lambda: (FrameReceiverHarness(n_in=0xFFFF, n_out=12, timeout=2), []),
        # The full run adds a 3-byte wake mask with 7 bits that must be 0, a longer timeout, a small n_in.
        full_build=lambda: (together(FrameReceiverHarness(n_in=0xFFFF, n_out=12, timeout=2),
                                     FrameReceiverHarness(n_in=100, n_out=17, timeout=5)), []),
        mode="prove", solver="yices", depth=12, quick_depth=12,
        why_depth="k-induction closes at k = 2 with the auxiliary invariants; k = 12 so that the base case (from "
                  "reset) reaches the verdict on a 7-byte frame (step 9), where the broken designs show",
        broken=(CRC_UNCHECKED, CRC_LOW_BYTE, ODD_WORDS, SHORT_WAKE, SHORT_DATA)),
)
