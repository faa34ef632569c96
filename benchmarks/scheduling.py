"""Scheduling behaviour: layered latency, head-of-line blocking, failure skipping, idle CPU.

All use thread tools (``benchmarks.tools.THREAD_TOOLS``). "Ours" is one ``Engine`` kept open for the
whole workload; the baseline is ``run_sleep_retry`` (a fresh pool per call, as written).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict

from llmcompiler import Engine

from . import plans
from . import yardstick
from .harness import (Config, BenchmarkError, Row, Target, Variant, Workload, alternate, line, ratio_of,
                      run_baseline, run_ours, scaled, timed)
from .tools import THREAD_TOOLS, raised_at

__all__ = ["layers", "head_of_line", "failure", "idle"]

SAFETY_LIMIT = 10.0  # seconds: no baseline run that should finish may hang the suite


def _latency_workload(config: Config, workload: Workload, tasks: Any, workers: int, ideal: float,
                      target: Target) -> Workload:
    """Ours, the yardstick and the baseline on the same plan and worker count, alternating."""
    with Engine(THREAD_TOOLS, max_workers=workers) as engine, ThreadPoolExecutor(workers) as pool:
        samples = alternate([
            Variant("ours", lambda: {"makespan": run_ours(engine, tasks).seconds}),
            Variant("yardstick", lambda: {"makespan": timed(
                lambda: yardstick.run_textbook(yardstick.from_tasks(tasks, THREAD_TOOLS), pool))}),
            Variant("baseline", lambda: {"makespan": run_baseline(
                tasks, THREAD_TOOLS, max_workers=workers, limit=SAFETY_LIMIT)}, warm=False),
        ], config.reps)
    rows = {name: Row(f"{name}: makespan", "ms", scaled(samples[name]["makespan"], "ms"),
                      limit=SAFETY_LIMIT if name == "baseline" else None)
            for name in ("ours", "yardstick", "baseline")}
    rows["baseline"].ratio = ratio_of("base/ours", rows["baseline"], rows["ours"])
    workload.rows = list(rows.values())
    workload.lines = [line(f"makespan (ideal {ideal * 1e3:g} ms)", "ms", ratio="ours/yardstick",
                           on_ratio=False, target=target, **rows)]
    return workload


def layers(config: Config) -> Workload:
    """5 layers of 8 sleeps of 5 ms, each task on every task of the layer before; 8 workers."""
    depth, width, step = config.pick(5, 5, 2), 8, 0.005
    ideal = depth * step
    return _latency_workload(
        config, Workload("layers", f"{depth} layers x {width} sleep({step * 1e3:g} ms), all-to-all",
                         {"depth": depth, "width": width, "sleep_s": step, "max_workers": width}),
        plans.layers(depth, width, step), width, ideal,
        Target("<=", ideal * 1e3 + 2.5, f"<= {ideal * 1e3 + 2.5:g} ms"))


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
    after = Row(f"ours: returned after task {waiters + 1} done", "ms", scaled(samples["ours"]["after"], "ms"))
    baseline = Row("baseline: sleep-retry", "ms", scaled(samples["baseline"]["makespan"], "ms"), limit=limit,
                   note="waiters fill its pool; the task they wait on never starts")
    baseline.ratio = ratio_of("base/ours", baseline, makespan)
    workload.rows = [makespan, after, baseline]
    workload.lines = [line("makespan", "ms", ratio="baseline/ours", on_ratio=False, ours=makespan,
                           baseline=baseline),
                      line(f"task {waiters + 1} done -> returned", "ms", target=Target("<", 5.0, "< 5 ms"),
                           ours=after)]
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
    events = Row("ours: failed -> last skipped (events)", "us", scaled(samples["ours"]["events"], "us"))
    returned = Row("ours: tool raised -> run returned", "us", scaled(samples["ours"]["returned"], "us"))
    baseline = Row("baseline: sleep-retry", "ms", scaled(samples["baseline"]["makespan"], "ms"), limit=limit,
                   note="the exception is swallowed; dependents wait for ever")
    workload.rows = [events, returned, baseline]
    workload.lines = [line("failed -> last skipped", "us", target=Target("<", 1000.0, "< 1 ms"), ours=events),
                      line("tool raised -> run returned", "us", target=Target("<", 1000.0, "< 1 ms"),
                           ours=returned, baseline=baseline)]
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
    waiters, seconds, reps = 20, config.pick(3.0, 0.5, 0.2), config.pick(min(config.reps, 2), 1)
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
        per_s = Row(f"{label}: CPU per s of waiting", "ms/s", samples[name]["per_s"])
        total = Row(f"{label}: CPU, whole run", "ms", scaled(samples[name]["total"], "ms"))
        rows += [per_s, total]
    rows[2].ratio = ratio_of("base/ours", rows[2], rows[0])
    rows[3].ratio = ratio_of("base/ours", rows[3], rows[1])
    rows.append(Row("harness alone: CPU per s", "ms/s", samples["harness"]["per_s"],
                    note="nothing running: what the measurement itself reads"))
    workload.rows = rows
    workload.lines = [line("CPU per s of waiting", "ms/s", ratio="baseline/ours", on_ratio=False,
                           target=Target("<", 0.05, "< 0.05 ms/s"), ours=rows[0], baseline=rows[2])]
    return workload
