"""Consecutive runs on one engine: nothing grows (threads, child processes, descriptors, memory)."""

from __future__ import annotations

import gc
import random
import threading
import time
from typing import List, NamedTuple

from llmcompiler import Engine, Task
from llmcompiler.errors import RunTimeoutError

from . import dags, resources, tools

RUN_LIMIT = 60.0  # seconds: a run of 40 quick tasks still going after this has hung
# Runs before the first measurement: pools, caches and the manager are started by then, and the
# first worker death (run 25) has retired a pool whose successor runs since. The last death is at run
# 475, so the end, like the first measurement, comes long after a retirement: a pool still ending
# just then holds its pipes until the next submit sees it over (measured right after a death, the end
# read up to 7 descriptors higher).
WARM_UP = 60


class Soak(NamedTuple):
    runs: int
    mismatches: List[str]
    after_warm_up: resources.Holdings
    at_end: resources.Holdings
    peak: resources.Holdings
    seconds: float


def plan(rng: random.Random, number: int) -> List[Task]:
    """A 40-task DAG; every 50th run (from run 25) also has a worker death and a timeout of each kind."""
    tasks = []
    special = {}
    if number % 50 == 25:
        special = {5: "die_p", 9: "stall_p", 13: "stall_t"}
    for idx in range(1, 41):
        deps = rng.sample(range(1, idx), min(idx - 1, rng.randint(0, 3)))
        tool = special.get(idx) or rng.choice(["node_t"] * 8 + ["node_p", "fail_t"])
        tasks.append(Task(idx, tool, (idx,) + tuple(f"${dep}" for dep in deps)))
    return tasks


def settle(limit: resources.Holdings, seconds: float = 10.0) -> resources.Holdings:
    """Holdings once abandoned calls and replaced workers have gone (waiting at most ``seconds``) and
    the garbage collector has run (a pipe of a retired pool was seen to close only then)."""
    deadline = time.monotonic() + seconds
    gc.collect()
    now = resources.holdings()
    while (now.threads > limit.threads or now.children > limit.children) and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
        now = resources.holdings()
    return now


def run(runs: int, seed: int, store: str = "manager") -> Soak:
    """``runs`` consecutive runs on one engine (with a manager store); holdings measured after the
    warm-up, at the end (once abandoned calls returned), and the peak after each run."""
    rng = random.Random(seed)
    mismatches: List[str] = []
    peak = after_warm_up = resources.holdings()
    started = time.perf_counter()
    with Engine(dags.registry(), max_workers=8, process_workers=2, store=store) as engine:
        for number in range(runs):
            tasks = plan(rng, number)
            release, tools.RELEASE = tools.RELEASE, threading.Event()
            try:
                result = engine.run(tasks, timeout=RUN_LIMIT)
            except RunTimeoutError as err:
                mismatches.append(f"run {number} hung; not finished: {dags.describe_hang(err.result, tasks)}")
                continue
            finally:
                tools.RELEASE.set()
                release.set()
            problem = dags.compare(result, dags.reference(tasks))
            if problem:
                mismatches.append(f"run {number}: {problem}")
            del result
            now = resources.holdings()
            if number == WARM_UP - 1:
                after_warm_up = settle(now)
            peak = resources.Holdings(*map(max, peak, now))
        at_end = settle(after_warm_up)
    return Soak(runs, mismatches, after_warm_up, at_end, peak, time.perf_counter() - started)
