"""cocotb test of the wake-up build (:class:`~qlif.boards.tops.wakeup.WakeupCore` as Verilog, with the
oscillator models of :file:`ice40_osc_sim.v`), through its SPI pins and ``wake`` only.

Run by :func:`qlif.sim.wakeup_runner.run_wakeup`, which passes a JSON file in ``QLIF_WAKEUP_CONFIG``
(the frames, the golden predictions and counts, the wake masks, the clock periods, the output path).
The test writes its figures and verdict to the output JSON, even when it fails.

``frames``: the core's clock stopped over an idle window after configuration, the wake mask written
over SPI, a frame cut by a glitch on CS whose rest reads as a WRITE_MASK refused (no frame committed,
the mask kept); then per frame: the frame written, busy at once, for the first frames a second frame sent
while busy and refused (REFUSED, the accepted-frames count unchanged), the clock running until BUSY
clears, the result (prediction and every count) equal to the golden model's, the wake pin and flag as
the mask says, then no core clock edge from BUSY clear until the next frame's commit, which comes a
gap (``gaps_lfosc``: 0 to a few LFOSC periods) after DONE was seen: the gaps that reach the
oscillator's power-down while it is under way. Throughout, a monitor fails the test if ``CLKHFEN`` ever
falls while ``run`` is high (the core's clock cut during an inference), and the oscillator is never
enabled before its power-up time (the model's ``early`` flag).

With synapses in SPRAM (``flash`` in the configuration): a flash model (:func:`_flash`) serves the
weight image; after configuration the target is BUSY while the core loads it, then the clock stops as
for a frame; the loader must select the flash no earlier than the third core clock edge (the boot
request through a two-stage synchroniser first) and leave it in deep power-down; a monitor fails the
test at any core clock edge while ``spram_sleep`` is high, ``spram_sleep`` must be high whenever the
clock is found stopped (the SPRAM sleeps while idle), and it may rise only with ``CLKHFEN`` low, at least
``sleep_margin_ns`` after both the core clock's last edge and ``CLKHFEN``'s fall.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from qlif.boards.protocol import (
    SPICmd,
    SPIFlag,
    decode_spi_result,
    decode_spi_status,
    spi_read_result,
    spi_read_status,
    spi_write_frame,
    spi_write_mask,
)


class SPIMaster:
    """An SPI mode-0 controller on ``sck``, ``cs_n``, ``copi``, ``cipo``: MSB first, COPI changed while
    SCK is low, CIPO sampled at SCK's rising edge."""

    def __init__(self, dut: HierarchyObject, period_ns: float):
        self.dut = dut
        self.half = period_ns / 2
        dut.sck.value = 0
        dut.cs_n.value = 1
        dut.copi.value = 0

    async def transfer(self, mosi: bytes, glitch_at: int | None = None) -> bytes:
        """One transaction; ``glitch_at``: CS goes high for half an SCK period before that bit (a glitch
        the controller does not know of: it goes on clocking the rest)."""
        dut = self.dut
        dut.cs_n.value = 0
        await Timer(self.half, unit="ns")
        miso = bytearray()
        for i, byte in enumerate(mosi):
            got = 0
            for b in reversed(range(8)):
                if glitch_at == 8 * i + 7 - b:
                    dut.cs_n.value = 1
                    await Timer(self.half, unit="ns")
                    dut.cs_n.value = 0
                dut.copi.value = byte >> b & 1
                await Timer(self.half, unit="ns")
                dut.sck.value = 1
                got = got << 1 | int(dut.cipo.value)
                await Timer(self.half, unit="ns")
                dut.sck.value = 0
            miso.append(got)
        await Timer(self.half, unit="ns")
        dut.cs_n.value = 1
        await Timer(self.half, unit="ns")
        return bytes(miso)


class WakeupHost:
    """The commands of docs/host-protocol.md ("SPI frame path") on an :class:`SPIMaster`."""

    def __init__(self, spi: SPIMaster, n_out: int, timesteps: int):
        self.spi, self.n_out, self.timesteps = spi, n_out, timesteps

    async def status(self) -> tuple[SPIFlag, int, int]:
        return decode_spi_status(await self.spi.transfer(spi_read_status()))

    async def result(self) -> tuple[int, list[int]]:
        miso = await self.spi.transfer(spi_read_result(self.n_out, self.timesteps))
        return decode_spi_result(miso, n_out=self.n_out, timesteps=self.timesteps)

    async def frame(self, frame) -> None:
        await self.spi.transfer(spi_write_frame(frame))

    async def mask(self, classes) -> None:
        await self.spi.transfer(spi_write_mask(classes, self.n_out))


@cocotb.test()
async def frames(dut):
    cfg = json.loads(Path(os.environ["QLIF_WAKEUP_CONFIG"]).read_text())
    stats = {"frames": 0, "refused": 0, "hf_edges": [], "tail_edges": [], "idle_ns": 0, "polls": 0,
             "clock_cuts": [], "glitch_refused": False, "failure": None}
    if cfg.get("flash"):
        stats.update(load_edges=0, sleep_edges=[], sleep_entry_ns=[], flash_select_edge=None)
    try:
        await _frames(dut, cfg, stats)
    except Exception as e:
        stats["failure"] = str(e) or repr(e)
        raise
    finally:
        stats.pop("_last_edge_ns", None)
        Path(cfg["out"]).write_text(json.dumps(stats))


async def _watch_clock_enable(dut, stats):
    """Record every fall of ``CLKHFEN`` while ``run`` is high (sim time, ns): the core's clock gated off
    in the middle of an inference."""
    while True:
        await FallingEdge(dut.hfosc.CLKHFEN)
        if int(dut.run.value):
            stats["clock_cuts"].append(get_sim_time("ns"))


async def _watch_sleep(dut, stats):
    """Record every core clock edge while the SPRAM sleeps (sim time, ns): an access while asleep."""
    while True:
        await RisingEdge(dut.hfosc.CLKHF)
        stats["_last_edge_ns"] = get_sim_time("ns")
        if int(dut.spram_sleep.value):
            stats["sleep_edges"].append(get_sim_time("ns"))


async def _watch_sleep_entry(dut, stats):
    """At each rise of ``spram_sleep``: the time since the core clock's last edge and since ``CLKHFEN``
    fell (ns; ``sleep_entry_ns``), and whether the clock was still enabled then."""
    fell = [0.0]

    async def enable_falls():
        while True:
            await FallingEdge(dut.hfosc.CLKHFEN)
            fell[0] = get_sim_time("ns")

    cocotb.start_soon(enable_falls())
    while True:
        await RisingEdge(dut.spram_sleep)
        now = get_sim_time("ns")
        enabled = bool(int(dut.hfosc.CLKHFEN.value))
        stats["sleep_entry_ns"].append([now - stats.get("_last_edge_ns", 0), None if enabled else now - fell[0]])


async def _watch_flash_select(dut, stats):
    """The core clock's edge count when the loader first selects the flash (after that edge's updates)."""
    await RisingEdge(dut.flash__cs)
    await ReadOnly()
    stats["flash_select_edge"] = int(dut.hfosc.edges.value)


async def _flash(dut, image: bytes, offset: int, stats):
    """A SPI NOR flash (mode 0) on the ``flash__*`` pins holding ``image`` at ``offset``: the loader's
    release-from-power-down (``0xAB``), read (``0x03``) and deep power-down (``0xB9``) commands; any other
    command or start address, or a command but ``0xAB`` while powered down, fails (as
    :func:`qlif.sim.harness.spi_flash`, the core bench's). ``stats["flash_asleep"]``: in deep power-down
    (as the iCE40's configuration leaves it: icepack's default)."""
    bits = shift = data_bit = 0
    address = None
    sck, cs = dut.flash__sck, dut.flash__cs
    stats["flash_asleep"] = True
    while True:
        await First(sck.value_change, cs.value_change)
        if not int(cs.value):
            bits, shift, address, data_bit = 0, 0, None, 0
            continue
        if int(sck.value) and address is None:              # rising SCK: copi sampled
            bits += 1
            shift = shift << 1 | int(dut.flash__copi.value)
            if bits == 8 and shift not in (0x03, 0xAB, 0xB9):
                raise AssertionError(f"flash: unknown command {shift:#04x}")
            if bits == 8 and stats["flash_asleep"] and shift != 0xAB:
                raise AssertionError(f"flash: command {shift:#04x} while in deep power-down")
            if bits == 8:
                stats["flash_asleep"] = shift == 0xB9
            if bits == 32 and shift >> 24 == 0x03:
                address = shift & 0xFFFFFF
                if address != offset:
                    raise AssertionError(f"flash: read from {address:#x}, image at {offset:#x}")
        elif not int(sck.value) and address is not None:    # falling SCK: the next bit out
            byte_index, bit = divmod(data_bit, 8)
            byte = image[byte_index] if byte_index < len(image) else 0xFF
            dut.flash__cipo.value = byte >> (7 - bit) & 1
            data_bit += 1


async def _glitched_frame(dut, host: WakeupHost, cfg, stats) -> None:
    """A WRITE_FRAME with a glitch on CS three bits into its third byte, the bits after it a WRITE_MASK of
    every class: the target must refuse the rest (REFUSED), commit no frame and keep its mask."""
    n_in, n_mask = cfg["n_in"], (cfg["n_out"] + 7) // 8
    cut = 8 * 2 + 3
    rest = bytes([SPICmd.WRITE_MASK]) + b"\xff" * n_mask
    if 8 * (1 + n_in) - cut < 8 * len(rest):
        return                                            # a frame too short to hide a mask in
    whole = int.from_bytes(spi_write_frame(cfg["frames"][0]), "big")
    bits = 8 * (1 + n_in)
    tail = bits - cut - 8 * len(rest)
    mosi = ((whole >> (bits - cut)) << (bits - cut)) | (int.from_bytes(rest, "big") << tail)
    before = int(dut.spi.mask.value)
    await host.spi.transfer(mosi.to_bytes(1 + n_in, "big"), glitch_at=cut)
    flags, _, accepted = await host.status()
    assert SPIFlag.REFUSED in flags and SPIFlag.BUSY not in flags and accepted == 0, (
        f"a frame cut by a glitch on CS: flags {flags!r}, {accepted} frames accepted")
    assert not int(dut.run.value) and int(dut.spi.mask.value) == before, (
        f"a glitch on CS in a frame: run {int(dut.run.value)}, mask {int(dut.spi.mask.value):#x} (was {before:#x})")
    stats["glitch_refused"] = True


async def _watch_run(dut, fell: list):
    """Append the core clock's edge count at each fall of ``run`` (the result final)."""
    while True:
        await FallingEdge(dut.run)
        fell.append(int(dut.hfosc.edges.value))


async def _frames(dut, cfg, stats):
    periods = cfg["periods_ns"]
    Clock(dut.hfosc.osc, periods["hfosc"], unit="ns").start()
    Clock(dut.lfosc.osc, periods["lfosc"], unit="ns").start()
    host = WakeupHost(SPIMaster(dut, periods["sck"]), cfg["n_out"], cfg["timesteps"])
    idle = 5 * periods["lfosc"]
    gaps = [g * periods["lfosc"] for g in cfg["gaps_lfosc"]]
    await Timer(1, unit="ns")          # past the registers' initial values (time 0 events under Icarus)
    # 100 us, the oscillator's power-up time, is one LFOSC period (10 kHz) on the board: so here.
    dut.hfosc.startup.value = periods["lfosc"] // periods["hfosc"]
    cocotb.start_soon(_watch_clock_enable(dut, stats))
    fell = []
    cocotb.start_soon(_watch_run(dut, fell))

    spram = bool(cfg.get("flash"))
    if spram:
        dut.flash__cipo.value = 1
        cocotb.start_soon(_flash(dut, bytes.fromhex(cfg["flash"]["image"]), cfg["flash"]["offset"], stats))
        cocotb.start_soon(_watch_sleep(dut, stats))
        cocotb.start_soon(_watch_sleep_entry(dut, stats))
        cocotb.start_soon(_watch_flash_select(dut, stats))

    def edges() -> int:
        return int(dut.hfosc.edges.value)

    async def stopped(what: str) -> None:
        before = edges()
        await Timer(idle, unit="ns")
        stats["idle_ns"] += idle
        assert edges() == before and not int(dut.run.value), f"the core's clock ran while idle ({what})"
        assert not spram or int(dut.spram_sleep.value), f"the SPRAM awake while the clock was stopped ({what})"
        assert not stats.get("sleep_edges"), f"core clock edges while the SPRAM slept at {stats['sleep_edges'][:5]} ns"

    if spram:
        # The weights from the flash at power-up: BUSY meanwhile, then the clock stops.
        for _ in range(100_000):
            flags, _, accepted = await host.status()
            if SPIFlag.BUSY not in flags:
                break
            await Timer(periods["lfosc"], unit="ns")
        else:
            raise AssertionError("still busy loading the weights after 100000 status reads")
        stats["load_edges"] = edges()
        assert stats["load_edges"] > 0, "BUSY cleared at power-up, but the core's clock never ran to load"
        # The first core edges after CLKHFEN rises (the first may be a runt) reach the boot synchroniser
        # alone: the loader selects the flash at the third edge at the earliest.
        assert (stats["flash_select_edge"] or 0) >= 3, (
            f"the flash loader started at core clock edge {stats['flash_select_edge']} after power-up, "
            "before the boot request had crossed a two-stage synchroniser")
        assert stats["flash_asleep"], "the flash left awake after the weights were loaded"
    await stopped("after configuration")
    assert edges() == stats.get("load_edges", 0), "the core's clock ran before the first frame"
    flags, _, accepted = await host.status()
    assert flags == SPIFlag(0) and accepted == 0, f"status at power-up: {flags!r}, {accepted} frames"
    await host.mask(cfg["wake_set"])
    mask = set(cfg["wake_set"])
    await _glitched_frame(dut, host, cfg, stats)
    e_idle = edges()                   # the core clock's edges when the target last reported not busy
    for s, frame in enumerate(cfg["frames"]):
        e0 = edges()
        assert e0 == e_idle, f"frame {s}: the core's clock ran while the target reported not busy"
        await host.frame(frame)
        stats["frames"] += 1
        assert int(dut.run.value), f"frame {s}: run low after the frame's last byte"
        if s < cfg["busy_frames"]:
            # Another frame at once (the oscillator is still powering up): refused whole.
            await host.frame(cfg["frames"][(s + 1) % len(cfg["frames"])][::-1])
            flags, _, accepted = await host.status()
            assert SPIFlag.REFUSED in flags, f"frame {s}: a frame sent while busy was not refused ({flags!r})"
            assert accepted == (s + 1) % 256, f"frame {s}: {accepted} frames accepted, expected {s + 1}"
            stats["refused"] += 1
        for _ in range(100_000):
            flags, pred, accepted = await host.status()
            stats["polls"] += 1
            if SPIFlag.BUSY not in flags:
                break
            if cfg["poll_ns"]:
                await Timer(cfg["poll_ns"], unit="ns")
        else:
            raise AssertionError(f"frame {s}: still busy after 100000 status reads")
        t_done, e_idle = get_sim_time("ns"), edges()
        assert len(fell) == s + 1, f"frame {s}: BUSY clear, but run fell {len(fell)} times in {s + 1} frames"
        stats["hf_edges"].append(fell[-1] - e0)
        stats["tail_edges"].append(e_idle - fell[-1])
        assert fell[-1] > e0, f"frame {s}: done, but the core's clock never ran"
        assert not stats["clock_cuts"], (
            f"frame {s}: CLKHFEN fell while run was high (the core's clock gated off during an inference) "
            f"at {stats['clock_cuts']} ns")
        assert SPIFlag.DONE in flags and SPIFlag.REFUSED not in flags, f"frame {s}: flags {flags!r}"
        assert SPIFlag.CORE_ERROR not in flags, f"frame {s}: core error"
        assert accepted == (s + 1) % 256, f"frame {s}: {accepted} frames accepted, expected {s + 1}"
        got_pred, got_counts = await host.result()
        want_pred, want_counts = cfg["prediction"][s], cfg["counts"][s]
        assert (pred, got_pred, got_counts) == (want_pred, want_pred, want_counts), (
            f"frame {s}: prediction {pred}/{got_pred} counts {got_counts}, golden {want_pred} {want_counts}")
        wake = want_pred in mask
        assert int(dut.wake.value) == wake and (SPIFlag.WAKE in flags) == wake, (
            f"frame {s}: wake pin {int(dut.wake.value)}, flag {SPIFlag.WAKE in flags}, class {want_pred} "
            f"in mask {sorted(mask)}: {wake}")
        # The next frame a gap after DONE was seen (the result read counts in it).
        rest = gaps[s % len(gaps)] - (get_sim_time("ns") - t_done)
        if rest > 0:
            await Timer(round(rest), unit="ns")
    await stopped("after the last frame")
    assert not stats["clock_cuts"], f"CLKHFEN fell while run was high at {stats['clock_cuts']} ns"
    if spram:
        # SLEEP rises only with the clock disabled, a margin after its last edge and after CLKHFEN fell.
        margin = cfg["sleep_margin_ns"]
        entries = stats["sleep_entry_ns"]
        # After the load and after the last frame at least (a frame may follow the one before too soon).
        assert len(entries) >= 2, f"the SPRAM fell asleep {len(entries)} times"
        late = [e for e in entries if e[1] is None or min(e) < margin]
        assert not late, (f"SLEEP rose less than {margin} ns after the core clock's last edge or CLKHFEN's "
                          f"fall (or with CLKHFEN high): [since edge, since CLKHFEN fell] = {late}")
        assert stats["flash_asleep"], "the flash awake at the end"
    assert not int(dut.hfosc.early.value), "SB_HFOSC enabled before its power-up time"
    assert not stats.get("sleep_edges"), f"core clock edges while the SPRAM slept at {stats['sleep_edges'][:5]} ns"
