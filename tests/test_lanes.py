"""The thread lane on its own: workers come and go as runs offer work and the lane closes."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from llmcompiler import Engine, ToolRegistry
from llmcompiler.lanes import ThreadLane
from llmcompiler.timers import Timers

import faults_fixture_tools as fx

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


def _blocks_sigint(native_id: int) -> bool:
    """Whether the thread ``native_id`` of this process blocks SIGINT (Linux: /proc's SigBlk mask)."""
    with open(f"/proc/self/task/{native_id}/status") as status:
        for line in status:
            if line.startswith("SigBlk:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    raise AssertionError("no SigBlk line")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads Linux's /proc")
def test_the_engines_threads_leave_ctrl_c_to_the_main_thread():
    """Lane workers, the timer thread, the event loop, the delivery thread and the process pool's
    own threads all block SIGINT, so the kernel hands a Ctrl-C to the main thread, which wakes from
    Run.wait() at once; the main thread itself is left as it was."""
    async def coro() -> int:
        return 3

    tools = ToolRegistry()
    tools.register(lambda: 1, name="quick", timeout=30)
    tools.register(coro, name="coro")
    tools.register(fx.square, executor="process")
    seen = []
    with Engine(tools, process_workers=1) as engine:
        result = engine.run("1. quick()\n2. coro()\n3. square(4)", timeout=WAIT, on_event=seen.append)
        assert result.observations == {1: 1, 2: 3, 3: 16}
        others = [t for t in threading.enumerate() if t is not threading.main_thread()]
        names = {t.name for t in others}
        assert {"llmcompiler-timers", "llmcompiler-async", "llmcompiler-1"} <= names, names
        assert "QueueFeederThread" in names and len(names) >= 5, names  # and the pool's manager thread
        assert all(_blocks_sigint(t.native_id) for t in others), \
            [(t.name, _blocks_sigint(t.native_id)) for t in others]
    assert not _blocks_sigint(threading.main_thread().native_id)


_FORKSERVER_PROBE = '''
import os
from llmcompiler import Engine, ToolRegistry
import faults_fixture_tools as fx

def children():
    found = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        found += open(f"/proc/{os.getpid()}/task/{task}/children").read().split()
    return found

if __name__ == "__main__":
    tools = ToolRegistry()
    tools.register(lambda: 2, name="two")
    tools.register(fx.square, executor="process")
    with Engine(tools, process_workers=1, start_method="forkserver") as engine:
        assert engine.run("1. two()\\n2. square($1)").observations == {1: 2, 2: 4}
        for pid in children():
            if "forkserver" in open(f"/proc/{pid}/cmdline").read():
                status = open(f"/proc/{pid}/status").read()
                mask = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
                print("forkserver blocks SIGINT:", bool(int(mask.split()[1], 16) & 2))
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads Linux's /proc")
def test_a_forkserver_started_from_an_engine_thread_takes_ctrl_c_as_usual(tmp_path):
    """The first process call of a fresh interpreter is submitted by a lane worker (SIGINT blocked):
    multiprocessing's forkserver, which also forks the caller's own processes, still starts with
    SIGINT unblocked."""
    import subprocess
    import sys

    script = tmp_path / "probe.py"
    script.write_text(_FORKSERVER_PROBE)
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(tests), tests]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=WAIT, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "forkserver blocks SIGINT: False" in done.stdout, done.stdout + done.stderr
