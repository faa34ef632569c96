"""Tasks, references between them, and the plan language.

A *task* is one tool call of a plan: ``3. math("ratio of $1 to ${2}", context=[$1, $2])``.

References
----------
``$N`` and ``${N}`` refer to the observation of task N:

* A string argument that is exactly ``$N`` or ``${N}`` (at any depth inside lists, tuples and dict values)
  stands for the observation itself, of whatever type.
* Inside a longer string, ``$N`` or ``${N}`` is replaced by the observation's text (``str(obs)``) --
  but only when task N is one of the task's dependencies. The parser makes it one when task N is an
  earlier task of the plan; otherwise the text is left alone. So "it costs $5" in task 3 stays "it costs
  $5", and "$1.50" (a ``$N`` followed by ``.digit``) is never a reference.
* Dict keys are never references; only values are resolved.

A task's ``dependencies`` are its declared ones plus every whole-argument reference (always) plus the
in-text references the parser found to earlier tasks.

The plan language
-----------------
An LLM writes a plan as lines::

    Thought: I need both populations before I can compare them.
    1. search("population of Tokyo")
    2. search(query="population of Paris")
    3. math("ratio of $1 to ${2}", context=[$1, $2])
    4. join()<END_OF_PLAN>

* ``<n>. tool(args)`` is a task (leading whitespace and spaces after the dot are allowed; the tool name is
  a plain identifier). Arguments are Python literals only -- str, int, float, bool, None, list, tuple,
  dict, a sign on a number -- plus bare ``$N``/``${N}``, read with ``ast`` and never evaluated.
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
  ``$N`` becomes a dependency only when task N is earlier. Task indices must be unique, not consecutive.

``PlanParser`` reads a plan as it streams in; ``validate_tasks`` checks plans given as task lists. The
argument text of one call is scanned and read as literals by the private module ``_literals``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from ._literals import ArgumentError, ArgumentScanner, read_arguments, small_int
from .errors import CycleError, DuplicateTaskError, PlanError, PlanSyntaxError, UnknownReferenceError

__all__ = [
    "call_text",
    "Task",
    "whole_reference",
    "inline_references",
    "references",
    "resolve",
    "END_OF_PLAN",
    "parse_plan",
    "PlanParser",
    "validate_tasks",
]

# A string that is exactly one reference: "$3" or "${3}".
_WHOLE_REFERENCE = re.compile(r"\$(?:\{(\d+)\}|(\d+))")
# A reference inside text. "$5.00" is money, not task 5: a bare $N must not be followed by ".digit".
_INLINE_REFERENCE = re.compile(r"\$(?:\{(\d+)\}|(\d+)(?!\.\d))")


def whole_reference(value: Any) -> Optional[int]:
    """The task index N if ``value`` is the string ``$N`` or ``${N}``, else None."""
    if isinstance(value, str):
        match = _WHOLE_REFERENCE.fullmatch(value)
        if match:
            return int(match.group(1) or match.group(2))
    return None


def inline_references(text: str) -> Iterator[int]:
    """Every N of a ``$N`` or ``${N}`` written inside ``text`` (candidates; see the module docstring)."""
    for match in _INLINE_REFERENCE.finditer(text):
        yield int(match.group(1) or match.group(2))


def _walk(value: Any) -> Iterator[Any]:
    """Every leaf value inside lists, tuples and dict values, at any depth."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    else:
        yield value


def references(args: Iterable[Any], kwargs: Mapping[str, Any]) -> Tuple[set, set]:
    """The references written in a call's arguments: ``(whole, inline)`` sets of task indices.

    ``whole`` holds the arguments that are exactly ``$N``; ``inline`` the candidates inside longer text.
    """
    whole: set = set()
    inline: set = set()
    for leaf in _walk([list(args), list(kwargs.values())]):
        ref = whole_reference(leaf)
        if ref is not None:
            whole.add(ref)
        elif isinstance(leaf, str) and "$" in leaf:
            inline.update(inline_references(leaf))
    return whole, inline


def _freeze_dependencies(value: Iterable[Any]) -> frozenset:
    deps = set()
    for dep in value:
        if isinstance(dep, bool) or not isinstance(dep, int):
            raise PlanError(f"dependencies must be task indices (int), got {dep!r}")
        deps.add(dep)
    return frozenset(deps)


@dataclass(frozen=True)
class Task:
    """One tool call of a plan. Immutable.

    ``dependencies`` given here are the declared ones; every whole-argument reference in ``args`` and
    ``kwargs`` is added to them. In-text references count only when their task is in ``dependencies``
    (the parser adds those that name an earlier task). Raises ``PlanError`` for a non-positive index,
    an empty tool name or non-integer dependencies.
    """

    idx: int
    tool: str
    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict, hash=False)
    dependencies: frozenset = frozenset()
    thought: Optional[str] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.idx, bool) or not isinstance(self.idx, int) or self.idx < 1:
            raise PlanError(f"a task index must be a positive int, got {self.idx!r}")
        if not isinstance(self.tool, str) or not self.tool:
            raise PlanError(f"task {self.idx}: the tool name must be a non-empty string", task=self.idx)
        whole, _ = references(self.args, self.kwargs)
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        object.__setattr__(self, "dependencies", _freeze_dependencies(self.dependencies) | whole)

    def __hash__(self) -> int:
        return hash((self.idx, self.tool))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        """Build a task from the common dict form.

        ``{"idx": 1, "tool_name": "search", "args": {"query": "x"}, "dependencies": []}``; ``args`` may
        be a dict (keyword arguments) or a list (positional); ``"tool"``, ``"kwargs"`` and ``"thought"``
        are accepted too. Raises ``PlanError`` naming what is missing or malformed.
        """
        if not isinstance(data, Mapping):
            raise PlanError(f"a task must be a dict, got {type(data).__name__}")
        if "idx" not in data:
            raise PlanError(f"task dict has no 'idx': {dict(data)!r}")
        idx = data["idx"]
        tool = data.get("tool_name", data.get("tool"))
        if tool is None:
            raise PlanError(f"task {idx}: the dict has no 'tool_name'", task=_int_or_none(idx))
        raw_args = data.get("args", ())
        kwargs = dict(data.get("kwargs", {}))
        if isinstance(raw_args, Mapping):
            kwargs = {**dict(raw_args), **kwargs}
            args: Tuple[Any, ...] = ()
        elif isinstance(raw_args, (list, tuple)):
            args = tuple(raw_args)
        else:
            raise PlanError(f"task {idx}: 'args' must be a dict or a list, got {type(raw_args).__name__}",
                            task=_int_or_none(idx))
        deps = data.get("dependencies", ())
        if not isinstance(deps, (list, tuple, set, frozenset)):
            raise PlanError(f"task {idx}: 'dependencies' must be a list of task indices",
                            task=_int_or_none(idx))
        return cls(idx, tool, args, kwargs, frozenset(deps), data.get("thought"))

    def to_dict(self) -> Dict[str, Any]:
        """The common dict form: keyword arguments under ``"args"``, positional ones under ``"positional"``
        only when there are any (so a keyword-only task round-trips to exactly the seed's shape)."""
        data: Dict[str, Any] = {
            "idx": self.idx,
            "tool_name": self.tool,
            "args": dict(self.kwargs),
            "dependencies": sorted(self.dependencies),
        }
        if self.args:
            data["positional"] = list(self.args)
        if self.thought is not None:
            data["thought"] = self.thought
        return data


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def resolve(task: Task, observation: Callable[[int], Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """The task's ``(args, kwargs)`` with every reference replaced, given ``observation(n)``.

    Only references to the task's dependencies are replaced (see the module docstring). Containers are
    rebuilt; leaves without references are passed through as they are. This runs once per task on
    the scheduler's hot path: plain values cost one type check.
    """
    deps = task.dependencies
    if not deps:
        return task.args, task.kwargs
    args = tuple([_resolved(value, deps, observation) for value in task.args])
    kwargs = {key: _resolved(value, deps, observation) for key, value in task.kwargs.items()}
    return args, kwargs


def call_text(task: Task) -> str:
    """The call as a plan would write it: ``tool('a', $1, k=2)`` (whole references shown bare)."""
    def shown(value: Any) -> str:
        ref = whole_reference(value)
        return repr(value) if ref is None else f"${ref}"

    parts = [shown(arg) for arg in task.args]
    parts += [f"{key}={shown(value)}" for key, value in task.kwargs.items()]
    return f"{task.tool}({', '.join(parts)})"


def _resolved(value: Any, deps: frozenset, observation: Callable[[int], Any]) -> Any:
    kind = type(value)
    if kind is str:
        if "$" not in value:
            return value
        match = _WHOLE_REFERENCE.fullmatch(value)
        if match:
            return observation(int(match.group(1) or match.group(2)))

        def substitute(found: "re.Match[str]") -> str:
            ref = int(found.group(1) or found.group(2))
            return str(observation(ref)) if ref in deps else found.group(0)

        return _INLINE_REFERENCE.sub(substitute, value)
    if kind is list or kind is tuple:
        return kind(_resolved(item, deps, observation) for item in value)
    if kind is dict:
        return {key: _resolved(item, deps, observation) for key, item in value.items()}
    return value


# -- the plan language: lines (the argument text of a call is read by _literals) ---------------------

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
        elif not line.strip() or _FENCE_LINE.match(line):
            return
        elif thought := _THOUGHT_LINE.match(line):
            self._add_thought(thought.group(1))
        elif _JOIN_LINE.fullmatch(line):
            self._finish_plan()
        elif start := _TASK_LINE.match(line):
            self._start_task(number, line, start)
        elif dotted := _DOTTED_TASK_LINE.match(line):
            raise PlanSyntaxError(f"line {number}: tool names must be plain identifiers, got "
                                  f"{dotted.group(2)!r}", line=number, text=line)
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
        idx = self._index(task)
        self._check_new_index(idx, task.line)
        if raw_argument is not None:
            args, kwargs = (raw_argument,), {}
        else:
            try:
                args, kwargs = read_arguments("".join(task.scanner.source), task.line, task.digits)
            except PlanSyntaxError:
                if not self._lenient:
                    raise
                args, kwargs = ("".join(task.scanner.raw).strip(),), {}
        dependencies = self._dependencies(idx, task.line, args, kwargs)
        parsed = Task(idx, task.tool, args, kwargs, dependencies, task.thought)
        self._defined[idx] = task.line
        self._tasks.append(parsed)
        self._outbox.append(parsed)

    @staticmethod
    def _index(task: _OpenTask) -> int:
        idx = small_int(task.digits)
        if idx is None:
            raise PlanSyntaxError(f"line {task.line}: the task index {task.digits[:20]}... is too large",
                                  line=task.line, text=task.first_line)
        if idx < 1:
            raise PlanSyntaxError(f"line {task.line}: task indices start at 1, got {idx}",
                                  line=task.line, task=idx, text=task.first_line)
        return idx

    def _check_new_index(self, idx: int, line: int) -> None:
        if idx in self._known:
            raise DuplicateTaskError(f"line {line}: task {idx} is already defined by an earlier plan",
                                     line=line, task=idx)
        if idx in self._defined:
            raise DuplicateTaskError(f"line {line}: task {idx} is defined twice (first on line "
                                     f"{self._defined[idx]})", line=line, task=idx)

    def _is_earlier(self, idx: int) -> bool:
        return idx in self._defined or idx in self._known

    def _dependencies(self, idx: int, line: int, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> frozenset:
        """Whole-argument references (each must name an earlier task) plus in-text ones to earlier tasks."""
        try:
            whole, inline = references(args, kwargs)
        except ValueError:  # int() refuses a reference with thousands of digits
            raise PlanSyntaxError(f"line {line}: task {idx}: a reference's task number is too large",
                                  line=line, task=idx) from None
        unknown = sorted(ref for ref in whole if not self._is_earlier(ref))
        if unknown:
            ref = unknown[0]
            why = " (a task cannot refer to itself)" if ref == idx else ""
            raise UnknownReferenceError(f"line {line}: task {idx} refers to ${ref}, which is not an earlier "
                                        f"task{why}", line=line, task=idx, reference=ref)
        return frozenset(whole) | {ref for ref in inline if self._is_earlier(ref)}


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


# -- plans given as task lists -----------------------------------------------------------------------


def validate_tasks(tasks: Iterable[Union[Task, Mapping[str, Any]]], *, known: Iterable[int] = ()) -> List[Task]:
    """Check a plan given as a list of ``Task`` objects or task dicts (see ``Task.from_dict``).

    Returns the tasks in the given order. A task may depend on one listed after it; only loops are
    wrong. Raises ``PlanError`` for an item that is neither, ``DuplicateTaskError`` for a repeated index
    (also one in ``known``, the tasks of earlier plans), ``UnknownReferenceError`` for a dependency on
    the task itself or on a task neither listed nor known, and ``CycleError`` for a dependency loop.
    """
    known_indices = frozenset(known)
    listed: Dict[int, Task] = {}
    result = [_as_task(item, position) for position, item in enumerate(tasks, 1)]
    for task in result:
        if task.idx in known_indices:
            raise DuplicateTaskError(f"task {task.idx} is already defined by an earlier plan", task=task.idx)
        if task.idx in listed:
            raise DuplicateTaskError(f"task {task.idx} appears twice in the task list", task=task.idx)
        listed[task.idx] = task
    for task in result:
        for dep in sorted(task.dependencies):
            if dep == task.idx:
                raise UnknownReferenceError(f"task {dep} depends on itself", task=dep, reference=dep)
            if dep not in listed and dep not in known_indices:
                raise UnknownReferenceError(f"task {task.idx} depends on task {dep}, which is neither in "
                                            f"the list nor an earlier task", task=task.idx, reference=dep)
    cycle = _find_cycle(result, listed)
    if cycle:
        raise CycleError(f"tasks {' -> '.join(map(str, cycle))} form a cycle", cycle=cycle)
    return result


def _as_task(item: Any, position: int) -> Task:
    if isinstance(item, Task):
        return item
    if isinstance(item, Mapping):
        return Task.from_dict(item)
    raise PlanError(f"item {position} of the task list must be a Task or a dict, got {type(item).__name__}")


def _find_cycle(tasks: List[Task], listed: Dict[int, Task]) -> Optional[List[int]]:
    """A dependency loop among ``tasks`` as indices (first == last), or None. Iterative depth-first search."""
    finished: set = set()
    for root in tasks:
        if root.idx in finished:
            continue
        path = [root.idx]  # the tasks being visited; each depends on the next
        on_path = {root.idx}
        pending = [iter(sorted(dep for dep in root.dependencies if dep in listed))]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                pending.pop()
                on_path.discard(path[-1])
                finished.add(path.pop())
            elif dep in on_path:
                return path[path.index(dep):] + [dep]
            elif dep not in finished:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(sorted(d for d in listed[dep].dependencies if d in listed)))
    return None
