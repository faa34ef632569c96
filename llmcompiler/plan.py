"""Tasks, the references between them, and resolving those references into a call's arguments.

A *task* is one tool call of a plan: ``Task(3, "math", ("ratio of $1 to ${2}",), {"context": ["$1", "$2"]})``.
The plan language that LLMs write (``3. math("ratio of $1 to ${2}", context=[$1, $2])``) is read by
``llmcompiler.parser`` into tasks; ``PlanParser``, ``parse_plan`` and ``END_OF_PLAN`` are importable
from here too.

References
----------
``$N`` and ``${N}`` refer to the observation of task N:

* A string argument that is exactly ``$N`` or ``${N}`` (at any depth inside lists, tuples and dict values)
  stands for the observation itself, of whatever type, passed unchanged.
* Inside a longer string, ``$N`` or ``${N}`` is replaced by the observation's exact text
  (``text.exact_text``: ``str(obs)``, huge ints written in full) -- but only when task N is one of the
  task's dependencies. The parser makes it one when task N is an earlier task of the plan; otherwise the
  text is left alone. So "it costs $5" in task 3 stays "it costs $5", and "$1.50" (a ``$N`` followed by
  ``.digit``) is never a reference; nor is a number of more than 18 digits.
* Dict keys are never references; only values are resolved. Containers are ``list``, ``tuple`` and
  ``dict`` exactly: any other value (a subclass, a set) is passed as it is, never looked into.
* Arguments nest at most ``MAX_NESTING`` containers deep (a value containing itself nests for ever).

A task's ``dependencies`` are its declared ones plus every whole-argument reference (always) plus the
in-text references the parser found to earlier tasks.

The checks on a set of tasks (duplicates, cycles, ``validate_tasks``) are in ``llmcompiler.validation``,
also importable from here.
"""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, Iterable, Iterator, Mapping, Optional, Set, Tuple

from .errors import PlanError, RenderError, SubstitutionError
from .text import exact_text, short_repr

# The checks on a set of tasks (llmcompiler.validation), importable from here too (see __getattr__).
_VALIDATION_NAMES = ("validate_tasks", "check_new_tasks", "find_cycle", "duplicate_error", "self_reference_error",
                     "missing_dependency_error", "unknown_reference_error", "cycle_error")

__all__ = [
    "MAX_NESTING",
    "MAX_INDEX",
    "call_text",
    "Task",
    "whole_reference",
    "inline_references",
    "references",
    "string_references",
    "resolve",
    "END_OF_PLAN",
    "parse_plan",
    "PlanParser",
    *_VALIDATION_NAMES,
]

MAX_NESTING = 100  # containers inside one argument, at most (the parser counts the call's own bracket too)
_MAX_INDEX_DIGITS = 18  # a task number longer than this names no task (and int() of thousands may raise)
MAX_INDEX = 10 ** _MAX_INDEX_DIGITS - 1  # task indices are 1 .. MAX_INDEX, in plan text and in Task(...)

# A string that is exactly one reference: "$3" or "${3}".
_WHOLE_REFERENCE = re.compile(r"\$(?:\{([0-9]+)\}|([0-9]+))")
# A reference inside text. "$5.00" is money, not task 5: a bare $N must not be followed by ".digit".
_INLINE_REFERENCE = re.compile(r"\$(?:\{([0-9]{1,18})\}|([0-9]{1,18})(?![0-9]|\.[0-9]))")
_NO_DEPENDENCIES: frozenset = frozenset()


def _reference_value(digits: str) -> int:
    if len(digits) > _MAX_INDEX_DIGITS:
        raise PlanError(f"the reference ${digits[:20]}... names no task: its number is too large")
    return int(digits)


def _reference_number(match: "re.Match[str]") -> int:
    return _reference_value(match.group(1) or match.group(2))


def whole_reference(value: Any) -> Optional[int]:
    """The task index N if ``value`` is the string ``$N`` or ``${N}``, else None.

    Raises ``PlanError`` when N has more than 18 digits."""
    if type(value) is str and "$" in value:
        if value[0] == "$":  # the common "$N", read without the regular expression
            digits = value[1:]
            if digits.isascii() and digits.isdigit():
                return _reference_value(digits)
        match = _WHOLE_REFERENCE.fullmatch(value)
        if match:
            return _reference_number(match)
    return None


def inline_references(text: str) -> Iterator[int]:
    """Every N of a ``$N`` or ``${N}`` written inside ``text`` (candidates; see the module docstring)."""
    for match in _INLINE_REFERENCE.finditer(text):
        yield int(match.group(1) or match.group(2))


def _leaves(values: Iterable[Any], wrappers: int) -> Iterator[Any]:
    """Every leaf inside ``values`` (lists, tuples, dict values), without recursion.

    ``wrappers`` is how many levels of containers around the arguments are the caller's own (not
    counted). Raises ``PlanError`` past ``MAX_NESTING`` containers (also for one that contains itself)."""
    stack = [iter(values)]
    while stack:
        for value in stack[-1]:
            kind = type(value)
            if kind is list or kind is tuple or kind is dict:
                if len(stack) - wrappers > MAX_NESTING:
                    raise PlanError(f"arguments nest deeper than {MAX_NESTING} containers")
                stack.append(iter(value.values() if kind is dict else value))
                break
            yield value
        else:
            stack.pop()


def _whole_references(values: Iterable[Any]) -> Optional[Set[int]]:
    """The whole-argument references among ``values`` (at any depth), or None when there are none.

    This runs for every task built: a flat string or number costs one type check."""
    found: Optional[Set[int]] = None
    for value in values:
        kind = type(value)
        if kind is str:
            if "$" in value and (ref := whole_reference(value)) is not None:
                found = found or set()
                found.add(ref)
        elif kind is list or kind is tuple or kind is dict:
            for leaf in _leaves((value,), 0):  # the 1-tuple is only iterated, never entered
                if type(leaf) is str and "$" in leaf and (ref := whole_reference(leaf)) is not None:
                    found = found or set()
                    found.add(ref)
    return found


def references(args: Iterable[Any], kwargs: Mapping[str, Any]) -> Tuple[Set[int], Set[int]]:
    """The references written in a call's arguments: ``(whole, inline)`` sets of task indices.

    ``whole`` holds the arguments that are exactly ``$N``; ``inline`` the candidates inside longer text.
    Raises ``PlanError`` for nesting deeper than ``MAX_NESTING`` or a reference number over 18 digits.
    """
    leaves = _leaves((tuple(args), tuple(kwargs.values())), 1)  # the two tuples are no argument
    return string_references([leaf for leaf in leaves if type(leaf) is str and "$" in leaf])


def string_references(strings: Iterable[str]) -> Tuple[Set[int], Set[int]]:
    """``references`` for the string values of a call that contain a ``$``: ``(whole, inline)``.

    Raises ``PlanError`` for a reference number over 18 digits."""
    whole: Set[int] = set()
    inline: Set[int] = set()
    for text in strings:
        match = _WHOLE_REFERENCE.fullmatch(text)
        if match:
            whole.add(_reference_number(match))
        else:
            for found in _INLINE_REFERENCE.finditer(text):
                inline.add(int(found.group(1) or found.group(2)))
    return whole, inline


def _is_index(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _dependency_tuple(value: Any, idx: Any) -> Tuple[int, ...]:
    """``value`` (a list, tuple or set of task indices) as a sorted tuple of distinct ints. Raises
    ``PlanError``."""
    kind = type(value)
    if kind is list and len(value) == 1 and type(value[0]) is int and 0 < value[0] <= MAX_INDEX:
        return (value[0],)  # the most common case after none
    if kind is not list and kind is not tuple and kind is not frozenset and kind is not set:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise PlanError(f"task {short_repr(idx, 40)}: 'dependencies' must be a list of task indices, got "
                            f"{type(value).__name__}", task=idx if _is_index(idx) else None)
    if not value:
        return ()
    for dep in value:
        if type(dep) is not int or dep < 1 or dep > MAX_INDEX:
            break
    else:
        if len(value) == 2 and kind is not set and kind is not frozenset:
            first, second = value
            return (first, second) if first < second else ((second, first) if second < first else (first,))
        return tuple(sorted(set(value))) if len(value) > 1 else tuple(value)
    for dep in value:
        if not _is_index(dep) or not 0 < dep <= MAX_INDEX:
            raise PlanError(f"task {short_repr(idx, 40)}: dependencies must be task indices (positive ints of at "
                            f"most 18 digits), got {short_repr(dep, 60)}", task=idx if _is_index(idx) else None)
    return tuple(sorted({int(dep) for dep in value}))  # int subclasses (an IntEnum) as plain ints


def _with_references(deps: Tuple[int, ...], whole: Optional[Set[int]], in_kwargs: Optional[Set[int]]
                     ) -> Tuple[int, ...]:
    """``deps`` with the whole-argument references added (sorted, distinct)."""
    for found in (whole, in_kwargs):
        if found:
            for ref in found:
                if ref not in deps:
                    return tuple(sorted(set(deps).union(whole or (), in_kwargs or ())))
    return deps  # every reference declared already (the dict form lists them)


def _task_check(idx: Any, tool: Any) -> None:
    if type(idx) is not int and not _is_index(idx):
        raise PlanError(f"a task index must be a positive int, got {short_repr(idx, 60)}")
    if idx < 1 or idx > MAX_INDEX:
        raise PlanError(f"a task index must be a positive int of at most 18 digits, got {short_repr(idx, 60)}")
    if type(tool) is not str or not tool:
        raise PlanError(f"task {idx}: the tool name must be a non-empty string", task=idx)


_FIELDS = ("idx", "tool", "args", "kwargs", "dependencies", "thought")
_SLOTS = ("idx", "tool", "args", "kwargs", "dependency_indices", "thought")


class Task:
    """One tool call of a plan. Immutable (its fields cannot be set; ``kwargs`` is its own copy).

    ``Task(idx, tool, args=(), kwargs=None, dependencies=frozenset(), thought=None)``. ``dependencies``
    given here are the declared ones; every whole-argument reference in ``args`` and ``kwargs`` is
    added to them. In-text references count only when their task is in ``dependencies`` (the parser adds
    those that name an earlier task). Equality compares everything but ``thought``; the hash is
    ``(idx, tool)``. Raises ``PlanError`` for a non-positive index, an empty tool name, non-integer
    dependencies, arguments nested deeper than ``MAX_NESTING`` or a reference number over 18 digits.
    ``dependencies`` reads as a frozenset; ``dependency_indices`` holds the same indices as a sorted
    tuple (what is stored: a tuple of a few ints is a quarter of the size of a frozenset).
    """

    __slots__ = _SLOTS
    __match_args__ = _FIELDS
    idx: int
    tool: str
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    dependency_indices: Tuple[int, ...]  # the dependencies, sorted: what the scheduler reads
    thought: Optional[str]

    def __init__(self, idx: int, tool: str, args: Iterable[Any] = (), kwargs: Optional[Mapping[str, Any]] = None,
                 dependencies: Iterable[int] = (), thought: Optional[str] = None) -> None:
        _task_check(idx, tool)
        args = tuple(args)
        kwargs = dict(kwargs) if kwargs else {}
        deps = _dependency_tuple(dependencies, idx)
        try:
            whole = _whole_references(args)
            in_kwargs = _whole_references(kwargs.values())
        except PlanError as error:
            raise PlanError(f"task {idx}: {error}", task=idx) from None
        _init(self, int(idx), tool, args, kwargs, _with_references(deps, whole, in_kwargs), thought)

    @property
    def dependencies(self) -> frozenset:
        """The indices of the tasks this one waits for (a new frozenset; ``dependency_indices`` is the
        same as a sorted tuple, without building a set)."""
        return frozenset(self.dependency_indices) if self.dependency_indices else _NO_DEPENDENCIES

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        """Build a task from the common dict form.

        ``{"idx": 1, "tool_name": "search", "args": {"query": "x"}, "dependencies": []}``; ``args`` may
        be a dict (keyword arguments) or a list (positional); ``"tool"``, ``"kwargs"`` and ``"thought"``
        are accepted too. Returns the ``Task``. Raises ``PlanError`` naming what is missing or malformed.
        """
        if type(data) is not dict:
            if not isinstance(data, Mapping):
                raise PlanError(f"a task must be a dict, got {type(data).__name__}")
            data = dict(data)
        idx = data.get("idx")
        if idx is None:
            raise PlanError(f"task dict has no 'idx': {short_repr(data, 200)}")
        tool = data.get("tool_name")
        if tool is None:
            tool = data.get("tool")
        if tool is None:
            raise PlanError(f"task {short_repr(idx, 40)}: the dict has no 'tool_name'",
                            task=idx if _is_index(idx) else None)
        raw_args = data.get("args", ())
        extra = data.get("kwargs")
        if type(raw_args) is dict or isinstance(raw_args, Mapping):
            kwargs = {**raw_args, **extra} if extra else dict(raw_args)
            args: Tuple[Any, ...] = ()
        elif type(raw_args) in (list, tuple):
            args = tuple(raw_args)
            kwargs = dict(extra) if extra else {}
        else:
            raise PlanError(f"task {short_repr(idx, 40)}: 'args' must be a dict or a list, got "
                            f"{type(raw_args).__name__}", task=idx if _is_index(idx) else None)
        task = object.__new__(cls)
        _checked_init(task, idx, tool, args, kwargs, data.get("dependencies", ()), data.get("thought"))
        return task

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

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (self.idx == other.idx and self.tool == other.tool and self.args == other.args  # type: ignore
                and self.kwargs == other.kwargs
                and self.dependency_indices == other.dependency_indices)  # type: ignore

    def __hash__(self) -> int:
        return hash((self.idx, self.tool))

    def __repr__(self) -> str:
        return (f"Task(idx={self.idx}, tool={self.tool!r}, args={short_repr(self.args, 200)}, "
                f"kwargs={short_repr(self.kwargs, 200)}, dependencies={short_repr(self.dependencies, 200)}, "
                f"thought={short_repr(self.thought, 100)})")

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: a Task is immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: a Task is immutable")

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.idx, self.tool, self.args, self.kwargs, self.dependency_indices, self.thought))


# The slot setters: the only way a Task's fields are ever written (once, while it is built).
_SETTERS = tuple(getattr(Task, name).__set__ for name in _SLOTS)


def _init(task: Task, idx: int, tool: str, args: Tuple[Any, ...], kwargs: Dict[str, Any],
          dependencies: Tuple[int, ...], thought: Optional[str]) -> None:
    set_idx, set_tool, set_args, set_kwargs, set_deps, set_thought = _SETTERS
    set_idx(task, idx)
    set_tool(task, tool)
    set_args(task, args)
    set_kwargs(task, kwargs)
    set_deps(task, dependencies)
    set_thought(task, thought)


def _checked_init(task: Task, idx: Any, tool: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                  dependencies: Any, thought: Optional[str]) -> None:
    """``Task.__init__`` for arguments ``from_dict`` already made its own tuple and dict."""
    if type(idx) is not int or not 0 < idx <= MAX_INDEX or type(tool) is not str or not tool:
        _task_check(idx, tool)  # raises, naming what is wrong (an int subclass passes)
    deps = _dependency_tuple(dependencies, idx)
    try:
        whole = _whole_references(args) if args else None
        in_kwargs = _whole_references(kwargs.values()) if kwargs else None
    except PlanError as error:
        raise PlanError(f"task {idx}: {error}", task=idx) from None
    _init(task, idx if type(idx) is int else int(idx), tool, args, kwargs, _with_references(deps, whole, in_kwargs),
          thought)


def trusted_task(idx: int, tool: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], dependencies: Iterable[int],
                 thought: Optional[str]) -> Task:
    """A ``Task`` from fields already checked, with every whole reference in ``dependencies``.

    For the parser, which has read and checked them itself (internal: no check is repeated here)."""
    task = object.__new__(Task)
    _init(task, idx, tool, args, kwargs, tuple(sorted(dependencies)), thought)
    return task


# -- resolving references ---------------------------------------------------------------------------


class _Unrenderable(Exception):
    """An observation's text could not be made while filling ``$ref`` into a string (internal)."""

    def __init__(self, ref: int, error: RenderError):
        super().__init__(ref)
        self.ref = ref
        self.error = error


def resolve(task: Task, observation: Callable[[int], Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """The task's ``(args, kwargs)`` with every reference replaced, given ``observation(n)``.

    Only references to the task's dependencies are replaced (see the module docstring). Containers are
    rebuilt; leaves without references, and whole-argument observations, are passed through as they
    are. Raises ``SubstitutionError`` (a ``RenderError``) naming the task, the reference and the
    argument when an observation's ``str()`` fails while it is written into text. This runs once per
    task on the scheduler's hot path: plain values cost one type check.
    """
    deps = task.dependency_indices
    args, kwargs = task.args, task.kwargs
    if not deps:
        return args, kwargs
    try:  # the common "$N" is read in each loop, without a call per value (as _resolved would read it)
        if args:
            values = []
            for value in args:
                if type(value) is str and value[:1] == "$" and value[1:].isdigit() and value.isascii():
                    values.append(observation(int(value[1:])))
                else:
                    values.append(_resolved(value, deps, observation))
            args = tuple(values)
        if kwargs:
            filled = {}
            for key, value in kwargs.items():
                if type(value) is str and value[:1] == "$" and value[1:].isdigit() and value.isascii():
                    filled[key] = observation(int(value[1:]))
                else:
                    filled[key] = _resolved(value, deps, observation)
            kwargs = filled
    except _Unrenderable as failure:
        argument = _failing_argument(task, observation)
        raise SubstitutionError(f"task {task.idx}: cannot fill ${failure.ref} into {argument}: {failure.error}",
                                task=task.idx, reference=failure.ref, argument=argument,
                                value_type=failure.error.value_type) from failure.error.__cause__
    return args, kwargs


def _failing_argument(task: Task, observation: Callable[[int], Any]) -> str:
    """Which argument of ``task`` cannot be resolved: ``argument 2`` or ``argument 'q'`` (error path only)."""
    for position, value in enumerate(task.args, 1):
        try:
            _resolved(value, task.dependency_indices, observation)
        except _Unrenderable:
            return f"argument {position}"
    for key, value in task.kwargs.items():
        try:
            _resolved(value, task.dependency_indices, observation)
        except _Unrenderable:
            return f"argument {short_repr(key, 60)}"
    return "an argument"


def _resolved(value: Any, deps: Collection[int], observation: Callable[[int], Any]) -> Any:
    # Recursion is bounded: a task's arguments nest at most MAX_NESTING containers deep.
    kind = type(value)
    if kind is str:
        if "$" not in value:
            return value
        if value[0] == "$":  # the common "$N", read without the regular expression
            digits = value[1:]
            if digits.isascii() and digits.isdigit():
                return observation(int(digits))
        match = _WHOLE_REFERENCE.fullmatch(value)
        if match:
            return observation(int(match.group(1) or match.group(2)))

        def substitute(found: "re.Match[str]") -> str:
            ref = int(found.group(1) or found.group(2))
            if ref not in deps:
                return found.group(0)
            try:
                return exact_text(observation(ref))
            except RenderError as error:
                raise _Unrenderable(ref, error) from None

        return _INLINE_REFERENCE.sub(substitute, value)
    if kind is list or kind is tuple:
        return kind([_resolved(item, deps, observation) for item in value])
    if kind is dict:
        return {key: _resolved(item, deps, observation) for key, item in value.items()}
    return value


def call_text(task: Task) -> str:
    """The call as a plan would write it: ``tool('a', $1, k=2)`` (whole references shown bare).

    Never raises: every value is shown by ``text.short_repr`` (huge or unprintable values shortened)."""
    def shown(value: Any) -> str:
        if type(value) is str and "$" in value:
            match = _WHOLE_REFERENCE.fullmatch(value)
            if match:
                return value if match.group(2) else f"${match.group(1)}"
        return short_repr(value, 500)

    parts = [shown(arg) for arg in task.args]
    parts += [f"{key}={shown(value)}" for key, value in task.kwargs.items()]
    return f"{task.tool}({', '.join(parts)})"


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; at run time __getattr__ loads them
    from .parser import END_OF_PLAN, PlanParser, parse_plan
    from .validation import (check_new_tasks, cycle_error, duplicate_error, find_cycle, missing_dependency_error,
                             self_reference_error, unknown_reference_error, validate_tasks)


def __getattr__(name: str) -> Any:
    # The plan language (llmcompiler.parser) and the checks on a set of tasks (llmcompiler.validation)
    # import this module; their public names are importable from here too, loaded on first use so the
    # imports stay one way.
    if name in ("END_OF_PLAN", "PlanParser", "parse_plan"):
        from . import parser

        return getattr(parser, name)
    if name in _VALIDATION_NAMES:
        from . import validation

        return getattr(validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
