"""cocotb test of the frame path (``FRAME``) on the Verilog of a ``HostLink(encoder=True)``, through its UART
pins only; run by :func:`qlif.sim.link_frames.run_link_frames`.

* ``frames_driver``: the host driver :class:`qlif.boards.host.driver.Board`, unchanged, in a cocotb
  ``bridge`` thread on :class:`~qlif.sim.uart_model.SimPort` (the bench of :mod:`qlif.sim.cocotb_link`):
  connect, ``classify_frames`` on every frame (requests back to back within the window), the status
  counters; results against the golden model of the encoded frames.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.task import bridge

from qlif.boards.host.driver import Board
from qlif.boards.protocol import Flag, frame_requests
from qlif.golden.spec import reference
from qlif.sim.cocotb_link import LinkBench, _guarded, sim_now_ns  # the link bench: clock, reset, UART, verdict
from qlif.sim.uart_model import SimPort


@cocotb.test()
async def frames_driver(dut: HierarchyObject) -> None:
    await _guarded(LinkBench(dut), _frames_driver)


async def _frames_driver(tb: LinkBench) -> None:
    model, frames = tb.model, tb.x.astype(np.uint8)
    port = SimPort(tb.source, tb.sink, timeout=tb.read_timeout())
    board = Board(port, frame_timeout=2 * tb.cycles(tb.cfg["host_timeout_cycles"]) * 1e-9)
    times = []                   # simulated ns: classify_frames' start, then each result's arrival

    def host() -> dict:
        status = board.connect(model)
        before = board.status()
        times.append(sim_now_ns())
        result = board.classify_frames(frames, progress=lambda n: times.append(sim_now_ns()))
        return {"status": status, "before": before, "result": result, "after": board.status()}

    got = await bridge(host)()
    golden = reference.run(model, reference.frame_inputs(model, frames), lanes=tb.lanes)
    res, after = got["result"], got["after"]
    tb.stats.update(prediction=res.prediction, counts=res.counts, cycles=res.cycles,
                    golden_prediction=golden.prediction, golden_cycles=golden.cycles.sum(axis=1),
                    counters=after.counters, bytes_written=port.written, classify_ns=times)
    assert Flag.ENCODER in got["status"].flags, "the link reports no encoder"
    assert res.prediction.tolist() == golden.prediction.tolist(), (
        f"predictions {res.prediction.tolist()} != golden {golden.prediction.tolist()}")
    assert res.counts.tolist() == golden.spikes[-1].sum(axis=1).tolist(), "spike counts differ from golden"
    assert res.cycles.tolist() == golden.cycles.sum(axis=1).tolist(), "core cycles differ from the cycle model"
    assert res.retries == 0, f"{res.retries} samples had to be sent again on a clean line"
    # The run's RESET, every FRAME request, and the final STATUS.
    sent = 1 + sum(len(list(frame_requests(f))) for f in frames)
    errors = {k: v for k, v in after.counters.items() if k != "frames_ok" and v}
    assert not errors, f"error counters after a clean run: {errors}"
    assert after.counters["frames_ok"] - got["before"].counters["frames_ok"] == sent + 1, "frames lost"
    assert tb.sink.frame_errors == 0
