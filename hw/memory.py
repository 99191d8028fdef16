"""Memory mapping: where each synapse memory of a :class:`~qlif.hw.network.Network` goes on a device.

Synapses go to block RAM (EBR), initialised by the bitstream. On the iCE40 UltraPlus, synapse memories
that do not fit the 30 block RAMs go to the four 256 kbit single-port RAMs (SPRAM) instead, largest
first; SPRAM is not initialised by the bitstream, so those weights are loaded from the configuration
flash at start-up (:class:`~qlif.hw.flash.FlashLoader`). A model that fits nowhere is refused with the
bits each memory kind would need and has (:class:`MemoryFitError`).

The block counts here are estimates of what Yosys infers (the cheapest block shape per memory, memories
of fewer than :data:`LOGIC_DEPTH` words in flip-flops); a build's report has the real ones.

=================  ===============================================================================
memory             per layer ``l`` (``G = ceil(n_out / P)``)
=================  ===============================================================================
``layer{l}.syn``   ``n_in * G`` words of ``P * b`` bits (weight codes), EBR or SPRAM
``layer{l}.mem``   ``G`` words of ``P * k`` bits (membranes), EBR (flip-flops when tiny)
``ser.queue``      the spike queue ring, ``2^ceil(log2(G_max - 1))`` words of ``ceil(log2 G_max) + P + 1 + log2 P`` bits
                   (``queue_ring_depth``, ``queue_entry_bits`` of :mod:`qlif.golden.spec.layouts`)
=================  ===============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qlif.golden.spec.cycles import check_lanes, groups
from qlif.golden.spec.layouts import queue_entry_bits, queue_ring_depth, synapse_words
from qlif.golden.spec.model import Model

__all__ = ["LOGIC_DEPTH", "HOST_EBR", "DeviceMemory", "DEVICES", "device_memory", "MemoryFitError", "MemoryPlan",
           "plan_memories", "ebr_blocks", "spram_blocks", "spram_image"]

#: Memories shallower than this are left to flip-flops in the estimate (Yosys does so for tiny ones).
LOGIC_DEPTH = 16
#: Block RAMs left for the board top (the host link's receive FIFO, frame buffer and counters).
HOST_EBR = 3


@dataclass(frozen=True)
class DeviceMemory:
    """The RAM of a device: ``ebr`` blocks of the given (width, depth) shapes, ``spram`` 16 x 16384 blocks."""

    device: str
    ebr: int
    ebr_bits: int
    ebr_shapes: tuple[tuple[int, int], ...]
    spram: int = 0
    spram_shape: tuple[int, int] = (16, 16384)

    @property
    def spram_bits(self) -> int:
        return self.spram_shape[0] * self.spram_shape[1]

    def slice_width(self, depth: int) -> int | None:
        """The widest block shape holding ``depth`` words in one block, or ``None`` if none does."""
        fits = [w for w, d in self.ebr_shapes if d >= depth]
        return max(fits) if fits else None


_ICE40_EBR = ((16, 256), (8, 512), (4, 1024), (2, 2048))
_ECP5_EBR = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))

#: Devices by name prefix (Amaranth's ``platform.device``).
DEVICES = {
    "iCE40UP5K": DeviceMemory("iCE40UP5K", 30, 4096, _ICE40_EBR, spram=4),
    "iCE40UP3K": DeviceMemory("iCE40UP3K", 20, 4096, _ICE40_EBR, spram=4),
    "iCE40HX8K": DeviceMemory("iCE40HX8K", 32, 4096, _ICE40_EBR),
    "iCE40HX1K": DeviceMemory("iCE40HX1K", 16, 4096, _ICE40_EBR),
    "LFE5U-12F": DeviceMemory("LFE5U-12F", 32, 18432, _ECP5_EBR),
    "LFE5U-25F": DeviceMemory("LFE5U-25F", 56, 18432, _ECP5_EBR),
    "LFE5U-45F": DeviceMemory("LFE5U-45F", 108, 18432, _ECP5_EBR),
    "LFE5U-85F": DeviceMemory("LFE5U-85F", 208, 18432, _ECP5_EBR),
    "LFE5UM-25F": DeviceMemory("LFE5UM-25F", 56, 18432, _ECP5_EBR),
    "LFE5UM-45F": DeviceMemory("LFE5UM-45F", 108, 18432, _ECP5_EBR),
    "LFE5UM-85F": DeviceMemory("LFE5UM-85F", 208, 18432, _ECP5_EBR),
    "LFE5UM5G-25F": DeviceMemory("LFE5UM5G-25F", 56, 18432, _ECP5_EBR),
    "LFE5UM5G-45F": DeviceMemory("LFE5UM5G-45F", 108, 18432, _ECP5_EBR),
    "LFE5UM5G-85F": DeviceMemory("LFE5UM5G-85F", 208, 18432, _ECP5_EBR),
}


def device_memory(device: str | None) -> DeviceMemory | None:
    """The RAM of ``device`` (an Amaranth ``platform.device``), or ``None`` when unknown (no limits)."""
    if device is None:
        return None
    for name in sorted(DEVICES, key=len, reverse=True):
        if str(device).upper().startswith(name.upper()):
            return DEVICES[name]
    return None


def ebr_blocks(width: int, depth: int, dev: DeviceMemory) -> int:
    """Block RAMs for a ``depth`` x ``width`` memory: the cheapest block shape (0 if left to flip-flops)."""
    if depth < LOGIC_DEPTH:
        return 0
    return min(-(-width // w) * -(-depth // d) for w, d in dev.ebr_shapes)


def spram_blocks(width: int, depth: int, dev: DeviceMemory) -> int:
    """SPRAM blocks for a ``depth`` x ``width`` memory: tiles side by side (width) and stacked (depth)."""
    w, d = dev.spram_shape
    return -(-width // w) * -(-depth // d)


class MemoryFitError(ValueError):
    """The model's memories fit no memory kind of the device; the message has the numbers."""


@dataclass(frozen=True)
class MemoryPlan:
    """Where each layer's synapse memory goes, with the estimated block use.

    ``synapses[l]`` is ``"ebr"`` or ``"spram"``; ``slices[l]``, for a block RAM synapse memory, the
    width of the bit slices it is built from (each one block deep, so that no multiplexer sits between
    the block RAMs and the read data's register), or ``None`` for one inferred memory. ``memories`` lists
    every core memory as ``{"name", "width", "depth", "bits", "kind", "blocks"}``. ``device`` is ``None``
    for the generic plan (simulation, Verilog): everything in inferred memories, no limits.
    """

    device: str | None
    synapses: tuple[str, ...]
    slices: tuple[int | None, ...] = ()
    memories: tuple[dict, ...] = field(default_factory=tuple)
    ebr_used: int = 0
    ebr_available: int | None = None
    spram_used: int = 0
    spram_available: int | None = None

    @property
    def uses_spram(self) -> bool:
        return "spram" in self.synapses

    def to_json(self) -> dict:
        return {"device": self.device, "synapses": list(self.synapses), "slices": list(self.slices),
                "memories": [dict(m) for m in self.memories],
                "ebr": {"used": self.ebr_used, "available": self.ebr_available},
                "spram": {"used": self.spram_used, "available": self.spram_available}}


def _core_memories(model: Model, lanes: int) -> list[dict]:
    out = []
    g_max = max(groups(layer.n_out, lanes) for layer in model.layers)
    for l, layer in enumerate(model.layers):
        g = groups(layer.n_out, lanes)
        out.append({"name": f"layer{l}.syn", "width": lanes * layer.weight_bits, "depth": layer.n_in * g})
        out.append({"name": f"layer{l}.mem", "width": lanes * layer.membrane_bits, "depth": g})
    if queue_ring_depth(g_max):
        out.append({"name": "ser.queue", "width": queue_entry_bits(g_max, lanes), "depth": queue_ring_depth(g_max)})
    for mem in out:
        mem["bits"] = mem["width"] * mem["depth"]
    return out


def plan_memories(model: Model, lanes: int, device: str | None, *, spram: bool | None = None) -> MemoryPlan:
    """Map the synapse memories of ``model`` at ``lanes`` lanes onto ``device``.

    Parameters
    ----------
    model : Model
    lanes : int
        P, in :data:`qlif.golden.spec.cycles.LANES`.
    device : str or None
        Amaranth's ``platform.device`` (``"iCE40UP5K"``, ``"LFE5U-85F"``, ...); ``None`` or an unknown
        device gives the generic plan (every synapse memory in block RAM, no limit).
    spram : bool or None
        ``None``: SPRAM only for what does not fit the block RAMs (largest synapse memories first).
        ``True``: every synapse memory that fits goes to SPRAM (to exercise that path on a small
        model). ``False``: never SPRAM.

    Raises
    ------
    MemoryFitError
        When the memories fit neither kind; the message gives needed and available bits and blocks.
    """
    check_lanes(lanes)
    mems = _core_memories(model, lanes)
    dev = device_memory(device)
    n = len(model.layers)
    if dev is None:
        return MemoryPlan(device=None, synapses=("ebr",) * n, slices=(None,) * n,
                          memories=tuple({**m, "kind": "ebr", "blocks": None} for m in mems))
    if spram and not dev.spram:
        raise ValueError(f"spram: the {dev.device} has no SPRAM")
    syn = {f"layer{l}.syn": l for l in range(n)}
    kinds = ["ebr"] * n
    ebr = {m["name"]: ebr_blocks(m["width"], m["depth"], dev) for m in mems}
    sp = {m["name"]: spram_blocks(m["width"], m["depth"], dev) for m in mems if m["name"] in syn}
    ebr_free = dev.ebr - HOST_EBR

    def ebr_used() -> int:
        return sum(b for name, b in ebr.items() if name not in syn or kinds[syn[name]] == "ebr")

    def spram_used() -> int:
        return sum(sp[f"layer{l}.syn"] for l in range(n) if kinds[l] == "spram")

    if dev.spram and spram is not False:
        # Largest synapse memories first: each move frees the most block RAM.
        for name in sorted(syn, key=lambda name: -ebr[name]):
            if spram is not True and ebr_used() <= ebr_free:
                break
            if spram_used() + sp[name] <= dev.spram:
                kinds[syn[name]] = "spram"
    if ebr_used() > ebr_free:
        raise MemoryFitError(_refusal(model, lanes, dev, mems, ebr, sp, ebr_free))
    # Bit slices one block deep for the block RAM synapse memories, where the blocks they cost on top
    # still fit: a deep memory built by Yosys from rows of blocks has a multiplexer on its read data
    # (the slowest path of a big model on the ECP5).
    slices = [None] * n
    sliced = dict(ebr)
    for l in range(n):
        m = next(x for x in mems if x["name"] == f"layer{l}.syn")
        w = dev.slice_width(m["depth"])
        if kinds[l] == "ebr" and w is not None and m["depth"] >= LOGIC_DEPTH:
            slices[l] = w
            sliced[m["name"]] = -(-m["width"] // w)
    if sum(b for name, b in sliced.items() if name not in syn or kinds[syn[name]] == "ebr") <= ebr_free:
        ebr = sliced
    else:
        slices = [None] * n
    memories = tuple({**m, "kind": kinds[syn[m["name"]]] if m["name"] in syn else "ebr",
                      "blocks": sp[m["name"]] if m["name"] in syn and kinds[syn[m["name"]]] == "spram"
                      else ebr[m["name"]]} for m in mems)
    return MemoryPlan(device=dev.device, synapses=tuple(kinds), slices=tuple(slices), memories=memories,
                      ebr_used=ebr_used(), ebr_available=ebr_free, spram_used=spram_used(),
                      spram_available=dev.spram)


def _refusal(model: Model, lanes: int, dev: DeviceMemory, mems: list[dict], ebr: dict, sp: dict,
             ebr_free: int) -> str:
    sizes = "-".join(str(x) for x in [model.n_in, *(layer.n_out for layer in model.layers)])
    syn_bits = sum(m["bits"] for m in mems if m["name"].endswith(".syn"))
    other_bits = sum(m["bits"] for m in mems if not m["name"].endswith(".syn"))
    need_ebr = sum(ebr.values())
    msg = (f"model {sizes} (weight bits {[layer.weight_bits for layer in model.layers]}, P = {lanes}) does not "
           f"fit the {dev.device}: synapses need {syn_bits} bits and membranes and queue {other_bits} bits; "
           f"block RAM: {need_ebr} blocks ({need_ebr * dev.ebr_bits} bits) needed, {ebr_free} available "
           f"({ebr_free * dev.ebr_bits} bits, {HOST_EBR} more kept for the host link)")
    if dev.spram:
        msg += (f"; SPRAM: {sum(sp.values())} blocks ({sum(sp.values()) * dev.spram_bits} bits) for all synapses, "
                f"{dev.spram} available ({dev.spram * dev.spram_bits} bits)")
    else:
        msg += "; no SPRAM on this device"
    return msg


def spram_image(model: Model, lanes: int, plan: MemoryPlan) -> bytes:
    """The flash image :class:`~qlif.hw.flash.FlashLoader` loads into the SPRAM synapse memories of ``plan``
    (empty when it uses none): the layers' synapse words
    (:func:`~qlif.golden.spec.layouts.synapse_words`) in layer order."""
    from qlif.hw.flash import weight_image

    spram = [layer for layer, kind in zip(model.layers, plan.synapses, strict=True) if kind == "spram"]
    return weight_image([synapse_words(layer, lanes) for layer in spram],
                        [lanes * layer.weight_bits for layer in spram])
