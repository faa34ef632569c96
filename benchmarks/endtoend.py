"""End to end with a scripted model; replans with a cacheable tool; time- versus count-ordering.

The model is ``llmcompiler.ScriptedLLM`` (a token is ``CHARS_PER_TOKEN`` characters, one chunk per
token), behind ``PacedLLM``, which hands chunk ``k`` of a call out ``first_token + k / tokens_per_s``
seconds after the call (a fixed time to the first token, the server reading the prompt, then a steady
token rate) and notes when each chunk was emitted. The tools sleep a stated time per call. Every
parameter is in the workload's ``params``.

End to end, one question is answered four ways, with the same model pacing, the same tools, the same
engine and the same last model call (a thought and ``Finish(...)``):

(a) ReAct: one model turn per tool call (a thought and one action), the call run, then the next turn;
(b) plan, then run, then join: the whole plan streamed, then run on the engine, then the joiner;
(c) ``LLMCompiler``: each task starts as soon as its line is written, the joiner once all are done;
(d) as (c), the tasks handed to the sleep-retry baseline as they are parsed (as the widely copied
    examples stream their planner into that scheduler).

``e2e`` measures the headline ``Setting``; ``e2e-sweep`` (``benchmarks/e2e_sweep.py``) every one of
``PACES`` x ``SPANS``, and the ``SHAPES`` at the headline.
"""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from llmcompiler import Engine, LLMCompiler, PlanParser, ScriptedLLM, ToolRegistry, parse_plan
from llmcompiler.baseline import run_sleep_retry

from .harness import BenchmarkError, Config, Row, Target, Variant, Workload, alternate, line, paired, scaled

__all__ = ["PacedLLM", "Pace", "Span", "Setting", "Shape", "Scenario", "PACES", "SPANS", "HEADLINE", "PLAN",
           "SHAPES", "REACT_TARGET", "PLAN_RUN_TARGET", "streaming_ceiling", "measure", "end_to_end",
           "replan_cache", "priority"]

CHARS_PER_TOKEN = 4
REACT_TARGET, PLAN_RUN_TARGET = 3.7, 1.3   # the targets for (c) over (a) and over (b)


class PacedLLM:
    """A ``ScriptedLLM`` streamed at a steady pace: chunk ``k`` of a call (from 1) is handed out
    ``first_token + k / tokens_per_s`` seconds after the call, whatever the time ``sleep`` overshoots
    by or the reader takes between chunks (a server streams on while its client works). Records
    ``(perf_counter(), chunk)`` for every chunk as it is handed out."""

    def __init__(self, responses: Sequence[str], *, tokens_per_s: float, first_token: float):
        self._scripted = ScriptedLLM(list(responses), chunk_size=CHARS_PER_TOKEN)
        self.interval = 1.0 / tokens_per_s
        self.first_token = first_token
        self.emitted: List[Tuple[float, str]] = []
        self.called: List[float] = []   # perf_counter() of each stream() call

    def stream(self, messages: Sequence[dict]) -> Iterator[str]:
        called = time.perf_counter()
        self.called.append(called)
        chunks = self._scripted.stream(messages)

        def paced() -> Iterator[str]:
            for number, chunk in enumerate(chunks, start=1):
                wait = called + self.first_token + number * self.interval - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
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


# -- the settings ----------------------------------------------------------------------------------


class Pace(NamedTuple):
    """How the model streams: ``tokens_per_s`` once ``first_token`` seconds have passed, every call."""

    tokens_per_s: float
    first_token: float


class Span(NamedTuple):
    """Tool latencies: the searches are spread over ``low`` to ``high`` seconds; combine takes ``low``."""

    low: float
    high: float


class Setting(NamedTuple):
    """One point of the sweep: a model pace and a span of tool latencies."""

    pace: Pace
    span: Span

    @property
    def label(self) -> str:
        return (f"{self.pace.tokens_per_s:g} t/s {self.pace.first_token:g} s, "
                f"tools {self.span.low:g}-{self.span.high:g} s")


class Shape(NamedTuple):
    """A plan: its searches in plan order, each with its place in the span (0: the span's low end,
    1: its high end), and the two tasks ``combine`` compares."""

    name: str
    searches: Tuple[Tuple[str, float], ...]
    combine_refs: Tuple[int, int]


SEARCHES = (("Tokyo", 0.5), ("Delhi", 1.0), ("Shanghai", 0.125), ("Sao Paulo", 0.75), ("Mexico City", 0.0),
            ("Cairo", 0.375), ("Mumbai", 0.875), ("Beijing", 0.25))
PLAN = Shape("8 searches", SEARCHES, (2, 7))   # the question of every setting: Delhi against Mumbai
_BY_YEAR = tuple((f"{city} {year}", place) for city, place in SEARCHES for year in (2000, 2020))
# Beyond the sweep, at the headline setting only: the same plan with its longest chain first (an order
# no planner can know), and each city asked for two years (as written, and longest first). They show
# how much of the ceiling the plan's order leaves, and what a longer plan allows.
SHAPES = (Shape("8, longest first", tuple(sorted(SEARCHES, key=lambda s: -s[1])), (1, 2)),
          Shape("16, as written", _BY_YEAR, (3, 13)),
          Shape("16, longest first", tuple(sorted(_BY_YEAR, key=lambda s: -s[1])), (1, 3)))
# Model paces of hosted models (tokens per second, seconds to the first token) and tool spans: local
# lookups, web searches, page reads or sub-agent calls. The headline: a hosted model, web searches.
PACES = (Pace(40.0, 1.0), Pace(100.0, 0.6), Pace(200.0, 0.4))
SPANS = (Span(0.05, 0.2), Span(0.2, 1.0), Span(1.0, 3.0))
HEADLINE = Setting(Pace(100.0, 0.6), Span(0.2, 1.0))


class Scenario(NamedTuple):
    """A setting made concrete: searches with latencies (in plan order), one dependent step."""

    tokens_per_s: float
    first_token: float
    searches: Tuple[Tuple[str, float], ...]
    combine_s: float
    combine_refs: Tuple[int, int]

    @classmethod
    def of(cls, setting: Setting, factor: float = 1.0, shape: Shape = PLAN) -> "Scenario":
        """``shape`` at ``setting``, every time multiplied by ``factor`` (token rates divided by it)."""
        low, high = setting.span
        searches = tuple((query, (low + place * (high - low)) * factor) for query, place in shape.searches)
        return cls(setting.pace.tokens_per_s / factor, setting.pace.first_token * factor, searches,
                   low * factor, shape.combine_refs)


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
        self.functions = {"search": self.search, "combine": self.combine}

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


# The last model call of every way: the joiner's answer in (b)-(d), ReAct's last turn in (a).
JOINER = "Thought: Every figure is in, and the comparison.\nAction: Finish(Delhi is larger than Mumbai.)\n"


def _react_turns(scenario: Scenario) -> List[str]:
    turns = [f'Thought: Next I need the population of {query}.\nAction: search("{query}")\n'
             for query, _ in scenario.searches]
    first, second = scenario.combine_refs
    return turns + [f"Thought: Now compare the two.\nAction: combine(${first}, ${second})\n", JOINER]


def _model(scenario: Scenario, responses: Sequence[str]) -> PacedLLM:
    return PacedLLM(responses, tokens_per_s=scenario.tokens_per_s, first_token=scenario.first_token)


def _expect(observations: Dict[int, Any], scenario: Scenario, who: str) -> None:
    if len(observations) != len(scenario.searches) + 1:
        raise BenchmarkError(f"{who}: {len(observations)} of {len(scenario.searches) + 1} tasks finished")


# -- the four ways ---------------------------------------------------------------------------------


def _react(scenario: Scenario, engine: Engine) -> Dict[str, float]:
    """(a) One tool call per model turn: stream the turn, run its call, then the next turn; the
    model sees every observation before its next turn, so nothing overlaps."""
    turns = _react_turns(scenario)
    llm = _model(scenario, turns)
    start = time.perf_counter()
    observations: Dict[int, Any] = {}
    for number in range(1, len(turns) + 1):
        action = llm.complete([{"role": "user", "content": "continue"}]).split("Action:", 1)[1].strip()
        if action.startswith("Finish("):
            break
        task = parse_plan(f"{number}. {action}\n", known=observations)[0]
        observations.update(engine.run([task], known=observations).observations)
    answered = time.perf_counter() - start
    _expect(observations, scenario, "ReAct")
    return {"answer": answered}


def _plan_then_run(scenario: Scenario, engine: Engine) -> Dict[str, float]:
    """(b) Stream the whole plan, then run it on the engine, then join."""
    llm = _model(scenario, [_plan(scenario), JOINER])
    start = time.perf_counter()
    tasks = parse_plan(llm.complete([{"role": "user", "content": "plan"}]))
    _expect(engine.run(tasks).observations, scenario, "plan, then run")
    llm.complete([{"role": "user", "content": "join"}])
    return {"answer": time.perf_counter() - start}


def _streamed(scenario: Scenario, engine: Engine, tools: _Tools) -> Dict[str, float]:
    """(c) ``LLMCompiler``: the plan's tasks run while the plan is written."""
    llm = _model(scenario, [_plan(scenario), JOINER])
    tools.entered.clear()
    compiler = LLMCompiler(llm, engine=engine, max_replans=0)
    start = time.perf_counter()
    result = compiler.run("Which of these cities is the most populous?")
    answered = time.perf_counter() - start
    if result.answer is None:
        raise BenchmarkError(f"the compiler gave no answer after {len(result.observations)} tasks")
    _expect(result.observations, scenario, "LLMCompiler")
    waits = [tools.entered[query] - llm.line_end(f'"{query}")') for query, _ in scenario.searches]
    return {"answer": answered, "first tool": waits[0], "worst tool": max(waits),
            "over ideal": answered - (_ideal_answer(scenario, llm) - start)}


def _streamed_baseline(scenario: Scenario, tools: _Tools) -> Dict[str, float]:
    """(d) The plan parsed as it streams, each task handed to the sleep-retry baseline when parsed."""
    llm = _model(scenario, [_plan(scenario), JOINER])
    start = time.perf_counter()

    def streamed_tasks() -> Iterator[Any]:
        parser = PlanParser()
        for chunk in llm.stream([{"role": "user", "content": "plan"}]):
            yield from parser.feed(chunk)
        yield from parser.close()

    observations = run_sleep_retry(streamed_tasks(), tools.functions, max_workers=len(scenario.searches) + 1,
                                   timeout=60)
    _expect(observations, scenario, "baseline")
    llm.complete([{"role": "user", "content": "join"}])
    return {"answer": time.perf_counter() - start}


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


def streaming_ceiling(scenario: Scenario) -> float:
    """The most that streaming this plan could gain over (b), from the workload's own numbers, for a
    scheduler that costs nothing and a longest chain of tools that starts at the first task's line:
    ``(P + T + J) / (max(P, L1 + T) + J)``, with ``P`` when the plan is written, ``L1`` when its first
    task's line is, ``T`` the longest chain of tools and ``J`` the joiner's call; (b) takes ``P + T + J``.
    """
    def written(characters: int) -> float:   # a chunk per token, each after 1 / tokens_per_s
        return scenario.first_token + -(-characters // CHARS_PER_TOKEN) / scenario.tokens_per_s

    plan = _plan(scenario)
    latency = [seconds for _, seconds in scenario.searches]
    first, second = scenario.combine_refs
    chain = max(max(latency), max(latency[first - 1], latency[second - 1]) + scenario.combine_s)
    whole, joiner = written(len(plan)), written(len(JOINER))
    first_line = written(plan.index("\n", plan.index("1. ")) + 1)
    return (whole + chain + joiner) / (max(whole, first_line + chain) + joiner)


def measure(scenario: Scenario, reps: int) -> Dict[str, Dict[str, List[Optional[float]]]]:
    """The four ways, alternated ``reps`` times on one engine: ``{way: {metric: samples}}``."""
    tools = _Tools(scenario)
    with Engine(tools.registry) as engine:
        return alternate([
            Variant("react", lambda: _react(scenario, engine), warm=False),
            Variant("plan-run", lambda: _plan_then_run(scenario, engine), warm=False),
            Variant("streamed", lambda: _streamed(scenario, engine, tools), warm=False),
            Variant("baseline", lambda: _streamed_baseline(scenario, tools), warm=False),
        ], reps)


def _title(setting: Setting, factor: float) -> str:
    stated = Scenario.of(setting)
    times = [seconds for _, seconds in stated.searches]
    return (f"scripted model at {stated.tokens_per_s:g} tokens/s ({CHARS_PER_TOKEN} chars each), first token "
            f"after {stated.first_token:g} s; {len(times)} searches of {min(times):g}-{max(times):g} s, then "
            f"combine(${stated.combine_refs[0]}, ${stated.combine_refs[1]}) of {stated.combine_s:g} s"
            + ("" if factor == 1 else f"; every time x {factor:g}"))


def _params(setting: Setting, scenario: Scenario, factor: float) -> Dict[str, Any]:
    plan = _plan(scenario)
    return scenario._asdict() | {"setting": setting.label, "time_factor": factor, "plan": plan,
                                 "plan_tokens": -(-len(plan) // CHARS_PER_TOKEN), "joiner": JOINER,
                                 "react_turns": _react_turns(scenario),
                                 "ceiling_over_b": streaming_ceiling(Scenario.of(setting))}


def end_to_end(config: Config) -> Workload:
    """Time to answer at the headline setting: (a) ReAct, (b) plan then run then join, (c) streamed
    (ours), (d) streamed into the baseline scheduler; and, in (c), from a line emitted to its tool."""
    factor = config.pick(1.0, 0.03, 0.02)
    scenario = Scenario.of(HEADLINE, factor)
    workload = Workload("e2e", _title(HEADLINE, factor), _params(HEADLINE, scenario, factor))
    samples = measure(scenario, config.reps)
    rows = {name: Row(f"({key}) {label}: time to answer", "s", samples[name]["answer"]) for name, key, label in (
        ("react", "a", "ReAct, one call per turn"), ("plan-run", "b", "plan, then run, then join"),
        ("streamed", "c", "LLMCompiler, streamed"), ("baseline", "d", "streamed into the baseline"))}
    speedups = {against: Row(f"speedup of (c) over ({key})", "x", paired(samples[against]["answer"],
                                                                        samples["streamed"]["answer"]))
                for against, key in (("react", "a"), ("plan-run", "b"), ("baseline", "d"))}
    first = Row("(c) line emitted -> its tool entered", "ms", scaled(samples["streamed"]["first tool"], "ms"),
                note="task 1")
    worst = Row(f"(c) the same, worst of the {len(scenario.searches)} searches", "ms",
                scaled(samples["streamed"]["worst tool"], "ms"))
    over = Row("(c) time to answer over its ideal", "ms", scaled(samples["streamed"]["over ideal"], "ms"),
               note="ideal: tasks start as their lines are emitted; the join costs only the model")
    workload.rows = list(rows.values()) + list(speedups.values()) + [first, worst, over]
    workload.lines = [
        line("(a) ReAct: answer", "s", ours=rows["react"]),
        line("(b) plan, run, join: answer", "s", ours=rows["plan-run"]),
        line("(c) streamed vs (d) baseline", "s", ratio="baseline/ours", on_ratio=False, ours=rows["streamed"],
             baseline=rows["baseline"], note="(d) the plan streamed into the sleep-retry scheduler, then join"),
        line("speedup (c) over (a) ReAct", "x", target=Target(">=", REACT_TARGET, f">= {REACT_TARGET:g}x"),
             ours=speedups["react"]),
        line("speedup (c) over (b)", "x", target=Target(">=", PLAN_RUN_TARGET, f">= {PLAN_RUN_TARGET:g}x"),
             ours=speedups["plan-run"]),
        line("(c) first line emitted -> tool", "ms", target=Target("<=", 1.0, "<= 1 ms"), ours=first),
        line("(c) any line emitted -> tool, worst", "ms", ours=worst),
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
