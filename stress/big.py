"""One large DAG: it completes, with its peak and retained memory per task measured by tracemalloc."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from typing import NamedTuple

from llmcompiler import Engine, Task

from . import tools


class BigRun(NamedTuple):
    tasks: int
    completed: bool
    seconds: float
    peak_bytes_per_task: float
    retained_bytes_per_task: float
    problem: str


def run(size: int, seed: int) -> BigRun:
    """Build and run a ``size``-task random DAG of thread tools (up to 3 references each, to any of
    the 1,000 tasks before); returns what was measured. Memory is traced from before the tasks are
    built to the end of the run (peak), and again once the result is dropped (retained)."""
    rng = random.Random(seed)
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    with Engine({"node": tools.node}, max_workers=8) as engine:
        tasks = []
        for idx in range(1, size + 1):
            earlier = range(max(1, idx - 1000), idx)
            deps = rng.sample(earlier, min(len(earlier), rng.randint(0, 3)))
            tasks.append(Task(idx, "node", (idx,) + tuple(f"${dep}" for dep in deps)))
        result = engine.run(tasks, timeout=600)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline
        completed = len(result.observations) == size and not result.failures
        problem = "" if completed else f"{len(result.observations)} of {size} tasks finished"
        del result, tasks
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    return BigRun(size, completed, seconds, peak / size, retained / size, problem)
