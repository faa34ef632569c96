"""The yardsticks: a textbook event-driven scheduler, and dask's threaded scheduler when installed.

``run_textbook`` is the scheduler a textbook would show: one counter of unfinished dependencies per
task, a list of dependents per task, and ``add_done_callback`` on an executor's futures. When a future
finishes, its callback (under one lock) stores the result, counts down each dependent and submits
those that reach zero. Nothing sleeps; nothing polls. It runs on any ``concurrent.futures`` executor:
a ``ThreadPoolExecutor`` for thread tools, a ``ProcessPoolExecutor`` for process tools (tools must then
be importable top-level functions).

It has no validation, no events, no timeouts, no retries and no failure handling beyond stopping at
the first error: the floor of what event-driven scheduling costs, not a usable engine. Its input is
``Call``s; the front ends below turn each input form into them (plan text goes through our own
``parse_plan``, the one parser there is).
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import Executor, Future
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from llmcompiler.plan import Task, parse_plan

__all__ = ["Call", "run_textbook", "from_dicts", "from_tasks", "from_text", "dask_get", "dask_available"]

_REFERENCE = re.compile(r"\$\{?(\d+)\}?$")


class Call(NamedTuple):
    """One tool call: its index, the function, positional arguments (a ``Ref`` stands for the
    observation of that task) and the indices it waits for."""

    idx: int
    function: Callable[..., Any]
    args: Tuple[Any, ...]
    dependencies: Tuple[int, ...]


class Ref(NamedTuple):
    """An argument that is the observation of task ``idx``."""

    idx: int


def _argument(value: Any) -> Any:
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        if match:
            return Ref(int(match.group(1)))
    return value


def _call(idx: int, function: Callable[..., Any], values: Iterable[Any], declared: Iterable[int]) -> Call:
    args = tuple(_argument(value) for value in values)
    dependencies = set(declared) | {arg.idx for arg in args if isinstance(arg, Ref)}
    return Call(idx, function, args, tuple(dependencies))


def from_dicts(dicts: Iterable[Mapping[str, Any]], tools: Mapping[str, Callable[..., Any]]) -> List[Call]:
    """Seed-form dicts (``idx``, ``tool_name``, ``args`` as a dict, ``dependencies``) to calls; keyword
    values are passed positionally, in order (the benchmark tools take ``*args``)."""
    return [_call(d["idx"], tools[d["tool_name"]], d["args"].values(), d.get("dependencies", ()))
            for d in dicts]


def from_tasks(tasks: Iterable[Task], tools: Mapping[str, Callable[..., Any]]) -> List[Call]:
    """``Task`` objects to calls."""
    return [_call(t.idx, tools[t.tool], (*t.args, *t.kwargs.values()), t.dependencies) for t in tasks]


def from_text(text: str, tools: Mapping[str, Callable[..., Any]]) -> List[Call]:
    """Plan text to calls, through ``llmcompiler.parse_plan``."""
    return from_tasks(parse_plan(text), tools)


def run_textbook(calls: Sequence[Call], executor: Executor) -> Dict[int, Any]:
    """Run ``calls`` on ``executor``, each as soon as its dependencies are done; returns
    ``{idx: observation}``. Raises the first tool exception (after the calls in flight finish)."""
    waiting = {call.idx: len(call.dependencies) for call in calls}   # unfinished dependencies
    dependents: Dict[int, List[Call]] = {call.idx: [] for call in calls}
    for call in calls:
        for dep in call.dependencies:
            dependents[dep].append(call)
    results: Dict[int, Any] = {}
    lock = threading.Lock()      # guards waiting, results, left, errors
    finished = threading.Event()
    left = [len(calls)]
    errors: List[BaseException] = []

    def submit(call: Call) -> None:
        args = [results[arg.idx] if isinstance(arg, Ref) else arg for arg in call.args]
        future = executor.submit(call.function, *args)
        future.add_done_callback(lambda done, idx=call.idx: settle(idx, done))

    def settle(idx: int, future: Future) -> None:
        error = future.exception()
        ready = []
        with lock:
            if error is not None:
                errors.append(error)
                finished.set()
                return
            results[idx] = future.result()
            left[0] -= 1
            for dependent in dependents[idx]:
                waiting[dependent.idx] -= 1
                if waiting[dependent.idx] == 0:
                    ready.append(dependent)
            if left[0] == 0:
                finished.set()
        # Submitted outside the lock: a callback may run at once, in this thread, when the future is
        # already done. A ready call's arguments are results written before it became ready.
        for call in ready:
            submit(call)

    for call in [call for call in calls if not call.dependencies]:
        submit(call)
    if calls:
        finished.wait()
    if errors:
        raise errors[0]
    return results


# -- dask ------------------------------------------------------------------------------------------


def dask_available() -> Optional[str]:
    """dask's version when ``import dask`` works, else None."""
    try:
        import dask
    except ImportError:
        return None
    return str(getattr(dask, "__version__", "?"))


def dask_get(calls: Sequence[Call], num_workers: int) -> Dict[int, Any]:
    """Run ``calls`` with ``dask.threaded.get`` (a ``Ref`` becomes the key of its task)."""
    import dask.threaded

    graph = {}
    for call in calls:
        passed = {arg.idx for arg in call.args if isinstance(arg, Ref)}
        extra = sorted(set(call.dependencies) - passed)  # declared only: passed last, as observations
        graph[call.idx] = (call.function, *[_key(arg) for arg in call.args], *extra)
    keys = [call.idx for call in calls]
    values = dask.threaded.get(graph, keys, num_workers=num_workers)
    return dict(zip(keys, values))


def _key(arg: Any) -> Any:
    # dask reads an int key inside a task tuple as a reference to that task's result; a literal int
    # argument would be ambiguous, so only references are passed (the benchmark tools take refs only).
    return arg.idx if isinstance(arg, Ref) else arg
