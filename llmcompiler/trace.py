"""What ran when: per-task spans, a compact text timeline, Chrome trace files, and the time saved.

Everything here reads the scheduler's ``Event`` records. A *source* is anything with an ``events``
list (a ``RunResult``, a ``CompilerResult``) or an iterable of ``Event`` itself, so one plan's run and a
whole question answered over several plans are drawn the same way.

A task's *span* runs from its first ``started`` event to its last ``finished``, ``failed`` or
``cancelled`` event: retries and (for process tools) the hand-off to the worker are inside it. A task
that never started (skipped, or cancelled while waiting) has no span; the timeline still shows it.

*Phases* are extra ``(label, start, end)`` intervals on the same clock (``time.perf_counter()``), such
as the planner's stream: ``CompilerResult.phases()`` gives them. The timeline draws them with ``~``.

This module imports nothing from the package at run time (``Event`` is only a type here) and starts
nothing.
"""

from __future__ import annotations

import json
import math
import os
from typing import IO, TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # only a type: this module reads events by their fields and imports nothing else
    from .results import Event

__all__ = ["Span", "spans", "timeline", "chrome_trace", "write_chrome_trace", "serial_time", "makespan"]

Phase = Tuple[str, float, float]
_ENDS = ("finished", "failed", "cancelled")
_BAR = {"finished": "#", "failed": "x", "cancelled": "-", "running": ">"}


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
    """The sum of the tasks' durations: roughly what calling the same tools one by one would cost."""
    return sum(span.duration for span in spans(source))


def makespan(source: Any) -> float:
    """Seconds from the first task's start to the last task's end (0.0 when no task started)."""
    found = spans(source)
    if not found:
        return 0.0
    return max(span.end for span in found) - min(span.start for span in found)


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
    rows = _task_rows(source) + [_Row(start, 0, "", label, start, end, "~", "")
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
    events = _events(source)
    by_task = {span.task: span for span in spans(events)}
    first_seen: Dict[int, "Event"] = {}
    last_seen: Dict[int, "Event"] = {}
    for event in events:
        first_seen.setdefault(event.task, event)
        last_seen[event.task] = event
    rows = []
    for idx, first in first_seen.items():
        span = by_task.get(idx)
        if span is not None:
            note = "" if span.status == "finished" else span.status
            rows.append(_Row(first.time, 1 + idx, str(idx), first.tool, span.start, span.end,
                             _BAR[span.status], note))
        else:
            kind = last_seen[idx].kind
            note = kind if kind in ("skipped", "cancelled", "failed") else f"not started ({kind})"
            rows.append(_Row(first.time, 1 + idx, str(idx), first.tool, None, None, " ", note))
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


def chrome_trace(source: Any, *, phases: Sequence[Phase] = ()) -> List[Dict[str, Any]]:
    """Complete ("X") trace events, one per task span and one per phase, for chrome://tracing or
    https://ui.perfetto.dev. ``ts``/``dur`` are microseconds from the earliest span or phase; ``tid``
    numbers the workers in order of first use (0 is the phases' row); ``args`` keeps the task index,
    tool, status and worker name."""
    found = spans(source)
    starts = [span.start for span in found] + [start for _, start, _ in phases]
    if not starts:
        return []
    origin = min(starts)
    tids: Dict[Optional[str], int] = {}
    trace = [{"name": label, "cat": "llm", "ph": "X", "ts": _micro(start - origin),
              "dur": _micro(end - start), "pid": 1, "tid": 0, "args": {}} for label, start, end in phases]
    for span in sorted(found, key=lambda span: span.start):
        tid = tids.setdefault(span.worker, len(tids) + 1)
        trace.append({"name": f"{span.task}. {span.tool}", "cat": span.status, "ph": "X",
                      "ts": _micro(span.start - origin), "dur": _micro(span.duration), "pid": 1,
                      "tid": tid, "args": {"task": span.task, "tool": span.tool, "status": span.status,
                                           "worker": span.worker}})
    return trace


def _micro(seconds: float) -> float:
    return round(seconds * 1_000_000, 1)


def write_chrome_trace(source: Any, destination: Union[str, "os.PathLike[str]", IO[str]], *,
                       phases: Sequence[Phase] = ()) -> None:
    """Write ``chrome_trace(source)`` as a JSON array to a path or an open text file.
    Raises OSError when the file cannot be written."""
    trace = chrome_trace(source, phases=phases)
    if hasattr(destination, "write"):
        json.dump(trace, destination, indent=1)  # type: ignore[arg-type]
        return
    with open(destination, "w", encoding="utf-8") as file:  # type: ignore[arg-type]
        json.dump(trace, file, indent=1)
