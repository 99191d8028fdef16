"""Switching activity of a design over a workload: what the power model (:mod:`qlif.boards.flow.power`)
reads, and what :mod:`qlif.sim.activity` measures from an RTL simulation's waveform."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["MemoryActivity", "Activity"]


@dataclass(frozen=True)
class MemoryActivity:
    """Accesses of one memory over the measured cycles (all its read ports, all its write ports)."""

    name: str          # hierarchical, e.g. "layer0.syn"
    width: int
    depth: int
    reads: int         # sum over read ports of the cycles each was enabled
    writes: int        # sum over write ports of the cycles each was enabled
    read_ports: int
    write_ports: int

    @property
    def bits(self) -> int:
        return self.width * self.depth


@dataclass(frozen=True)
class Activity:
    """Switching activity of one design over one workload.

    Rates are per clock cycle: ``ff_rate`` is the mean number of output changes per flip-flop bit
    and cycle (0.5 for a bit that flips every other cycle), ``logic_rate`` the same for logic nets.
    """

    cycles: int
    ff_bits: int
    ff_toggles: int
    logic_bits: int
    logic_toggles: int
    memories: tuple[MemoryActivity, ...] = ()
    workload: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("cycles", "ff_bits", "ff_toggles", "logic_bits", "logic_toggles"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        if self.cycles == 0:
            raise ValueError("cycles must be positive: no clock edge was seen")

    @property
    def ff_rate(self) -> float:
        return self.ff_toggles / (self.ff_bits * self.cycles) if self.ff_bits else 0.0

    @property
    def logic_rate(self) -> float:
        return self.logic_toggles / (self.logic_bits * self.cycles) if self.logic_bits else 0.0

    def memory_rates(self, *, block_width: int, block_depth: int, min_depth: int = 16) -> tuple[float, float]:
        """Mean (reads, writes) per cycle and block of the memories that become block RAM.

        Each memory is weighted by the blocks it needs, ``ceil(width/block_width) *
        ceil(depth/block_depth)``, and every block of a memory is counted as accessed when the memory is
        (an upper bound for memories split over several blocks by depth). Memories shallower than
        ``min_depth`` are assumed to become flip-flops and are left out.
        """
        weight = reads = writes = 0.0
        for mem in self.memories:
            if mem.depth < min_depth:
                continue
            blocks = -(-mem.width // block_width) * -(-mem.depth // block_depth)
            weight += blocks
            reads += blocks * mem.reads / self.cycles
            writes += blocks * mem.writes / self.cycles
        return (reads / weight, writes / weight) if weight else (0.0, 0.0)

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["memories"] = [asdict(m) for m in self.memories]
        doc["ff_rate"] = self.ff_rate
        doc["logic_rate"] = self.logic_rate
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> Activity:
        doc = {k: v for k, v in doc.items() if k not in ("ff_rate", "logic_rate")}
        doc["memories"] = tuple(MemoryActivity(**m) for m in doc.get("memories", ()))
        return cls(**doc)
