"""The plan language: reading a plan as an LLM streams it in, line by line, into ``Task``s.

An LLM writes a plan as lines::

    Thought: I need both populations before I can compare them.
    1. search("population of Tokyo")
    2. search(query="population of Paris")
    3. math("ratio of $1 to ${2}", context=[$1, $2])
    4. join()<END_OF_PLAN>

* ``<n>. tool(args)`` is a task (leading whitespace and spaces after the dot are allowed; the tool name is
  a plain identifier). Arguments are Python literals only -- str, int, float, bool, None, list, tuple,
  dict, a sign on a number -- plus bare ``$N``/``${N}``, read with ``ast`` and never evaluated. Numbers
  are bounded: an int of more than 4,300 decimal digits (in any base) or a float that overflows to
  infinity (``1e99999``) is an error, and so is nesting deeper than ``plan.MAX_NESTING`` brackets.
* A task may span lines while a bracket or a triple-quoted string is open; it ends with the line that
  closes the call's ``)``, and nothing but spaces may follow that ``)``. A one-quote string cannot span
  lines (except by a backslash before the newline, as in Python). While a task is open outside a string,
  a line that starts a new task, thought, fence or ``join()`` means the task was never closed: that is an
  error on the task, and the line is then read normally.
* ``Thought: ...`` lines give the next task its thought (several are joined with a space); blank lines
  and markdown fences are skipped. ``join()``, with or without ``<n>.``, ends the plan and is no task.
* ``<END_OF_PLAN>`` ends the plan wherever it appears, even inside a line or string: the text before it
  is the plan. Everything after the end is ignored.
* Any other line is an error -- or, in lenient mode, more thought. Lenient mode also takes arguments that
  are not literals (``search(Austin Powers)``) as one string: the text between the parentheses.
* Whole-argument references must name an earlier task (of this plan or a ``known`` earlier one); in-text
  ``$N`` becomes a dependency only when task N is earlier (see ``plan`` for what references mean).
  Task indices must be unique, not consecutive.

A plan that stops early
-----------------------
A stream may end without ``join()`` or ``<END_OF_PLAN>`` (the model stopped, the connection dropped):
``close()`` then reads what came. A last line without its newline is read as a whole line, so a complete
call on it is a task; a call still open (``2. search("Par``) is a ``PlanSyntaxError`` on that task,
raised by ``close()`` after the tasks before it were returned. ``done`` stays False, which tells a caller
the plan never said it was finished.

Text must be ``str``: bytes are refused with a ``PlanError`` (decode them first). Any character may
appear (NUL, control characters, lone surrogates from ``errors="surrogateescape"``): outside string
literals it makes the line an error, inside one it is kept as written.

The argument text of one call is scanned and read as literals by the private module ``_literals``.
Imports point one way: ``parser -> validation, _literals -> plan -> errors``.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence, Tuple

from ._literals import ArgumentError, ArgumentScanner, read_arguments, read_simple_call, small_int
from .errors import PlanError, PlanSyntaxError
from .plan import Task, references, string_references, trusted_task
from .text import short_repr
from .validation import duplicate_error, unknown_reference_error

__all__ = ["END_OF_PLAN", "PlanParser", "parse_plan"]

_NO_DEPENDENCIES: frozenset = frozenset()

END_OF_PLAN = "<END_OF_PLAN>"

_TASK_LINE = re.compile(r"\s*([0-9]+)\.[ \t]*([^\W\d]\w*)[ \t]*\(")
_DOTTED_TASK_LINE = re.compile(r"\s*([0-9]+)\.[ \t]*(\w+(?:\.\w+)+)[ \t]*\(")
_JOIN_LINE = re.compile(r"\s*(?:[0-9]+\.[ \t]*)?join[ \t]*\([ \t]*\)\s*")
_THOUGHT_LINE = re.compile(r"\s*thought[ \t]*:(.*)", re.IGNORECASE)
_FENCE_LINE = re.compile(r"\s*```")


def _shown(text: str, limit: int = 60) -> str:
    """``text`` stripped, quoted and cut to ``limit`` characters for an error message."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _starts_plan_line(line: str) -> bool:
    """Whether ``line`` begins a task, a thought, a fence or a join (so it cannot continue a call)."""
    return bool(_TASK_LINE.match(line) or _DOTTED_TASK_LINE.match(line) or _THOUGHT_LINE.match(line)
                or _FENCE_LINE.match(line) or _JOIN_LINE.fullmatch(line))


class _OpenTask:
    """A task whose line has been read but whose call may still be open."""

    def __init__(self, digits: str, tool: str, line: int, text: str, offset: int, thought: Optional[str]):
        self.digits = digits
        self.tool = tool
        self.line = line  # the plan line the task starts on
        self.first_line = text
        self.offset = offset  # where the argument text starts in first_line
        self.thought = thought
        self.line_count = 0
        self.scanner = ArgumentScanner()


class PlanParser:
    """Reads a plan as it streams in; see the module docstring for the language.

    ``feed(chunk)`` returns the tasks the chunk completed, ``close()`` the rest. Whatever way a text is cut
    into chunks, the tasks returned add up to ``parse_plan(text)``. Text is kept only from the start of
    the unfinished line (or open task), so feeding is linear in the text's length.

    ``known`` holds the indices of tasks from earlier plans (replanning continues their numbering): they
    count as earlier tasks for references, and reusing one is a ``DuplicateTaskError``.

    Errors: ``feed`` and ``close`` raise ``PlanSyntaxError``, ``DuplicateTaskError`` or
    ``UnknownReferenceError`` (all ``PlanError``) for the first bad line. The bad line (or open task) is
    consumed; tasks completed before it in the same call are kept and returned by the next ``feed`` or
    ``close``, and lines after it are read by that next call, so a caller may report the error and go on.
    """

    def __init__(self, lenient: bool = False, known: Iterable[int] = ()):
        self._lenient = lenient
        self._known = frozenset(known)
        self._held = ""  # the end of the input that may be the start of END_OF_PLAN
        self._partial: List[str] = []  # pieces of the line not yet ended by a newline
        self._lines: Deque[Tuple[int, str]] = deque()  # complete lines not yet read: (number, text)
        self._line_count = 0  # lines moved to _lines so far
        self._open: Optional[_OpenTask] = None
        self._thought: List[str] = []
        self._defined: Dict[int, int] = {}  # task index -> the line it was defined on
        self._tasks: List[Task] = []
        self._outbox: List[Task] = []  # completed tasks not yet returned
        self._input_ended = False  # no more text is taken: close(), join() or END_OF_PLAN
        self._done = False
        self._closed = False

    @property
    def done(self) -> bool:
        """True once ``join()`` or ``END_OF_PLAN`` was seen."""
        return self._done

    @property
    def tasks(self) -> List[Task]:
        """Every task produced so far, in order (a copy)."""
        return list(self._tasks)

    def feed(self, chunk: str) -> List[Task]:
        """Add ``chunk`` to the plan text; returns the tasks completed since the last call.

        After the plan's end, the text is ignored. Raises ``PlanError`` for a bad line (see the class
        docstring), or when called after ``close()``.
        """
        if self._closed:
            raise PlanError("feed() was called after close()")
        if not isinstance(chunk, str):
            raise PlanError(f"plan text must be str, got {type(chunk).__name__}: decode it first "
                            f"(for example chunk.decode('utf-8', 'replace'))")
        if not self._input_ended:
            self._take(chunk)
        return self._read_lines()

    def close(self) -> List[Task]:
        """End the input; returns the remaining tasks. Safe to call again (it then returns []).

        Raises ``PlanError`` for a bad line, or ``PlanSyntaxError`` when a task's call is not closed.
        """
        self._closed = True
        if not self._input_ended:
            self._commit(self._held)
            self._held = ""
            self._end_input()
        return self._read_lines()

    # -- text to lines

    def _take(self, chunk: str) -> None:
        """Commit ``chunk`` up to END_OF_PLAN, holding back an end that may begin the marker."""
        text = self._held + chunk
        end = text.find(END_OF_PLAN)
        if end >= 0:
            self._held = ""
            self._commit(text[:end])
            self._end_input()
            self._done = True
            return
        keep = _marker_prefix_length(text)
        self._held = text[len(text) - keep:] if keep else ""
        self._commit(text[:len(text) - keep])

    def _commit(self, text: str) -> None:
        """Append ``text`` to the input, queueing the lines it completes."""
        if "\n" not in text:
            if text:
                self._partial.append(text)
            return
        first, *rest = text.split("\n")
        self._partial.append(first)
        self._queue_line("".join(self._partial))
        for line in rest[:-1]:
            self._queue_line(line)
        self._partial = [rest[-1]] if rest[-1] else []

    def _queue_line(self, line: str) -> None:
        self._line_count += 1
        self._lines.append((self._line_count, line[:-1] if line.endswith("\r") else line))

    def _end_input(self) -> None:
        """Queue the unfinished last line and take no more text."""
        if self._partial:
            self._queue_line("".join(self._partial))
            self._partial = []
        self._input_ended = True

    # -- lines to tasks

    def _read_lines(self) -> List[Task]:
        """Read the queued lines; returns (and forgets) the completed tasks. Raises at the first bad line."""
        while self._lines:
            number, line = self._lines.popleft()
            self._read_line(number, line)
        if self._input_ended and self._open is not None:
            task, self._open = self._open, None
            self._not_closed(task, "before the end of the plan")
        tasks, self._outbox = self._outbox, []
        return tasks

    def _read_line(self, number: int, line: str) -> None:
        """Read one line. Raises PlanError for a bad one."""
        if self._open is not None:
            self._continue_task(number, line)
        elif (start := _TASK_LINE.match(line)) and not (start.group(2) == "join" and _JOIN_LINE.fullmatch(line)):
            self._start_task(number, line, start)  # tried first: most lines are tasks
        elif not line.strip() or _FENCE_LINE.match(line):
            return
        elif thought := _THOUGHT_LINE.match(line):
            self._add_thought(thought.group(1))
        elif _JOIN_LINE.fullmatch(line):
            self._finish_plan()
        elif dotted := _DOTTED_TASK_LINE.match(line):
            raise PlanSyntaxError(f"line {number}: tool names must be plain identifiers, got "
                                  f"{short_repr(dotted.group(2), 60)}", line=number, text=line)
        elif self._lenient:
            self._add_thought(line)
        else:
            raise PlanSyntaxError(f"line {number}: expected '<n>. tool(args)', got {_shown(line)}",
                                  line=number, text=line)

    def _add_thought(self, text: str) -> None:
        if text.strip():
            self._thought.append(text.strip())

    def _finish_plan(self) -> None:
        """``join()``: the plan ends here; the rest of the input is dropped."""
        self._done = self._input_ended = True
        self._lines.clear()
        self._partial, self._held, self._thought = [], "", []

    def _start_task(self, number: int, line: str, match: "re.Match[str]") -> None:
        thought = " ".join(self._thought) or None
        self._thought = []
        if match.group(2) == "join":
            raise PlanSyntaxError(f"line {number}: expected 'join()' alone, got {_shown(line)}",
                                  line=number, task=small_int(match.group(1)), text=line)
        simple = read_simple_call(line, match.end())
        if simple is not None:  # the common case: a one-line call of plain literals
            args, kwargs, dollars, bare = simple
            self._add_task(match.group(1), match.group(2), number, line, thought, args, kwargs, dollars, bare)
            return
        self._open = _OpenTask(match.group(1), match.group(2), number, line, match.end(), thought)
        self._scan(number, line[match.end():])

    def _continue_task(self, number: int, line: str) -> None:
        task = self._open
        assert task is not None
        if task.scanner.quote is None and _starts_plan_line(line):
            self._open = None
            self._lines.appendleft((number, line))  # not consumed: read it after reporting the task
            self._not_closed(task, f"before line {number}")
            return
        self._scan(number, line)

    def _scan(self, number: int, segment: str) -> None:
        """Scan one line of the open task's arguments; complete the task if its call closed there."""
        task = self._open
        assert task is not None
        task.line_count += 1
        try:
            end = task.scanner.feed(segment + "\n")
            if end is not None and segment[end:].strip():
                raise ArgumentError(f"unexpected text after the call: {_shown(segment[end:])}")
        except ArgumentError as error:
            self._open = None
            if not self._lenient_fallback(task):
                raise PlanSyntaxError(f"line {number}: task {task.digits}: {error}", line=number,
                                      task=small_int(task.digits), text=segment) from None
            return
        if end is not None:
            self._open = None
            self._complete(task, None)

    def _not_closed(self, task: _OpenTask, where: str) -> None:
        """Report ``task``'s unclosed call (or, in lenient mode, read its one line as text)."""
        if self._lenient_fallback(task):
            return
        scanner = task.scanner
        missing = "a string is still open" if scanner.quote else f"expected {scanner.closer!r}"
        raise PlanSyntaxError(f"line {task.line}: task {task.digits}: the call is not closed ({missing}) "
                              f"{where}", line=task.line, task=small_int(task.digits), text=task.first_line)

    def _lenient_fallback(self, task: _OpenTask) -> bool:
        """In lenient mode, complete a one-line task ending in ')' with its raw argument text."""
        body = task.first_line[task.offset:].rstrip()
        if not self._lenient or task.line_count != 1 or not body.endswith(")"):
            return False
        self._complete(task, body[:-1].strip())
        return True

    def _complete(self, task: _OpenTask, raw_argument: Optional[str]) -> None:
        """Check and record the task. ``raw_argument`` (lenient mode) replaces reading the arguments."""
        if raw_argument is not None:
            args, kwargs = (raw_argument,), {}
        else:
            self._check_new_index(self._index(task.digits, task.line, task.first_line), task.line)
            try:
                args, kwargs = read_arguments("".join(task.scanner.source), task.line, task.digits)
            except PlanSyntaxError:
                if not self._lenient:
                    raise
                args, kwargs = ("".join(task.scanner.raw).strip(),), {}
        self._add_task(task.digits, task.tool, task.line, task.first_line, task.thought, args, kwargs, None, ())

    def _add_task(self, digits: str, tool: str, line: int, text: str, thought: Optional[str],
                  args: Tuple[Any, ...], kwargs: Dict[str, Any], dollars: Optional[List[str]],
                  bare: Sequence[int]) -> None:
        """Check the task's index and references and record it. ``dollars``: its quoted strings holding
        a '$' and ``bare`` the numbers of its bare references, as ``read_simple_call`` gives them (None:
        find every reference here)."""
        idx = int(digits) if len(digits) <= 18 else 0
        if idx < 1:
            idx = self._index(digits, line, text)  # raises
        if idx in self._defined or idx in self._known:
            self._check_new_index(idx, line)  # raises
        dependencies = self._dependencies(idx, line, args, kwargs, dollars, bare)
        parsed = trusted_task(idx, tool, args, kwargs, dependencies, thought)
        self._defined[idx] = line
        self._tasks.append(parsed)
        self._outbox.append(parsed)

    @staticmethod
    def _index(digits: str, line: int, text: str) -> int:
        idx = small_int(digits)
        if idx is None:
            raise PlanSyntaxError(f"line {line}: the task index {digits[:20]}... is too large", line=line,
                                  text=text)
        if idx < 1:
            raise PlanSyntaxError(f"line {line}: task indices start at 1, got {idx}", line=line, task=idx,
                                  text=text)
        return idx

    def _check_new_index(self, idx: int, line: int) -> None:
        if idx in self._known:
            raise duplicate_error(idx, line=line, earlier_plan=True)
        if idx in self._defined:
            raise duplicate_error(idx, line=line, first_line=self._defined[idx])

    def _dependencies(self, idx: int, line: int, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                      dollars: Optional[List[str]], bare: Sequence[int]) -> frozenset:
        """Whole-argument references (each must name an earlier task) plus in-text ones to earlier tasks."""
        if dollars is not None and not dollars and not bare:
            return _NO_DEPENDENCIES
        try:
            whole, inline = references(args, kwargs) if dollars is None else string_references(dollars)
        except PlanError as error:  # a reference's number is too large
            raise PlanSyntaxError(f"line {line}: task {idx}: {error}", line=line, task=idx) from None
        whole.update(bare)
        defined, known = self._defined, self._known
        for ref in whole:
            if ref not in defined and ref not in known:
                raise unknown_reference_error(idx, min(r for r in whole if r not in defined and r not in known),
                                              line=line)
        for ref in inline:
            if ref in defined or ref in known:
                whole.add(ref)
        return frozenset(whole)


def _marker_prefix_length(text: str) -> int:
    """The length of the longest end of ``text`` that is a proper start of END_OF_PLAN (0 if none)."""
    if "<" not in text[-(len(END_OF_PLAN) - 1):]:
        return 0
    for length in range(min(len(END_OF_PLAN) - 1, len(text)), 0, -1):
        if text.endswith(END_OF_PLAN[:length]):
            return length
    return 0


def parse_plan(text: str, *, lenient: bool = False, known: Iterable[int] = ()) -> List[Task]:
    """The tasks of the plan ``text``, in order. Same as feeding it all to a ``PlanParser`` and closing.

    Raises ``PlanSyntaxError``, ``DuplicateTaskError`` or ``UnknownReferenceError`` for the first bad line.
    """
    parser = PlanParser(lenient=lenient, known=known)
    return parser.feed(text) + parser.close()
