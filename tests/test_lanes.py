"""The thread lane on its own: workers come and go as runs offer work and the lane closes."""

from __future__ import annotations

import threading

from llmcompiler.lanes import ThreadLane
from llmcompiler.timers import Timers

WAIT = 30


class _Run:
    """A stand-in run: its one serve blocks until released, then reports one quick call."""

    def __init__(self, quick_call: bool) -> None:
        self.quick_call = quick_call
        self.serving = threading.Event()
        self.release = threading.Event()

    def serve_thread_task(self, lane: ThreadLane, worker: str):
        lane.in_quick_call[worker] = self.quick_call
        lane.calls += 1
        self.serving.set()
        self.release.wait(WAIT)
        return True, 0


def test_a_worker_back_from_a_quick_call_after_close_exits_and_does_not_step_back():
    """Worker B returns from a microsecond call after close(); worker A is still in one. B would
    step back (to leave the quick calls to A) and wait for a notify that a closed lane never sends:
    it must exit instead."""
    timers = Timers()
    lane = ThreadLane(2, timers)
    a, b = _Run(quick_call=True), _Run(quick_call=False)
    try:
        lane.offer(a, wake=True)
        assert a.serving.wait(WAIT)
        lane.offer(b, wake=True)
        assert b.serving.wait(WAIT)
        threads = [t for t in threading.enumerate() if t.name.startswith("llmcompiler-")]
        assert len(threads) == 2
        lane.close(timeout=0.05)  # both are busy: close returns after its short grace
        b.release.set()
        for thread in threads:
            if thread.name not in lane.in_quick_call or not lane.in_quick_call[thread.name]:
                thread.join(WAIT)
                assert not thread.is_alive(), "a worker back after close() must exit"
    finally:
        a.release.set()
        b.release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("llmcompiler-"):
                thread.join(WAIT)
        timers.close()
