"""The host side of the SPI frame path (docs/host-protocol.md, "SPI frame path"): frames to the wake-up
build over SPI, results back.

:class:`SpiBoard` speaks the SPI target's register protocol (the transactions of
:mod:`qlif.boards.protocol`: ``SPICmd``, ``SPIFlag``) over a :class:`SpiTransport`, anything with
``exchange(mosi) -> miso``: one transaction, chip select low for its length, full duplex. Three of them:

* :class:`SpidevTransport`: Linux ``spidev`` (a Raspberry Pi or any SoC with an SPI controller; the
  ``spidev`` package);
* :class:`FtdiTransport`: an FTDI FT232H/FT2232H/FT4232H's MPSSE from any host (the ``pyftdi`` package);
* :class:`EmulatedSpi`: the reference target of :mod:`qlif.boards.host.emulator` (golden), for tests and
  for a host flow without a board.

The two hardware packages are optional (``pip install qlif[spi]``): imported only when such a transport
is opened, with a one-line error naming the package when it is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

import numpy as np

from qlif.boards.protocol import (
    SPIFlag,
    decode_spi_result,
    decode_spi_status,
    spi_read_result,
    spi_read_status,
    spi_write_frame,
    spi_write_mask,
)
from qlif.golden.spec.coding import check_frames, frame_levels_of

__all__ = ["SpiTransport", "SpidevTransport", "FtdiTransport", "EmulatedSpi", "SpiBoard", "SpiStatus",
           "SpiResults", "SpiError", "SpiTimeout", "MissingPackage"]


class SpiTransport(Protocol):
    def exchange(self, mosi: bytes, /) -> bytes: ...


class MissingPackage(ImportError):
    """A transport's optional package is not installed."""


class SpiError(RuntimeError):
    """The target did not do what the protocol promises (a frame refused again and again, a status that
    makes no sense)."""


class SpiTimeout(SpiError, TimeoutError):
    """The target stayed busy for longer than the board's timeout."""


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackage(f"this SPI transport needs the {package!r} package: pip install {package} "
                             "(or qlif[spi])") from None


class SpidevTransport:
    """Linux ``/dev/spidevB.D`` through the ``spidev`` package: SPI mode 0, MSB first, ``max_speed_hz``.

    The kernel drives chip select around each ``xfer2`` (one transaction). ``spidev`` limits a transfer
    to its ``bufsiz`` (4096 bytes by default), far above a frame of a 784-input model.
    """

    def __init__(self, bus: int = 0, device: int = 0, *, max_speed_hz: int = 1_000_000):
        spidev = _require("spidev", "spidev")
        self._dev = spidev.SpiDev()
        self._dev.open(bus, device)
        self._dev.mode = 0
        self._dev.bits_per_word = 8
        self._dev.max_speed_hz = int(max_speed_hz)

    def exchange(self, mosi: bytes) -> bytes:
        return bytes(self._dev.xfer2(list(mosi)))

    def close(self) -> None:
        self._dev.close()


class FtdiTransport:
    """An FTDI MPSSE chip (FT232H and kin) as SPI controller, through ``pyftdi.spi.SpiController``.

    Parameters
    ----------
    url : str
        pyftdi's device URL, e.g. ``"ftdi://ftdi:232h/1"``.
    cs : int
        Chip select line (0: ADBUS3).
    frequency : float
        SCK in Hz (up to 30 MHz on an FT232H).
    """

    def __init__(self, url: str = "ftdi://ftdi:232h/1", *, cs: int = 0, frequency: float = 1e6):
        spi = _require("pyftdi.spi", "pyftdi")
        self._ctrl = spi.SpiController()
        self._ctrl.configure(url)
        self._port = self._ctrl.get_port(cs=cs, freq=frequency, mode=0)

    def exchange(self, mosi: bytes) -> bytes:
        return bytes(self._port.exchange(bytes(mosi), duplex=True))

    def close(self) -> None:
        self._ctrl.terminate()


class EmulatedSpi:
    """A transport onto :class:`~qlif.boards.host.emulator.SpiTargetModel` (the golden target); counts
    the transactions and bytes it carries."""

    def __init__(self, target):
        self.target = target
        self.transactions = 0
        self.bytes = 0

    def exchange(self, mosi: bytes) -> bytes:
        self.transactions += 1
        self.bytes += len(mosi)
        return self.target.exchange(bytes(mosi))


class SpiStatus(NamedTuple):
    """The READ_STATUS answer."""

    flags: SPIFlag
    prediction: int      #: 0 while busy
    frames: int          #: frames accepted, mod 256


class SpiResults:
    """What :meth:`SpiBoard.classify_frames` read back, one entry per frame."""

    def __init__(self, n: int, n_out: int):
        self.prediction = np.zeros(n, np.int64)          #: int64 [S]
        self.counts = np.zeros((n, n_out), np.int64)     #: int64 [S, n_out], output spikes per class
        self.wake = np.zeros(n, bool)                    #: bool [S], the wake pin after the frame
        self.refused = 0          #: frames not accepted (refused while busy, or not committed) and sent again


class SpiBoard:
    """The wake-up build behind an SPI transport.

    Parameters
    ----------
    transport : SpiTransport
        The bus.
    n_in, n_out, timesteps : int
        The model's sizes (the target has no status block that carries them: :meth:`for_model`).
    levels : int or None
        The frame levels: values above them are refused here (the encoder would clip them). ``None``: any
        byte.
    timeout : float
        Seconds to wait for a frame's result (polling READ_STATUS) before :class:`SpiTimeout`.
    poll : float
        Seconds between two polls (``sleep``; 0 polls back to back).
    sleep : callable
        How to wait (``time.sleep``).

    A frame costs ``n_in + 1`` bytes (WRITE_FRAME), a READ_STATUS per poll (4 bytes) and a READ_RESULT
    (``2 + n_out`` bytes at ``T <= 255``).
    """

    def __init__(self, transport: SpiTransport, *, n_in: int, n_out: int, timesteps: int,
                 levels: int | None = None, timeout: float = 1.0, poll: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep):
        for name, value in (("n_in", n_in), ("n_out", n_out), ("timesteps", timesteps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.transport = transport
        self.n_in, self.n_out, self.timesteps, self.levels = n_in, n_out, timesteps, levels
        self.timeout, self.poll, self._sleep = timeout, poll, sleep

    @classmethod
    def for_model(cls, transport: SpiTransport, model, **kwargs) -> SpiBoard:
        """The board running ``model`` (its sizes and frame levels)."""
        return cls(transport, n_in=model.n_in, n_out=model.n_out, timesteps=model.timesteps,
                   levels=frame_levels_of(model.metadata), **kwargs)

    # -- transactions -----------------------------------------------------------------------------------

    def status(self) -> SpiStatus:
        """READ_STATUS (it also clears the target's REFUSED flag)."""
        return SpiStatus(*decode_spi_status(self.transport.exchange(spi_read_status())))

    def result(self) -> tuple[int, list[int]]:
        """READ_RESULT: (prediction, counts) of the last frame (zeros while busy)."""
        miso = self.transport.exchange(spi_read_result(self.n_out, self.timesteps))
        return decode_spi_result(miso, n_out=self.n_out, timesteps=self.timesteps)

    def set_wake(self, classes: Iterable[int]) -> None:
        """WRITE_MASK, checked: the target refuses it while busy, so wait first and read REFUSED after."""
        self.wait()
        self.transport.exchange(spi_write_mask(classes, self.n_out))
        if SPIFlag.REFUSED in self.status().flags:
            raise SpiError("the target refused the wake mask (busy)")

    def write_frame(self, frame) -> None:
        """WRITE_FRAME of one frame (``n_in`` values), not waiting for anything."""
        values = np.asarray(frame)
        if values.shape != (self.n_in,):
            raise ValueError(f"a frame must have {self.n_in} values, not shape {values.shape}")
        self.transport.exchange(spi_write_frame(values.tolist()))

    def wait(self) -> SpiStatus:
        """Poll READ_STATUS until the target is not BUSY; returns that status, with REFUSED if any of
        the polls saw it (each READ_STATUS clears it)."""
        deadline = time.monotonic() + self.timeout
        refused = SPIFlag(0)
        while True:
            st = self.status()
            refused |= st.flags & SPIFlag.REFUSED
            if SPIFlag.BUSY not in st.flags:
                return st._replace(flags=st.flags | refused)
            if time.monotonic() > deadline:
                raise SpiTimeout(f"the target stayed busy for more than {self.timeout} s")
            if self.poll:
                self._sleep(self.poll)

    # -- inference --------------------------------------------------------------------------------------

    def classify_frames(self, frames, *, retries: int = 3) -> SpiResults:
        """Infer frames (integers [S, n_in]) one after the other: wait until idle, WRITE_FRAME, wait until
        the target is idle again, READ_RESULT. A frame the target did not accept (REFUSED, or the
        frames-accepted count did not move by exactly one: it was busy, another controller started one,
        or a glitch on CS cut the transaction short so that nothing was committed and DONE is still the
        previous frame's) is sent again, up to ``retries`` times; its result is never read before. Every
        write follows a whole READ_STATUS (``wait``), which the target asks for after a transaction cut
        short (docs/host-protocol.md, "Cut transactions")."""
        f = np.asarray(frames)
        if f.ndim != 2 or f.shape[1] != self.n_in:
            raise ValueError(f"frames must be [samples, {self.n_in}], not shape {f.shape}")
        f = check_frames(f, self.n_in, 0xFF if self.levels is None else self.levels)
        out = SpiResults(len(f), self.n_out)
        for s, frame in enumerate(f):
            for attempt in range(retries + 1):
                before = self.wait().frames
                self.write_frame(frame)
                st = self.wait()
                if st.frames == (before + 1) & 0xFF and SPIFlag.REFUSED not in st.flags:
                    break
                if attempt == retries:
                    raise SpiError(f"frame {s}: not accepted {retries + 1} times (the target stayed busy, "
                                   "or the frames were not committed)")
                out.refused += 1
            if SPIFlag.DONE not in st.flags:
                raise SpiError(f"frame {s}: the target is idle but reports no result (flags {st.flags!r})")
            out.prediction[s], counts = self.result()
            out.counts[s] = counts
            out.wake[s] = SPIFlag.WAKE in st.flags
        return out

