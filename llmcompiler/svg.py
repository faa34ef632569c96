"""A self-contained SVG picture of a run: what ran when, side by side, on the standard library alone.

``svg_timeline(source, phases=())`` returns the SVG text; ``write_svg_timeline(source, path, phases=())``
writes it. A *source* and *phases* are what ``trace`` reads (a ``RunResult``, a ``CompilerResult`` or
events; ``CompilerResult.phases()``).

The picture, top to bottom: a title with the makespan (first task start to last task end) and the
serial sum (the tasks' durations added up, what calling them one by one would cost); a legend of the
outcomes; a time axis with ticks in ms or s; one row per phase kind (``planner``, ``joiner``: each
plan's stream and each joiner call is a bar on its row); then one row per task, in index order, with
its label (index, tool) on the left, a bar from its start to its end coloured by outcome, its
duration, and a tooltip with the arguments and any error. A task that never ran (skipped, cancelled
while waiting, answered from the cache) gets a small diamond where it settled and a note. Arrows go
from each dependency's end to its dependent's start where they fit (the dependent started after the
dependency ended, and the picture is small enough to stay readable); a skipped task's arrow, dashed,
comes from the task that made it skip.

With ``by_worker=True`` the rows are the workers instead (one per lane of ``trace.worker_lanes``, and
one "not run" row), each bar labelled with its task index where it fits: compact for big runs, and it
shows how busy each worker was. Only skip arrows are drawn then.

Bars have ``class="bar <outcome>"`` and ``data-task``; diamonds ``class="mark <outcome>"``: a
reader (or a test) can find them. Imports only ``trace`` and ``text`` from the package; starts nothing.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import trace
from .text import short_text
from .trace import Phase, TaskView

__all__ = ["svg_timeline", "write_svg_timeline", "COLOURS"]

# Outcome (see trace.OUTCOMES) -> fill colour. The first five are always in the legend.
COLOURS = {"finished": "#43a047", "failed": "#e53935", "timeout": "#fb8c00", "skipped": "#9e9e9e",
           "cancelled": "#6d4c41", "worker-died": "#8e0000", "invalid": "#ad1457", "cached": "#a5d6a7",
           "running": "#42a5f5", "waiting": "#cfd8dc"}
_ALWAYS_IN_LEGEND = ("finished", "failed", "timeout", "skipped", "cancelled")
_PHASE_COLOURS = {"planner": "#5c6bc0", "joiner": "#ab47bc"}
_OTHER_PHASE = "#7e57c2"

_ROW, _BAR = 20, 12               # row height and bar height, px
_LABEL, _RIGHT = 220, 70          # the label column and the room right of the plot, px
_TOP = 78                         # title, legend and axis labels above the first row, px
_MAX_ARROW_ROWS, _MAX_ARROWS = 300, 500  # above these, dependency arrows would only be noise
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Scale(NamedTuple):
    """Seconds on the run's clock -> x in px."""

    origin: float
    span: float
    left: float
    width: float

    def x(self, at: float) -> float:
        return self.left + (at - self.origin) / self.span * self.width


def svg_timeline(source: Any, phases: Sequence[Phase] = (), *, width: int = 1000,
                 by_worker: bool = False) -> str:
    """The SVG picture of ``source`` (see the module docstring), ``width`` px wide, as text. With
    ``by_worker``, one row per worker lane (``trace.worker_lanes``) instead of one per task, each bar
    labelled with its task index: compact for big runs, and it shows how busy each worker was.

    Never raises for what a run can hold (any tool name, argument or error text is escaped and
    shortened). Raises ValueError for ``width < 400``."""
    if width < 400:
        raise ValueError(f"width must be at least 400 px, got {width!r}")
    views = trace.task_views(source)
    lanes = _phase_lanes(phases)
    scale = _scale(views, phases, width)
    labels, row_of = _worker_rows(views) if by_worker else _task_rows(views)
    row_of = {task: len(lanes) + row for task, row in row_of.items()}
    height = _TOP + max(len(lanes) + len(labels), 1) * _ROW + 30
    parts = [_header(width, height), _title(source, views, phases, width), _legend(views, list(lanes))]
    parts += _axis(scale, height)
    parts += _phase_rows(lanes, scale)
    parts += [_row_label(label, len(lanes) + row, width) for row, label in enumerate(labels)]
    parts += _arrows(views, row_of, scale, dependencies=not by_worker)
    for view in views:
        parts += _task_marks(view, row_of[view.task], scale, width, by_worker)
    if not views and not lanes:
        parts.append(f'<text x="{_LABEL}" y="{_TOP + 14}" class="note">(no tasks)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_svg_timeline(source: Any, destination: trace.Destination, phases: Sequence[Phase] = (), *,
                       width: int = 1000, by_worker: bool = False) -> None:
    """Write ``svg_timeline(source, phases, ...)`` to a path (UTF-8) or an open text file.
    Raises OSError when it cannot be written, ValueError as ``svg_timeline`` does."""
    trace._write_text(svg_timeline(source, phases, width=width, by_worker=by_worker), destination)


def _scale(views: List[TaskView], phases: Sequence[Phase], width: int) -> _Scale:
    """From the earliest to the latest time shown onto the plot's width (at least 1 ms)."""
    times = [t for _, start, end in phases for t in (start, end)]
    for view in views:
        times.append(view.seen)
        if view.span is not None:
            times += [view.span.start, view.span.end]
        if view.settled is not None:
            times.append(view.settled)
    origin = min(times, default=0.0)
    span = max(max(times, default=0.0) - origin, 1e-3)
    return _Scale(origin, span, _LABEL, width - _LABEL - _RIGHT)


def _task_rows(views: List[TaskView]) -> Tuple[List[str], Dict[int, int]]:
    """Row labels, and task -> row: one row per task."""
    return ([f"{view.task}. {short_text(view.tool, 28)}" for view in views],
            {view.task: row for row, view in enumerate(views)})


def _worker_rows(views: List[TaskView]) -> Tuple[List[str], Dict[int, int]]:
    """Row labels, and task -> row: one row per worker lane, then one for the tasks that never ran."""
    on_lane = trace.worker_lanes(views)
    labels = list(dict.fromkeys(on_lane.values()))
    rows = {label: row for row, label in enumerate(labels)}
    row_of = {task: rows[lane] for task, lane in on_lane.items()}
    idle = [view.task for view in views if view.task not in row_of]
    if idle:
        labels.append(trace.NOT_RUN)
        row_of.update({task: len(labels) - 1 for task in idle})
    return [short_text(label, 32) for label in labels], row_of


# -- pieces ------------------------------------------------------------------------------------------


def _text(value: Any, limit: int = 200) -> str:
    """``value`` as text safe inside an XML element or a double-quoted attribute."""
    shown = _INVALID_XML.sub("?", short_text(value, limit))
    return (shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _header(width: int, height: int) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">\n'
            "<style>.note{fill:#555;font-size:10px}.label{fill:#222}.tick{fill:#444;font-size:10px}"
            ".dep{fill:none;stroke:#455a64;stroke-opacity:.55;stroke-width:1}"
            ".skip{fill:none;stroke:#e53935;stroke-opacity:.7;stroke-dasharray:3 2}</style>\n"
            '<defs><marker id="arrow" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="6" '
            'markerHeight="6" orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#455a64"/></marker></defs>\n'
            f'<rect width="{width}" height="{height}" fill="white"/>')


def _title(source: Any, views: List[TaskView], phases: Sequence[Phase], width: int) -> str:
    ran = sum(1 for view in views if view.span is not None)
    serial, makespan = trace.serial_time(source), trace.makespan(source)
    words = [f"{len(views)} tasks ({ran} ran)", f"makespan {_seconds(makespan)}",
             f"serial sum {_seconds(serial)}"]
    if makespan > 0 and serial > makespan:
        words[-1] += f" ({serial / makespan:.1f}x in parallel)"
    if phases:
        first = min(start for _, start, _ in phases)
        last = max([end for _, _, end in phases] + [view.settled or view.seen for view in views])
        words.append(f"end to end {_seconds(last - first)}")
    return (f'<text x="10" y="20" font-size="14" font-weight="bold">Run timeline</text>'
            f'<text x="120" y="20" font-size="12">{_text(" | ".join(words))}</text>')


def _legend(views: List[TaskView], kinds: Sequence[str]) -> str:
    """Outcome colours (the usual five, and any other present), then the colours of the phase kinds."""
    present = {view.outcome for view in views}
    shown = list(_ALWAYS_IN_LEGEND) + [kind for kind in COLOURS if kind in present
                                       and kind not in _ALWAYS_IN_LEGEND]
    items, x = [], 10
    for kind in shown:
        items.append(f'<rect x="{x}" y="32" width="10" height="10" fill="{COLOURS[kind]}"/>'
                     f'<text x="{x + 14}" y="41">{kind}</text>')
        x += 24 + 7 * len(kind)
    for kind in kinds:
        colour = _PHASE_COLOURS.get(kind, _OTHER_PHASE)
        shown = short_text(kind, 30)
        items.append(f'<rect x="{x}" y="32" width="10" height="10" fill="{colour}" opacity="0.8"/>'
                     f'<text x="{x + 14}" y="41">{_text(shown)}</text>')
        x += 24 + 7 * len(shown)
    return "".join(items)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def _tick_step(span: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about 8 ticks over ``span`` seconds."""
    raw = span / 8
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def _axis(scale: _Scale, height: int) -> List[str]:
    """Ticks and grid lines; labels in ms below 2 s, else in s."""
    step = _tick_step(scale.span)
    in_seconds = scale.span >= 2
    unit = 1 if in_seconds else 1000
    decimals = max(0, -math.floor(math.log10(step * unit)))  # enough to tell the ticks apart
    bottom = height - 26
    parts = [f'<line x1="{scale.left}" y1="{_TOP - 4}" x2="{scale.left + scale.width}" y2="{_TOP - 4}" '
             'stroke="#444"/>']
    for number in range(int(scale.span / step + 1e-9) + 1):
        offset = number * step
        x = scale.x(scale.origin + offset)
        value = offset * unit
        label = f"{value:.{decimals}f} {'s' if in_seconds else 'ms'}"
        parts.append(f'<line x1="{x:.1f}" y1="{_TOP - 8}" x2="{x:.1f}" y2="{bottom}" stroke="#e0e0e0"/>'
                     f'<text x="{x:.1f}" y="{_TOP - 11}" text-anchor="middle" class="tick">{label}</text>')
    return parts


def _phase_lanes(phases: Sequence[Phase]) -> Dict[str, List[Phase]]:
    """Phase kind (the label's first word) -> its phases, kinds in order of first appearance."""
    lanes: Dict[str, List[Phase]] = {}
    for label, start, end in phases:
        lanes.setdefault(str(label).split(" ", 1)[0] or "model", []).append((str(label), start, end))
    return lanes


def _phase_rows(lanes: Dict[str, List[Phase]], scale: _Scale) -> List[str]:
    parts = []
    for number, (kind, found) in enumerate(lanes.items()):
        top = _TOP + number * _ROW
        parts.append(f'<rect x="0" y="{top}" width="{_LABEL - 6}" height="{_ROW}" fill="#f3f0fa"/>'
                     f'<text x="8" y="{top + 14}" class="label" font-style="italic">{_text(kind, 30)}</text>')
        colour = _PHASE_COLOURS.get(kind, _OTHER_PHASE)
        for label, start, end in found:
            x, right = scale.x(start), scale.x(end)
            bar = max(right - x, 1.5)
            parts.append(f'<rect class="phase" x="{x:.1f}" y="{top + 4}" width="{bar:.1f}" height="{_BAR}" '
                         f'fill="{colour}" opacity="0.8"><title>{_text(label)}: '
                         f'{_seconds(end - start)}</title></rect>')
            if bar > 7 * len(label) + 6:
                parts.append(f'<text x="{x + 3:.1f}" y="{top + 14}" fill="white" font-size="10">'
                             f'{_text(label, 40)}</text>')
    return parts


def _row_top(row: int) -> int:
    return _TOP + row * _ROW


def _row_label(label: str, row: int, width: int) -> str:
    top = _row_top(row)
    shade = "#fafafa" if row % 2 else "#ffffff"
    return (f'<rect x="0" y="{top}" width="{width}" height="{_ROW}" fill="{shade}" opacity="0.6"/>'
            f'<text x="8" y="{top + 14}" class="label">{_text(label)}</text>')


def _task_marks(view: TaskView, row: int, scale: _Scale, width: int, compact: bool) -> List[str]:
    """A task's bar (or its diamond, when it never ran) and its note; ``compact`` (rows shared by
    many tasks): the task index inside the bar where it fits, instead of a note beside it."""
    top = _row_top(row)
    parts: List[str] = []
    colour = COLOURS.get(view.outcome, "#000")
    tooltip = _text(f"{view.task}. {view.tool}({view.arguments}): {view.outcome}"
                    + (f": {view.error}" if view.error else ""), 600)
    if view.span is not None:
        x, right = scale.x(view.span.start), scale.x(view.span.end)
        bar = max(right - x, 1.5)
        parts.append(f'<rect class="bar {view.outcome}" data-task="{view.task}" x="{x:.1f}" y="{top + 4}" '
                     f'width="{bar:.1f}" height="{_BAR}" fill="{colour}" stroke="white" stroke-width="0.6" '
                     'rx="2">'
                     f'<title>{tooltip} ({_seconds(view.span.duration)})</title></rect>')
        if not compact:
            note = _seconds(view.span.duration) + ("" if view.outcome == "finished" else f" {view.outcome}")
            parts.append(_note(note, x, x + bar, top, width))
        elif bar >= 7 * len(str(view.task)) + 4:
            parts.append(f'<text x="{x + 2:.1f}" y="{top + 14}" fill="white" font-size="10">'
                         f'{view.task}</text>')
        return parts
    at = scale.x(view.settled if view.settled is not None else view.seen)
    parts.append(f'<path class="mark {view.outcome}" data-task="{view.task}" '
                 f'd="M{at:.1f},{top + 4} l5,6 l-5,6 l-5,-6 z" fill="{colour}">'
                 f'<title>{tooltip}</title></path>')
    if not compact:
        why = f"{view.outcome} (task {view.cause} did not finish)" if view.cause is not None else view.outcome
        parts.append(_note(why, at - 5, at + 5, top, width))
    return parts


def _note(text: str, left: float, right: float, top: int, width: int) -> str:
    """A small note right of ``right``, or left of ``left`` when it would not fit before the edge."""
    room = 6 * len(text) + 8
    if right + room <= width:
        return f'<text x="{right + 4:.1f}" y="{top + 14}" class="note">{_text(text)}</text>'
    return f'<text x="{left - 4:.1f}" y="{top + 14}" class="note" text-anchor="end">{_text(text)}</text>'


def _arrows(views: List[TaskView], row_of: Dict[int, int], scale: _Scale, dependencies: bool) -> List[str]:
    """Dependency arrows (see the module docstring; only skip arrows without ``dependencies``); none
    for big pictures."""
    if len(views) > _MAX_ARROW_ROWS:
        return []
    ends: Dict[int, Tuple[float, int]] = {}  # task -> (x where an arrow from it starts, its row)
    for view in views:
        if view.span is not None:
            ends[view.task] = (scale.x(view.span.end), row_of[view.task])
        elif view.settled is not None:
            ends[view.task] = (scale.x(view.settled), row_of[view.task])
    parts: List[str] = []
    for view in views:
        if view.span is not None:
            target: Optional[float] = scale.x(view.span.start)
            sources, style = (view.dependencies if dependencies else ()), "dep"
        else:
            target = ends.get(view.task, (None, 0))[0]
            sources, style = ((view.cause,) if view.cause is not None else ()), "skip"
        for dep in sources:
            if dep not in ends or target is None or target < ends[dep][0] - 0.5 or len(parts) >= _MAX_ARROWS:
                continue
            parts.append(_curve(ends[dep], (target, row_of[view.task]), style))
    return parts


def _curve(start: Tuple[float, int], end: Tuple[float, int], style: str) -> str:
    (x1, row1), (x2, row2) = start, end
    y1, y2 = _row_top(row1) + _ROW / 2, _row_top(row2) + _ROW / 2
    bend = max(8.0, (x2 - x1) / 2)
    return (f'<path class="{style}" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
            f'{x2:.1f},{y2:.1f}" marker-end="url(#arrow)"/>')
