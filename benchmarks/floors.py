"""Floors: what the bare primitives behind the latency targets cost on this machine, in this run.

A target such as "500 sleeps of 1 ms on 8 workers in at most 66 ms" is met or missed by the machine
as much as by the engine: ``time.sleep`` overshoots, and a process pool's round trip costs what it
costs. The functions here time the primitives alone, so a table can show an engine's figure next to
the floor under it:

- ``overshoots``: how much longer than asked each ``time.sleep`` takes (here, or in a pool worker);
- ``back_to_back``: one thread sleeping ``count`` times in a row (the floor of a thread chain);
- ``bare_threads``: ``workers`` plain ``threading.Thread``s sleeping their share of ``count`` sleeps
  back to back (the floor of independent sleeps on that many workers);
- ``plain_chain``: a chain through ``ProcessPoolExecutor.submit(...).result()``, with each step's
  legs (the floor of a process chain, and of a no-op round trip with ``seconds=0``);
- ``engine_chain``: the same legs for our engine's process chain, from its events.

``python -m benchmarks.floors`` prints them all from one run, side by side, with the engine's and the
textbook scheduler's chains (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import Executor
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

__all__ = ["overshoots", "back_to_back", "bare_threads", "stamped_sleep", "Step", "plain_chain",
           "engine_chain", "median_legs", "LEGS"]


def overshoots(seconds: float, count: int) -> List[float]:
    """``count`` sleeps of ``seconds`` in this thread; returns, for each, the seconds beyond asked.
    A top-level function, so a pool worker can run it too."""
    extra = []
    for _ in range(count):
        start = time.perf_counter()
        time.sleep(seconds)
        extra.append(time.perf_counter() - start - seconds)
    return extra


def back_to_back(seconds: float, count: int) -> float:
    """Wall-clock seconds of ``count`` sleeps of ``seconds`` in a row, in this thread."""
    start = time.perf_counter()
    for _ in range(count):
        time.sleep(seconds)
    return time.perf_counter() - start


def _sleep_many(go: threading.Event, seconds: float, count: int) -> None:
    go.wait()
    for _ in range(count):
        time.sleep(seconds)


def bare_threads(count: int, workers: int, seconds: float) -> float:
    """Wall-clock seconds for ``workers`` plain threads to sleep ``count`` times ``seconds`` between
    them, each its share back to back: from releasing the threads (already started, waiting on one
    event) until the last has ended."""
    shares = [count // workers + (1 if n < count % workers else 0) for n in range(workers)]
    go = threading.Event()
    threads = [threading.Thread(target=_sleep_many, args=(go, seconds, share)) for share in shares]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def stamped_sleep(seconds: float, *after: Any) -> tuple:
    """Sleep ``seconds`` (not at all for 0); returns ``(entered, left)``, ``time.perf_counter()`` in
    the process that ran it (one system-wide clock on Linux, macOS and Windows)."""
    entered = time.perf_counter()
    if seconds:
        time.sleep(seconds)
    return entered, time.perf_counter()


class Step(NamedTuple):
    """One step of a chain, in seconds: handed over -> the call began in the worker (``to_start``),
    began -> ended beyond the sleep asked (``overshoot``), ended -> its result was in the parent
    (``back``), and that -> the next step was handed over (``turn``; 0 for the last step)."""

    to_start: float
    overshoot: float
    back: float
    turn: float


LEGS = {"to_start": "handed over -> call began", "overshoot": "sleep beyond asked",
        "back": "call ended -> result in parent", "turn": "result in parent -> next handed over"}


def plain_chain(pool: Executor, length: int, seconds: float) -> List[Step]:
    """``length`` calls of ``stamped_sleep(seconds)`` through ``pool.submit(...).result()``, each
    submitted when the one before returned; returns each step's legs."""
    steps: List[Step] = []
    value: Any = None
    previous_end: Optional[float] = None
    for _ in range(length):
        submitted = time.perf_counter()
        if steps and previous_end is not None:
            steps[-1] = steps[-1]._replace(turn=submitted - previous_end)
        entered, left = value = pool.submit(stamped_sleep, seconds, value).result()
        previous_end = time.perf_counter()
        steps.append(Step(entered - submitted, left - entered - seconds, previous_end - left, 0.0))
    return steps


def engine_chain(result: Any, length: int, seconds: float, done_at: Dict[int, float]) -> List[Step]:
    """The legs of a chain our engine ran (tasks ``1..length``, each waiting for the one before),
    from its ``submitted``/``started``/``finished`` events; ``done_at`` maps a task to when its
    future was done in the parent (a done callback's ``perf_counter()``)."""
    times: Dict[int, Dict[str, float]] = {}
    for event in result.events:
        times.setdefault(event.task, {})[event.kind] = event.time
    steps = []
    for idx in range(1, length + 1):
        mine = times[idx]
        turn = times[idx + 1]["submitted"] - done_at[idx] if idx < length else 0.0
        steps.append(Step(mine["started"] - mine["submitted"], mine["finished"] - mine["started"] - seconds,
                          done_at[idx] - mine["finished"], turn))
    return steps


def median_legs(steps: Sequence[Step]) -> Step:
    """The median of each leg over ``steps`` (the last step's ``turn``, always 0, left out)."""
    return Step(*(statistics.median(values) for values in (
        [s.to_start for s in steps], [s.overshoot for s in steps], [s.back for s in steps],
        [s.turn for s in steps if s.turn] or [0.0])))


# -- python -m benchmarks.floors -------------------------------------------------------------------


def _watch_done(engine: Any) -> Dict[int, float]:
    """Note when each process work item's future is done in the parent: a done callback added ahead
    of the engine's own (it wraps the engine's private ``_backends.submit``; a diagnostic only)."""
    done_at: Dict[int, float] = {}
    backends = engine._backends
    submit = backends.submit

    def noting(kind: str, batch: List[Any], context: Any) -> Any:
        future = submit(kind, batch, context)
        first = batch[0].idx
        future.add_done_callback(lambda _: done_at.__setitem__(first, time.perf_counter()))
        return future

    backends.submit = noting
    return done_at


def _us(value: float) -> str:
    return f"{value * 1e6:8.0f} us"


def _ms(value: float) -> str:
    return f"{value * 1e3:8.2f} ms"


def main(reps: int = 10) -> None:
    """Print every floor, and the engines on the same workloads, from one run (``reps`` each)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from llmcompiler import Engine
    from llmcompiler.tools import ToolRegistry

    from .tools import THREAD_TOOLS

    registry = ToolRegistry()
    registry.register(stamped_sleep, name="sleep", executor="process")
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    found: Dict[str, List[Any]] = {}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool, \
            Engine(registry, process_workers=2) as processes, Engine(THREAD_TOOLS, max_workers=8) as eight, \
            Engine(THREAD_TOOLS, max_workers=32) as threads, ThreadPoolExecutor(8) as pool8, \
            ThreadPoolExecutor(32) as pool32:
        done_at = _watch_done(processes)
        measures = (pool, processes, done_at, eight, threads, pool8, pool32)
        _round(*measures)  # warms every pool and engine up; not counted
        for _ in range(reps):
            for name, values in _round(*measures).items():
                found.setdefault(name, []).extend(values)
    _print(found, reps, method)


def _round(pool: Executor, processes: Any, done_at: Dict[int, float], eight: Any, threads: Any,
           pool8: Executor, pool32: Executor) -> Dict[str, List[Any]]:
    """One repetition of every measure, in turn: ``{measure: [value]}`` (legs: one ``Step`` each)."""
    from . import plans, yardstick
    from .tools import THREAD_TOOLS

    median = statistics.median
    chain, many = plans.chain(10, "sleep", 0.010), plans.independent(500, "sleep", 0.001)
    found = {
        "sleep 10 ms, parent": [median(overshoots(0.010, 20))],
        "sleep 10 ms, worker": [median(pool.submit(overshoots, 0.010, 20).result())],
        "sleep 1 ms, parent": [median(overshoots(0.001, 50))],
        "sleep 1 ms, worker": [median(pool.submit(overshoots, 0.001, 50).result())],
        "10 x 10 ms, one thread": [back_to_back(0.010, 10)],
        "ours, thread chain": [_timed(lambda: threads.run(chain))],
        "textbook, thread chain": [_timed(lambda: yardstick.run_textbook(
            yardstick.from_tasks(chain, THREAD_TOOLS), pool32))],
        "500 x 1 ms, 8 bare threads": [bare_threads(500, 8, 0.001)],
        "ours, 500 x 1 ms": [_timed(lambda: eight.run(many))],
        "textbook, 500 x 1 ms": [_timed(lambda: yardstick.run_textbook(
            yardstick.from_tasks(many, THREAD_TOOLS), pool8))],
        "no-op round trip": [median(s.to_start + s.overshoot + s.back for s in plain_chain(pool, 10, 0.0))],
    }
    started = time.perf_counter()
    found["plain legs"] = plain_chain(pool, 10, 0.010)
    found["plain submit, process chain"] = [time.perf_counter() - started]
    done_at.clear()
    started = time.perf_counter()
    result = processes.run(chain)
    found["ours, process chain"] = [time.perf_counter() - started]
    found["ours legs"] = engine_chain(result, 10, 0.010, done_at)
    found["textbook, process chain"] = [_timed(lambda: yardstick.run_textbook(
        yardstick.from_tasks(chain, {"sleep": stamped_sleep}), pool))]
    return found


def _timed(func: Any) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def _print(found: Dict[str, List[Any]], reps: int, method: str) -> None:
    median = statistics.median
    print(f"floors and engines, one run, {reps} repetitions alternating, medians; process pools of 2 "
          f"workers ({method})")
    sections = [
        ("sleep overshoot, per call (beyond asked)", ("sleep 10 ms, parent", "sleep 10 ms, worker",
                                                     "sleep 1 ms, parent", "sleep 1 ms, worker"), _us),
        ("thread chain 10 x 10 ms (target <= 101.5 ms)", ("10 x 10 ms, one thread", "ours, thread chain",
                                                          "textbook, thread chain"), _ms),
        ("500 x 1 ms on 8 workers (target <= 66 ms, ideal 62.5)", (
            "500 x 1 ms, 8 bare threads", "ours, 500 x 1 ms", "textbook, 500 x 1 ms"), _ms),
        ("process chain 10 x 10 ms (target <= 105 ms)", ("no-op round trip", "plain submit, process chain",
                                                         "ours, process chain", "textbook, process chain"),
         None),
    ]
    for title, names, unit in sections:
        print(f"\n{title}")
        for name in names:
            value = median(found[name])
            shown = unit(value) if unit else (_us(value) if name == "no-op round trip" else _ms(value))
            print(f"  {name:<34}{shown}")
    print("\nprocess chain, one step's legs (median over steps)      plain submit        ours")
    plain, ours = median_legs(found["plain legs"]), median_legs(found["ours legs"])
    for field, text in LEGS.items():
        print(f"  {text:<50}{_us(getattr(plain, field))}  {_us(getattr(ours, field))}")
    print(f"  {'sum':<50}{_us(sum(plain))}  {_us(sum(ours))}")


if __name__ == "__main__":
    import sys

    from benchmarks.floors import main as _main  # the importable copy: workers load its functions

    _main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
