"""The host side of the UART protocol (docs/host-protocol.md): classify stimuli on a board.

The same code drives the hardware (a ``pyserial`` port) and the simulated link in the tests (any object
with ``write(bytes)`` and ``read(n) -> bytes``), so what the tests check is what runs against a board.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .link import ERR_ADDRESS, ERR_ORDER, ERR_UART, decode_reply, encode_sample

__all__ = ["Port", "BoardError", "classify", "open_board"]

_ERROR_NAMES = {ERR_ADDRESS: "address >= n_in", ERR_ORDER: "addresses not ascending", ERR_UART: "UART error"}


class Port(Protocol):
    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int, /) -> bytes: ...


class BoardError(RuntimeError):
    """The board answered a sample with error flags (``flags``, the bits of docs/host-protocol.md)."""

    def __init__(self, sample: int, flags: int):
        self.sample = sample
        self.flags = flags
        names = ", ".join(name for bit, name in _ERROR_NAMES.items() if flags & bit) or f"flags 0x{flags:02X}"
        super().__init__(f"sample {sample}: the board reported {names}")


def classify(port: Port, x: np.ndarray) -> np.ndarray:
    """Send stimuli ``x`` (0/1, [S, T, n_in]) sample by sample and return the predictions (int64 [S]).

    All samples are written first (the link, not the core, sets the pace: see docs/host-protocol.md),
    then the ``S`` reply bytes are read. Raises :class:`BoardError` for the first sample answered with
    error flags and ``TimeoutError`` when a read brings no byte within the port's timeout.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.dtype.kind not in "biu" or (x.size and (x.min() < 0 or x.max() > 1)):
        raise ValueError(f"x must be a 0/1 integer array [samples, timesteps, n_in], not {x.dtype} {x.shape}")
    port.write(b"".join(encode_sample(sample) for sample in x))
    replies = b""
    while len(replies) < len(x):
        # A port's timeout bounds one read; the replies of a long run come over many reads.
        chunk = port.read(len(x) - len(replies))
        if not chunk:
            raise TimeoutError(f"the board answered {len(replies)} of {len(x)} samples")
        replies += chunk
    predictions = np.empty(len(x), dtype=np.int64)
    for i, byte in enumerate(replies):
        prediction, flags = decode_reply(byte)
        if flags:
            raise BoardError(i, flags)
        predictions[i] = prediction
    return predictions


def open_board(device: str, *, baud: int = 115_200, timeout: float = 5.0):
    """Open the board's serial port (``pyserial``); ``timeout`` bounds each read, in seconds."""
    import serial  # pyserial: only needed with a board attached

    return serial.Serial(device, baud, timeout=timeout)
