"""Tests for the end-to-end benchmark's pieces (``benchmarks/endtoend.py``) and the baseline's
streamed input. No test checks a timing: only that the four ways to answer are built fairly (the
same model calls and tools), that the sweep records what its chart and README read, and that the
baseline takes a streamed plan one task at a time."""

import math
import os
import sys
import threading
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from llmcompiler import Task, parse_plan  # noqa: E402
from llmcompiler.baseline import run_sleep_retry  # noqa: E402

from benchmarks import endtoend  # noqa: E402
from benchmarks.endtoend import (HEADLINE, JOINER, PACES, PLAN, SHAPES, SPANS, PacedLLM, Pace,  # noqa: E402
                                 Scenario, Setting, Span, streaming_ceiling)
from benchmarks.plots import sweep_chart  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def test_each_react_turn_is_a_thought_and_one_action_and_the_last_is_the_joiners_answer():
    scenario = Scenario.of(HEADLINE)
    turns = endtoend._react_turns(scenario)
    assert len(turns) == len(scenario.searches) + 2
    for turn in turns:
        assert turn.startswith("Thought: ") and turn.count("Action:") == 1 and turn.count("\n") == 2
    assert turns[-1] == JOINER
    # The calls ReAct makes one by one are the plan's calls, in the plan's order.
    react_calls = [turn.split("Action:", 1)[1].strip() for turn in turns[:-1]]
    planned = [f"{task.tool}({', '.join(_literal(arg) for arg in task.args)})"
               for task in parse_plan(endtoend._plan(scenario))]
    assert react_calls == planned


def _literal(arg):
    return f'"{arg}"' if not arg.startswith("$") else arg


def test_the_paced_model_hands_out_chunk_k_no_sooner_than_its_due_time():
    llm = PacedLLM(["abcdefghijkl"], tokens_per_s=2000.0, first_token=0.002)
    assert llm.complete([]) == "abcdefghijkl"
    assert [chunk for _, chunk in llm.emitted] == ["abcd", "efgh", "ijkl"]
    for number, (at, _) in enumerate(llm.emitted, start=1):
        assert at - llm.called[0] >= 0.002 + number / 2000.0 - 1e-6


def test_every_plan_shape_compares_the_same_two_cities_and_keeps_its_searches():
    for shape in (PLAN,) + SHAPES:
        scenario = Scenario.of(HEADLINE, shape=shape)
        first, second = (scenario.searches[ref - 1][0] for ref in shape.combine_refs)
        assert first.startswith("Delhi") and second.startswith("Mumbai"), shape.name
        copies = len(shape.searches) // len(PLAN.searches)   # each city asked for once or for two years
        assert sorted(place for _, place in shape.searches) == sorted(
            [place for _, place in PLAN.searches] * copies), shape.name
        tasks = parse_plan(endtoend._plan(scenario))
        assert [task.tool for task in tasks] == ["search"] * len(shape.searches) + ["combine"]


def test_a_setting_spreads_the_searches_over_its_span_in_plan_order():
    scenario = Scenario.of(Setting(Pace(50.0, 0.5), Span(1.0, 3.0)))
    latencies = [seconds for _, seconds in scenario.searches]
    assert min(latencies) == 1.0 and max(latencies) == 3.0 and scenario.combine_s == 1.0
    halved = Scenario.of(Setting(Pace(50.0, 0.5), Span(1.0, 3.0)), 0.5)
    assert halved.tokens_per_s == 100.0 and halved.first_token == 0.25
    assert [s for _, s in halved.searches] == [s / 2 for s in latencies]


def test_the_streaming_ceiling_is_one_without_tool_time_and_bounded_by_the_plan():
    idle = Scenario.of(HEADLINE)._replace(searches=tuple((q, 0.0) for q, _ in Scenario.of(HEADLINE).searches),
                                          combine_s=0.0)
    assert streaming_ceiling(idle) == 1.0
    for pace in PACES:
        for span in SPANS:
            ceiling = streaming_ceiling(Scenario.of(Setting(pace, span)))
            # Streaming can at most hide the writing of the plan after its first task's line.
            assert 1.0 < ceiling < 2.0


def test_the_baseline_submits_a_streamed_task_before_the_next_is_yielded():
    first_ran = threading.Event()
    seen_in_time = []

    def mark(value):
        first_ran.set()
        return value

    def streamed():
        yield Task(1, "mark", ("a",))
        # A scheduler that reads the whole plan first would block here until the timeout.
        seen_in_time.append(first_ran.wait(timeout=10))
        yield Task(2, "mark", ("b",))

    observations = run_sleep_retry(streamed(), {"mark": mark}, max_workers=2, timeout=10)
    assert seen_in_time == [True]
    assert observations == {1: "a", 2: "b"}


def test_the_sweep_chart_draws_two_bars_per_setting_and_a_dashed_line_per_target():
    records = [{"tokens_per_s": rate, "first_token": 0.5, "low": low, "high": high,
                "headline": rate == 100 and low == 0.2, "over_a": 3.0 + low, "over_b": 1.1 + low / 10}
               for rate in (40, 100) for low, high in ((0.05, 0.2), (0.2, 1))]
    chart = ET.fromstring(sweep_chart("t", "s", records, {"over_a": 3.7, "over_b": 1.3}))
    assert len(chart.findall(f"{SVG}rect")) == 1 + 2 * len(records)   # the background, then the bars
    dashed = [node for node in chart.iter(f"{SVG}line") if node.get("stroke-dasharray") == "6,4"]
    assert len(dashed) == 2 + 2                                        # two targets, two legend keys
    texts = [node.text for node in chart.iter(f"{SVG}text")]
    assert "0.2-1 s *" in texts and "40 tok/s, first token 0.5 s" in texts
    assert sum(text == "target 3.7x" for text in texts) == 1
    with pytest.raises(ValueError, match="no finite speedups"):
        sweep_chart("t", "s", [dict(records[0], over_a=math.nan, over_b=None)], {})
