"""Seeded random DAGs against a plain serial reference.

Each DAG draws its size (log-uniform, 1 to 2,000 tasks), its thread worker count (1 to 32), its process
worker count (1 to 3), the share of process tools (none for half of them), and its faults: tools that
always raise, tools that block past their timeout, and (process tools only) tools that kill their
worker. The serial reference walks the tasks in index order: a task with a dependency that did not
finish is skipped; otherwise its tool decides (a value, "failed", "timeout" or "worker-died").
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

from llmcompiler import Engine, Task, ToolRegistry
from llmcompiler.errors import RunTimeoutError

from . import resources, tools

# Seconds: the timeouts of the stalling tools (they always exceed them). A process call's timeout is
# longer than a fresh pool takes to start: one that passes before the call began is a known defect
# (tests/test_run_faults.py) that would hang a DAG for RUN_LIMIT each time.
THREAD_TIMEOUT = 0.05
PROCESS_TIMEOUT = 0.5
RUN_LIMIT = 30.0  # seconds: a DAG still running after this counts as hung
BUDGET = 420.0  # seconds for the whole case: past it, no more DAGs are started (the tally says so)
OUTCOME_OF = {"fail": "failed", "stall": "timeout", "die": "worker-died"}


class Dag(NamedTuple):
    """One drawn case: its tasks and how to run them."""

    seed: int
    tasks: List[Task]
    workers: int
    process_workers: int
    uses_processes: bool


class Reference(NamedTuple):
    """What the serial reference says a DAG produces."""

    observations: Dict[int, int]
    failed: Dict[int, str]  # idx -> failure kind, for tasks whose own tool did not finish
    skipped: set
    failed_ancestors: Dict[int, int]  # idx -> bit mask of failed tasks it depends on (transitively)


def registry() -> ToolRegistry:
    """Every tool of the DAGs under the name ``<tool>_<t|p>`` (thread or process)."""
    reg = ToolRegistry()
    for executor, suffix in (("thread", "t"), ("process", "p")):
        reg.register(tools.node, name=f"node_{suffix}", executor=executor)
        reg.register(tools.fail, name=f"fail_{suffix}", executor=executor)
        reg.register(tools.stall, name=f"stall_{suffix}", executor=executor,
                     timeout=THREAD_TIMEOUT if executor == "thread" else PROCESS_TIMEOUT)
    reg.register(tools.die, name="die_p", executor="process")
    return reg


def draw(seed: int, max_size: int) -> Dag:
    """The DAG of ``seed``: sizes log-uniform in 1..max_size (seed 0 is always the largest)."""
    rng = random.Random(seed)
    size = max_size if seed == 0 else min(max_size, int(math.exp(rng.uniform(0, math.log(max_size + 1)))))
    size = max(size, 1)
    process_share = 0.0 if rng.random() < 0.5 else rng.uniform(0.05, 0.3)
    kinds = {idx: "node" for idx in range(1, size + 1)}
    for _ in range(rng.choice([0, 0, 1, 2, 5])):
        kinds[rng.randint(1, size)] = "fail"
    if rng.random() < 0.15:
        for _ in range(rng.randint(1, 2)):
            kinds[rng.randint(1, size)] = "stall"
    deaths = process_share > 0 and rng.random() < 0.15
    if deaths:
        for _ in range(rng.randint(1, 2)):
            kinds[rng.randint(1, size)] = "die"
    tasks = []
    for idx in range(1, size + 1):
        earlier = range(max(1, idx - 200), idx)
        deps = rng.sample(earlier, min(len(earlier), rng.randint(0, 4)))
        in_process = kinds[idx] == "die" or rng.random() < process_share
        tool = f"{kinds[idx]}_{'p' if in_process else 't'}"
        tasks.append(Task(idx, tool, (idx,) + tuple(f"${dep}" for dep in deps)))
    uses_processes = any(task.tool.endswith("_p") for task in tasks)
    rng.shuffle(tasks)  # the order given must not matter
    return Dag(seed, tasks, rng.randint(1, 32), rng.randint(1, 3), uses_processes)


def reference(tasks: List[Task]) -> Reference:
    """The plain serial reference: tasks in index order, references read from a dict."""
    observations: Dict[int, int] = {}
    failed: Dict[int, str] = {}
    skipped: set = set()
    ancestors: Dict[int, int] = {}
    for task in sorted(tasks, key=lambda t: t.idx):
        deps = [int(arg[1:]) for arg in task.args[1:]]
        mask = 0
        for dep in deps:
            mask |= ancestors[dep] | ((1 << dep) if dep in failed else 0)
        ancestors[task.idx] = mask
        kind = task.tool[:-2]
        if any(dep not in observations for dep in deps):
            skipped.add(task.idx)
        elif kind == "node":
            observations[task.idx] = tools.node(task.idx, *(observations[dep] for dep in deps))
        else:
            failed[task.idx] = OUTCOME_OF[kind]
    return Reference(observations, failed, skipped, ancestors)


def compare(result, expected: Reference) -> Optional[str]:
    """None when ``result`` matches the reference, else what differs (one sentence)."""
    if result.observations != expected.observations:
        wrong = sorted(set(result.observations.items()) ^ set(expected.observations.items()))[:5]
        return f"observations differ, e.g. {wrong}"
    failed = {i: f.kind for i, f in result.failures.items() if f.kind != "skipped"}
    if failed != expected.failed:
        return f"failed tasks differ: got {sorted(failed.items())[:8]}, expected {sorted(expected.failed.items())[:8]}"
    skipped = {i for i, f in result.failures.items() if f.kind == "skipped"}
    if skipped != expected.skipped:
        return f"skipped sets differ by {sorted(skipped ^ expected.skipped)[:8]}"
    for idx in skipped:
        cause = result.failures[idx].cause
        if cause is None or not expected.failed_ancestors[idx] >> cause & 1:
            return f"task {idx} skipped because of task {cause}, which is not a failed task it depends on"
    return None


class Tally:
    """Counts and figures of the DAG case."""

    def __init__(self) -> None:
        self.tried = self.tasks = 0
        self.outcomes: Dict[str, int] = {}
        self.faults = {"failed": 0, "timeout": 0, "worker-died": 0}
        self.problems: List[str] = []
        self.slowest: Tuple[float, int, int] = (0.0, -1, 0)
        self.seconds = 0.0

    def add(self, outcome: str, dag: Dag, expected: Reference, seconds: float, problem: str = "") -> None:
        self.tried += 1
        self.tasks += len(dag.tasks)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        for kind in expected.failed.values():
            self.faults[kind] += 1
        if problem:
            self.problems.append(f"seed {dag.seed}: {problem}")
        self.seconds += seconds
        self.slowest = max(self.slowest, (seconds, dag.seed, len(dag.tasks)))


def describe_hang(partial, tasks: List[Task]) -> str:
    """The tasks a run cancelled for hanging had not finished (those that were running first), with
    the last thing that happened to each."""
    tool_of = {task.idx: task.tool for task in tasks}
    stuck = sorted(i for i, f in partial.failures.items() if f.kind == "cancelled")
    last = {}
    for event in partial.events:
        if event.task in tool_of and event.kind != "cancelled":
            last[event.task] = event.kind
    stuck.sort(key=lambda i: (last.get(i) != "started", i))
    shown = ", ".join(f"task {i} ({tool_of[i]}, last {last.get(i, 'nothing')})" for i in stuck[:4])
    return shown + (f" and {len(stuck) - 4} more" if len(stuck) > 4 else "")


def run_one(dag: Dag, tally: Tally) -> None:
    """Run ``dag`` on an engine of its own and record how it compared."""
    expected = reference(dag.tasks)
    release, tools.RELEASE = tools.RELEASE, threading.Event()
    started = time.perf_counter()
    try:
        with Engine(registry(), max_workers=dag.workers, process_workers=dag.process_workers) as engine:
            try:
                result = engine.run(dag.tasks, timeout=RUN_LIMIT)
            except RunTimeoutError as err:
                tally.add("hung", dag, expected, time.perf_counter() - started,
                          f"hung; not finished: {describe_hang(err.result, dag.tasks)}")
                return
    finally:
        tools.RELEASE.set()  # abandoned thread calls of this DAG return now
        release.set()
    problem = compare(result, expected)
    tally.add("mismatch" if problem else "match", dag, expected, time.perf_counter() - started,
              problem or "")


def run(count: int, max_size: int, seed: int) -> Tally:
    """Draw and run ``count`` DAGs from ``seed`` on; returns the tally."""
    tally = Tally()
    started = time.monotonic()
    _start_interpreter_helpers()
    before = resources.holdings()
    for number in range(count):
        if time.monotonic() - started > BUDGET:
            tally.problems.append(f"out of time: {count - number} of {count} DAGs not tried")
            break
        dag = draw(seed + number, max_size)
        try:
            run_one(dag, tally)
        except Exception as err:  # the engine itself raised: a finding, reported with its seed
            tally.add("error", dag, reference(dag.tasks), 0.0, f"{type(err).__name__}: {err}")
    after = soak_settle(before)
    if after.threads > before.threads or after.children > before.children:
        tally.problems.append(f"left behind after every engine closed: threads {before.threads} -> "
                              f"{after.threads}, processes {before.children} -> {after.children}")
    return tally


def _start_interpreter_helpers() -> None:
    """Start multiprocessing's forkserver and resource tracker now: each runs once per interpreter
    for its whole life by design, so they are not counted as processes a DAG left behind."""
    import multiprocessing
    from multiprocessing import forkserver, resource_tracker

    if multiprocessing.get_start_method(allow_none=True) in (None, "forkserver") and \
            "forkserver" in multiprocessing.get_all_start_methods():
        forkserver.ensure_running()
    resource_tracker.ensure_running()


def soak_settle(limit):
    from .soak import settle  # soak imports this module: import at call time

    return settle(limit)
