"""Workloads 8-9: CPU-bound speedup of process tools, and the cost of dispatching to processes.

Process tools are ``benchmarks.tools`` functions registered with ``executor="process"``; workers load
them by path. The comparison pool is a plain ``ProcessPoolExecutor`` with the same start method
(forkserver where available) and the same number of workers as the engine's process pool.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, wait
from typing import Any, Dict, List

from llmcompiler import Engine
from llmcompiler.tools import ToolRegistry

from . import plans
from .harness import (Config, Row, Target, Variant, Workload, alternate, paired, ratio_of, run_ours, scaled,
                      timed)
from .tools import noop, spin

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


def cpu_bound(config: Config) -> Workload:
    """8. 8 independent ~0.3 s pure-Python tasks: serial vs thread tools vs process tools."""
    count, seconds = 8, config.pick(0.3, 0.05)
    cpus = usable_cpus()
    loops = calibrate(seconds)
    tasks = plans.independent(count, "spin", loops)
    warm_tasks = plans.independent(count, "spin", 1_000)
    workload = Workload("cpu", f"{count} x spin(~{seconds:g} s): serial / threads / processes",
                        {"tasks": count, "task_s": seconds, "loops": loops, "cpus": cpus,
                         "thread_workers": count, "process_workers": os.cpu_count(),
                         "start_method": _start_method()})
    registry = _process_tools(spin)

    def serial() -> Dict[str, float]:
        return {"seconds": timed(lambda: [spin(loops) for _ in range(count)])}

    start = time.perf_counter()
    with Engine(registry) as cold_engine:  # a new engine: its process pool starts inside this run
        run_ours(cold_engine, tasks)
    cold = time.perf_counter() - start
    with Engine({"spin": spin}, max_workers=count) as threads, Engine(registry) as processes:
        samples = alternate([
            Variant("serial", serial),
            Variant("threads", lambda: {"seconds": run_ours(threads, tasks).seconds},
                    warm_up=lambda: run_ours(threads, warm_tasks)),
            Variant("processes", lambda: {"seconds": run_ours(processes, tasks).seconds},
                    warm_up=lambda: run_ours(processes, warm_tasks)),
        ], config.reps)
    rows = {name: Row(label, "s", samples[name]["seconds"]) for name, label in (
        ("serial", "serial: one thread"), ("threads", "ours: thread tools"),
        ("processes", "ours: process tools (warm)"))}
    rows["threads"].ratio = ratio_of("thr/serial", rows["threads"], rows["serial"])
    rows["processes"].ratio = ratio_of("proc/serial", rows["processes"], rows["serial"])
    cold_row = Row("ours: process tools, cold", "s", [cold],
                   note="new Engine; includes starting its process pool")
    cold_row.ratio = ratio_of("cold/warm", cold_row, rows["processes"])
    goal = round(0.95 * cpus, 2)
    speedup = Row("speedup: serial / processes", "x",
                  paired(samples["serial"]["seconds"], samples["processes"]["seconds"]),
                  target=Target(">=", goal, f">= {goal:g}x (0.95 x {cpus})"))
    workload.rows = [rows["serial"], rows["threads"], rows["processes"], cold_row, speedup]
    return workload


def _chain_through_pool(pool: ProcessPoolExecutor, length: int) -> None:
    value = None
    for _ in range(length):
        value = pool.submit(noop, value).result()


def process_dispatch(config: Config) -> Workload:
    """9. No-op process tools, a chain and a wide fan-out: us per task, ours vs plain submit()."""
    length, width = config.pick(50, 20), config.pick(200, 50)
    workers = os.cpu_count() or 1
    method = _start_method()
    chain_tasks = plans.chain(length, "noop")
    fan_tasks = plans.independent(width, "noop")
    workload = Workload("process", f"no-op process tools: chain of {length}, fan-out of {width}",
                        {"chain": length, "fan_out": width, "workers": workers, "start_method": method})
    pool_options = dict(max_workers=workers, mp_context=multiprocessing.get_context(method))
    with Engine(_process_tools(noop), process_workers=workers) as engine, \
            ProcessPoolExecutor(**pool_options) as pool:
        samples = alternate([
            Variant("ours-chain", lambda: {"seconds": run_ours(engine, chain_tasks).seconds}),
            Variant("pool-chain", lambda: {"seconds": timed(lambda: _chain_through_pool(pool, length))}),
            Variant("ours-fan", lambda: {"seconds": run_ours(engine, fan_tasks).seconds}),
            Variant("pool-fan", lambda: {"seconds": timed(
                lambda: wait([pool.submit(noop) for _ in range(width)]))}),
        ], config.reps)
    rows: List[Row] = []
    for shape, size in (("chain", length), ("fan", width)):
        def per_task(name: str) -> List[float]:
            return scaled([s / size for s in samples[name]["seconds"]], "us")

        ours = Row(f"ours: {shape} of {size}, per task", "us", per_task(f"ours-{shape}"))
        floor = Row(f"plain pool.submit: {shape}, per task", "us", per_task(f"pool-{shape}"))
        ours.ratio = ratio_of("ours/pool", ours, floor)
        rows += [ours, floor]
    workload.rows = rows
    return workload
