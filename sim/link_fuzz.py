"""Fuzzed request frames for the host link, and their expected replies from the reference board.

Pure Python (no simulator): :class:`Fuzzer` draws seeded items (a burst of bytes on the line: bad CRC,
truncated frames, unknown commands, bad lengths, out-of-range or descending addresses, bad wake masks,
random garbage, UART framing errors, several frames back to back, valid requests in between), and
:func:`apply` feeds one to a :class:`~qlif.boards.host.emulator.BoardModel`, which says exactly which reply
bytes the RTL must send. The cocotb campaign (:mod:`qlif.sim.cocotb_link`) sends the same bursts to the
RTL and compares byte for byte.

Items never change the sample being classified (no accepted RESET, SPIKES or STEP: :meth:`Fuzzer.item`
draws again in the rare case a mutation happens to make one), so every sample of the campaign must still
end with the golden model's prediction: the follow-up good request that proves no state was corrupted.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

from qlif.boards.host.emulator import BoardModel
from qlif.boards.protocol import (
    MAX_WORDS,
    SYNC,
    Cmd,
    Err,
    ReplyDecoder,
    encode_addresses,
    encode_request,
    mask_bytes,
)
from qlif.sim.uart_model import UartByte

__all__ = ["Item", "Fuzzer", "apply", "KINDS"]

#: Item kinds and their weights. "good" is a valid request that leaves the sample alone; "combo" is 2-4
#: frames (good and bad, each of intact length) with no gap between them.
KINDS = {
    "good": 3, "bad_crc": 3, "bad_len_byte": 1, "truncated": 3, "unknown_cmd": 2, "bad_length": 2,
    "bad_address": 2, "bad_order": 2, "bad_arg": 1, "garbage": 2, "uart_frame": 1, "combo": 2,
}
#: Kinds that are each one bad frame (or garbage) however they are counted.
_BAD = set(KINDS) - {"good", "combo"}


@dataclass
class Item:
    kind: str
    data: list[UartByte]
    fuzzed: int                       #: bad frames (or garbage bursts) in the item
    kinds: list[str] = field(default_factory=list)   #: for a combo, the kinds of its frames


def apply(ref: BoardModel, item: Item) -> tuple[bytes, bool]:
    """Feed ``item`` to ``ref``; return the reply bytes the board must send and whether the burst left a
    frame open (then the reply of the truncated frame, TIMEOUT, is included: the line stays quiet until
    the replies have come, so the board's frame timeout expires)."""
    out = bytearray()
    for b in item.data:
        if b.bad_stop:
            ref.uart_error("uart_frame")
        else:
            out += ref.feed(bytes([b.value]))
    tail = ref.idle()
    return bytes(out + tail), bool(tail)


class Fuzzer:
    """Seeded generator of fuzz items for a board running ``model``."""

    def __init__(self, model, rng: random.Random):
        self.model = model
        self.rng = rng
        self.n_in, self.n_out = model.n_in, model.n_out

    def _seq(self) -> int:
        return self.rng.randrange(256)

    # -- frames -------------------------------------------------------------------------------------

    def good_frame(self, ref: BoardModel) -> bytes:
        """A valid request that does not touch the sample: STATUS, RESULT, GET/SET_WAKE, CLEAR_COUNTERS."""
        r = self.rng
        cmd = r.choice([Cmd.STATUS, Cmd.RESULT, Cmd.RESULT, Cmd.GET_WAKE, Cmd.SET_WAKE, Cmd.CLEAR_COUNTERS])
        payload = b""
        if cmd == Cmd.SET_WAKE:
            payload = r.getrandbits(self.n_out).to_bytes(mask_bytes(self.n_out), "little")
        return encode_request(cmd, self._seq(), payload)

    def _addresses(self, ref: BoardModel, k: int) -> list[int]:
        """``k`` valid ascending addresses above the open step's last one (fewer if there is no room)."""
        low = ref.open[-1] + 1 if ref.open else 0
        room = range(low, self.n_in)
        return sorted(self.rng.sample(room, min(k, len(room))))

    def any_frame(self, ref: BoardModel) -> bytes:
        """A frame of any command that would be accepted (only ever sent mutated or cut)."""
        r = self.rng
        if r.random() < 0.5:
            cmd = r.choice([Cmd.SPIKES, Cmd.STEP])
            return encode_request(cmd, self._seq(), encode_addresses(self._addresses(ref, r.randrange(0, 12))))
        if r.random() < 0.3:
            return encode_request(Cmd.RESET, self._seq())
        return self.good_frame(ref)

    def bad_frame(self, kind: str, ref: BoardModel) -> bytes:
        r = self.rng
        if kind == "bad_crc":
            frame = bytearray(self.any_frame(ref))
            # One bit of CMD, SEQ, payload or CRC: a CRC-16 detects every single-bit error.
            i = r.choice([1, 2, *range(4, len(frame))])
            frame[i] ^= 1 << r.randrange(8)
            return bytes(frame)
        if kind == "bad_len_byte":
            # LEN hit: the frame ends elsewhere (early: bad CRC; late: it swallows bytes, then times out).
            frame = bytearray(self.any_frame(ref))
            frame[3] ^= 1 << r.randrange(8)
            return bytes(frame)
        if kind == "unknown_cmd":
            cmd = r.choice([0x00, *range(max(Cmd) + 1, 0x100)])
            return encode_request(cmd, self._seq(), r.randbytes(r.randrange(0, 9)))
        if kind == "bad_length":
            choice = r.randrange(3)
            if choice == 0:
                cmd = r.choice([Cmd.STATUS, Cmd.RESET, Cmd.RESULT, Cmd.GET_WAKE, Cmd.CLEAR_COUNTERS])
                return encode_request(cmd, self._seq(), r.randbytes(r.randrange(1, 6)))
            if choice == 1:
                payload = encode_addresses(self._addresses(ref, r.randrange(0, 6)))
                return encode_request(r.choice([Cmd.SPIKES, Cmd.STEP]), self._seq(), payload + b"\x00")
            n = mask_bytes(self.n_out)
            return encode_request(Cmd.SET_WAKE, self._seq(), bytes(r.choice([m for m in range(n + 4) if m != n])))
        if kind == "bad_address":
            words = self._addresses(ref, r.randrange(0, 8))
            bad = r.randrange(self.n_in, 0x10000)
            words.insert(r.randrange(len(words) + 1), bad)
            return encode_request(r.choice([Cmd.SPIKES, Cmd.STEP]), self._seq(), encode_addresses(words))
        if kind == "bad_order":
            words = self._addresses(ref, r.randrange(1, 8))
            if ref.open and r.random() < 0.5:
                words.insert(0, r.randrange(0, ref.open[-1] + 1))   # not above the open step's last address
            elif len(words) >= 2 and r.random() < 0.5:
                i = r.randrange(1, len(words))
                words[i], words[i - 1] = words[i - 1], words[i]     # descending
            else:
                i = r.randrange(len(words))
                words.insert(i, words[i])                           # a repeat
            return encode_request(r.choice([Cmd.SPIKES, Cmd.STEP]), self._seq(), encode_addresses(words))
        if kind == "bad_arg":
            n = mask_bytes(self.n_out)
            if 8 * n == self.n_out:      # no spare bit: fall back to a bad length
                return self.bad_frame("bad_length", ref)
            mask = r.getrandbits(self.n_out) | 1 << r.randrange(self.n_out, 8 * n)
            return encode_request(Cmd.SET_WAKE, self._seq(), mask.to_bytes(n, "little"))
        raise ValueError(f"not a frame kind: {kind!r}")

    # -- items --------------------------------------------------------------------------------------

    def item(self, ref: BoardModel) -> Item:
        """One item that leaves the sample alone (drawn again in the rare case it would not)."""
        while True:
            item = self._draw(ref)
            trial = copy.deepcopy(ref)
            replies, _ = apply(trial, item)
            accepted = [r.cmd for r in ReplyDecoder().feed(replies) if r.status == Err.OK]
            if not {Cmd.RESET, Cmd.SPIKES, Cmd.STEP} & set(accepted):
                return item

    def _draw(self, ref: BoardModel) -> Item:
        r = self.rng
        kind = r.choices(list(KINDS), weights=list(KINDS.values()))[0]
        as_bytes = lambda data: [UartByte(b) for b in data]   # noqa: E731
        if kind == "good":
            return Item(kind, as_bytes(self.good_frame(ref)), 0)
        if kind == "truncated":
            frame = self.any_frame(ref)
            return Item(kind, as_bytes(frame[:r.randrange(1, len(frame))]), 1)
        if kind == "garbage":
            data = bytearray(r.randbytes(r.randrange(1, 25)))
            if r.random() < 0.5:
                data[r.randrange(len(data))] = SYNC
            return Item(kind, as_bytes(data), 1)
        if kind == "uart_frame":
            first = UartByte(r.randrange(256), bad_stop=True)
            return Item(kind, [first, *as_bytes(self.good_frame(ref))], 1)
        if kind == "combo":
            parts, kinds, fuzzed = [], [], 0
            for _ in range(r.randrange(2, 5)):
                k = r.choice(["good", "good", "bad_crc", "unknown_cmd", "bad_length", "bad_address", "bad_order",
                              "bad_arg"])
                parts.append(self.good_frame(ref) if k == "good" else self.bad_frame(k, ref))
                kinds.append(k)
                fuzzed += k != "good"
            return Item(kind, as_bytes(b"".join(parts)), fuzzed, kinds)
        assert kind in _BAD
        return Item(kind, as_bytes(self.bad_frame(kind, ref)), 1)

    def step_frames(self, addresses: list[int]) -> list[bytes]:
        """A good timestep as SPIKES frames split at random points, then a STEP (at most MAX_WORDS each)."""
        r = self.rng
        cuts = sorted(r.sample(range(1, len(addresses)), r.randrange(0, min(3, len(addresses)))) if len(addresses) > 1
                      else [])
        parts, last = [], 0
        for c in [*cuts, len(addresses)]:
            parts.append(addresses[last:c])
            last = c
        if r.random() < 0.2:
            parts.append([])                    # an empty STEP after the SPIKES
        frames = []
        for i, part in enumerate(parts):
            while len(part) > MAX_WORDS:
                frames.append(encode_request(Cmd.SPIKES, self._seq(), encode_addresses(part[:MAX_WORDS])))
                part = part[MAX_WORDS:]
            cmd = Cmd.STEP if i == len(parts) - 1 else Cmd.SPIKES
            frames.append(encode_request(cmd, self._seq(), encode_addresses(part)))
        return frames
