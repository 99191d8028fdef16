"""The wake-up build of the iCE40 UltraPlus: frames in over SPI, the core's clock running only from a
frame's end to its result, the wake pin raised for the classes of the wake mask.

:class:`WakeupCore` is board independent (its pins are ports): the
:class:`~qlif.boards.link.spi_target.SPITarget` on the SPI pins, and in the ``core`` domain the
:class:`~qlif.hw.encoder.EncodedNetwork` (the on-chip rate encoder in front of the
:class:`~qlif.hw.network.Network`) fed from the SPI target's frame buffer. Three clocks:

* SCK, the SPI controller's (the SPI target's own domains): it runs only during a transaction;
* ``core``: ``SB_HFOSC`` (48, 24, 12 or 6 MHz), powered up (``CLKHFPU``) from the commit of a frame
  (``SPITarget.run``) and its output enabled (``CLKHFEN``) once it has had the data sheet's 100 us to
  settle, until the ``aon`` domain has seen the result final; stopped otherwise, with every register
  holding its value;
* ``aon``: ``SB_LFOSC`` (10 kHz), always on, for the oscillator's control alone: ``CLKHFEN`` is one of its
  registers, ``hf_on``, set two to three of its cycles after ``run`` rises (200..300 us) and cleared as
  long after ``run`` falls.

``CLKHFEN`` therefore changes only while the ``core`` registers hold their values (before the frame's
``start`` has been seen, and 200 us after the result; only the first stage of ``SPITarget``'s
synchroniser of the commit takes a new value as the clock starts, from an input steady for 200 us), so
the design does not need ``SB_HFOSC``'s output gate to be glitch-free (Lattice does not say that it is):
a short or runt pulse then changes nothing else. The cost: the oscillator runs 200..300 us after each
result with the core idle. The SPI target stays BUSY until it has seen ``hf_on`` low
(``SPITarget.clock_on``): a frame committed while ``hf_on`` was still falling would raise ``run`` under
it and gate the clock off during the inference.

:class:`ICEBreakerWakeupTop` puts it on the iCEBreaker: SPI on PMOD1B, ``wake`` on PMOD1A pin 1 (as the
UART build), ``run`` on the green LED, and for a model whose synapses need SPRAM the configuration flash
as in the UART build (:meth:`~qlif.boards.tops.top.BoardTop._flash`).

Synapses in SPRAM (not in the bitstream) are loaded from the flash once, at power-up: ``booting``, an
``aon`` register set by configuration, powers the oscillator up and enables it as a frame does
(``boot_on``, two to three ``aon`` cycles later), until the core's first ``idle`` (the load done, the
flash sent back into deep power-down) has crossed into ``aon``; the SPI target is BUSY meanwhile. The
core (the flash loader in it) is held by its registers' enables until ``boot_on`` has crossed a
two-stage synchroniser into ``core``, so that the first edges after ``CLKHFEN`` rises (the first may be
a runt) change nothing but that synchroniser, as for a frame. The SPRAM sleeps (``SB_SPRAM256KA``
``SLEEP``: contents kept) while the core is stopped: it wakes at a frame's commit, 200..300 us before the
core's first clock edge (Lattice's TN1314 gives no wake-up time for SLEEP; the HFOSC's own 100 us
power-up is the figure that margin is made for), and falls asleep one ``aon`` cycle (100 us) after
``CLKHFEN`` fell, the core's last clock edge (the SPRAM reads at every edge) long done and the core idle
for the 200..300 us before.
"""

from __future__ import annotations

from amaranth.build import Pins, PinsN, Resource, Subsignal
from amaranth.build.dsl import Attrs
from amaranth.hdl import Cat, ClockDomain, DomainRenamer, Elaboratable, EnableInserter, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from qlif.boards.link.host_link import wake_mask
from qlif.boards.link.spi_target import SPITarget
from qlif.boards.tops.icebreaker import ICEBreakerPlatform
from qlif.boards.tops.top import BoardTop
from qlif.golden.spec.coding import frame_levels_of
from qlif.golden.spec.model import Model
from qlif.hw.encoder import EncodedNetwork
from qlif.hw.flash import FlashSignature
from qlif.hw.memory import MemoryPlan, plan_memories
from qlif.hw.network import check_network

__all__ = ["HFOSC_FREQS", "LFOSC_FREQ", "MAX_SCK_FREQ", "RUNNER_EDGES", "frame_edges", "WakeupCore",
           "WakeupPlatform", "ICEBreakerWakeupTop"]

#: The ``SB_HFOSC`` output frequencies (Hz) and their ``CLKHF_DIV`` settings.
HFOSC_FREQS = {48e6: "0b00", 24e6: "0b01", 12e6: "0b10", 6e6: "0b11"}
#: The ``SB_LFOSC`` frequency (Hz; the data sheet's nominal, +-10 % over voltage and temperature).
LFOSC_FREQ = 10e3
#: The SCK the SPI target is constrained to (its paths are short; nextpnr reports what it reaches).
MAX_SCK_FREQ = 12e6
#: ``SB_LFOSC`` cycles after ``run`` before ``CLKHFEN``: two synchroniser stages and a register, at least
#: two full cycles (200 us at 10 kHz, 180 us at its +10 %) against the 100 us ``SB_HFOSC`` needs.
_POWER_UP_STAGES = 2
#: Core clock edges of a frame besides the encoder's (:func:`qlif.golden.spec.cycles.encoded_cycles`, from the
#: frame's last byte to ``done``) and the runner's two a byte (READ, OFFER): the commit's two-stage
#: synchroniser into ``core`` (``SPITarget.start``), IDLE taking ``start``, SETTLE, FINISH, and the edge
#: whose acknowledgement lowers ``run`` (the count :func:`qlif.sim.wakeup_runner.run_wakeup` calls
#: ``hf_edges``). Measured exact on the digits (64 inputs) and a 784-44-10 (8 frames, Icarus).
RUNNER_EDGES = 5


def frame_edges(n_in: int) -> int:
    """Core clock edges of a frame beyond ``encoded_cycles``: ``2 n_in + RUNNER_EDGES`` (the frame's bytes
    from the SPI buffer into the encoder, one every two cycles, and the runner's fixed states)."""
    return 2 * n_in + RUNNER_EDGES


class WakeupCore(wiring.Component):
    """Frames over SPI into the encoder and the core on a gated ``SB_HFOSC`` clock (module docstring).

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
        The network; its metadata gives the encoder's frame levels and maximum rate.
    lanes : int
        P of the core.
    core_freq : float
        The ``SB_HFOSC`` frequency, one of :data:`HFOSC_FREQS`.
    wake_classes : iterable of int or None
        The wake mask at power-up (``None``: every class); the SPI WRITE_MASK command changes it.
    memory : MemoryPlan or None
        The core's memory plan (``None``: the generic one, block RAM). Synapses in SPRAM add ``flash``.

    Members
    -------
    sck, cs_n, copi : In(1); cipo, cipo_oe : Out(1)
        The SPI target (:class:`~qlif.boards.link.spi_target.SPITarget`, mode 0); ``cipo`` is to be
        driven only while ``cipo_oe`` (CS low).
    wake : Out(1)
        High from a result whose class is in the wake mask until the core starts on the next frame
        (a ``core`` register: it holds while the clock is stopped).
    run : Out(1)
        The oscillator's power-up request (a frame is being inferred).
    flash : Out(FlashSignature())
        Only with synapses in SPRAM: the SPI flash the weights are loaded from at power-up
        (:class:`~qlif.hw.flash.FlashLoader`).

    Latency: the SPI frame, 200..300 us of oscillator power-up, then the frame's ``n_in`` bytes into the
    encoder (two core cycles each) and the inference of :class:`~qlif.hw.encoder.EncodedNetwork`; the
    result is final three core cycles after the last ``step_done`` (``wake`` rises then); the clock
    stops, and BUSY clears, 200..300 us later. Memory: the SPI target's frame buffer,
    the encoder's and the core's.
    """

    def __init__(self, *, model: Model, lanes: int, core_freq: float = 12e6, wake_classes=None,
                 memory: MemoryPlan | None = None):
        self._memory, self._mask = WakeupCore.check(model=model, lanes=lanes, core_freq=core_freq,
                                                    wake_classes=wake_classes, memory=memory)
        self._model, self._lanes, self._core_freq = model, lanes, core_freq
        flash = {"flash": Out(FlashSignature())} if self._memory.uses_spram else {}
        super().__init__({
            **flash,
            "sck": In(1), "cs_n": In(1, init=1), "copi": In(1), "cipo": Out(1), "cipo_oe": Out(1),
            "wake": Out(1), "run": Out(1),
        })
        #: Not a port: the SPRAM's sleep input as driven (high while the oscillator is powered down).
        self.spram_sleep = Signal()

    @staticmethod
    def check(*, model: Model, lanes: int, core_freq: float = 12e6, wake_classes=None,
              memory: MemoryPlan | None = None) -> tuple[MemoryPlan, int]:
        """The constructor's checks, with no block built (for a board top that builds it when elaborated).
        Returns the memory plan (the generic one for ``None``) and the wake mask."""
        check_network(model, lanes, memory)
        frame_levels_of(model.metadata)     # the encoder's levels: a model that names none fails now
        if core_freq not in HFOSC_FREQS:
            choices = ", ".join(f"{f / 1e6:g}" for f in HFOSC_FREQS)
            raise ValueError(f"core_freq must be an SB_HFOSC frequency ({choices} MHz), not {core_freq!r}")
        memory = memory if memory is not None else plan_memories(model, lanes, None)
        return memory, wake_mask(model, wake_classes)

    @property
    def model(self) -> Model:
        return self._model

    @property
    def core_freq(self) -> float:
        return self._core_freq

    @property
    def memory(self) -> MemoryPlan:
        return self._memory

    def elaborate(self, platform) -> Module:
        m = Module()
        model = self._model
        # -- clocks -----------------------------------------------------------------------------------
        m.domains.aon = cd_aon = ClockDomain("aon", reset_less=True)
        # No reset: the core's registers start from their configuration values, and its clock first
        # runs long after configuration (the block RAMs' 3 us of reading zero are long over).
        m.domains.core = cd_core = ClockDomain("core", reset_less=True)
        m.submodules.lfosc = Instance("SB_LFOSC", i_CLKLFPU=1, i_CLKLFEN=1, o_CLKLF=cd_aon.clk)
        run, run_aon, hf_on = Signal(), Signal(), Signal()
        m.submodules.run_sync = FFSynchronizer(run, run_aon, o_domain="aon", stages=_POWER_UP_STAGES)
        spram = self._memory.uses_spram
        # With SPRAM: the weights are loaded from the flash once, from configuration on (``booting``, an
        # aon register, powers the oscillator up; ``boot_on`` enables it as ``hf_on`` does for a frame,
        # once settled), until the core's first idle reaches the aon domain.
        booting, boot_on, loaded, loaded_aon = Signal(init=spram), Signal(), Signal(), Signal()
        if spram:
            settle = Signal(_POWER_UP_STAGES)
            m.d.aon += [settle.eq(Cat(1, settle[:-1])), boot_on.eq(booting & settle[-1])]
            m.submodules.loaded_sync = FFSynchronizer(loaded, loaded_aon, o_domain="aon")
            with m.If(loaded_aon):
                m.d.aon += booting.eq(0)
        m.d.aon += hf_on.eq(run_aon | boot_on)
        if platform is not None:
            platform.add_clock_constraint(cd_core.clk, self._core_freq)
            platform.add_clock_constraint(cd_aon.clk, LFOSC_FREQ)
        # Powered from the commit on; enabled by the aon register alone (module docstring).
        hf_pu = Signal()
        m.d.comb += hf_pu.eq(run | hf_on | booting)
        if spram:
            # The SPRAM wakes with the commit (200..300 us before the core's first clock edge) and sleeps
            # again one aon cycle (100 us) after CLKHFEN fell: the core idle for the 200..300 us before,
            # its last clock edge (the SPRAM reads at every edge) long done. ``hf_was_on`` is ``hf_on`` one
            # aon cycle late; the NOR has no glitch, its inputs never move against each other.
            hf_was_on = Signal()
            m.d.aon += hf_was_on.eq(hf_on)
            m.d.comb += self.spram_sleep.eq(~(run | booting | hf_on | hf_was_on))
        m.submodules.hfosc = Instance("SB_HFOSC", p_CLKHF_DIV=HFOSC_FREQS[self._core_freq],
                                      i_CLKHFPU=hf_pu, i_CLKHFEN=hf_on, o_CLKHF=cd_core.clk)

        # -- SPI target, encoder and core ----------------------------------------------------------------
        m.submodules.spi = spi = _in_core(SPITarget(n_in=model.n_in, n_out=model.n_out, timesteps=model.timesteps,
                                                     wake_classes=self._mask))
        net = _in_core(EncodedNetwork(model=model, lanes=self._lanes, memory=self._memory))
        if spram:
            # The core's registers change only from the third core edge after ``boot_on`` rose: its first
            # edges (the first may be a runt, CLKHFEN having just risen) reach only the synchroniser's
            # first stage, as with a frame's ``start``. The flash loader starts after reset, so the whole
            # core is held (its registers' enables) until ``booted``, which never falls again.
            boot_core, booted = Signal(), Signal()
            m.submodules.boot_sync = FFSynchronizer(boot_on, boot_core, o_domain="core", stages=2)
            with m.If(boot_core):
                m.d.core += booted.eq(1)
            net = EnableInserter({"core": booted})(net)
        m.submodules.net = net
        m.d.comb += [spi.sck.eq(self.sck), spi.cs_n.eq(self.cs_n), spi.copi.eq(self.copi), self.cipo.eq(spi.cipo),
                     self.cipo_oe.eq(spi.cipo_oe), run.eq(spi.run), self.run.eq(spi.run),
                     net.spikes.ready.eq(1)]
        if spram:
            wiring.connect(m, net.flash, wiring.flipped(self.flash))
            m.d.comb += net.spram_sleep.eq(self.spram_sleep)
            with m.If(net.core_idle):
                m.d.core += loaded.eq(1)
        # BUSY from configuration on while the weights load (``booting`` until ``hf_on`` has taken over).
        m.d.comb += spi.clock_on.eq(hf_on | booting)
        wake = Signal()
        m.d.comb += [spi.prediction.eq(net.prediction), spi.counts.eq(net.counts), spi.wake.eq(wake),
                     spi.error.eq(net.error != 0), self.wake.eq(wake)]

        # -- the frame from the buffer into the encoder (core domain) -------------------------------------
        # One byte per two cycles: the buffer's address, then its data offered until taken.
        j = Signal(range(model.n_in))
        frame = net.frame
        m.d.comb += spi.frame.addr.eq(j)
        with m.FSM(domain="core", name="runner"):
            with m.State("IDLE"):
                with m.If(spi.start):
                    m.d.core += [j.eq(0), wake.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.next = "OFFER"
            with m.State("OFFER"):
                m.d.comb += [frame.valid.eq(1), frame.payload.eq(spi.frame.data)]
                with m.If(frame.ready):
                    m.d.core += j.eq(j + 1)
                    m.next = "READ"
                    with m.If(j == model.n_in - 1):
                        m.next = "INFER"
            with m.State("INFER"):
                with m.If(net.done):
                    # The prediction is final with done; the mask holds still while busy.
                    m.d.core += wake.eq(spi.mask.bit_select(net.prediction, 1))
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                # A cycle for the core's last registers (the encoder returns to LOAD, the core to idle)
                # before the result is handed over and the clock stops.
                m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += spi.done.eq(1)
                m.next = "IDLE"
        return m


def _in_core(block):
    """``block`` with its ``sync`` domain in ``core``."""
    return DomainRenamer({"sync": "core"})(block)


class WakeupPlatform(ICEBreakerPlatform):
    """The iCEBreaker with the SPI target's pins on PMOD1B (FPGA pins 43 CS, 38 COPI, 34 CIPO, 31 SCK:
    the top row, PMOD pins 1..4, in the Digilent PMOD SPI order). CS has the iCE40's pull-up; CIPO is
    tri-stated while CS is high (the bus can be shared)."""

    resources = [
        *ICEBreakerPlatform.resources,
        Resource("spi_target", 0,
                 # Pulled up: a CS left floating (no controller yet at power-up) starts no transaction.
                 Subsignal("cs", PinsN("1", dir="i", conn=("pmod", 1)), Attrs(PULLUP=1)),
                 Subsignal("copi", Pins("2", dir="i", conn=("pmod", 1))),
                 Subsignal("cipo", Pins("3", dir="o", conn=("pmod", 1))),
                 Subsignal("sck", Pins("4", dir="i", conn=("pmod", 1))),
                 Attrs(IO_STANDARD="SB_LVCMOS")),
    ]


class ICEBreakerWakeupTop(Elaboratable):
    """:class:`WakeupCore` on the iCEBreaker (see :class:`WakeupPlatform` for the SPI pins; ``wake`` on PMOD1A
    pin 1, ``run`` on the green LED).

    Parameters: ``model``, ``lanes``, ``clk_freq`` (the ``SB_HFOSC`` frequency; ``None``: 12 MHz) and
    ``device`` as :class:`~qlif.boards.tops.top.BoardTop`'s; ``wake_classes`` as :class:`WakeupCore`'s.
    ``baud`` and ``separate_clocks`` are accepted, and ignored, because the flow passes them to every top
    (:func:`qlif.boards.flow.build.build`); there is no UART and no PLL here.
    """

    platform_cls = WakeupPlatform

    def __init__(self, *, model: Model, lanes: int, clk_freq: float | None = None, device: str | None = None,
                 wake_classes=None, baud: int | None = None, separate_clocks: bool = True):
        # As in BoardTop: a top its own checks refuse was never meant to be elaborated, so Amaranth's
        # "created but never used" warning stays off until the checks have passed.
        self._MustUse__silence = True
        device = device if device is not None else self.platform_cls.device
        self._memory = plan_memories(model, lanes, device)
        self._core_freq = 12e6 if clk_freq is None else clk_freq
        WakeupCore.check(model=model, lanes=lanes, core_freq=self._core_freq, wake_classes=wake_classes,
                         memory=self._memory)
        self._model, self._lanes, self._wake_classes = model, lanes, wake_classes
        self._MustUse__silence = False

    @classmethod
    def pins(cls) -> dict[str, str]:
        return {"sck": "spi_target 0 (sck, pin 31)", "cs": "spi_target 0 (cs, pin 43)",
                "copi": "spi_target 0 (copi, pin 38)", "cipo": "spi_target 0 (cipo, pin 34)",
                "wake": "wake 0", "run": "led_g 0"}

    @property
    def clk_freq(self) -> float:
        return self._core_freq

    link_freq = clk_freq

    @property
    def separate_clocks(self) -> bool:
        return True

    @property
    def pll(self) -> str:
        """The core clock's source (the flow names the core's clock net by it)."""
        return f"SB_HFOSC CLKHF_DIV={HFOSC_FREQS[self._core_freq]}"

    @property
    def memory(self) -> MemoryPlan:
        return self._memory

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.wakeup = core = WakeupCore(model=self._model, lanes=self._lanes, core_freq=self._core_freq,
                                                wake_classes=self._wake_classes, memory=self._memory)
        spi = platform.request("spi_target", 0, dir="-")
        bufs = {}
        for name, direction in (("sck", "i"), ("cs", "i"), ("copi", "i"), ("cipo", "o")):
            m.submodules[f"spi_{name}"] = bufs[name] = io.Buffer(direction, getattr(spi, name))
        m.d.comb += [core.sck.eq(bufs["sck"].i), core.cs_n.eq(~bufs["cs"].i), core.copi.eq(bufs["copi"].i),
                     bufs["cipo"].o.eq(core.cipo), bufs["cipo"].oe.eq(core.cipo_oe)]
        if "flash" in core.signature.members:
            BoardTop._flash(m, platform, core.flash)
        for name, (res, value) in {"wake": ("wake", core.wake), "run": ("led_g", core.run)}.items():
            m.submodules[f"{name}_buf"] = buf = io.Buffer("o", platform.request(res, 0, dir="-"))
            m.d.comb += buf.o.eq(value)
        platform.add_clock_constraint(bufs["sck"].i, MAX_SCK_FREQ)
        return m
