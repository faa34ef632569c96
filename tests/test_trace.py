"""Tests of llmcompiler.trace: spans, the text timeline, Chrome trace files, serial time and makespan."""

from __future__ import annotations

import io
import json
import time

import pytest

from llmcompiler import trace
from llmcompiler import Engine, Event

# Times are exact binary fractions, so the bar arithmetic below is exact.
EVENTS = [
    Event("queued", 1, "search", 0.0), Event("queued", 2, "crunch", 0.0), Event("queued", 3, "search", 0.0),
    Event("started", 1, "search", 0.0, "thread-1"),
    Event("started", 2, "crunch", 0.0),
    Event("queued", 4, "combine", 0.25),
    Event("finished", 1, "search", 0.5),
    Event("started", 3, "search", 0.5, "thread-1"),
    Event("retrying", 3, "search", 0.625, "thread-1"),
    Event("started", 3, "search", 0.625, "thread-1"),
    Event("failed", 3, "search", 0.75, "thread-1"),
    Event("skipped", 4, "combine", 0.75),
    Event("finished", 2, "crunch", 1.0, "process-7"),
]


def test_spans_run_from_first_start_to_the_end_event():
    assert trace.spans(EVENTS) == [
        trace.Span(1, "search", 0.0, 0.5, "thread-1", "finished"),
        trace.Span(2, "crunch", 0.0, 1.0, "process-7", "finished"),
        trace.Span(3, "search", 0.5, 0.75, "thread-1", "failed"),  # both attempts, one span
    ]
    assert trace.spans(EVENTS)[1].duration == 1.0


def test_spans_accept_anything_with_events_and_any_order():
    class Holder:
        events = list(reversed(EVENTS))

    assert trace.spans(Holder()) == trace.spans(EVENTS)
    assert trace.spans([]) == []


def test_a_task_without_an_end_is_running_until_the_last_event():
    events = [Event("started", 1, "slow", 0.0, "t"), Event("started", 2, "fast", 0.25, "u"),
              Event("finished", 2, "fast", 0.5)]
    assert trace.spans(events)[0] == trace.Span(1, "slow", 0.0, 0.5, "t", "running")


def test_serial_time_and_makespan():
    assert trace.serial_time(EVENTS) == 0.5 + 1.0 + 0.25
    assert trace.makespan(EVENTS) == 1.0
    assert trace.serial_time([]) == 0.0 and trace.makespan([]) == 0.0


def test_timeline_rows_show_what_ran_in_parallel():
    text = trace.timeline(EVENTS, width=20)
    assert text.splitlines() == [
        "   #  tool     |0            1000 ms|      ms",
        "   1  search   |##########          |     500",
        "   2  crunch   |####################|    1000",
        "   3  search   |          xxxxx     |     250  failed",
        "   4  combine  |                    |       -  skipped",
    ]


def test_timeline_with_phases_and_edge_cases():
    text = trace.timeline(EVENTS, width=20, phases=[("planner 1", -1.0, 0.0)])
    lines = text.splitlines()
    assert lines[1] == "      planner 1  |~~~~~~~~~~          |    1000"
    assert lines[2].startswith("   1  search     |          #####     |")
    assert trace.timeline([]) == "(no tasks)"
    instant = [Event("started", 1, "x", 2.0), Event("finished", 1, "x", 2.0)]
    assert "|" + "#" * 10 + "|" in trace.timeline(instant, width=10)
    with pytest.raises(ValueError, match="width"):
        trace.timeline(EVENTS, width=3)


def test_chrome_trace_events():
    found = trace.chrome_trace(EVENTS, phases=[("planner 1", -0.5, 0.0)])
    assert all({"name", "ph", "ts", "dur", "pid", "tid"} <= set(item) for item in found)
    assert all(item["ph"] == "X" for item in found)
    by_name = {item["name"]: item for item in found}
    assert by_name["planner 1"]["ts"] == 0 and by_name["planner 1"]["dur"] == 500_000
    assert by_name["planner 1"]["tid"] == 0
    assert by_name["2. crunch"]["ts"] == 500_000 and by_name["2. crunch"]["dur"] == 1_000_000
    assert by_name["1. search"]["tid"] == by_name["3. search"]["tid"] != by_name["2. crunch"]["tid"]
    expected_args = {"task": 3, "tool": "search", "status": "failed", "worker": "thread-1"}
    assert by_name["3. search"]["args"] == expected_args
    assert "4. combine" not in by_name  # skipped: it never ran
    assert trace.chrome_trace([]) == []


def test_write_chrome_trace_to_a_path_and_a_file(tmp_path):
    path = tmp_path / "run.json"
    trace.write_chrome_trace(EVENTS, str(path))
    assert json.loads(path.read_text()) == json.loads(json.dumps(trace.chrome_trace(EVENTS)))
    buffer = io.StringIO()
    trace.write_chrome_trace(EVENTS, buffer)
    assert len(json.loads(buffer.getvalue())) == 3


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_real_run_shows_parallel_spans():
    with Engine({"nap": nap}) as engine:
        result = engine.run("1. nap(0.2)\n2. nap(0.2)\n3. nap(0.2)\n", timeout=10)
    found = trace.spans(result)
    assert [span.task for span in found] == [1, 2, 3]
    assert all(span.status == "finished" and span.worker for span in found)
    assert max(span.start for span in found) < min(span.end for span in found)  # all overlapped
    assert trace.serial_time(result) >= 0.6
    assert trace.makespan(result) < 0.5
    rows = trace.timeline(result).splitlines()[1:]
    assert len(rows) == 3 and all(row.count("#") >= 30 for row in rows)
