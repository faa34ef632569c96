"""The engine: what outlives one run, shared by every run on it; and ``run_tasks``, the one-shot form.

``Engine`` owns the thread lane (``lanes.ThreadLane``), the submit lanes and backends (process pools,
the event loop, given executors), the timer thread, the concurrency limits and tool estimates, and the
manager store when ``store="manager"``; it starts each run (``scheduler.Run``) on them. Many runs may go
on at once (one per question of a server): they share workers fairly and one tool's
``max_concurrency`` across all of them; cancelling one stops only its own calls.

The engine keeps no finished run: it knows the runs going on through weak references only, so once the
caller drops a result, the run's memory is free.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Iterable, List, Mapping, Optional, Union

from .backends import Backends
from .cache import CallCache
from .errors import RunClosedError, RunTimeoutError, StoreError
from .executors import Pools, Timers, DEFAULT_THREAD_WORKERS
from .lanes import SubmitLane, ThreadLane
from .plan import Task, parse_plan, validate_tasks
from .ready import Limits, ToolStats
from .results import Event, RunInterrupted, RunResult
from .scheduler import Run, RunParts, TaskLike
from .store import ManagerStore, ObservationStore
from .tools import ToolRegistry, as_registry

__all__ = ["Engine", "run_tasks"]

Tools = Union[ToolRegistry, Mapping[str, Any]]

_PROCESS_QUEUE_DEPTH = 8  # process calls handed to the pool ahead per worker, so none idles between calls
_ASYNC_CAPACITY = 100_000  # coroutines in flight on the engine's loop (they wait, they do not compete)
_EXECUTOR_CAPACITY = 1_000  # calls in flight on a given executor (its own queue orders the rest)


class Engine:
    """Owns the workers, pools, timer thread and shared store across runs; a context manager.

    ``Engine(tools, max_workers=None, process_workers=None, store="auto", start_method=None,
    executors=None, priority="time")``: ``tools`` is a ``ToolRegistry`` or a dict of name -> callable;
    ``max_workers`` caps the thread lane (default 32: thread tools mostly wait on I/O; threads start on
    first need); ``process_workers`` sizes the process pool (default: the CPU count). ``store`` is
    ``"auto"`` or ``"local"`` (each run's own record), ``"manager"`` (a ``ManagerStore`` started on first
    use, each run in a namespace of its own, removed when the run is over), or an ``ObservationStore``
    instance. ``start_method`` is ``"forkserver"`` (default where available), ``"spawn"``, or ``"fork"``
    (only when asked: unsafe with threads). ``executors`` maps names to ``concurrent.futures.Executor``s
    (for example a Dask cluster's) that tools registered with ``executor=<name>`` run on. ``priority``:
    ``"time"`` starts first the ready task with the most estimated time left on its chain (tools'
    observed mean durations), ``"count"`` the one with the most dependents after it. ``close()`` is
    idempotent.
    """

    def __init__(
        self, tools: Tools, *, max_workers: Optional[int] = None, process_workers: Optional[int] = None,
        store: Union[str, ObservationStore] = "auto", start_method: Optional[str] = None,
        executors: Optional[Mapping[str, Any]] = None, priority: str = "time",
    ) -> None:
        if not isinstance(store, ObservationStore) and store not in ("auto", "local", "manager"):
            raise ValueError(f"store must be 'auto', 'local', 'manager' or an ObservationStore, got {store!r}")
        for name, value in (("max_workers", max_workers), ("process_workers", process_workers)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if priority not in ("time", "count"):
            raise ValueError(f"priority must be 'time' or 'count', got {priority!r}")
        executors = dict(executors or {})
        for kind in executors:
            if kind in ("thread", "process", "async") or not str(kind).isidentifier():
                raise ValueError(f"executors: {kind!r} cannot name an executor (use an identifier other "
                                 "than 'thread', 'process' and 'async')")
        self.tools = as_registry(tools)
        self._pools = Pools(max_workers, process_workers, start_method)
        self._timers = Timers()
        self._lane = ThreadLane(max_workers or DEFAULT_THREAD_WORKERS, self._timers)
        self._backends = Backends(self._pools, executors)
        workers = self._pools.process_workers
        lanes = {"process": SubmitLane("process", _PROCESS_QUEUE_DEPTH * workers, workers),
                 "async": SubmitLane("async", _ASYNC_CAPACITY, _ASYNC_CAPACITY)}
        for kind in executors:
            lanes[kind] = SubmitLane(kind, _EXECUTOR_CAPACITY, _EXECUTOR_CAPACITY)
        self._parts = RunParts(self.tools, self._lane, lanes, self._backends, self._timers, Limits(),
                               ToolStats(), priority == "time")
        self._store_choice = store
        self._manager_store: Optional[ManagerStore] = None
        self._lock = threading.Lock()
        self._runs: "weakref.WeakSet[Run]" = weakref.WeakSet()
        self._closed = False

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(
        self, tasks: Iterable[TaskLike] = (), *, on_event: Optional[Callable[[Event], None]] = None,
        known: Optional[Mapping[int, Any]] = None, cache: Optional[CallCache] = None,
    ) -> Run:
        """Start a run that tasks can be added to while it runs; ``close()`` it when all are added.

        ``known`` maps indices of tasks finished earlier (a previous plan) to their observations, so new
        tasks may refer to them. ``cache``: a ``CallCache`` that answers calls of ``cache=True`` tools
        seen before (share one across the runs of a question). ``on_event`` is called with every event,
        in order, on the run's own delivery thread. Raises ``RunClosedError`` when the engine is closed.
        """
        with self._lock:
            if self._closed:
                raise RunClosedError("the engine is closed; create a new Engine to run more tasks")
            store = self._store_for_run()
            shared = store is not None
            run = Run(self._parts, store, on_event=on_event, known=known, cache=cache, shared_store=shared)
            self._runs.add(run)
        if shared:
            for idx, value in (known or {}).items():
                store.set(idx, value)
            if self._store_choice == "manager":
                run.when_over(store.close)  # a namespace of the engine's store: removed when over
        tasks = list(tasks)
        if tasks:
            run.add_many(tasks)
        return run

    def run(
        self, tasks: Union[str, Iterable[TaskLike]], *, timeout: Optional[float] = None,
        on_event: Optional[Callable[[Event], None]] = None, known: Optional[Mapping[int, Any]] = None,
        cache: Optional[CallCache] = None,
    ) -> RunResult:
        """Run a whole plan (plan text, ``Task``s or task dicts) and return its ``RunResult``.

        The plan is validated first (``PlanError``, ``ToolCallError``: nothing runs). With ``timeout``,
        a run still going after that many seconds is cancelled and ``RunTimeoutError`` raised, its
        ``result`` attribute holding what was observed. ``KeyboardInterrupt`` cancels the run and is
        re-raised as ``RunInterrupted`` carrying the partial result. If the observation store breaks
        (a manager store's process died), the run stops and ``StoreError`` is raised, naming the tasks
        that had not finished, with ``result`` attached.
        """
        batch = _as_tasks(tasks, known or {})
        run = self.start(on_event=on_event, known=known, cache=cache)
        try:
            run._add_batch(batch, validated=True)  # noqa: SLF001 - the engine's own run
            run.close()
            result = run.wait(timeout)
        except RunTimeoutError as err:
            run.cancel()
            err.result = run.wait()  # type: ignore[attr-defined]
            raise
        except KeyboardInterrupt:
            run.cancel()
            raise RunInterrupted(run.result()) from None
        except BaseException:  # an add that failed, or the caller's thread was stopped: nothing may
            run.cancel()       # keep running
            raise
        if run.store_error is not None:
            unfinished = sorted(i for i, f in result.failures.items() if f.kind == "cancelled")
            err = StoreError(f"the run stopped: {run.store_error}; tasks {unfinished} had not finished")
            err.result = result  # type: ignore[attr-defined]
            raise err from run.store_error
        return result

    async def arun(self, tasks: Union[str, Iterable[TaskLike]], **options: Any) -> RunResult:
        """``run`` for asyncio programs: awaits the run without blocking the event loop; cancelling the
        awaiting task cancels the run. Takes the same keywords as ``run``."""
        from .aio import arun

        return await arun(self, tasks, **options)

    def astart(self, tasks: Iterable[TaskLike] = (), **options: Any) -> Any:
        """``start`` for asyncio programs: an ``AsyncRun`` (``async for event in run``, ``await
        run.wait()``) over a run started with the same keywords as ``start``."""
        from .aio import AsyncRun

        return AsyncRun(self.start(tasks, **options))

    def cancel(self) -> None:
        """Cancel every run in progress on this engine."""
        for run in self._live_runs():
            run.cancel()

    def close(self) -> None:
        """Cancel what still runs, stop the workers, pools, event loop, timer thread and manager.
        Idempotent. Returns without waiting for a thread call that was abandoned (timed out or
        cancelled: a thread cannot be stopped); it is a daemon thread and ends when its call returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for run in self._live_runs():
            run.cancel()
        for lane in self._parts.submit_lanes.values():
            lane.close()
        self._lane.close()
        self._backends.close()
        self._timers.close()
        self._pools.close()
        if self._manager_store is not None:
            self._manager_store.close()

    def _live_runs(self) -> List[Run]:
        with self._lock:
            return [run for run in list(self._runs) if not run.done()]

    def _store_for_run(self) -> Optional[ObservationStore]:
        """The shared store of a new run, or None for a run that keeps its own record only."""
        choice = self._store_choice
        if isinstance(choice, ObservationStore):
            return choice
        if choice != "manager":
            return None
        if self._manager_store is None:
            self._manager_store = ManagerStore(self._pools.context)
        return self._manager_store.namespace()


def _as_tasks(tasks: Union[str, Iterable[TaskLike]], known: Mapping[int, Any]) -> List[Task]:
    if isinstance(tasks, str):
        return parse_plan(tasks, known=known)
    return validate_tasks(tasks, known=known)


def run_tasks(
    tasks: Union[str, Iterable[TaskLike]], tools: Tools, *, max_workers: Optional[int] = None,
    process_workers: Optional[int] = None, timeout: Optional[float] = None,
    on_event: Optional[Callable[[Event], None]] = None, store: Union[str, ObservationStore] = "auto",
) -> RunResult:
    """Run a plan once on a fresh engine and shut everything down: the one-shot form of ``Engine.run``.

    ``tasks``: plan text, ``Task``s, or dicts of the common form (``{"idx", "tool_name", "args",
    "dependencies"}``). ``tools``: a ``ToolRegistry`` or a dict of name -> callable. Returns a
    ``RunResult`` (``observations``, ``failures``, ``events``). Raises ``PlanError``/``ToolCallError``
    before anything runs when the plan is invalid.
    """
    with Engine(tools, max_workers=max_workers, process_workers=process_workers, store=store) as engine:
        return engine.run(tasks, timeout=timeout, on_event=on_event)

