"""The engine: pools, the timer thread and the shared store, kept across runs; and ``run_tasks``.

``Engine`` owns what outlives one run (``executors.Pools``, ``executors.Timers``, a ``ManagerStore``)
and starts each run (``scheduler.Run``) on them. ``run_tasks`` is the one-shot form.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, List, Mapping, Optional, Union

from .errors import RunClosedError, RunTimeoutError, StoreError
from .executors import Pools, Timers
from .plan import Task, parse_plan, validate_tasks
from .results import Event, RunInterrupted, RunResult
from .scheduler import Run, TaskLike, Tools
from .store import LocalStore, ManagerStore, ObservationStore
from .tools import as_registry

__all__ = ["Engine", "run_tasks"]


class Engine:
    """Owns the pools, the timer thread and the shared store across runs; a context manager.

    ``Engine(tools, max_workers=None, process_workers=None, store="auto", start_method=None)``:
    ``tools`` is a ``ToolRegistry`` or a dict of name -> callable; ``max_workers`` sizes the thread pool
    (default 32: thread tools mostly wait on I/O); ``process_workers`` the process pool (default: the CPU
    count). ``store`` is ``"auto"`` or ``"local"`` (a ``LocalStore`` per run), ``"manager"`` (one
    ``ManagerStore`` for the engine, started on first use, cleared at each run), or an
    ``ObservationStore`` instance. ``start_method`` is ``"forkserver"`` (default where available),
    ``"spawn"``, or ``"fork"`` (only when asked: unsafe with threads). Pools start on first use; a
    thread-only run starts no process. ``close()`` is idempotent.
    """

    def __init__(
        self, tools: Tools, *, max_workers: Optional[int] = None, process_workers: Optional[int] = None,
        store: Union[str, ObservationStore] = "auto", start_method: Optional[str] = None,
    ) -> None:
        if not isinstance(store, ObservationStore) and store not in ("auto", "local", "manager"):
            raise ValueError(f"store must be 'auto', 'local', 'manager' or an ObservationStore, got {store!r}")
        for name, value in (("max_workers", max_workers), ("process_workers", process_workers)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        self.tools = as_registry(tools)
        self._pools = Pools(max_workers, process_workers, start_method)
        self._timers = Timers()
        self._store_choice = store
        self._manager_store: Optional[ManagerStore] = None
        self._lock = threading.Lock()
        self._runs: List[Run] = []
        self._closed = False

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def start(
        self, tasks: Iterable[TaskLike] = (), *, on_event: Optional[Callable[[Event], None]] = None,
        known: Optional[Mapping[int, Any]] = None,
    ) -> Run:
        """Start a run that tasks can be added to while it runs; ``close()`` it when all are added.

        ``known`` maps indices of tasks finished earlier (a previous plan) to their observations, so new
        tasks may refer to them. Raises ``RunClosedError`` when the engine is closed.
        """
        with self._lock:
            if self._closed:
                raise RunClosedError("the engine is closed; create a new Engine to run more tasks")
            run = Run(self.tools, self._pools, self._timers, self._store_for_run(),
                      on_event=on_event, known=known)
            # Runs are kept while they go on, or while a call they abandoned still runs.
            self._runs = [r for r in self._runs if not r.done() or r.abandoned_calls] + [run]
        tasks = list(tasks)
        if tasks:
            run.add_many(tasks)
        return run

    def run(
        self, tasks: Union[str, Iterable[TaskLike]], *, timeout: Optional[float] = None,
        on_event: Optional[Callable[[Event], None]] = None, known: Optional[Mapping[int, Any]] = None,
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
        run = self.start(on_event=on_event, known=known)
        try:
            run.add_many(batch)
            run.close()
            result = run.wait(timeout)
        except RunTimeoutError as err:
            run.cancel()
            err.result = run.wait()  # type: ignore[attr-defined]
            raise
        except KeyboardInterrupt:
            run.cancel()
            raise RunInterrupted(run.wait()) from None
        if run.store_error is not None:
            unfinished = sorted(i for i, f in result.failures.items() if f.kind == "cancelled")
            err = StoreError(f"the run stopped: {run.store_error}; tasks {unfinished} had not finished")
            err.result = result  # type: ignore[attr-defined]
            raise err from run.store_error
        return result

    def cancel(self) -> None:
        """Cancel every run in progress on this engine."""
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.cancel()

    def close(self) -> None:
        """Cancel what still runs, stop the pools, the timer thread and the manager. Idempotent.

        Waits for the pool threads, except when a thread tool call was abandoned (timed out or
        cancelled) and still runs: a thread cannot be stopped, so close then returns at once and that
        thread exits when its call returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runs, self._runs = self._runs, []
        for run in runs:
            run.cancel()
        abandoned = any(run.abandoned_calls for run in runs)
        self._timers.close()
        self._pools.close(wait_threads=not abandoned)
        if self._manager_store is not None:
            self._manager_store.close()

    def _store_for_run(self) -> ObservationStore:
        choice = self._store_choice
        if isinstance(choice, ObservationStore):
            return choice
        if choice == "manager":
            if self._manager_store is None:
                import multiprocessing

                self._manager_store = ManagerStore(multiprocessing.get_context(self._pools.start_method))
            self._manager_store.clear()
            return self._manager_store
        return LocalStore()


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
