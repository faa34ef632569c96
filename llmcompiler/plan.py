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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from .errors import PlanError

__all__ = ["Task", "whole_reference", "inline_references", "references", "resolve"]

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
    rebuilt; leaves without references are passed through as they are.
    """
    deps = task.dependencies
    if not deps:
        return task.args, task.kwargs

    def substitute(match: "re.Match[str]") -> str:
        ref = int(match.group(1) or match.group(2))
        return str(observation(ref)) if ref in deps else match.group(0)

    def value_of(value: Any) -> Any:
        if isinstance(value, str):
            ref = whole_reference(value)
            if ref is not None:
                return observation(ref)
            return _INLINE_REFERENCE.sub(substitute, value) if "$" in value else value
        if isinstance(value, list):
            return [value_of(item) for item in value]
        if isinstance(value, tuple):
            return tuple(value_of(item) for item in value)
        if isinstance(value, dict):
            return {key: value_of(item) for key, item in value.items()}
        return value

    return tuple(value_of(a) for a in task.args), {k: value_of(v) for k, v in task.kwargs.items()}
