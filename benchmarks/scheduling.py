"""Workloads 1-7: scheduling latency, head-of-line blocking, failure skipping, idle CPU, throughput.

All use thread tools (``benchmarks.tools.THREAD_TOOLS``). "Ours" is one ``Engine`` kept open for the
whole workload; the baseline is ``run_sleep_retry`` (a fresh pool per call, as written).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Dict, List, Optional, Sequence

from llmcompiler import Engine

from . import plans
from .harness import (Config, BenchmarkError, Row, Target, Variant, Workload, alternate, paired, ratio_of,
                      run_baseline, run_one_shot, run_ours, scaled, timed)
from .tools import THREAD_TOOLS, noop, raised_at

__all__ = ["chain", "fan_out", "layers", "head_of_line", "failure", "idle", "throughput"]

SAFETY_LIMIT = 10.0  # seconds: no baseline run that should finish may hang the suite


def _minus(values: Sequence[Optional[float]], ideal: float) -> List[Optional[float]]:
    return [None if value is None else value - ideal for value in values]


def _latency_rows(samples: Dict[str, Dict[str, list]], ideal: float, target: Target,
                  reference: str = "") -> List[Row]:
    """ours makespan / ours overhead over the ideal / baseline makespan (with base/ours)."""
    ours = Row("ours: Engine.run (warm)", "ms", scaled(samples["ours"]["makespan"], "ms"))
    overhead = Row(f"ours: overhead over {ideal * 1e3:g} ms", "ms",
                   scaled(_minus(samples["ours"]["makespan"], ideal), "ms"), target=target)
    baseline = Row("baseline: sleep-retry", "ms", scaled(samples["baseline"]["makespan"], "ms"),
                   limit=SAFETY_LIMIT, reference=reference)
    baseline.ratio = ratio_of("base/ours", baseline, ours)
    return [ours, overhead, baseline]


def chain(config: Config) -> Workload:
    """1. Ten 10 ms sleeps, each on the previous one: overhead over 100 ms; one-shot run_tasks too."""
    length, step = 10, 0.010
    tasks = plans.chain(length, "sleep", step)
    workload = Workload("chain", f"{length} x sleep({step * 1e3:g} ms) in a chain",
                        {"length": length, "sleep_s": step})

    def serial_sleeps() -> None:
        for _ in range(length):
            time.sleep(step)

    with Engine(THREAD_TOOLS) as engine:
        samples = alternate([
            Variant("ours", lambda: {"makespan": run_ours(engine, tasks).seconds}),
            Variant("one-shot", lambda: {"makespan": run_one_shot(tasks, THREAD_TOOLS)}),
            Variant("baseline", lambda: {"makespan": run_baseline(tasks, THREAD_TOOLS, limit=SAFETY_LIMIT)},
                    warm=False),
            Variant("floor", lambda: {"makespan": timed(serial_sleeps)}),
        ], config.reps)
    ideal = length * step
    ours, overhead, baseline = _latency_rows(samples, ideal, Target("<=", 1.5, "<= 1.5 ms"),
                                             reference="seed ~1700 ms")
    one_shot = Row("ours: run_tasks (one-shot)", "ms", scaled(samples["one-shot"]["makespan"], "ms"),
                   note="a fresh Engine per call: pool start-up included")
    one_shot.ratio = ratio_of("1shot/ours", one_shot, ours)
    floor = Row(f"floor: {length} sleeps, one thread", "ms", scaled(samples["floor"]["makespan"], "ms"),
                note="time.sleep overshoot alone, no scheduling")
    workload.rows = [ours, overhead, one_shot, baseline, floor]
    return workload


def fan_out(config: Config) -> Workload:
    """2. 50 parallel 20 ms sleeps, then one task over all 50; 50 workers for both."""
    width, step = 50, 0.020
    return _latency_workload(
        config, Workload("fanout", f"{width} x sleep({step * 1e3:g} ms) -> gather(all {width})",
                         {"width": width, "sleep_s": step, "max_workers": width}),
        plans.fan_out_in(width, step), width, step, Target("<=", 3.0, "<= 3 ms"))


def layers(config: Config) -> Workload:
    """3. 5 layers of 8 sleeps of 5 ms, each task on every task of the layer before; 8 workers."""
    depth, width, step = 5, 8, 0.005
    return _latency_workload(
        config, Workload("layers", f"{depth} layers x {width} sleep({step * 1e3:g} ms), all-to-all",
                         {"depth": depth, "width": width, "sleep_s": step, "max_workers": width}),
        plans.layers(depth, width, step), width, depth * step, Target("<=", 2.5, "<= 2.5 ms"))


def _latency_workload(config: Config, workload: Workload, tasks: Any, workers: int, ideal: float,
                      target: Target) -> Workload:
    """Ours and the baseline on the same plan and worker count, alternating; makespan over ``ideal``."""
    with Engine(THREAD_TOOLS, max_workers=workers) as engine:
        samples = alternate([
            Variant("ours", lambda: {"makespan": run_ours(engine, tasks).seconds}),
            Variant("baseline", lambda: {"makespan": run_baseline(
                tasks, THREAD_TOOLS, max_workers=workers, limit=SAFETY_LIMIT)}),
        ], config.reps)
    workload.rows = _latency_rows(samples, ideal, target)
    return workload


def _hanging_baseline(tasks: Any, limit: float) -> Variant:
    """The baseline on a plan where it hangs: default workers, a time limit, no warm-up run."""
    return Variant("baseline", lambda: {"makespan": run_baseline(tasks, THREAD_TOOLS, limit=limit)},
                   warm=False)


def _event_time(result: Any, kind: str, task: int) -> float:
    for event in result.events:
        if event.kind == kind and event.task == task:
            return event.time
    raise BenchmarkError(f"no '{kind}' event for task {task} in the run's events")


def head_of_line(config: Config) -> Workload:
    """4. 40 no-ops waiting on task 41 (a 1 ms sleep) listed after them; default workers."""
    waiters, blocker_s, limit = 40, 0.001, config.pick(2.0, 0.5)
    tasks = plans.head_of_line(waiters, blocker_s)
    workload = Workload("hol", f"{waiters} tasks wait on task {waiters + 1}, listed before it",
                        {"waiters": waiters, "blocker_sleep_s": blocker_s, "baseline_limit_s": limit,
                         "max_workers": "defaults (ours 32; baseline min(32, cpus + 4))"})

    def ours() -> Dict[str, float]:
        run = run_ours(engine, tasks)
        return {"makespan": run.seconds,
                "after": run.ended - _event_time(run.result, "finished", waiters + 1)}

    with Engine(THREAD_TOOLS) as engine:
        samples = alternate([Variant("ours", ours), _hanging_baseline(tasks, limit)], config.reps)
    makespan = Row("ours: Engine.run (warm)", "ms", scaled(samples["ours"]["makespan"], "ms"))
    after = Row(f"ours: returned after task {waiters + 1} done", "ms", scaled(samples["ours"]["after"], "ms"),
                target=Target("<", 5.0, "< 5 ms"))
    baseline = Row("baseline: sleep-retry", "ms", scaled(samples["baseline"]["makespan"], "ms"), limit=limit,
                   note="waiters fill its pool; the task they wait on never starts")
    baseline.ratio = ratio_of("base/ours", baseline, makespan)
    workload.rows = [makespan, after, baseline]
    return workload


def failure(config: Config) -> Workload:
    """5. A failing task with 100 dependents: failure event to last skipped event."""
    dependents, limit = 100, config.pick(1.0, 0.3)
    tasks = plans.failing_root(dependents)
    workload = Workload("failure", f"task 1 raises; {dependents} tasks depend on it",
                        {"dependents": dependents, "baseline_limit_s": limit})

    def ours() -> Dict[str, float]:
        run = run_ours(engine, tasks, expect_ok=False)
        skipped = [event.time for event in run.result.events if event.kind == "skipped"]
        if len(skipped) != dependents or len(run.result.failures) != dependents + 1:
            raise BenchmarkError(f"expected 1 failed and {dependents} skipped tasks, got "
                                 f"{len(run.result.failures)} failures, {len(skipped)} skipped events")
        failed = _event_time(run.result, "failed", 1)
        return {"events": max(skipped) - failed, "returned": run.ended - raised_at()}

    with Engine(THREAD_TOOLS) as engine:
        samples = alternate([Variant("ours", ours), _hanging_baseline(tasks, limit)], config.reps)
    events = Row("ours: failed -> last skipped (events)", "us", scaled(samples["ours"]["events"], "us"),
                 target=Target("<", 1000.0, "< 1 ms"))
    returned = Row("ours: tool raised -> run returned", "us", scaled(samples["ours"]["returned"], "us"),
                   target=Target("<", 1000.0, "< 1 ms"))
    baseline = Row("baseline: sleep-retry", "ms", scaled(samples["baseline"]["makespan"], "ms"), limit=limit,
                   note="the exception is swallowed; dependents wait for ever")
    workload.rows = [events, returned, baseline]
    return workload


def _cpu_use(func: Callable[[], Any], margin: float, window: float) -> Dict[str, float]:
    """CPU seconds of the whole process around ``func()``; and CPU ms per second over a window that
    opens ``margin`` s after the start and lasts ``window`` s, read by a thread that only sleeps (its
    own CPU time, mostly waking up, is subtracted; what is left errs on the high side)."""
    go = threading.Event()
    reading: Dict[str, float] = {}

    def sample() -> None:
        go.wait()
        time.sleep(margin)
        # The own-thread reads sit inside the process reads: the reads themselves count as used.
        cpu, own, wall = time.process_time(), time.thread_time(), time.perf_counter()
        time.sleep(window)
        wall = time.perf_counter() - wall
        own = time.thread_time() - own
        reading["cpu"] = time.process_time() - cpu - own
        reading["wall"], reading["closed"] = wall, time.perf_counter()

    sampler = threading.Thread(target=sample, name="benchmarks-cpu-sampler", daemon=True)
    sampler.start()
    cpu_start = time.process_time()
    go.set()
    func()
    cpu_total = time.process_time() - cpu_start
    ended = time.perf_counter()
    sampler.join()
    if reading["closed"] > ended:
        raise BenchmarkError("the run ended before the CPU sampling window closed")
    return {"total": cpu_total, "per_s": reading["cpu"] / reading["wall"] * 1e3}


def idle(config: Config) -> Workload:
    """6. One 3 s sleep with 20 tasks waiting on it: CPU used meanwhile (the whole process)."""
    waiters, seconds, reps = 20, config.pick(3.0, 0.5), config.pick(min(config.reps, 2), 1)
    margin = min(0.25, seconds * 0.2)
    window = seconds - 2 * margin
    tasks = plans.idle_wait(waiters, seconds)
    warm_tasks = plans.idle_wait(waiters, 0.01)
    workload = Workload("idle", f"sleep({seconds:g} s) with {waiters} tasks waiting on it",
                        {"waiters": waiters, "sleep_s": seconds, "window_s": [margin, margin + window],
                         "reps": reps})
    with Engine(THREAD_TOOLS) as engine:
        samples = alternate([
            Variant("ours", lambda: _cpu_use(lambda: run_ours(engine, tasks), margin, window),
                    warm_up=lambda: run_ours(engine, warm_tasks)),
            Variant("baseline", lambda: _cpu_use(
                lambda: run_baseline(tasks, THREAD_TOOLS, limit=seconds + SAFETY_LIMIT), margin, window),
                warm=False),
            Variant("harness", lambda: _cpu_use(lambda: time.sleep(seconds), margin, window), warm=False),
        ], reps)
    rows = []
    for name, label in (("ours", "ours"), ("baseline", "baseline")):
        per_s = Row(f"{label}: CPU per s of waiting", "ms/s", samples[name]["per_s"],
                    target=Target("<", 0.05, "< 0.05 ms/s") if name == "ours" else None)
        total = Row(f"{label}: CPU, whole run", "ms", scaled(samples[name]["total"], "ms"))
        rows += [per_s, total]
    rows[2].ratio = ratio_of("base/ours", rows[2], rows[0])
    rows[3].ratio = ratio_of("base/ours", rows[3], rows[1])
    rows.append(Row("harness alone: CPU per s", "ms/s", samples["harness"]["per_s"],
                    note="nothing running: what the measurement itself reads"))
    workload.rows = rows
    return workload


def throughput(config: Config) -> Workload:
    """7. 10,000 no-ops in a seeded random DAG: us per task, against plain submit() of 10,000 calls."""
    size, seed, workers, limit = config.pick(10_000, 2_000), 1234, 32, config.pick(3.0, 0.5)
    tasks = plans.random_dag(size, seed)
    workload = Workload("throughput", f"{size} no-ops, random DAG (<= 3 deps each, seed {seed})",
                        {"tasks": size, "seed": seed, "max_workers": workers, "baseline_limit_s": limit})

    def floor() -> Dict[str, float]:
        return {"seconds": timed(lambda: wait([pool.submit(noop) for _ in range(size)]))}

    with Engine(THREAD_TOOLS, max_workers=workers) as engine, ThreadPoolExecutor(workers) as pool:
        samples = alternate([
            Variant("ours", lambda: {"seconds": run_ours(engine, tasks).seconds}),
            Variant("baseline", lambda: {"seconds": run_baseline(tasks, THREAD_TOOLS, limit=limit)},
                    warm=False),
            Variant("floor", floor),
        ], config.reps)

    def per_task(name: str) -> List[Optional[float]]:
        return scaled([None if s is None else s / size for s in samples[name]["seconds"]], "us")

    ours = Row("ours: Engine.run (warm)", "us", per_task("ours"), target=Target("<=", 10.0, "<= 10 us"))
    floor_row = Row("floor: pool.submit x N, no deps", "us", per_task("floor"))
    versus = Row("ours / floor, per repetition", "x",
                 paired(samples["ours"]["seconds"], samples["floor"]["seconds"]),
                 target=Target("<=", 1.5, "<= 1.5x floor"))
    baseline = Row("baseline: sleep-retry", "us", per_task("baseline"), limit=limit, per=size)
    baseline.ratio = ratio_of("base/ours", baseline, ours)
    workload.rows = [ours, floor_row, versus, baseline]
    return workload
