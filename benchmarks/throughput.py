"""Throughput and memory on the input forms users pass: seed-form dicts, plan text and ``Task``s.

Every engine gets the same input object and does its own conversion inside the timing: ours
(``Engine.run``, warm), the textbook scheduler (``yardstick.from_*`` then ``run_textbook`` on a warm
``ThreadPoolExecutor`` of the same size), dask's threaded scheduler (same front ends) and the
sleep-retry baseline (which reads dicts and ``Task``s itself; for text it is given ``parse_plan``'s
output, parsed inside its timing). The plan is a seeded random DAG of no-op tools, each task taking
``$N`` arguments for up to three earlier tasks.
"""

from __future__ import annotations

import gc
import statistics
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional

from llmcompiler import Engine, parse_plan

from . import plans, yardstick
from .harness import (Config, Row, Target, Variant, Workload, alternate, line, paired, per_task, run_baseline,
                      run_ours, timed)
from .tools import THREAD_TOOLS

__all__ = ["throughput", "memory", "FORMS", "build_input"]

FORMS = ("dicts", "text", "tasks")
SEED = 1234
WORKERS = 32
BASELINE_MAX = 10_000      # the baseline is not run on larger plans (seconds per run, waiters sleeping)
DASK_MAX = 10_000          # nor is dask (about 0.3 ms per task: half a minute per 100,000-task run)

_BUILD: Dict[str, Callable[[int, int], Any]] = {
    "dicts": plans.random_dag_dicts, "text": plans.random_dag_text, "tasks": plans.random_dag}
_FRONT = {"dicts": yardstick.from_dicts, "text": yardstick.from_text, "tasks": yardstick.from_tasks}


def build_input(form: str, size: int) -> Any:
    """The seeded random DAG of ``size`` no-ops in ``form`` (one of ``FORMS``)."""
    return _BUILD[form](size, SEED)


def _baseline_input(form: str, plan: Any) -> Any:
    return parse_plan(plan) if form == "text" else plan


def _variants(form: str, size: int, engine: Engine, pool: ThreadPoolExecutor, limit: float,
              with_dask: bool) -> List[Variant]:
    plan = build_input(form, size)
    front = _FRONT[form]
    warm = size <= 1_000  # the sizes run smallest first: by the large ones every pool is warm
    variants = [
        Variant(f"ours/{form}", lambda: {"s": run_ours(engine, plan, expected=size).seconds}, warm=warm),
        Variant(f"yardstick/{form}", lambda: {"s": timed(
            lambda: yardstick.run_textbook(front(plan, THREAD_TOOLS), pool))}, warm=warm),
    ]
    if with_dask and size <= DASK_MAX:
        variants.append(Variant(f"dask/{form}", lambda: {"s": timed(
            lambda: yardstick.dask_get(front(plan, THREAD_TOOLS), WORKERS))}, warm=warm))
    if size <= BASELINE_MAX:
        variants.append(Variant(f"baseline/{form}", lambda: {"s": run_baseline(
            _baseline_input(form, plan), THREAD_TOOLS, max_workers=WORKERS, limit=limit)}, warm=False))
    return variants


def throughput(config: Config) -> Workload:
    """Microseconds per task on each input form and size; the scale curve; 100k-vs-1k flatness."""
    sizes = config.pick((100, 1_000, 10_000, 100_000), (100, 1_000, 3_000), (100, 1_000))
    limit = config.pick(5.0, 1.0)
    with_dask = yardstick.dask_available() is not None
    workload = Workload("throughput", f"random DAG of no-ops (<= 3 $N refs each, seed {SEED}), "
                        f"{WORKERS} workers; sizes {', '.join(f'{s:,}' for s in sizes)}",
                        {"sizes": list(sizes), "seed": SEED, "workers": WORKERS, "forms": list(FORMS),
                         "baseline_max": BASELINE_MAX, "baseline_limit_s": limit, "dask_max": DASK_MAX})
    if not with_dask:
        workload.skipped.append("dask: not installed (pip install dask, or make bench-dask)")
    samples: Dict[int, Dict[str, Dict[str, list]]] = {}
    with Engine(THREAD_TOOLS, max_workers=WORKERS) as engine, ThreadPoolExecutor(WORKERS) as pool:
        for size in sizes:
            variants = [v for form in FORMS for v in _variants(form, size, engine, pool, limit, with_dask)]
            samples[size] = alternate(variants, config.reps)
    for size in sizes:
        _size_lines(workload, size, samples[size], limit)
    scale: Dict[str, Dict[int, Optional[float]]] = {}
    for size in sizes:
        for name, found in samples[size].items():
            column, form = name.split("/")
            if column != "baseline":
                values = per_task(found["s"], size)
                scale.setdefault(f"{column} {form}", {})[size] = statistics.median(values)
    workload.params["scale"] = scale
    smallest = min(s for s in sizes if s >= 1_000)
    for form in FORMS:
        flat = Row(f"ours/{form}: us/task at {sizes[-1]:,} / at {smallest:,}", "x",
                   paired(per_task(samples[sizes[-1]][f"ours/{form}"]["s"], sizes[-1]),
                          per_task(samples[smallest][f"ours/{form}"]["s"], smallest)))
        workload.rows.append(flat)
        workload.lines.append(line(f"{form}: {sizes[-1]:,} vs {smallest:,}", "x",
                                   target=Target("<=", 1.2, "<= 1.2x"), ours=flat))
    return workload


def _size_lines(workload: Workload, size: int, samples: Dict[str, Dict[str, list]], limit: float) -> None:
    for form in FORMS:
        cells: Dict[str, Optional[Row]] = {}
        for column in ("ours", "yardstick", "dask", "baseline"):
            found = samples.get(f"{column}/{form}")
            if found is None:
                continue
            row = Row(f"{column}: {form}, {size:,} tasks, per task", "us", per_task(found["s"], size),
                      limit=limit if column == "baseline" else None, per=size)
            cells[column] = row
            workload.rows.append(row)
        if size < 1_000:
            continue  # on the scale curve only
        workload.lines.append(line(f"{form}, {size:,} tasks", "us/task", ratio="ours/yardstick",
                                   target=Target("<=", 0.8, "<= 0.8x yard"), **cells))
        if form == "tasks":
            workload.lines.append(line(f"Task objects, {size:,}", "us/task",
                                       target=Target("<=", 10.0, "<= 10 us"), ours=cells["ours"]))


# -- memory ----------------------------------------------------------------------------------------


def _traced(run: Callable[[], Any]) -> Dict[str, float]:
    """Bytes allocated at the peak of ``run()`` and still allocated once its result is dropped and
    ``gc.collect()`` ran, both over what was allocated before (tracemalloc: Python allocations)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = run()
        peak = tracemalloc.get_traced_memory()[1] - before
        del result
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return {"peak": peak, "held": held}


def memory(config: Config) -> Workload:
    """Peak bytes per task of one run on seed-form dicts, and memory still held after it."""
    size = config.pick(100_000, 3_000, 1_000)
    reps = min(config.reps, 3)
    plan = build_input("dicts", size)
    workload = Workload("memory", f"{size:,} no-op dicts (random DAG): tracemalloc peak and held after",
                        {"tasks": size, "form": "dicts", "seed": SEED, "workers": WORKERS, "reps": reps})
    with Engine(THREAD_TOOLS, max_workers=WORKERS) as engine, ThreadPoolExecutor(WORKERS) as pool:
        run_ours(engine, plan, expected=size)   # warm, outside the traces
        samples = alternate([
            Variant("ours", lambda: _traced(lambda: engine.run(plan)), warm=False),
            Variant("yardstick", lambda: _traced(
                lambda: yardstick.run_textbook(yardstick.from_dicts(plan, THREAD_TOOLS), pool)), warm=False),
        ], reps)
    peaks, helds = {}, {}
    for column in ("ours", "yardstick"):
        peaks[column] = Row(f"{column}: peak per task", "B", [b / size for b in samples[column]["peak"]])
        helds[column] = Row(f"{column}: held after the run, result dropped", "MB",
                            [b / 1e6 for b in samples[column]["held"]])
        workload.rows += [peaks[column], helds[column]]
    workload.lines = [
        line(f"peak, {size:,} tasks", "B/task", ratio="ours/yardstick", target=Target("<=", 800.0, "<= 800 B"),
             on_ratio=False, **peaks),
        line("held after, result dropped", "MB", target=Target("<=", 1.0, "<= 1 MB"), **helds),
    ]
    workload.skipped.append("dask and the baseline: not traced (dask ~0.3 ms/task; the baseline does not "
                            "finish large plans)")
    return workload
