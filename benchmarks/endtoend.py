"""End to end with a scripted model; replans with a cacheable tool; time- versus count-ordering.

The model is ``llmcompiler.ScriptedLLM`` (``chunk_size`` characters per chunk, ``delay`` seconds
before each: a stated token rate), behind ``PacedLLM``, which adds a fixed time to first token per
call (the server reading the prompt) and notes when each chunk was emitted. The tools sleep a stated
time per call. Every parameter is in the workload's ``params`` and printed with it.
"""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Sequence, Tuple

from llmcompiler import Engine, LLMCompiler, ScriptedLLM, ToolRegistry, parse_plan
from llmcompiler.baseline import run_sleep_retry

from .harness import BenchmarkError, Config, Row, Target, Variant, Workload, alternate, line, paired, scaled

__all__ = ["PacedLLM", "Scenario", "end_to_end", "replan_cache", "priority"]

CHARS_PER_TOKEN = 4


class PacedLLM:
    """A ``ScriptedLLM`` that waits ``first_token`` seconds before a call's first chunk and records
    ``(perf_counter(), chunk)`` for every chunk as it is handed out."""

    def __init__(self, responses: Sequence[str], *, tokens_per_s: float, first_token: float):
        self._scripted = ScriptedLLM(list(responses), chunk_size=CHARS_PER_TOKEN, delay=1.0 / tokens_per_s)
        self.first_token = first_token
        self.emitted: List[Tuple[float, str]] = []
        self.called: List[float] = []   # perf_counter() of each stream() call

    def stream(self, messages: Sequence[dict]) -> Iterator[str]:
        self.called.append(time.perf_counter())
        chunks = self._scripted.stream(messages)

        def paced() -> Iterator[str]:
            time.sleep(self.first_token)
            for chunk in chunks:
                self.emitted.append((time.perf_counter(), chunk))
                yield chunk
        return paced()

    def complete(self, messages: Sequence[dict]) -> str:
        return "".join(self.stream(messages))

    def line_end(self, text: str) -> float:
        """When the chunk that completed the first line containing ``text`` was emitted."""
        written = ""
        for at, chunk in self.emitted:
            before = written
            written += chunk
            found = written.find(text)
            if found >= 0 and "\n" in written[max(found, len(before)):] and \
                    written.find("\n", found) >= len(before):
                return at
        raise BenchmarkError(f"the model never finished a line with {text!r}")


class Scenario(NamedTuple):
    """The end-to-end workload: searches with latencies (in plan order), one dependent step."""

    tokens_per_s: float
    first_token: float
    searches: Tuple[Tuple[str, float], ...]
    combine_s: float
    combine_refs: Tuple[int, int]

    def scaled(self, factor: float) -> "Scenario":
        return self._replace(tokens_per_s=self.tokens_per_s / factor, first_token=self.first_token * factor,
                             searches=tuple((q, s * factor) for q, s in self.searches),
                             combine_s=self.combine_s * factor)


SCENARIO = Scenario(50.0, 0.5, (("Tokyo", 0.6), ("Delhi", 1.0), ("Shanghai", 0.3), ("Sao Paulo", 0.8),
                                ("Mexico City", 0.2), ("Cairo", 0.5), ("Mumbai", 0.9), ("Beijing", 0.4)),
                    0.2, (2, 7))


class _Tools:
    """``search`` and ``combine`` sleeping the scenario's latencies; the entry time of every call."""

    def __init__(self, scenario: Scenario):
        self.latency = dict(scenario.searches)
        self.combine_s = scenario.combine_s
        self.entered: Dict[str, float] = {}
        self._lock = threading.Lock()
        self.registry = ToolRegistry()
        self.registry.register(self.search, name="search")
        self.registry.register(self.combine, name="combine")

    def search(self, query: str) -> str:
        """Search the web for ``query``."""
        with self._lock:
            self.entered.setdefault(query, time.perf_counter())
        time.sleep(self.latency[query])
        return f"{query}: {len(query)} million people"

    def combine(self, first: str, second: str) -> str:
        """Compare two findings."""
        time.sleep(self.combine_s)
        return f"compared {first!r} with {second!r}"


def _plan(scenario: Scenario) -> str:
    lines = ["Thought: I need the population of every city, then one comparison."]
    lines += [f'{n}. search("{query}")' for n, (query, _) in enumerate(scenario.searches, start=1)]
    first, second = scenario.combine_refs
    count = len(scenario.searches)
    lines += [f"{count + 1}. combine(${first}, ${second})", f"{count + 2}. join()<END_OF_PLAN>"]
    return "\n".join(lines) + "\n"


JOINER = "Thought: Every figure is in, and the comparison.\nAction: Finish(Delhi is larger than Mumbai.)\n"


def _react_turns(scenario: Scenario) -> List[str]:
    turns = [f'Thought: Next I need the population of {query}.\nAction: search("{query}")\n'
             for query, _ in scenario.searches]
    first, second = scenario.combine_refs
    turns.append(f"Thought: Now compare the two.\nAction: combine(${first}, ${second})\n")
    turns.append("Thought: I know the answer.\nFinal Answer: Delhi is larger than Mumbai.\n")
    return turns


def _react(scenario: Scenario, engine: Engine) -> Dict[str, float]:
    """(a) One tool call per model turn: stream the turn, run its call, then the next turn."""
    llm = PacedLLM(_react_turns(scenario), tokens_per_s=scenario.tokens_per_s, first_token=scenario.first_token)
    start = time.perf_counter()
    observations: Dict[int, Any] = {}
    for number in range(len(scenario.searches) + 2):
        text = llm.complete([{"role": "user", "content": "continue"}])
        if "Action:" not in text:
            break
        call = text.split("Action:", 1)[1].strip()
        task = parse_plan(f"{number + 1}. {call}\n", known=observations)[0]
        observations.update(engine.run([task], known=observations).observations)
    return {"answer": time.perf_counter() - start}


def _plan_then_run(scenario: Scenario, engine: Engine, tools: _Tools, baseline: bool) -> Dict[str, float]:
    """(b)/(d) Stream the whole plan, then run it (ours or the baseline), then join."""
    llm = PacedLLM([_plan(scenario), JOINER], tokens_per_s=scenario.tokens_per_s,
                   first_token=scenario.first_token)
    start = time.perf_counter()
    tasks = parse_plan(llm.complete([{"role": "user", "content": "plan"}]))
    if baseline:
        functions = {"search": tools.search, "combine": tools.combine}
        observations = run_sleep_retry(tasks, functions, max_workers=len(tasks), timeout=60)
    else:
        observations = engine.run(tasks).observations
    if len(observations) != len(tasks):
        raise BenchmarkError(f"{len(observations)} of {len(tasks)} tasks finished")
    llm.complete([{"role": "user", "content": "join"}])
    return {"answer": time.perf_counter() - start}


def _streamed(scenario: Scenario, engine: Engine, tools: _Tools) -> Dict[str, float]:
    """(c) ``LLMCompiler``: the plan's tasks run while the plan is written."""
    llm = PacedLLM([_plan(scenario), JOINER], tokens_per_s=scenario.tokens_per_s,
                   first_token=scenario.first_token)
    tools.entered.clear()
    compiler = LLMCompiler(llm, engine=engine, max_replans=0)
    start = time.perf_counter()
    result = compiler.run("Which of these cities is the most populous?")
    answered = time.perf_counter() - start
    if result.answer is None or len(result.observations) != len(scenario.searches) + 1:
        raise BenchmarkError(f"the compiler answered {result.answer!r} with {len(result.observations)} tasks")
    first_query = scenario.searches[0][0]
    return {"answer": answered, "first tool": tools.entered[first_query] - llm.line_end(f'"{first_query}")'),
            "over ideal": answered - (_ideal_answer(scenario, llm) - start)}


def _ideal_answer(scenario: Scenario, llm: PacedLLM) -> float:
    """When (c) would answer with a scheduler that costs nothing: each task starts the moment its line
    was emitted (or its inputs were done), and the joiner is called when the plan and every task are
    done, taking as long as the model really took to answer it (its own sleeps included)."""
    ends = {n: llm.line_end(f'"{query}")') + seconds
            for n, (query, seconds) in enumerate(scenario.searches, start=1)}
    first, second = scenario.combine_refs
    combined = max(llm.line_end("combine("), ends[first], ends[second]) + scenario.combine_s
    joiner = llm.emitted[-1][0] - llm.called[-1]
    return max(llm.line_end("<END_OF_PLAN>"), combined, *ends.values()) + joiner


def end_to_end(config: Config) -> Workload:
    """Time to answer: (a) ReAct-style, (b) plan then execute then join, (c) streamed (ours), (d) the
    same as (b) on the baseline scheduler; and time to first tool in (c)."""
    factor = config.pick(1.0, 0.1, 0.03)
    scenario = SCENARIO.scaled(factor)
    tools = _Tools(scenario)
    workload = Workload("e2e", f"scripted model at {scenario.tokens_per_s:g} tokens/s ({CHARS_PER_TOKEN} chars "
                        f"each), first token after {scenario.first_token:g} s; {len(scenario.searches)} searches "
                        f"of {min(s for _, s in scenario.searches):g}-{max(s for _, s in scenario.searches):g} s, "
                        f"then combine(${scenario.combine_refs[0]}, ${scenario.combine_refs[1]}) "
                        f"of {scenario.combine_s:g} s", scenario._asdict() | {"plan": _plan(scenario),
                                                                            "joiner": JOINER})
    with Engine(tools.registry) as engine:
        samples = alternate([
            Variant("react", lambda: _react(scenario, engine), warm=False),
            Variant("plan-run", lambda: _plan_then_run(scenario, engine, tools, False), warm=False),
            Variant("streamed", lambda: _streamed(scenario, engine, tools), warm=False),
            Variant("baseline", lambda: _plan_then_run(scenario, engine, tools, True), warm=False),
        ], config.reps)
    rows = {name: Row(f"({key}) {label}: time to answer", "s", samples[name]["answer"]) for name, key, label in (
        ("react", "a", "one call per turn"), ("plan-run", "b", "plan, then run, then join"),
        ("streamed", "c", "LLMCompiler, streamed"), ("baseline", "d", "plan, then baseline, then join"))}
    speedups = {against: Row(f"speedup of (c) over ({key})", "x", paired(samples[against]["answer"],
                                                                        samples["streamed"]["answer"]))
                for against, key in (("react", "a"), ("plan-run", "b"), ("baseline", "d"))}
    first = Row("(c) line emitted -> its tool entered", "ms", scaled(samples["streamed"]["first tool"], "ms"))
    over = Row("(c) time to answer over its ideal", "ms", scaled(samples["streamed"]["over ideal"], "ms"),
               note="ideal: tasks start as their lines are emitted; the join costs only the model")
    workload.rows = list(rows.values()) + list(speedups.values()) + [first, over]
    workload.lines = [
        line("(a) ReAct: answer", "s", ours=rows["react"]),
        line("(b) plan, run, join: answer", "s", ours=rows["plan-run"]),
        line("(c) streamed vs (d) baseline", "s", ratio="baseline/ours", on_ratio=False, ours=rows["streamed"],
             baseline=rows["baseline"], note="(d) plan, then the sleep-retry scheduler, then join"),
        line("speedup (c) over (a) ReAct", "x", target=Target(">=", 3.7, ">= 3.7x"), ours=speedups["react"]),
        line("speedup (c) over (b)", "x", target=Target(">=", 1.3, ">= 1.3x"), ours=speedups["plan-run"]),
        line("(c) first line emitted -> tool", "ms", target=Target("<=", 1.0, "<= 1 ms"), ours=first),
        line("(c) answer over its ideal", "ms", ours=over,
             note="the engine's whole cost in (c); the speedups' limit is the workload's shape"),
    ]
    return workload


# -- features coming from the engine: guarded ------------------------------------------------------


def _supports(function: Any, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def replan_cache(config: Config) -> Workload:
    """A question answered in two plans, the second repeating four of the first's calls: a tool
    registered with ``cache=True`` against the same tool uncached."""
    step = config.pick(0.2, 0.05, 0.01)
    workload = Workload("cache", f"two plans; plan 2 repeats 4 searches of plan 1 ({step:g} s each)",
                        {"search_s": step})
    if not _supports(ToolRegistry.register, "cache"):
        workload.skipped.append("ToolRegistry.register(..., cache=True) is not in this engine yet")
        return workload
    queries = ["a", "b", "c", "d"]
    plan1 = "".join(f'{n}. search("{q}")\n' for n, q in enumerate(queries, 1)) + "5. join()\n"
    plan2 = "".join(f'{n}. search("{q}")\n' for n, q in enumerate(queries, 6)) + "10. join()\n"
    replan = "Thought: check again.\nAction: Replan(the figures look old)\n"
    finish = "Thought: done.\nAction: Finish(a)\n"

    def answer(cached: bool) -> Dict[str, float]:
        registry = ToolRegistry()
        registry.register(lambda query: (time.sleep(step), query)[1], name="search", cache=cached)
        llm = ScriptedLLM([plan1, replan, plan2, finish])
        with LLMCompiler(llm, registry, max_replans=1) as compiler:
            start = time.perf_counter()
            result = compiler.run("question")
            seconds = time.perf_counter() - start
        hits = sum(1 for event in result.events if getattr(event, "cached", False))
        return {"s": seconds, "hits": float(hits)}

    samples = alternate([Variant("cached", lambda: answer(True), warm=False),
                         Variant("uncached", lambda: answer(False), warm=False)], config.reps)
    cached = Row("cache=True: time to answer", "s", samples["cached"]["s"])
    uncached = Row("no cache: time to answer", "s", samples["uncached"]["s"])
    hits = Row("cache=True: calls answered from the cache", "x", samples["cached"]["hits"])
    workload.rows = [cached, uncached, hits]
    workload.lines = [line("replan, 4 repeated calls", "s", ratio="ours/yardstick", on_ratio=False, ours=cached,
                           yardstick=uncached, note="yardstick column: the same tool without cache"),
                      line("calls answered from the cache", "calls", ours=hits)]
    return workload


def priority(config: Config) -> Workload:
    """A DAG of mixed latencies on 2 workers: ``priority="time"`` against ``priority="count"``."""
    unit = config.pick(0.02, 0.005, 0.002)
    workload = Workload("priority", f"3 chains (long tools x1, short x5) + 6 fillers on 2 workers, unit {unit:g} s",
                        {"unit_s": unit, "workers": 2})
    if not _supports(Engine.__init__, "priority"):
        workload.skipped.append("Engine(..., priority=...) is not in this engine yet")
        return workload
    from . import plans
    from .tools import THREAD_TOOLS

    # One long chain of few slow tasks and two of many quick ones: counting tasks favours the quick
    # chains; estimating time favours the slow one, whose length sets the makespan.
    tasks = plans.mixed_latency(unit)
    with Engine(THREAD_TOOLS, max_workers=2, priority="time") as by_time, \
            Engine(THREAD_TOOLS, max_workers=2, priority="count") as by_count:
        samples = alternate([Variant("time", lambda: {"s": _makespan(by_time, tasks)}),
                             Variant("count", lambda: {"s": _makespan(by_count, tasks)})], config.reps)
    rows = {name: Row(f"priority={name!r}: makespan", "ms", scaled(samples[name]["s"], "ms"))
            for name in ("time", "count")}
    workload.rows = list(rows.values())
    workload.lines = [line("makespan, time vs count", "ms", ratio="ours/yardstick", on_ratio=False,
                           ours=rows["time"], yardstick=rows["count"],
                           note="ours: priority='time'; yardstick column: priority='count'")]
    return workload


def _makespan(engine: Engine, tasks: List[Any]) -> float:
    start = time.perf_counter()
    result = engine.run(tasks)
    if not result.ok:
        raise BenchmarkError("a task failed")
    return time.perf_counter() - start
