"""What the command line prints: result tables, round logs, the time report and a live progress line.

Every value shown goes through ``text.short_text`` (an int of 5,000 digits, a ``__str__`` that raises,
a 100 MB string: shortened or described, never a traceback). Every figure of time comes from the
runs' own ``started`` and ``finished`` events (``trace.serial_time``, ``trace.makespan``): time a task
waited for a worker is not counted as work.

``ProgressLine`` is the one thing here that more than one thread touches: engine threads deliver
events to it while the main thread prints; its lock guards its counts and every write to its stream.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Mapping, Optional, TextIO

from . import trace
from .plan import Task
from .results import Event, RunResult
from .rounds import Round
from .text import short_text

__all__ = ["ProgressLine", "RoundPrinter", "outcome_lines", "print_run", "report", "saving", "shorten"]


def shorten(value: Any, limit: int = 300) -> str:
    """``value`` as one line of at most ``limit`` characters (whitespace runs become one space)."""
    return " ".join(short_text(value, limit).split())


def call_line(task: Task, limit: int = 300) -> str:
    """``tool(args)`` as the plan wrote it, at most about ``limit`` characters."""
    return f"{short_text(task.tool, 60)}({trace.arguments_text(task, limit)})"


def outcome_lines(tasks: Mapping[int, Task], observations: Mapping[int, Any], failures: Mapping[int, Any],
                  limit: int = 300) -> List[str]:
    """One line per task, in index order: its call and its observation, failure or skip."""
    lines = []
    for idx in sorted(tasks):
        call = f"{idx}. {call_line(tasks[idx], limit)}"
        if idx in observations:
            lines.append(f"{call} -> {shorten(observations[idx], limit)}")
        elif idx in failures:
            failure = failures[idx]
            if failure.kind == "skipped":
                lines.append(f"{call} SKIPPED: it depends on task {failure.cause}, which did not finish")
            else:
                detail = (f": {failure.error_type}: {shorten(failure.message, limit)}"
                          if failure.error_type else "")
                step = getattr(failure, "step", "")  # an engine step, when it was not the tool that failed
                where = f" while {shorten(step, 60)}" if step else ""
                lines.append(f"{call} {failure.kind.upper()}{where}{shorten(detail, limit)}")
        else:
            lines.append(f"{call} (no result)")
    return lines


def saving(before: float, after: float) -> str:
    """``"   (1.20 s saved, 2.5x faster)"``, or "" when ``after`` is not at least 0.01 s faster."""
    if after <= 0 or before - after < 0.005:
        return ""
    return f"   ({before - after:.2f} s saved, {before / after:.1f}x faster)"


def print_run(result: RunResult, out: TextIO) -> None:
    """A plan run's results, its text timeline and the time it saved."""
    for line in outcome_lines(result.tasks, result.observations, result.failures):
        print(line, file=out)
    print(file=out)
    print(trace.timeline(result), file=out)
    serial, span = trace.serial_time(result), trace.makespan(result)
    print(f"\n{len(result.tasks)} tasks, {len(result.failures)} failed or skipped; one by one "
          f"{serial:.2f} s, as run {span:.2f} s{saving(serial, span)}", file=out)


class ProgressLine:
    """A live ``done/total, running, failed`` line on a terminal, redrawn in place.

    ``event`` is an ``on_event`` callback (any thread); ``add_tasks`` raises the total as a plan
    streams in; ``clear()`` blanks the line before other output and ``redraw()`` puts it back;
    ``finish()`` draws the last state and ends the line. Redraws are at most every ``interval``
    seconds, except the last. Writes that fail (a closed terminal) are dropped.
    """

    _SETTLED = ("finished", "failed", "skipped", "cancelled")

    def __init__(self, stream: TextIO, total: int = 0, interval: float = 0.05):
        self._lock = threading.Lock()  # guards everything below and every write to the stream
        self._stream = stream
        self._total = total
        self._interval = interval
        self._running: set = set()
        self._settled: Dict[str, int] = dict.fromkeys(self._SETTLED, 0)
        self._shown = ""
        self._drawn_at = float("-inf")

    def add_tasks(self, count: int) -> None:
        with self._lock:
            self._total += count
            self._draw(force=False)

    def event(self, event: Event) -> None:
        with self._lock:
            if event.kind == "started":
                self._running.add(event.task)
            elif event.kind in self._SETTLED:
                self._running.discard(event.task)
                self._settled[event.kind] += 1
            self._draw(force=False)

    def text(self) -> str:
        """The line as it stands, e.g. ``"tasks: 3/8 done, 2 running, 1 failed, 1 skipped"``."""
        with self._lock:
            return self._text()

    def _text(self) -> str:
        done = sum(self._settled.values())
        words = [f"tasks: {done}/{max(self._total, done)} done", f"{len(self._running)} running",
                 f"{self._settled['failed']} failed"]
        words += [f"{self._settled[kind]} {kind}" for kind in ("skipped", "cancelled") if self._settled[kind]]
        return ", ".join(words)

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < self._interval:
            return
        text = self._text()
        if text != self._shown:
            self._write(f"\r{text}\x1b[K")
            self._shown, self._drawn_at = text, now

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is not worth an error
            pass

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self._write("\r\x1b[K")
                self._shown = ""

    def redraw(self) -> None:
        with self._lock:
            self._draw(force=True)

    def finish(self) -> None:
        with self._lock:
            self._draw(force=True)
            if self._shown:
                self._write("\n")
                self._shown = ""


class RoundPrinter:
    """Prints a question's progress, round by round: the round's heading as soon as its first task is
    parsed, then, once the joiner has decided, the round's log in time order: plan lines as parsed,
    task starts and ends, and the verdict. (Logged per round rather than per event as it comes, so the
    lines are in time order even when worker threads report an event a little late.) Called on the
    caller's thread only. ``line`` is the progress line to keep out of the way, if any."""

    _EVENTS = {"started": "start", "finished": "done", "failed": "failed", "skipped": "skipped",
               "cancelled": "cancelled"}

    def __init__(self, out: TextIO, origin: float, line: Optional[ProgressLine] = None):
        self._out = out
        self._origin = origin
        self._line = line
        self._round = 1
        self._header_shown = False

    def _print(self, text: str) -> None:
        if self._line is not None:
            self._line.clear()
        print(text, file=self._out, flush=True)
        if self._line is not None:
            self._line.redraw()

    def _header(self) -> None:
        if not self._header_shown:
            self._header_shown = True
            self._print(f"\nPlan {self._round} (streamed: each task starts as soon as its line is complete)")

    def task(self, task: Task) -> None:
        """An ``on_task`` callback."""
        self._header()
        if self._line is not None:
            self._line.add_tasks(1)

    def round(self, round_: Round) -> None:
        """An ``on_round`` callback: print the round's log."""
        self._header()
        lines = [f"  {at - self._origin:6.2f}s  {what:<8} {text}"
                 for at, _, what, text in sorted(self._log(round_))]
        if lines:
            self._print("\n".join(lines))
        self._round += 1
        self._header_shown = False

    def rest(self, rounds: List[Round]) -> None:
        """Print the rounds of ``rounds`` not printed yet (after an error cut the loop short)."""
        for round_ in rounds[self._round - 1:]:
            self.round(round_)

    def _log(self, round_: Round) -> List[tuple]:
        """``(time, order, label, text)`` of everything that happened in the round; at equal times a
        task's thought comes first, then its plan line, then events, then the verdict."""
        log = []
        for task in round_.tasks:
            at = round_.parsed_at.get(task.idx, round_.planning_started)
            if task.thought:
                log.append((at, 0, "thought", shorten(task.thought, 100)))
            log.append((at, 1, "plan", f"{task.idx}. {call_line(task)}"))
        for event in round_.result.events if round_.result else ():
            if event.kind in self._EVENTS:
                where = f"  [{event.worker}]" if event.worker else ""
                log.append((event.time, 2, self._EVENTS[event.kind], f"{event.task}. {event.tool}{where}"))
        if round_.plan_error is not None:
            log.append((round_.planning_finished, 1, "error", shorten(round_.plan_error, 120)))
        now = round_.joining_finished or time.perf_counter()
        if round_.decision is not None:
            verb = "Finish" if round_.decision.action == "finish" else "Replan"
            log.append((now, 3, "joiner", f"{verb}({shorten(round_.decision.text, 100)})"))
        elif round_.replan_reason is not None:
            log.append((now, 3, "replan", shorten(round_.replan_reason, 100)))
        return log


def report(result: Any, out: TextIO, *, final: bool = True) -> None:
    """A ``CompilerResult``: the results of every task, the timeline, the answer (when ``final``) and
    where the time went."""
    print("\nResults:", file=out)
    for line in outcome_lines(result.tasks, result.observations, result.failures, 120):
        print(f"  {line}", file=out)
    print("\nTimeline (# ran, x failed, ~ the model streaming):", file=out)
    print(trace.timeline(result, phases=result.phases()), file=out)
    if final and result.finished:
        print(f"\nAnswer: {short_text(result.answer, 100_000)}", file=out)
    elif final:
        print(f"\nNo answer: the joiner still wanted a new plan after {result.replans} replan(s) "
              "(the limit).", file=out)
    _time_report(result, out)


def _time_report(result: Any, out: TextIO) -> None:
    timings = result.timings
    serial = trace.serial_time(result)
    parallel = sum(trace.makespan(round_.result) for round_ in result.rounds if round_.result is not None)
    sequential = timings.planning + serial + timings.joining
    print("\nTime:", file=out)
    print(f"  tool calls one by one (sum of their durations)    {serial:6.2f} s", file=out)
    print(f"  tool calls as run here (per plan, first to last)  {parallel:6.2f} s"
          f"{saving(serial, parallel)}", file=out)
    print(f"  plan, then call one by one, then join             {sequential:6.2f} s", file=out)
    print(f"  this run, end to end (plans stream into the run)  {timings.total:6.2f} s"
          f"{saving(sequential, timings.total)}", file=out)
    print(f"  planning {timings.planning:.2f} s, execution {timings.execution:.2f} s "
          f"({timings.overlap:.2f} s of it while the plan was streaming), joining {timings.joining:.2f} s",
          file=out)
    usage = getattr(result, "usage", None)
    if usage is not None:
        print(f"  tokens: {_tokens(usage)}", file=out)
    else:
        print("  tokens: not reported by the model", file=out)
    by_model = getattr(result, "usage_by_model", None) or {}
    if len(by_model) > 1:  # a planner and a joiner of their own
        for model, counted in by_model.items():
            print(f"    {shorten(model, 60)}: {_tokens(counted)}", file=out)


def _tokens(usage: Any) -> str:
    return f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion = {usage.total_tokens}"
