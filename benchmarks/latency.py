"""Warm versus cold: the same small plans on a kept ``Engine`` and on one-shot ``run_tasks``.

Four plans of thread tools: one no-op task; a chain of 10 sleeps of 10 ms (ideal 100 ms); a fan-out of
50 sleeps of 20 ms into one gather (ideal 20 ms, 50 workers); 500 independent sleeps of 1 ms on 8
workers (ideal 62.5 ms). Beside the chain and the 500 sleeps, their floor on this machine in the same
run: the same sleeps on bare threads with no scheduler (``floors.py``), since ``time.sleep`` itself
overshoots. "Warm" reuses one engine (ours) or one ``ThreadPoolExecutor`` (the yardstick) across
repetitions; "cold" builds them inside each timed call (``run_tasks``; a new executor for the
yardstick). dask's threaded scheduler keeps its pool between calls, so it is warm;
the baseline builds a pool per call, so it is cold.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from llmcompiler import Engine

from . import floors, plans, yardstick
from .harness import (Config, Row, Target, Variant, Workload, alternate, line, run_baseline,
                      run_one_shot, run_ours, scaled, timed)
from .tools import THREAD_TOOLS

__all__ = ["latency", "latency_plans", "Plan"]

SAFETY_LIMIT = 10.0  # seconds: no baseline run that should finish may hang the suite


class Plan(NamedTuple):
    """One plan of the workload: its tasks, workers for every engine, the ideal makespan (s), the
    targets on ours, warm and cold (None: reported only), and its floor: what the plan's sleeps take
    on bare threads on this machine, no scheduler at all (seconds; None: no floor measured)."""

    name: str
    tasks: List[Any]
    workers: int
    ideal: float
    warm_target: Optional[Target]
    cold_target: Optional[Target]
    floor: Optional[Callable[[], float]] = None
    floor_text: str = ""


def latency_plans(tiny: bool = False) -> List[Plan]:
    """The workload's plans (``tiny``: shorter ones, for the test suite)."""
    chain, fan, many = (3, 10, 50) if tiny else (10, 50, 500)
    return [
        Plan("one task", plans.independent(1, "noop"), 32, 0.0, None, Target("<=", 1.0, "<= 1 ms")),
        Plan(f"chain {chain} x 10 ms", plans.chain(chain, "sleep", 0.010), 32, chain * 0.010,
             Target("<=", chain * 10 + 1.5, f"<= {chain * 10 + 1.5:g} ms"), None,
             partial(floors.back_to_back, 0.010, chain), f"{chain} sleeps back to back, one thread"),
        Plan(f"fan-out {fan} x 20 ms", plans.fan_out_in(fan, 0.020), fan, 0.020,
             Target("<=", 23.0, "<= 23 ms"), None),
        Plan(f"{many} x 1 ms, 8 workers", plans.independent(many, "sleep", 0.001), 8, many * 0.001 / 8,
             Target("<=", many * 0.001 / 8 * 1e3 * 66 / 62.5, f"<= {many * 0.001 / 8 * 1e3 * 66 / 62.5:g} ms"),
             None, partial(floors.bare_threads, many, 8, 0.001), "8 bare threads, their share back to back"),
    ]


def _cold_yardstick(tasks: List[Any], workers: int) -> float:
    def run() -> None:
        with ThreadPoolExecutor(workers) as pool:
            yardstick.run_textbook(yardstick.from_tasks(tasks, THREAD_TOOLS), pool)
    return timed(run)


def _variants(plan: Plan, engine: Engine, pool: ThreadPoolExecutor, with_dask: bool) -> List[Variant]:
    tasks, workers = plan.tasks, plan.workers
    variants = [
        Variant("ours warm", lambda: {"s": run_ours(engine, tasks).seconds}),
        Variant("ours cold", lambda: {"s": run_one_shot(tasks, THREAD_TOOLS, max_workers=workers)}),
        Variant("yardstick warm", lambda: {"s": timed(
            lambda: yardstick.run_textbook(yardstick.from_tasks(tasks, THREAD_TOOLS), pool))}),
        Variant("yardstick cold", lambda: {"s": _cold_yardstick(tasks, workers)}),
        Variant("baseline", lambda: {"s": run_baseline(tasks, THREAD_TOOLS, max_workers=workers,
                                                       limit=SAFETY_LIMIT)}, warm=False),
    ]
    if with_dask:
        variants.append(Variant("dask", lambda: {"s": timed(
            lambda: yardstick.dask_get(yardstick.from_tasks(tasks, THREAD_TOOLS), workers))}))
    floor = plan.floor
    if floor is not None:
        variants.append(Variant("floor", lambda: {"s": floor()}))
    return variants


def latency(config: Config) -> Workload:
    """Makespans of the four plans, warm and cold, for every engine; cold minus warm on the chain."""
    with_dask = yardstick.dask_available() is not None
    chosen = latency_plans(config.tiny)
    workload = Workload("latency", "warm Engine vs one-shot run_tasks: 1 task; chain; fan-out; many x 1 ms",
                        {plan.name: {"tasks": len(plan.tasks), "workers": plan.workers, "ideal_s": plan.ideal}
                         for plan in chosen})
    if not with_dask:
        workload.skipped.append("dask: not installed")
    for plan in chosen:
        with Engine(THREAD_TOOLS, max_workers=plan.workers) as engine, ThreadPoolExecutor(plan.workers) as pool:
            samples = alternate(_variants(plan, engine, pool, with_dask), config.reps)
        _plan_lines(workload, plan, samples)
    return workload


def _plan_lines(workload: Workload, plan: Plan, samples: Dict[str, Dict[str, list]]) -> None:
    rows = {name: Row(f"{name}: {plan.name}", "ms", scaled(found["s"], "ms"),
                      limit=SAFETY_LIMIT if name == "baseline" else None)
            for name, found in samples.items()}
    workload.rows += list(rows.values())
    ideal = f"; ideal {plan.ideal * 1e3:g} ms" if plan.ideal else ""
    workload.lines.append(line(f"warm: {plan.name}", "ms", ratio="ours/yardstick", on_ratio=False,
                               target=plan.warm_target, note=f"makespan{ideal}", ours=rows["ours warm"],
                               yardstick=rows["yardstick warm"], dask=rows.get("dask"),
                               baseline=rows["baseline"]))
    workload.lines.append(line(f"cold: {plan.name}", "ms", ratio="ours/yardstick", on_ratio=False,
                               target=plan.cold_target, note=f"makespan{ideal}", ours=rows["ours cold"],
                               yardstick=rows["yardstick cold"], baseline=rows["baseline"]))
    if "floor" in rows:  # the target line above stays as the issue states it; this one only informs
        workload.lines.append(line(f"floor: {plan.name}", "ms", ratio="ours/yardstick", on_ratio=False,
                                   note=f"yardstick column: the floor, {plan.floor_text}",
                                   ours=rows["ours warm"], yardstick=rows["floor"]))
    if plan.name.startswith("chain"):
        extra = {who: Row(f"{who}: cold - warm, {plan.name}", "ms", scaled(
            [None if c is None or w is None else c - w
             for c, w in zip(samples[f"{who} cold"]["s"], samples[f"{who} warm"]["s"])], "ms"))
            for who in ("ours", "yardstick")}
        workload.rows += list(extra.values())
        workload.lines.append(line(f"cold - warm: {plan.name}", "ms", target=Target("<=", 2.0, "<= 2 ms"),
                                   **extra))
