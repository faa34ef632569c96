"""Process tools: CPU-bound speedup, and the cost of dispatching to processes.

Process tools are ``benchmarks.tools`` functions registered with ``executor="process"``; workers load
them by path. The comparison pool is a plain ``ProcessPoolExecutor`` with the same start method
(forkserver where available) and the same number of workers as the engine's process pool.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, wait
from typing import Any, Dict, List

from llmcompiler import Engine
from llmcompiler.tools import ToolRegistry

from . import floors, plans, yardstick
from .harness import (Config, Row, Target, Variant, Workload, alternate, line, paired, per_task, run_ours,
                      scaled, timed)
from .tools import noop, sleep, spin

__all__ = ["cpu_bound", "process_dispatch", "usable_cpus", "calibrate"]


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _process_tools(*functions: Any) -> ToolRegistry:
    registry = ToolRegistry()
    for function in functions:
        registry.register(function, executor="process")
    return registry


def _cpu_seconds(loops: int) -> float:
    start = time.thread_time()
    spin(loops)
    return time.thread_time() - start


def calibrate(seconds: float) -> int:
    """The loop count for which ``spin`` uses about ``seconds`` of CPU (best of three probes; CPU
    time, not wall time, so that other load on the machine does not shrink the tasks)."""
    probe = 500_000
    best = min(_cpu_seconds(probe) for _ in range(3))
    return max(1_000, int(probe * seconds / best))


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(_start_method()))


def _textbook(tasks: List[Any], pool: ProcessPoolExecutor, tools: Dict[str, Any]) -> float:
    return timed(lambda: yardstick.run_textbook(yardstick.from_tasks(tasks, tools), pool))


def cpu_bound(config: Config) -> Workload:
    """8 independent ~0.3 s pure-Python tasks: serial, thread tools, process tools, the yardstick."""
    count, seconds = 8, config.pick(0.3, 0.05, 0.01)
    cpus = usable_cpus()
    workers = os.cpu_count() or 1
    loops = calibrate(seconds)
    tasks = plans.independent(count, "spin", loops)
    warm_tasks = plans.independent(count, "spin", 1_000)
    workload = Workload("cpu", f"{count} x spin(~{seconds:g} s CPU): serial / threads / processes",
                        {"tasks": count, "task_s": seconds, "loops": loops, "cpus": cpus,
                         "thread_workers": count, "process_workers": workers,
                         "start_method": _start_method()})
    registry = _process_tools(spin)

    def serial() -> Dict[str, float]:
        return {"seconds": timed(lambda: [spin(loops) for _ in range(count)])}

    with Engine({"spin": spin}, max_workers=count) as threads, Engine(registry) as processes, \
            _pool(workers) as pool:
        samples = alternate([
            Variant("serial", serial),
            Variant("threads", lambda: {"seconds": run_ours(threads, tasks).seconds},
                    warm_up=lambda: run_ours(threads, warm_tasks)),
            Variant("processes", lambda: {"seconds": run_ours(processes, tasks).seconds},
                    warm_up=lambda: run_ours(processes, warm_tasks)),
            Variant("yardstick", lambda: {"seconds": _textbook(tasks, pool, {"spin": spin})},
                    warm_up=lambda: _textbook(warm_tasks, pool, {"spin": spin})),
        ], config.reps)
    rows = {name: Row(label, "s", samples[name]["seconds"]) for name, label in (
        ("serial", "serial: one thread"), ("threads", "ours: thread tools"),
        ("processes", "ours: process tools (warm)"), ("yardstick", "yardstick: ProcessPoolExecutor"))}
    speedups = {name: Row(f"{name}: speedup, serial / it", "x",
                          paired(samples["serial"]["seconds"], samples[key]["seconds"]))
                for name, key in (("ours", "processes"), ("yardstick", "yardstick"))}
    workload.rows = list(rows.values()) + list(speedups.values())
    workload.lines = [
        line(f"{count} x {seconds:g} s CPU, {workers} processes", "s", ratio="ours/yardstick",
             ours=rows["processes"], yardstick=rows["yardstick"]),
        line(f"speedup over serial, {cpus} cores", "x", target=Target(">=", 1.9, ">= 1.9x"), **speedups),
        line("thread tools (the GIL): time", "s", ours=rows["threads"], note="serial: "
             f"{rows['serial'].median:.2f} s"),
    ]
    return workload


def _chain_through_pool(pool: ProcessPoolExecutor, length: int, step: float) -> None:
    value = None
    for _ in range(length):
        value = pool.submit(sleep, step, value).result()


def _round_trip(pool: ProcessPoolExecutor, length: int) -> float:
    """The median seconds of one no-op ``submit(...).result()`` round trip, over a chain of ``length``."""
    return statistics.median(step.to_start + step.overshoot + step.back
                             for step in floors.plain_chain(pool, length, 0.0))


def process_dispatch(config: Config) -> Workload:
    """2,000 no-op process tasks on 2 workers, and a 10 x 10 ms process chain: ours, the textbook
    scheduler on a ProcessPoolExecutor, and plain ``submit``. Plain ``submit(...).result()`` per step
    is the chain's floor on this machine; a no-op's round trip is reported beside it."""
    count, length, step = config.pick(2_000, 300, 100), 10, 0.010
    workers = 2
    method = _start_method()
    fan_tasks = plans.independent(count, "noop")
    chain_tasks = plans.chain(length, "sleep", step)
    tools = {"noop": noop, "sleep": sleep}
    workload = Workload("process", f"process tools, {workers} workers: {count:,} no-ops; chain {length} x "
                        f"{step * 1e3:g} ms", {"no_ops": count, "chain": length, "chain_sleep_s": step,
                                                "workers": workers, "start_method": method})
    with Engine(_process_tools(noop, sleep), process_workers=workers) as engine, _pool(workers) as pool:
        samples = alternate([
            Variant("ours-fan", lambda: {"s": run_ours(engine, fan_tasks).seconds}),
            Variant("yard-fan", lambda: {"s": _textbook(fan_tasks, pool, tools)}),
            Variant("pool-fan", lambda: {"s": timed(lambda: wait([pool.submit(noop) for _ in range(count)]))}),
            Variant("ours-chain", lambda: {"s": run_ours(engine, chain_tasks).seconds}),
            Variant("yard-chain", lambda: {"s": _textbook(chain_tasks, pool, tools)}),
            Variant("pool-chain", lambda: {"s": timed(lambda: _chain_through_pool(pool, length, step))}),
            Variant("pool-trip", lambda: {"s": _round_trip(pool, length)}),
        ], config.reps)
    fan = {who: Row(f"{who}: {count:,} no-ops, per task", "us", per_task(samples[f"{key}-fan"]["s"], count))
           for who, key in (("ours", "ours"), ("textbook", "yard"), ("plain submit", "pool"))}
    chain = {who: Row(f"{who}: chain {length} x {step * 1e3:g} ms", "ms", scaled(samples[f"{key}-chain"]["s"], "ms"))
             for who, key in (("ours", "ours"), ("textbook", "yard"), ("plain submit", "pool"))}
    trip = Row(f"plain submit: no-op round trip, chained {length}", "us", scaled(samples["pool-trip"]["s"], "us"))
    workload.rows = list(fan.values()) + list(chain.values()) + [trip]
    workload.lines = [
        line(f"{count:,} no-ops vs textbook", "us/task", ratio="ours/yardstick", on_ratio=False,
             ours=fan["ours"], yardstick=fan["textbook"]),
        line(f"{count:,} no-ops vs plain submit", "us/task", ratio="ours/yardstick",
             target=Target("<=", 0.8, "<= 0.8x submit"), ours=fan["ours"], yardstick=fan["plain submit"],
             note="yardstick column: ProcessPoolExecutor.submit per task"),
        line(f"chain {length} x {step * 1e3:g} ms (ideal 100)", "ms", ratio="ours/yardstick", on_ratio=False,
             target=Target("<=", 105.0, "<= 105 ms"), ours=chain["ours"], yardstick=chain["textbook"]),
        line(f"floor: chain {length} x {step * 1e3:g} ms, submit", "ms", ratio="ours/yardstick",
             on_ratio=False, ours=chain["ours"], yardstick=chain["plain submit"],
             note="yardstick column: the floor, ProcessPoolExecutor.submit(...).result() per step"),
        line("floor: process round trip, no-op", "us", yardstick=trip,
             note="one submit -> result of a no-op, chained: no sleep, so no overshoot"),
    ]
    return workload
