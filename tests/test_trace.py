"""Tests of llmcompiler.trace: spans, the text timeline, Chrome trace files, serial time and makespan."""

from __future__ import annotations

import io
import json
import time

import pytest

from llmcompiler import trace
from llmcompiler import Engine, Event

from picture_fixtures import Failure, Source

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


def chrome_events(found, phase):
    return [item for item in found["traceEvents"] if item["ph"] == phase]


def test_chrome_trace_is_the_object_form_with_named_lanes():
    found = trace.chrome_trace(EVENTS, phases=[("planner 1", -0.5, 0.0), ("joiner 1", 1.0, 1.25)])
    assert set(found) == {"traceEvents", "displayTimeUnit", "otherData"}
    assert found["displayTimeUnit"] == "ms"
    assert json.loads(json.dumps(found)) == found  # plain JSON values only
    for item in found["traceEvents"]:
        assert {"name", "ph", "pid", "tid"} <= set(item), item
        assert item["ph"] in ("M", "X", "i", "s", "f"), item
        if item["ph"] != "M":
            assert isinstance(item["ts"], float) and item["ts"] >= 0, item
    lanes = {(item["pid"], item["tid"]): item["args"]["name"]
             for item in chrome_events(found, "M") if item["name"] == "thread_name"}
    processes = {item["pid"]: item["args"]["name"]
                 for item in chrome_events(found, "M") if item["name"] == "process_name"}
    assert processes == {1: "model", 2: "tools"}
    assert sorted(lanes.values()) == ["joiner", "not run", "planner", "process-7", "thread-1"]
    spans = {item["name"]: item for item in chrome_events(found, "X")}
    assert set(spans) == {"planner 1", "joiner 1", "1. search", "2. crunch", "3. search"}
    assert lanes[(1, spans["planner 1"]["tid"])] == "planner"
    assert spans["planner 1"]["ts"] == 0 and spans["planner 1"]["dur"] == 500_000
    assert spans["2. crunch"]["ts"] == 500_000 and spans["2. crunch"]["dur"] == 1_000_000
    assert lanes[(2, spans["1. search"]["tid"])] == lanes[(2, spans["3. search"]["tid"])] == "thread-1"
    assert lanes[(2, spans["2. crunch"]["tid"])] == "process-7"
    assert spans["3. search"]["args"] == {"task": 3, "tool": "search", "arguments": "", "outcome": "failed",
                                          "worker": "thread-1"}
    assert found["otherData"] == {"makespan_ms": 1000.0, "serial_ms": 1750.0, "clock_origin_s": -0.5}
    assert trace.chrome_trace([])["traceEvents"] == []


def test_chrome_trace_marks_failures_and_draws_skips_from_their_cause():
    from llmcompiler import Task
    source = Source(EVENTS, {3: Failure("timeout", error_type="TaskTimeoutError", message="past 0.1 s"),
                             4: Failure("skipped", cause=3)},
                    {3: Task(3, "search", ("x" * 5000,)), 4: Task(4, "combine", ("$3", "$1"))})
    found = trace.chrome_trace(source)
    lanes = {item["tid"]: item["args"]["name"] for item in chrome_events(found, "M")
             if item["name"] == "thread_name"}
    span = next(item for item in chrome_events(found, "X") if item["name"] == "3. search")
    assert span["cat"] == "timeout" and span["args"]["outcome"] == "timeout"
    assert span["args"]["error"] == "TaskTimeoutError: past 0.1 s"
    assert len(span["args"]["arguments"]) <= 200 and span["args"]["arguments"].startswith("'xxx")
    instants = {item["name"]: item for item in chrome_events(found, "i")}
    assert set(instants) == {"3. search timeout", "4. combine skipped"}
    assert instants["3. search timeout"]["ts"] == span["ts"] + span["dur"]
    skipped = instants["4. combine skipped"]
    assert lanes[skipped["tid"]] == "not run"
    assert skipped["args"] == {"task": 4, "tool": "combine", "arguments": "$3, $1", "outcome": "skipped",
                               "cause": 3}
    (start,), (finish,) = chrome_events(found, "s"), chrome_events(found, "f")
    assert start["id"] == finish["id"]
    assert start["tid"] == span["tid"] and span["ts"] <= start["ts"] <= span["ts"] + span["dur"]
    assert finish["tid"] == skipped["tid"] and finish["ts"] == skipped["ts"]


def test_overlapping_calls_on_one_worker_get_lanes_of_their_own():
    events = [Event("started", 1, "aio", 0.0, "loop"), Event("started", 2, "aio", 0.25, "loop"),
              Event("finished", 1, "aio", 0.5, "loop"), Event("finished", 2, "aio", 0.75, "loop"),
              Event("started", 3, "aio", 0.5, "loop"), Event("finished", 3, "aio", 1.0, "loop")]
    found = trace.chrome_trace(events)
    lanes = {item["tid"]: item["args"]["name"] for item in chrome_events(found, "M")
             if item["name"] == "thread_name"}
    where = {item["args"]["task"]: lanes[item["tid"]] for item in chrome_events(found, "X")}
    assert where == {1: "loop", 2: "loop #2", 3: "loop"}


def test_submitted_and_queued_events_do_not_open_a_span():
    worker = "process-1"
    events = [Event("submitted", 1, "crunch", 0.0), Event("submitted", 2, "crunch", 0.0),
              Event("started", 1, "crunch", 0.0, worker), Event("finished", 1, "crunch", 0.25, worker),
              Event("started", 2, "crunch", 0.25, worker), Event("finished", 2, "crunch", 0.5, worker)]
    assert [(span.start, span.end) for span in trace.spans(events)] == [(0.0, 0.25), (0.25, 0.5)]
    assert trace.serial_time(events) == 0.5 and trace.makespan(events) == 0.5
    waiting = [Event("submitted", 3, "crunch", 0.0)]
    assert [view.outcome for view in trace.task_views(waiting)] == ["waiting"]


def test_answers_from_the_cache_count_no_time():
    cached = Event("finished", 2, "search", 0.5)._replace(worker=None)
    if "cached" in Event._fields:
        cached = cached._replace(cached=True)
    events = [Event("started", 1, "search", 0.0, "t"), Event("finished", 1, "search", 0.5, "t"), cached]
    views = trace.task_views(events)
    assert [(view.task, view.outcome, view.span is None) for view in views] == [
        (1, "finished", False), (2, "cached", True)]
    assert trace.serial_time(events) == 0.5


def test_write_chrome_trace_to_a_path_and_a_file(tmp_path):
    path = tmp_path / "run.json"
    trace.write_chrome_trace(EVENTS, str(path))
    assert json.loads(path.read_text()) == json.loads(json.dumps(trace.chrome_trace(EVENTS)))
    buffer = io.StringIO()
    trace.write_chrome_trace(EVENTS, buffer)
    assert len(chrome_events(json.loads(buffer.getvalue()), "X")) == 3


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
    assert trace.serial_time(result) >= 0.6  # each call slept 0.2 s
    assert trace.makespan(result) < trace.serial_time(result)  # follows from the overlap above
    rows = trace.timeline(result).splitlines()[1:]
    assert len(rows) == 3 and all(row.count("#") >= 30 for row in rows)


def test_a_failed_engine_step_is_named_in_the_error():
    failure = Failure("failed", error_type="RenderError", message="str() raised\nKeyError")
    failure.step = "resolving arguments"
    (view,) = [view for view in trace.task_views(Source(EVENTS, {3: failure})) if view.task == 3]
    assert view.error == "while resolving arguments: RenderError: str() raised KeyError"
