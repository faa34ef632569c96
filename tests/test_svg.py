"""Tests of llmcompiler.svg: the SVG timeline is well-formed XML with one bar per task that ran."""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ElementTree

import pytest

from llmcompiler import Engine, Event, Task
from llmcompiler import svg

from picture_fixtures import Failure, Source

SVG = "{http://www.w3.org/2000/svg}"

EVENTS = [
    Event("queued", 1, "search", 0.0), Event("queued", 2, "crunch", 0.0),
    Event("started", 1, "search", 0.0, "thread-1"), Event("started", 2, "crunch", 0.0, "process-7"),
    Event("finished", 1, "search", 0.5, "thread-1"),
    Event("started", 3, "search", 0.5, "thread-1"), Event("failed", 3, "search", 0.75, "thread-1"),
    Event("skipped", 4, "combine", 0.75),
    Event("finished", 2, "crunch", 1.0, "process-7"),
]


def parse(text):
    return ElementTree.fromstring(text)


def elements(root, tag, kind):
    return [item for item in root.iter(SVG + tag) if item.get("class", "").split()[:1] == [kind]]


def test_one_bar_per_task_that_ran_coloured_by_outcome():
    source = Source(EVENTS, {3: Failure("timeout", error_type="TaskTimeoutError", message="late"),
                             4: Failure("skipped", cause=3)})
    root = parse(svg.svg_timeline(source))
    assert root.tag == SVG + "svg"
    bars = {int(bar.get("data-task")): bar for bar in elements(root, "rect", "bar")}
    assert sorted(bars) == [1, 2, 3]
    assert bars[1].get("class") == "bar finished" and bars[1].get("fill") == svg.COLOURS["finished"]
    assert bars[3].get("class") == "bar timeout" and bars[3].get("fill") == svg.COLOURS["timeout"]
    assert "TaskTimeoutError: late" in bars[3].find(SVG + "title").text
    # Bars scale with time: task 2 ran twice as long as task 1, task 3 started where task 1 ended.
    width = {idx: float(bar.get("width")) for idx, bar in bars.items()}
    assert width[2] == pytest.approx(2 * width[1], rel=0.01)
    assert float(bars[3].get("x")) == pytest.approx(float(bars[1].get("x")) + width[1], abs=0.2)
    (mark,) = elements(root, "path", "mark")
    assert mark.get("class") == "mark skipped" and mark.get("data-task") == "4"
    texts = " ".join(item.text or "" for item in root.iter(SVG + "text"))
    assert "skipped (task 3 did not finish)" in texts
    for label in ("1. search", "2. crunch", "3. search", "4. combine"):
        assert label in texts
    for outcome in ("finished", "failed", "timeout", "skipped", "cancelled"):  # the legend
        assert outcome in texts.split()
    assert "makespan 1.00 s" in texts and "serial sum 1.75 s (1.8x in parallel)" in texts


def test_phases_get_rows_of_their_own_and_ticks_are_in_seconds_for_long_runs():
    phases = [("planner 1", -1.5, 0.25), ("joiner 1", 1.0, 1.5), ("planner 2", 1.5, 1.75)]
    root = parse(svg.svg_timeline(EVENTS, phases))
    rows = {item.get("y") for item in elements(root, "rect", "phase")}
    assert len(elements(root, "rect", "phase")) == 3 and len(rows) == 2  # planner row, joiner row
    ticks = [item.text for item in elements(root, "text", "tick")]
    assert ticks[0] == "0.0 s" and all(tick.endswith(" s") for tick in ticks)
    short = [item.text for item in elements(parse(svg.svg_timeline(EVENTS)), "text", "tick")]
    assert short[:3] == ["0 ms", "200 ms", "400 ms"] and short[-1] == "1000 ms"


def test_dependency_arrows_where_they_fit():
    events = [Event("started", 1, "a", 0.0, "t1"), Event("finished", 1, "a", 0.25, "t1"),
              Event("started", 2, "b", 0.0, "t2"), Event("finished", 2, "b", 0.5, "t2"),
              Event("started", 3, "c", 0.5, "t1"), Event("finished", 3, "c", 0.75, "t1")]
    tasks = {1: Task(1, "a"), 2: Task(2, "b"), 3: Task(3, "c", ("$1", "$2"))}
    root = parse(svg.svg_timeline(Source(events, tasks=tasks)))
    assert len(elements(root, "path", "dep")) == 2
    # A dependency that (by these events) ended after its dependent started is not drawn backwards.
    backwards = events[:4] + [Event("started", 3, "c", 0.25, "t1"), Event("finished", 3, "c", 0.75, "t1")]
    assert len(elements(parse(svg.svg_timeline(Source(backwards, tasks=tasks))), "path", "dep")) == 1


def test_any_text_is_escaped_and_shortened():
    hostile = "<b>&\"\x00\x07" + "y" * 100_000
    events = [Event("started", 1, hostile, 0.0, "w<1>"), Event("failed", 1, hostile, 0.5, "w<1>")]
    tasks = {1: Task(1, "tool", (hostile, 10 ** 5000))}
    failure = Failure("failed", error_type="ValueError", message=hostile)
    text = svg.svg_timeline(Source(events, {1: failure}, tasks), [(hostile, 0.0, 0.25)])
    root = parse(text)
    assert len(elements(root, "rect", "bar")) == 1
    assert len(text) < 20_000


def test_empty_sources_and_bad_widths():
    root = parse(svg.svg_timeline([]))
    assert "(no tasks)" in [item.text for item in root.iter(SVG + "text")]
    assert elements(root, "rect", "bar") == []
    with pytest.raises(ValueError, match="width"):
        svg.svg_timeline(EVENTS, width=100)


def test_write_svg_timeline_to_a_path_and_a_file(tmp_path):
    path = tmp_path / "run.svg"
    svg.write_svg_timeline(EVENTS, str(path))
    assert path.read_text(encoding="utf-8") == svg.svg_timeline(EVENTS)
    buffer = io.StringIO()
    svg.write_svg_timeline(EVENTS, buffer, [("planner 1", 0.0, 0.5)])
    assert len(elements(parse(buffer.getvalue()), "rect", "phase")) == 1


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail(seconds: float) -> float:
    raise ValueError("no")


def test_a_real_run():
    with Engine({"nap": nap, "fail": fail}) as engine:
        result = engine.run("1. nap(0.05)\n2. nap(0.05)\n3. fail(1)\n4. nap($3)\n5. nap($1)\n", timeout=10)
    root = parse(svg.svg_timeline(result))
    bars = {int(bar.get("data-task")): bar.get("class") for bar in elements(root, "rect", "bar")}
    assert bars == {1: "bar finished", 2: "bar finished", 3: "bar failed", 5: "bar finished"}
    assert [mark.get("data-task") for mark in elements(root, "path", "mark")] == ["4"]
    assert len(elements(root, "path", "skip")) == 1 and len(elements(root, "path", "dep")) == 1


def test_by_worker_one_row_per_worker_lane_and_one_for_tasks_that_never_ran():
    events = EVENTS + [Event("started", 5, "aio", 0.0, "thread-1"),
                       Event("finished", 5, "aio", 0.25, "thread-1")]
    root = parse(svg.svg_timeline(Source(events, {4: Failure("skipped", cause=3)}), by_worker=True))
    labels = [item.text for item in elements(root, "text", "label")]
    assert labels == ["thread-1", "process-7", "thread-1 #2", "not run"]  # 5 overlapped 1 on thread-1
    bars = {int(bar.get("data-task")): float(bar.get("y")) for bar in elements(root, "rect", "bar")}
    assert sorted(bars) == [1, 2, 3, 5]
    assert bars[1] == bars[3] != bars[2] and bars[5] not in (bars[1], bars[2])
    (mark,) = elements(root, "path", "mark")
    assert float(mark.get("d").split(",")[1].split()[0]) > max(bars.values())  # on the last row
    assert elements(root, "path", "dep") == [] and len(elements(root, "path", "skip")) == 1


def test_worker_lanes_pack_overlapping_calls():
    from llmcompiler import trace

    events = [Event("started", 1, "a", 0.0, "w"), Event("started", 2, "a", 0.1, "w"),
              Event("finished", 1, "a", 0.2, "w"), Event("started", 3, "a", 0.2, "w"),
              Event("finished", 2, "a", 0.3, "w"), Event("finished", 3, "a", 0.4, "w"),
              Event("started", 4, "a", 0.0), Event("finished", 4, "a", 0.1), Event("skipped", 5, "b", 0.1)]
    assert trace.worker_lanes(trace.task_views(events)) == {1: "w", 2: "w #2", 3: "w", 4: "unknown worker"}
