"""What ran when: per-task spans and outcomes, a compact text timeline, Chrome trace files, the time saved.

Everything here reads the scheduler's ``Event`` records. A *source* is anything with an ``events``
list (a ``RunResult``, a ``CompilerResult``) or an iterable of ``Event`` itself, so one plan's run and a
whole question answered over several plans are drawn the same way. A source that also has ``failures``
(task -> ``TaskFailure``) and ``tasks`` (task -> ``Task``) gives the pictures more to say: the kind of a
failure (``timeout`` rather than ``failed``), the task a skipped task waited for, the arguments.

A task's *span* runs from its first ``started`` event to its last ``finished``, ``failed`` or
``cancelled`` event: retries are inside it. Only ``started`` opens a span: a ``submitted`` or
``queued`` event (handed to a pool, waiting for a worker) does not, so every figure computed here
(``serial_time``, ``makespan``) counts only the time tools really ran. A task that never started
(skipped, cancelled while waiting, answered from the cache) has no span; the pictures still show it.

*Phases* are extra ``(label, start, end)`` intervals on the same clock (``time.perf_counter()``), such
as the planner's stream: ``CompilerResult.phases()`` gives them. The text timeline draws them with
``~``; the trace files put each kind (the label's first word: ``planner``, ``joiner``) on a lane.

The SVG picture is in ``svg`` (``svg_timeline``). This module imports only ``text`` and ``plan`` from
the package and starts nothing.
"""

from __future__ import annotations

import json
import math
import os
from typing import IO, TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from .plan import call_text
from .text import short_repr, short_text

if TYPE_CHECKING:  # only a type: this module reads events by their fields
    from .results import Event

__all__ = ["Span", "TaskView", "spans", "task_views", "timeline", "chrome_trace", "write_chrome_trace",
           "serial_time", "makespan", "arguments_text", "worker_lanes", "OUTCOMES"]

Phase = Tuple[str, float, float]
Destination = Union[str, "os.PathLike[str]", IO[str]]

# Every outcome a task can have in a picture: a TaskFailure kind, or what the events say.
OUTCOMES = ("finished", "cached", "failed", "timeout", "worker-died", "invalid", "skipped", "cancelled",
            "running", "waiting")
_ENDS = ("finished", "failed", "cancelled")
_BAR = {"finished": "#", "failed": "x", "cancelled": "-", "running": ">"}
_ARGUMENTS_LIMIT = 200  # characters of a task's arguments shown in a trace or a tooltip
_ERROR_LIMIT = 300


class Span(NamedTuple):
    """One task's time on a worker. ``status`` is ``finished``, ``failed``, ``cancelled`` or ``running``
    (no end event yet: ``end`` is then the latest event of the source). ``worker`` names the thread
    or process (``process-<pid>``), None when the events do not say."""

    task: int
    tool: str
    start: float
    end: float
    worker: Optional[str]
    status: str

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start


class TaskView(NamedTuple):
    """What the pictures show of one task. ``outcome`` is one of ``OUTCOMES``; ``span`` is None when
    the task never started. ``seen`` is the time of its first event, ``settled`` of its last (None
    while it runs). ``cause`` is the task a skipped task depended on; ``arguments`` and ``error``
    are short display texts ("" when unknown); ``dependencies`` are sorted task indices."""

    task: int
    tool: str
    outcome: str
    span: Optional[Span]
    seen: float
    settled: Optional[float]
    cause: Optional[int] = None
    arguments: str = ""
    error: str = ""
    dependencies: Tuple[int, ...] = ()


def _events(source: Any) -> List["Event"]:
    events = getattr(source, "events", source)
    return sorted(events, key=lambda event: event.time)


def spans(source: Any) -> List[Span]:
    """The span of every task that started, in task-index order (see the module docstring)."""
    events = _events(source)
    last_time = events[-1].time if events else 0.0
    first_start: Dict[int, "Event"] = {}
    last_start: Dict[int, "Event"] = {}
    end: Dict[int, "Event"] = {}
    for event in events:
        if event.kind == "started":
            first_start.setdefault(event.task, event)
            last_start[event.task] = event
        elif event.kind in _ENDS and event.task in first_start:
            end[event.task] = event
    found = []
    for idx in sorted(first_start):
        start, finish = first_start[idx], end.get(idx)
        worker = (finish.worker if finish is not None else None) or last_start[idx].worker
        if finish is None:
            found.append(Span(idx, start.tool, start.time, last_time, worker, "running"))
        else:
            found.append(Span(idx, start.tool, start.time, finish.time, worker, finish.kind))
    return found


def serial_time(source: Any) -> float:
    """The sum of the tasks' durations: roughly what calling the same tools one by one would cost.
    Only real work counts: time waiting for a worker and answers from the cache do not."""
    return sum(span.duration for span in spans(source))


def makespan(source: Any) -> float:
    """Seconds from the first task's start to the last task's end (0.0 when no task started)."""
    found = spans(source)
    if not found:
        return 0.0
    return max(span.end for span in found) - min(span.start for span in found)


def task_views(source: Any) -> List[TaskView]:
    """One ``TaskView`` per task that has an event, in task-index order."""
    events = _events(source)
    failures: Mapping[int, Any] = getattr(source, "failures", None) or {}
    tasks: Mapping[int, Any] = getattr(source, "tasks", None) or {}
    by_task = {span.task: span for span in spans(events)}
    first: Dict[int, "Event"] = {}
    last: Dict[int, "Event"] = {}
    for event in events:
        first.setdefault(event.task, event)
        if event.kind not in ("queued", "submitted"):  # those say nothing of how a task ended
            last[event.task] = event
    views = []
    for idx in sorted(first):
        span, final, failure = by_task.get(idx), last.get(idx), failures.get(idx)
        outcome = _outcome(span, final, failure)
        settled = None if outcome == "running" or final is None else final.time
        task = tasks.get(idx)
        views.append(TaskView(
            idx, first[idx].tool, outcome, span, first[idx].time, settled,
            getattr(failure, "cause", None), arguments_text(task), _error(failure),
            tuple(sorted(getattr(task, "dependencies", ())))))
    return views


def _outcome(span: Optional[Span], final: Optional["Event"], failure: Any) -> str:
    if failure is not None and getattr(failure, "kind", None) in OUTCOMES:
        return failure.kind
    if final is None:
        return "running" if span is not None else "waiting"  # only queued or submitted so far
    if final.kind == "finished":
        return "cached" if span is None or getattr(final, "cached", False) else "finished"
    if final.kind in ("failed", "skipped", "cancelled"):
        return final.kind
    return "running"  # started or retrying, no end yet


def arguments_text(task: Any, limit: int = _ARGUMENTS_LIMIT) -> str:
    """``task``'s arguments as the plan wrote them, at most ``limit`` characters: ``'Tokyo', $1``
    ("" for None). Never raises, whatever the values."""
    if task is None:
        return ""
    try:
        call = call_text(task)
    except Exception:  # a value whose repr fails: show the arguments safely instead
        return short_text(f"{short_repr(tuple(task.args), limit)} {short_repr(dict(task.kwargs), limit)}",
                          limit)
    inside = call[len(task.tool) + 1:-1] if call.startswith(task.tool + "(") else call
    return short_text(inside, limit)


def _error(failure: Any) -> str:
    if failure is None:
        return ""
    if getattr(failure, "kind", "") == "skipped":
        return f"skipped: task {failure.cause} did not finish"
    detail = f"{failure.error_type}: {short_text(failure.message, _ERROR_LIMIT)}" if failure.error_type \
        else failure.kind
    step = getattr(failure, "step", "")  # which engine step failed, when it was not the tool itself
    if step:
        detail = f"while {short_text(step, 60)}: {detail}"
    return " ".join(short_text(detail, _ERROR_LIMIT).split())


# -- the text timeline ----------------------------------------------------------------------------


class _Row(NamedTuple):
    key: float          # where the row sorts: a task's first event, a phase's start
    order: int          # ties: phases before tasks, then by index
    label: str          # the index column
    name: str           # the tool (or phase) column
    start: Optional[float]
    end: Optional[float]
    mark: str
    note: str


def timeline(source: Any, *, width: int = 40, phases: Sequence[Phase] = ()) -> str:
    """A compact text timeline: one row per task (index, tool, a bar from start to end scaled to the
    span of everything shown, duration in ms, and a note for tasks that did not finish), plus one
    row per phase. Rows are in time order, so tasks that ran in parallel have overlapping bars.

    Bars: ``#`` finished, ``x`` failed, ``-`` cancelled, ``>`` still running, ``~`` a phase.
    Returns ``"(no tasks)"`` when there is nothing to draw. Raises ValueError for ``width < 10``.
    """
    if width < 10:
        raise ValueError(f"width must be at least 10 characters, got {width!r}")
    rows = _task_rows(source) + [_Row(start, 0, "", short_text(label, 40), start, end, "~", "")
                                 for label, start, end in phases]
    if not rows:
        return "(no tasks)"
    rows.sort(key=lambda row: (row.key, row.order))
    times = [t for row in rows for t in (row.key, row.start, row.end) if t is not None]
    origin, scale_end = min(times), max(times)
    span = scale_end - origin
    name_width = max(4, min(24, max(len(row.name) for row in rows)))
    lines = [f"{'#':>4}  {'tool':<{name_width}}  |{_axis(span, width)}|{'ms':>8}"]
    for row in rows:
        bar = _bar(row, origin, span, width)
        ran = row.start is not None and row.end is not None
        ms = f"{(row.end - row.start) * 1000:8.0f}" if ran else f"{'-':>8}"
        note = f"  {row.note}" if row.note else ""
        lines.append(f"{row.label:>4}  {row.name[:name_width]:<{name_width}}  |{bar}|{ms}{note}")
    return "\n".join(lines)


def _task_rows(source: Any) -> List[_Row]:
    rows = []
    for view in task_views(source):
        span = view.span
        note = "" if view.outcome == "finished" else view.outcome
        if span is not None:
            rows.append(_Row(view.seen, 1 + view.task, str(view.task), view.tool, span.start, span.end,
                             _BAR[span.status], note))
        else:
            rows.append(_Row(view.seen, 1 + view.task, str(view.task), view.tool, None, None, " ", note))
    return rows


def _axis(span: float, width: int) -> str:
    left, right = "0", f"{span * 1000:.0f} ms"
    return left + right.rjust(width - len(left))


def _bar(row: _Row, origin: float, span: float, width: int) -> str:
    if row.start is None or row.end is None:
        return " " * width
    if span <= 0:
        return row.mark * width
    first = min(width - 1, int((row.start - origin) / span * width))
    last = max(first + 1, min(width, math.ceil((row.end - origin) / span * width)))
    return " " * first + row.mark * (last - first) + " " * (width - last)


# -- Chrome trace-event files ---------------------------------------------------------------------
#
# The JSON object form of the trace-event format, as chrome://tracing and https://ui.perfetto.dev read
# it. Process 1 holds the model's lanes (one per phase kind), process 2 the tools' lanes: one per
# worker (a second lane "<worker> #2" when calls overlap on one worker, as coroutines on one loop
# thread do), and a lane "not run" for tasks that never started. Each span is a complete event
# ("X"); a task that failed also gets an instant event ("i") where it ended; a task that never ran
# gets an instant event on "not run", and, when it was skipped, a flow arrow ("s" -> "f") from the
# task that made it skip.

_MODEL_PID, _TOOLS_PID = 1, 2
NOT_RUN = "not run"  # the lane of the tasks that never started


def worker_lanes(views: Sequence[TaskView]) -> Dict[int, str]:
    """The lane of every task that ran (task -> lane name), in order of first use: its worker's name,
    or ``"<worker> #2"`` (and so on) for a call that overlapped another on the same worker, as
    coroutines on one loop thread do. A span without a worker is on ``"unknown worker"``."""
    busy_until: Dict[str, List[float]] = {}  # worker -> the end time of each of its lanes
    found: Dict[int, str] = {}
    for view in sorted((view for view in views if view.span is not None), key=lambda view: view.span.start):
        span = view.span
        worker = span.worker or "unknown worker"
        ends = busy_until.setdefault(worker, [])
        number = next((number for number, end in enumerate(ends) if end <= span.start), len(ends))
        if number == len(ends):
            ends.append(span.end)
        else:
            ends[number] = span.end
        found[view.task] = worker if number == 0 else f"{worker} #{number + 1}"
    return found


class _Lanes:
    """Thread ids for the trace: one per lane name, numbered in order of first use."""

    def __init__(self) -> None:
        self.ids: Dict[Tuple[int, str], int] = {}

    def lane(self, pid: int, name: str) -> int:
        return self.ids.setdefault((pid, name), len(self.ids) + 1)

    def metadata(self) -> List[Dict[str, Any]]:
        used = {pid for pid, _ in self.ids}
        found: List[Dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}}
            for pid, name in ((_MODEL_PID, "model"), (_TOOLS_PID, "tools")) if pid in used]
        for (pid, name), tid in self.ids.items():
            found.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
            found.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                          "args": {"sort_index": tid}})
        return found


def chrome_trace(source: Any, *, phases: Sequence[Phase] = ()) -> Dict[str, Any]:
    """The trace as a JSON-ready dict ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData":
    {...}}`` (see the comment above for the lanes). ``ts``/``dur`` are microseconds from the earliest
    thing shown; a span's ``args`` carry the task index, tool, arguments (shortened), outcome, worker
    and, for a failure, the error. ``otherData`` has the makespan and the serial sum in ms, and the
    ``time.perf_counter()`` value that ``ts`` 0 stands for (``clock_origin_s``)."""
    views = task_views(source)
    times = [view.seen for view in views] + [start for _, start, _ in phases]
    times += [view.span.start for view in views if view.span is not None]
    origin = min(times, default=0.0)
    lanes = _Lanes()
    trace: List[Dict[str, Any]] = []
    for label, start, end in phases:
        lane = str(label).split(" ", 1)[0] or "model"
        trace.append({"name": str(label), "cat": "model", "ph": "X", "ts": _micro(start - origin),
                      "dur": _micro(end - start), "pid": _MODEL_PID, "tid": lanes.lane(_MODEL_PID, lane),
                      "args": {}})
    marks: Dict[int, Tuple[int, float]] = {}  # task -> (lane, ts) where a flow arrow may start
    on_lane = worker_lanes(views)
    for view in sorted((view for view in views if view.span is not None), key=lambda view: view.span.start):
        trace += _span_events(view, lanes.lane(_TOOLS_PID, on_lane[view.task]), origin, marks)
    for view in views:
        if view.span is None:
            trace += _not_run_events(view, lanes.lane(_TOOLS_PID, NOT_RUN), origin, marks)
    return {"traceEvents": lanes.metadata() + trace, "displayTimeUnit": "ms",
            "otherData": {"makespan_ms": round(makespan(source) * 1000, 3),
                          "serial_ms": round(serial_time(source) * 1000, 3), "clock_origin_s": origin}}


def _span_events(view: TaskView, tid: int, origin: float, marks: Dict[int, Tuple[int, float]]) -> List[dict]:
    span = view.span
    assert span is not None
    args: Dict[str, Any] = {"task": view.task, "tool": view.tool, "arguments": view.arguments,
                            "outcome": view.outcome, "worker": span.worker}
    if view.error:
        args["error"] = view.error
    found = [{"name": f"{view.task}. {view.tool}", "cat": view.outcome, "ph": "X",
              "ts": _micro(span.start - origin), "dur": _micro(span.duration), "pid": _TOOLS_PID,
              "tid": tid, "args": args}]
    # A flow starting here must lie inside the slice: half-way through it.
    marks[view.task] = (tid, _micro((span.start + span.end) / 2 - origin))
    if view.outcome not in ("finished", "running"):
        found.append({"name": f"{view.task}. {view.tool} {view.outcome}", "cat": view.outcome, "ph": "i",
                      "s": "t", "ts": _micro(span.end - origin), "pid": _TOOLS_PID, "tid": tid,
                      "args": {"task": view.task, "error": view.error}})
    return found


def _not_run_events(view: TaskView, tid: int, origin: float,
                    marks: Dict[int, Tuple[int, float]]) -> List[dict]:
    at = _micro((view.settled if view.settled is not None else view.seen) - origin)
    args: Dict[str, Any] = {"task": view.task, "tool": view.tool, "arguments": view.arguments,
                            "outcome": view.outcome}
    if view.cause is not None:
        args["cause"] = view.cause
    found = [{"name": f"{view.task}. {view.tool} {view.outcome}", "cat": view.outcome, "ph": "i", "s": "t",
              "ts": at, "pid": _TOOLS_PID, "tid": tid, "args": args}]
    source = marks.get(view.cause) if view.cause is not None else None
    if source is not None:
        flow = {"name": "skipped because of", "cat": "dependency", "id": view.task, "pid": _TOOLS_PID}
        found.append(dict(flow, ph="s", ts=source[1], tid=source[0]))
        found.append(dict(flow, ph="f", bp="e", ts=max(at, source[1]), tid=tid))
    marks[view.task] = (tid, at)
    return found


def _micro(seconds: float) -> float:
    return round(seconds * 1_000_000, 1)


def write_chrome_trace(source: Any, destination: Destination, *, phases: Sequence[Phase] = ()) -> None:
    """Write ``chrome_trace(source)`` as JSON to a path or an open text file.
    Raises OSError when the file cannot be written."""
    _write_text(json.dumps(chrome_trace(source, phases=phases), indent=1), destination)


def _write_text(text: str, destination: Destination) -> None:
    """Write ``text`` to a path (UTF-8) or an open text file. Raises OSError."""
    if hasattr(destination, "write"):
        destination.write(text)  # type: ignore[union-attr]
        return
    with open(destination, "w", encoding="utf-8") as file:  # type: ignore[arg-type]
        file.write(text)
