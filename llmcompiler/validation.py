"""Checks on a set of tasks: one source for each rule and its message.

Used by the parser (plan text), ``validate_tasks`` (plans given as task lists) and the scheduler (tasks
added to a run):

* ``check_new_tasks(batch, *taken, known=...)``: duplicate indices and a task depending on itself.
* ``find_cycle(dependencies)``: a pure function on a ``{task: dependencies}`` mapping, returning the loop
  as ``[a, b, ..., a]`` or ``[]``.
* ``duplicate_error``, ``self_reference_error``, ``missing_dependency_error``, ``unknown_reference_error``,
  ``cycle_error``: the errors, each with its one message, for callers that find the problem themselves.

Imports point one way: ``validation -> plan -> errors``.
"""

from __future__ import annotations

from typing import Any, Collection, Iterable, List, Mapping, Optional, Set, Union

from .errors import CycleError, DuplicateTaskError, PlanError, UnknownReferenceError
from .plan import _VALIDATION_NAMES, Task

__all__ = list(_VALIDATION_NAMES)  # one list: plan.py re-exports the same names


def _where(line: Optional[int]) -> str:
    return f"line {line}: " if line is not None else ""


def duplicate_error(idx: int, *, line: Optional[int] = None, first_line: Optional[int] = None,
                    earlier_plan: bool = False) -> DuplicateTaskError:
    """The error for a task index used twice: in this plan or run, or (``earlier_plan``) by an earlier one.

    ``line`` is where the second use is, ``first_line`` where the first one was (plan text only)."""
    if earlier_plan:
        return DuplicateTaskError(f"{_where(line)}task {idx} is already defined by an earlier plan",
                                  line=line, task=idx)
    first = f" (first on line {first_line})" if first_line is not None else ""
    return DuplicateTaskError(f"{_where(line)}task {idx} is defined twice{first}", line=line, task=idx)


def self_reference_error(idx: int, *, line: Optional[int] = None) -> UnknownReferenceError:
    """The error for a task that depends on itself."""
    return UnknownReferenceError(f"{_where(line)}task {idx} depends on itself", line=line, task=idx,
                                 reference=idx)


def missing_dependency_error(idx: int, dependency: int, *, line: Optional[int] = None) -> UnknownReferenceError:
    """The error for a task depending on a task that is neither in its plan (or run) nor an earlier one."""
    return UnknownReferenceError(f"{_where(line)}task {idx} depends on task {dependency}, which is neither in "
                                 f"the plan nor an earlier task", line=line, task=idx, reference=dependency)


def unknown_reference_error(idx: int, reference: int, *, line: Optional[int] = None) -> UnknownReferenceError:
    """The error for a ``$N`` argument of plan text that names no earlier task (the task itself included)."""
    why = " (a task cannot refer to itself)" if reference == idx else ""
    return UnknownReferenceError(f"{_where(line)}task {idx} refers to ${reference}, which is not an earlier "
                                 f"task{why}", line=line, task=idx, reference=reference)


def cycle_error(cycle: List[int]) -> CycleError:
    """The error for tasks depending on each other in a loop; ``cycle`` as ``find_cycle`` returns it."""
    return CycleError(f"tasks {' -> '.join(map(str, cycle))} form a cycle", cycle=cycle)


def check_new_tasks(batch: Iterable[Task], *taken: Any, known: Any = ()) -> None:
    """Check tasks about to join a plan or run, in order; returns None when all may join.

    ``taken`` are containers of indices already used by this plan or run, ``known`` those of earlier
    plans. Raises ``DuplicateTaskError`` for an index in either or repeated within ``batch``, and
    ``UnknownReferenceError`` for a task that depends on itself.
    """
    seen: Set[int] = set()
    for task in batch:
        idx = task.idx
        if idx in known:
            raise duplicate_error(idx, earlier_plan=True)
        if idx in seen or (taken and any(idx in used for used in taken)):
            raise duplicate_error(idx)
        if idx in task.dependency_indices:
            raise self_reference_error(idx)
        seen.add(idx)


def find_cycle(dependencies: Mapping[int, Collection[int]]) -> List[int]:
    """A dependency loop as ``[a, b, ..., a]`` (each depends on the next), or ``[]`` when there is none.

    ``dependencies`` maps each task to the tasks it depends on (collections, read more than once); only
    edges between keys count. Searched depth first without recursion, from each key in the mapping's
    order, each task's dependencies in ascending order, so the same mapping always gives the same cycle.
    Linear in the number of edges (plus sorting each task's dependencies); when every task depends only
    on tasks before it in the mapping -- a plan listed in order -- one pass over the edges answers.
    """
    if _points_back(dependencies):
        return []
    finished: Set[int] = set()
    for root in dependencies:
        if root in finished:
            continue
        path = [root]  # the tasks being visited; each depends on the next
        on_path = {root}
        pending = [iter(sorted(dep for dep in dependencies[root] if dep in dependencies))]
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
                pending.append(iter(sorted(d for d in dependencies[dep] if d in dependencies)))
    return []


def _points_back(dependencies: Mapping[int, Collection[int]]) -> bool:
    """Whether every edge between keys goes to a key earlier in the mapping (then there is no cycle)."""
    earlier: Set[int] = set()
    for task, deps in dependencies.items():
        for dep in deps:
            if dep not in earlier and dep in dependencies:
                return False
        earlier.add(task)
    return True


def validate_tasks(tasks: Iterable[Union[Task, Mapping[str, Any]]], *, known: Iterable[int] = ()) -> List[Task]:
    """Check a plan given as a list of ``Task`` objects or task dicts (see ``Task.from_dict``).

    Returns the tasks in the given order. A task may depend on one listed after it; only loops are
    wrong. Raises ``PlanError`` for an item that is neither, ``DuplicateTaskError`` for a repeated index
    (also one in ``known``, the tasks of earlier plans), ``UnknownReferenceError`` for a dependency on
    the task itself or on a task neither listed nor known, and ``CycleError`` for a dependency loop.
    """
    known_indices = frozenset(known)
    result = [_as_task(item, position) for position, item in enumerate(tasks, 1)]
    check_new_tasks(result, known=known_indices)
    listed = {task.idx: task.dependency_indices for task in result}
    for task in result:
        for dep in task.dependency_indices:
            if dep not in listed and dep not in known_indices:
                raise missing_dependency_error(task.idx, min(d for d in task.dependency_indices
                                                             if d not in listed and d not in known_indices))
    cycle = find_cycle(listed)
    if cycle:
        raise cycle_error(cycle)
    return result


def _as_task(item: Any, position: int) -> Task:
    if type(item) is Task:
        return item
    if type(item) is dict or isinstance(item, Mapping):
        return Task.from_dict(item)
    if isinstance(item, Task):
        return item
    raise PlanError(f"item {position} of the task list must be a Task or a dict, got {type(item).__name__}")
