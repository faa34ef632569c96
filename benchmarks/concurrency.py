"""Streaming and sharing: first-task latency, many runs at once on one engine, a slow ``on_event``.

Tools here are ``benchmarks.tools.stamp`` (it returns ``perf_counter()`` on entry, so a tool's real
start is read from its own observation) and ``sleep``/``gather``.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, NamedTuple

from llmcompiler import Engine, PlanParser

from . import plans, yardstick
from .harness import (BenchmarkError, Config, Row, Target, Variant, Workload, alternate, line, paired,
                      scaled)
from .tools import THREAD_TOOLS

__all__ = ["first_task", "many_runs", "slow_on_event"]

# -- first task ------------------------------------------------------------------------------------

STREAMED_PLAN = ["1. stamp(0.001)\n", "2. stamp(0.001, $1)\n", "3. stamp(0.001)\n", "4. join()\n"]
LINE_GAP = 0.005   # seconds between plan lines, as a model streams them


def _ours_first(_: Any) -> Dict[str, float]:
    """A fresh engine's first run, fed line by line: parsed -> started event, and -> the tool's own
    entry, for task 1 and (median) for the tasks after it."""
    with Engine(THREAD_TOOLS) as engine:
        run = engine.start()
        parser = PlanParser()
        parsed: Dict[int, float] = {}
        for text in STREAMED_PLAN:
            for task in parser.feed(text):
                parsed[task.idx] = time.perf_counter()
                run.add(task)
            time.sleep(LINE_GAP)
        parser.close()
        run.close()
        result = run.wait(30)
    started = {e.task: e.time for e in result.events if e.kind == "started"}
    if set(started) != set(parsed):
        raise BenchmarkError(f"started events for {sorted(started)}, parsed {sorted(parsed)}")
    later = [started[idx] - parsed[idx] for idx in parsed if idx != 1]
    return {"event": started[1] - parsed[1], "tool": result.observations[1] - parsed[1],
            "later": statistics.median(later)}


def _yardstick_first(_: Any) -> Dict[str, float]:
    """The same lines, each submitted to a fresh ``ThreadPoolExecutor`` as it is parsed."""
    parser = PlanParser()
    with ThreadPoolExecutor(32) as pool:
        futures, parsed = {}, {}
        for text in STREAMED_PLAN:
            for task in parser.feed(text):
                parsed[task.idx] = time.perf_counter()
                futures[task.idx] = pool.submit(THREAD_TOOLS[task.tool], task.args[0])
            time.sleep(LINE_GAP)
        starts = {idx: future.result() for idx, future in futures.items()}
    return {"tool": starts[1] - parsed[1]}


def first_task(config: Config) -> Workload:
    """From a plan line being parsed to its task starting, on a fresh engine's first run."""
    workload = Workload("firsttask", "fresh Engine, first run, plan streamed line by line through PlanParser",
                        {"plan": "".join(STREAMED_PLAN), "line_gap_s": LINE_GAP})
    samples = alternate([Variant("ours", lambda: _ours_first(None)),
                         Variant("yardstick", lambda: _yardstick_first(None))], config.reps)
    event = Row("ours: task 1 parsed -> started event", "ms", scaled(samples["ours"]["event"], "ms"))
    tool = Row("ours: task 1 parsed -> tool entered", "ms", scaled(samples["ours"]["tool"], "ms"))
    later = Row("ours: later tasks, parsed -> started (median)", "ms", scaled(samples["ours"]["later"], "ms"))
    plain = Row("fresh ThreadPoolExecutor: parsed -> tool entered", "ms",
                scaled(samples["yardstick"]["tool"], "ms"))
    workload.rows = [event, tool, later, plain]
    workload.lines = [
        line("task 1: parsed -> started event", "ms", target=Target("<=", 1.0, "<= 1 ms"), ours=event),
        line("task 1: parsed -> tool entered", "ms", ratio="ours/yardstick", on_ratio=False, ours=tool,
             yardstick=plain, note="yardstick: a fresh ThreadPoolExecutor's submit"),
        line("later tasks: parsed -> started", "ms", ours=later),
    ]
    return workload


# -- many runs at once -----------------------------------------------------------------------------

FAN, STEP = 5, 0.020   # each run: FAN sleeps of STEP seconds, then a gather over them


class Load(NamedTuple):
    """One closed-loop load: ``clients`` threads, each doing ``runs`` runs back to back, on a pool of
    ``workers`` threads."""

    clients: int
    workers: int
    runs: int

    @property
    def ideal(self) -> float:
        """Runs per second if every run took STEP and every worker were busy with sleeps."""
        return min(self.clients / STEP, self.workers / (FAN * STEP))


def _closed_loop(load: Load, run_one: Callable[[], Any]) -> Dict[str, float]:
    latencies: List[float] = []
    lock = threading.Lock()
    errors: List[BaseException] = []

    def client() -> None:
        try:
            mine = []
            for _ in range(load.runs):
                start = time.perf_counter()
                run_one()
                mine.append(time.perf_counter() - start)
            with lock:
                latencies.extend(mine)
        except BaseException as err:  # reported below; a silent client would inflate the figures
            errors.append(err)

    clients = [threading.Thread(target=client, name=f"benchmarks-client-{n}") for n in range(load.clients)]
    start = time.perf_counter()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise BenchmarkError(f"a client failed: {errors[0]!r}")
    latencies.sort()
    return {"rate": len(latencies) / wall, "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def many_runs(config: Config) -> Workload:
    """1, 8 and 32 concurrent runs of a 6-task plan: runs per second against the ideal, p50/p99."""
    runs = config.pick(1, 0.25, 0.1)
    loads = {"1 run, 64 threads": Load(1, 64, int(60 * runs)), "8 runs, 64 threads": Load(8, 64, int(40 * runs)),
             "32 runs, 32 threads": Load(32, 32, int(20 * runs))}
    tasks = plans.fan_out_in(FAN, STEP)
    workload = Workload("runs", f"concurrent runs on one engine, each {FAN} x sleep({STEP * 1e3:g} ms) -> gather",
                        {name: load._asdict() | {"ideal_runs_per_s": load.ideal} for name, load in loads.items()})
    calls = yardstick.from_tasks(tasks, THREAD_TOOLS)
    with Engine(THREAD_TOOLS, max_workers=64) as e64, Engine(THREAD_TOOLS, max_workers=32) as e32, \
            ThreadPoolExecutor(64) as p64, ThreadPoolExecutor(32) as p32:
        variants = []
        for name, load in loads.items():
            engine, pool = (e64, p64) if load.workers == 64 else (e32, p32)
            variants.append(Variant(f"ours {name}", lambda load=load, engine=engine: _closed_loop(
                load, lambda: engine.run(tasks))))
            variants.append(Variant(f"yardstick {name}", lambda load=load, pool=pool: _closed_loop(
                load, lambda: yardstick.run_textbook(calls, pool))))
        samples = alternate(variants, config.reps)
    for who in ("ours", "yardstick"):
        lone = samples[f"{who} 1 run, 64 threads"]["p50"]
        for name, load in loads.items():
            found = samples[f"{who} {name}"]
            found["p99/lone"] = paired(found["p99"], lone)
            found["%ideal"] = [rate / load.ideal * 100 for rate in found["rate"]]
    _runs_lines(workload, loads, samples)
    return workload


def _runs_lines(workload: Workload, loads: Dict[str, Load], samples: Dict[str, Dict[str, list]]) -> None:
    def rows(name: str, metric: str, unit: str, label: str, factor: float = 1.0) -> Dict[str, Row]:
        made = {who: Row(f"{who}: {name}, {label}", unit,
                         [None if v is None else v * factor for v in samples[f"{who} {name}"][metric]])
                for who in ("ours", "yardstick")}
        workload.rows += list(made.values())
        return made

    lone = rows("1 run, 64 threads", "p50", "ms", "latency p50", 1e3)
    workload.lines.append(line("lone run: latency p50", "ms", ratio="ours/yardstick", on_ratio=False,
                               note=f"ideal {STEP * 1e3:g} ms", **lone))
    for name in ("8 runs, 64 threads", "32 runs, 32 threads"):
        rate = rows(name, "rate", "runs/s", "runs per second")
        workload.lines.append(line(f"{name}, ideal {loads[name].ideal:g}", "runs/s",
                                   ratio="ours/yardstick", on_ratio=False, **rate))
    p99 = rows("8 runs, 64 threads", "p99/lone", "x", "p99 / lone p50")
    workload.lines.append(line("8 runs, 64 thr: p99 / lone p50", "x", target=Target("<=", 1.3, "<= 1.3x"), **p99))
    share = rows("32 runs, 32 threads", "%ideal", "%", "% of ideal runs/s")
    workload.lines.append(line("32 runs, 32 thr: % of ideal", "%", target=Target(">=", 90.0, ">= 90%"), **share))


# -- a slow on_event -------------------------------------------------------------------------------

CALLBACK_S = 0.1   # --tiny: a tenth


def _starts(engine: Engine, tasks: List[Any], on_event: Any) -> Dict[str, float]:
    start = time.perf_counter()
    result = engine.run(tasks, on_event=on_event)
    if len(result.observations) != len(tasks):
        raise BenchmarkError(f"{len(result.observations)} of {len(tasks)} tasks finished")
    return {"last start": max(result.observations.values()) - start}


def slow_on_event(config: Config) -> Workload:
    """Five independent 20 ms tools: when the last one started, with no callback and with an
    ``on_event`` that sleeps 0.1 s per event."""
    count, step, callback_s = 5, 0.020, config.pick(CALLBACK_S, CALLBACK_S, CALLBACK_S / 10)
    tasks = plans.independent(count, "stamp", step)
    workload = Workload("onevent", f"{count} x stamp({step * 1e3:g} ms), {count} workers; on_event sleeping "
                        f"{callback_s:g} s", {"tasks": count, "sleep_s": step, "callback_s": callback_s})
    with Engine(THREAD_TOOLS, max_workers=count) as engine:
        samples = alternate([
            Variant("none", lambda: _starts(engine, tasks, None)),
            Variant("slow", lambda: _starts(engine, tasks, lambda event: time.sleep(callback_s)), warm=False),
        ], config.reps)
    without = Row("ours: last tool start, no on_event", "ms", scaled(samples["none"]["last start"], "ms"))
    with_slow = Row(f"ours: last tool start, on_event {callback_s:g} s", "ms",
                    scaled(samples["slow"]["last start"], "ms"))
    added = Row("ours: start delay added", "ms", scaled(
        [s - n for s, n in zip(samples["slow"]["last start"], samples["none"]["last start"])], "ms"))
    workload.rows = [without, with_slow, added]
    workload.lines = [line("last tool start, no on_event", "ms", ours=without),
                      line(f"last tool start, on_event {callback_s:g} s", "ms", ours=with_slow),
                      line("start delay the callback adds", "ms", target=Target("<=", 1.0, "<= 1 ms"), ours=added)]
    return workload
