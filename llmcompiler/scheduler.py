"""The task fetching unit: one run's state, and the one lock that guards it.

Design
------
A run's tasks form a growing dependency graph (``graph.TaskGraph``). A task becomes *ready* when its last
dependency finishes; it is queued by executor kind in the run's ``ReadyQueue`` and the run offers itself
to the engine's lane for that kind (``lanes``): nothing sleeps and re-checks. A thread-lane worker runs
the run's ready thread tasks back to back, recording each and taking the next under one hold of the
lock, until none is left or another run waits for its turn. A submit lane (process pool, event loop,
given executor) has the run submit a task (or a batch of process calls) and records each outcome from
the future's done callback (``submitting.Submitting``, a mixin of ``Run``). What happens to an outcome
is ``settling.Settling`` (another).

State
-----
One run's, all guarded by ``Run._lock`` (``Run._changed`` is a condition on it). Written by any of the
threads below, always under the lock, unless said otherwise:

    _graph        dependency counts, dependents, heights and costs (TaskGraph)
    _tasks        idx -> Task; _uses: tool name -> ToolUse (the Tool, where it runs, its options)
    _ready        ready tasks by kind (ReadyQueue)
    _attempts     idx -> the Attempt running now; _tries, _breakages: counts per task
    _failures     idx -> TaskFailure
    _observed     idx -> observation (written by ``_graph.done``, the graph's ``finished``); RunContext
                  views read it without the lock (a dict read is atomic)
    _log          the EventLog: appended under the lock, read without it (append-only)
    _slotted      held tasks that were handed their tool's max_concurrency slot
    _handoffs     HeldTasks of other runs handed a slot here, resumed once the lock is released
    _abandoned    thread calls timed out or cancelled that still run; _lent: as told to the lane
    _listeners    threads iterating the run's events (the Delivery thread among them)

Threads that take the lock: the caller (add, close, cancel, wait), thread-lane workers, done callbacks
of futures (process pool and event loop threads, executors' threads), the timer thread, the Delivery
thread (to wait for events). Lock order: ``Run._lock`` is never held while a lane's lock or another
run's lock is taken; under it only leaf locks are taken (``Limits``, ``CallCache``, ``Timers``).
Lanes are offered work, other runs resumed, listeners woken and the shared store written (a round trip
to the manager, for ``store="manager"``) only after the lock is released. Tool code and ``on_event``
never run under it; ``on_event`` runs on the run's ``Delivery`` thread only.

Every exception raised by the engine's own code while preparing, submitting, recording or releasing a
task settles that task as failed, its ``TaskFailure.step`` naming the step, and the run goes on: no code
path leaves a task unsettled. A stale ``Attempt`` (timed out, cancelled) has its late outcome ignored.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import threading
import time
from functools import partial
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple,
                    Union)

from .cache import CallCache, call_key
from .context import RunContext
from .errors import RunClosedError, RunTimeoutError, StoreError
from .eventlog import CODE, Delivery, EventLog
from .graph import TaskGraph
from .outcomes import Attempt, Outcome
from .settling import Settling
from .submitting import Submitting
from .plan import Task, resolve
from .validation import check_new_tasks, cycle_error, missing_dependency_error
from .ready import ReadyQueue
from .results import Event, RunResult, TaskFailure
from .views import ObservationsView, RecordStore
from .tools import Tool

__all__ = ["Run", "RunParts", "TaskLike"]

TaskLike = Union[Task, Mapping[str, Any]]

_QUEUED, _STARTED = CODE["queued"], CODE["started"]
_QUICK_CALL = 50e-6  # a thread call shorter than this is run by a worker already awake
_SIGNAL_RECHECK = 0.05  # seconds of the main thread's first sleep in Run.wait after a wake-up (_wait_over)
_log = logging.getLogger("llmcompiler")
_outcome = Outcome._make  # an Outcome from a tuple of all its fields: half the cost of Outcome(...)
_tokens = itertools.count(1)  # process-wide unique attempt tokens (shared-memory slot values)


class ToolUse(NamedTuple):
    """What a run knows of a tool its tasks call, looked up once per run."""

    tool: Tool
    kind: str                          # where it runs: Tool.executor
    context_parameter: Optional[str]   # the parameter a RunContext is passed in, if any
    cache: bool                        # answered from the question's CallCache when seen before


class RunParts(NamedTuple):
    """What a run uses of its engine (the engine owns them all)."""

    tools: Any            # ToolRegistry
    threads: Any          # lanes.ThreadLane
    submit_lanes: Dict[str, Any]  # kind -> lanes.SubmitLane
    backends: Any         # engine's backends: submit(kind, attempt, tool) and kill(kind, attempts)
    timers: Any           # executors.Timers
    limits: Any           # ready.Limits
    stats: Any            # ready.ToolStats
    by_time: bool         # order ready tasks by estimated time (True) or by count of dependents


class Run(Settling, Submitting):
    """One run of tasks on an engine. Made by ``Engine.start()``; safe to use from any thread.

    ``add(task)`` while it runs, ``close()`` when no more tasks will come, then ``wait()`` for the
    ``RunResult``. Iterating over a run yields its events as they happen, until it is over.
    """

    def __init__(self, parts: RunParts, store: Any, *, on_event: Optional[Callable[[Event], None]] = None,
                 known: Optional[Mapping[int, Any]] = None, cache: Optional[CallCache] = None,
                 shared_store: bool = False) -> None:
        self._parts = parts
        self._observed: Dict[int, Any] = dict(known or {})
        self.store = store if store is not None else RecordStore(self._observed)
        self._shared_store = shared_store  # observations are written to ``store`` for other processes
        self.store_error: Optional[StoreError] = None
        self._cache = cache
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._graph = TaskGraph(self._observed)
        self._tasks: Dict[int, Task] = {}
        self._uses: Dict[str, ToolUse] = {}
        self._ready = ReadyQueue()
        self._attempts: Dict[int, Attempt] = {}
        self._failures: Dict[int, TaskFailure] = {}
        self._log = EventLog(self._tasks)
        self._slotted: set = set()
        self._tries: Dict[int, int] = {}       # idx -> attempts started (retries count, free resubmissions not)
        self._breakages: Dict[int, int] = {}   # idx -> process pool breakages it was caught in
        self._handoffs: List[Any] = []         # HeldTasks of other runs handed a slot, resumed after the lock
        self._abandoned = 0
        self._lent = 0        # workers the thread lane lends this run: _abandoned, as last told to it
        self._notes: List[Tuple[int, str, tuple]] = []  # log records made under the lock, emitted after
        self._listeners = 0
        self._closed = self._cancelled = self._over = False
        self._on_over: List[Callable[[], None]] = []
        self.started = time.perf_counter()
        self.finished = 0.0
        self._delivery = Delivery(iter(self), on_event, "llmcompiler-events") if on_event else None

    # -- the caller's side -------------------------------------------------------------------------

    def add(self, task: TaskLike) -> None:
        """Add a task; it starts as soon as its dependencies have finished.

        Raises ``RunClosedError`` after ``close()``/``cancel()``, ``DuplicateTaskError``, ``PlanError``
        for a task depending on itself, ``ToolCallError`` when its arguments do not fit its tool.
        A dependency not added yet is waited for; at ``close()`` it fails as an unknown reference.
        """
        self.add_many([task])

    def add_many(self, tasks: Iterable[TaskLike]) -> None:
        """Add several tasks at once (cheaper than one by one: priorities are computed once)."""
        self._add_batch([task if isinstance(task, Task) else Task.from_dict(task) for task in tasks], False)

    def _add_batch(self, batch: List[Task], validated: bool) -> None:
        """``add_many`` of ``Task``s; ``validated``: the batch passed ``validate_tasks`` against this
        run's ``known`` observations and the run has no tasks yet (``Engine.run``), so duplicates and
        self-references are not looked for again."""
        check = self._parts.tools.check
        uses = self._uses
        for task in batch:
            check(task)
            if task.tool not in uses:
                tool = self._admissible_tool(task)
                uses[task.tool] = ToolUse(tool, tool.executor, getattr(tool, "context_parameter", None),
                                          bool(getattr(tool, "cache", False)))
        with self._lock:
            if self._closed:
                raise RunClosedError("tasks cannot be added to a run that was closed or cancelled")
            if not (validated and not self._tasks):
                check_new_tasks(batch, self._tasks, self._graph.finished)
            single = len(batch) == 1
            now = time.perf_counter()
            costs: Dict[str, float] = {}
            ready: Optional[List[Tuple[str, int]]] = None if single else []
            for task in batch:
                self._admit(task, now, costs, ready)
            if ready is not None:  # a batch: its heights once, then its ready tasks queued at once
                self._graph.update_heights(task.idx for task in batch)
                self._ready.reprioritise(self._graph.priority, ready)
            kinds = self._ready.kinds()
        self._offer(kinds, wake=True)

    def close(self) -> None:
        """No more tasks will be added. Tasks still waiting on tasks never added, or on each other in a
        cycle, fail now (``invalid``), with their dependents skipped. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._fail_unreachable()
                self._check_over()
        self._after()

    def cancel(self) -> None:
        """Stop the run: nothing new starts, waiting tasks are cancelled, running process tools of this
        run (only) are terminated, other running calls are abandoned (their results are ignored).
        Idempotent."""
        with self._lock:
            running = self._cancel_all(None)
        if running:
            self._parts.backends.stop(running)
        self._after()

    def wait(self, timeout: Optional[float] = None) -> RunResult:
        """Block until the run is over (closed and every task finished, failed or skipped; or cancelled)
        and every event was delivered to ``on_event``, and return its result. Raises
        ``RunTimeoutError`` (the run goes on) when ``timeout`` passes, and re-raises the first exception
        ``on_event`` raised (the run itself went on without the callback; ``result()`` has it all)."""
        if not self._wait_over(timeout):
            raise RunTimeoutError(
                f"the run did not finish within {timeout} s ({self._graph.unfinished} tasks unfinished)")
        if self._delivery is not None:
            self._delivery.join()
            if self._delivery.error is not None:
                raise self._delivery.error
        return self.result()

    def _wait_over(self, timeout: Optional[float]) -> bool:
        """Wait until the run is over; False when ``timeout`` passed first.

        In the main thread, each sleep that follows a wake-up begins with a short one
        (``_SIGNAL_RECHECK``): a SIGINT that lands as the thread goes to sleep (after its last check
        for signals, before the wait begins; likely when the sender is a thread of this process that
        the released GIL let run) would otherwise be seen only at the next wake-up, perhaps when the
        run ends. Once a short sleep passes quietly, the next is unbounded: an idle wait costs
        nothing."""
        with self._changed:
            if threading.current_thread() is not threading.main_thread():
                return self._changed.wait_for(lambda: self._over, timeout)
            deadline = None if timeout is None else time.monotonic() + timeout
            short = True
            while not self._over:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if short:
                    left = _SIGNAL_RECHECK if left is None else min(_SIGNAL_RECHECK, left)
                short = self._changed.wait(left)  # notified: the next sleep begins short again
            return True

    @property
    def callback_error(self) -> Optional[Exception]:
        """The first exception ``on_event`` raised, if any."""
        return self._delivery.error if self._delivery is not None else None

    def done(self) -> bool:
        """Whether the run is over."""
        return self._over

    def when_over(self, action: Callable[[], None]) -> None:
        """Call ``action()`` once the run is over (at once if it is), on the thread that ended it."""
        with self._lock:
            if not self._over:
                self._on_over.append(action)
                return
        action()

    @property
    def abandoned_calls(self) -> int:
        """Thread tool calls still running though their outcome no longer counts (timed out or
        cancelled: a thread cannot be stopped). Their workers return to the lane when they finish."""
        with self._lock:
            return self._abandoned

    def result(self) -> RunResult:
        """The result so far (complete once the run is over)."""
        with self._lock:
            observed = self._observed
            observations = {idx: observed[idx] for idx in sorted(self._tasks) if idx in observed}
            failures = dict(sorted(self._failures.items()))
            count = len(self._log)
            tasks = self._tasks if self._over else dict(self._tasks)  # over: it changes no more
        log = self._log
        return RunResult(observations, failures, lambda: log.events(0, count), tasks,
                         self._cancelled, self.started, self.finished or time.perf_counter())

    def __iter__(self) -> Iterator[Event]:
        """Yield every event of the run, as it happens, until the run is over."""
        position = 0
        log = self._log
        while True:
            with self._changed:
                self._listeners += 1
                try:
                    self._changed.wait_for(lambda: position < len(log) or self._over)
                finally:
                    self._listeners -= 1
                end, over = len(log), self._over
            for event in log.events(position, end):
                yield event
            position = end
            if over and position >= len(log):
                return

    def observations_view(self) -> Mapping[int, Any]:
        """A read-only mapping of the run's observations, for ``RunContext``."""
        return ObservationsView(self._observed, self._lock)

    # -- admitting tasks ---------------------------------------------------------------------------

    def _admissible_tool(self, task: Task) -> Tool:
        """The task's tool, checked against what this engine can run (outside the lock)."""
        tool = self._parts.tools[task.tool]
        self._parts.backends.check_tool(tool, task, self._shared_store)
        return tool

    def _admit(self, task: Task, now: float, costs: Dict[str, float],
               ready_in_batch: Optional[List[Tuple[str, int]]]) -> None:
        """Under the lock: add one task of a batch admitted at ``now``; ``costs`` caches each tool's
        estimate for the batch. A task of a batch (``ready_in_batch`` given) that is ready is listed
        there, with its kind, to be queued once the batch's heights are known; a single task is queued
        at once."""
        idx = task.idx
        self._tasks[idx] = task
        self._log.append(_QUEUED, idx, now)
        cost = costs.get(task.tool)
        if cost is None:
            cost = costs[task.tool] = self._parts.stats.estimate(task.tool) if self._parts.by_time else 1.0
        ready, dead = self._graph.add(idx, task.dependency_indices, heights=ready_in_batch is None, cost=cost)
        if dead is not None:
            self._record_failure(TaskFailure(idx, task.tool, "skipped", cause=dead), now)
            for skipped in self._graph.fail(idx):  # tasks added earlier that wait on it
                self._record_failure(TaskFailure(skipped, self._tasks[skipped].tool, "skipped", cause=idx), now)
        elif ready:
            if ready_in_batch is None:
                self._push_ready(idx)
            else:
                ready_in_batch.append((self._uses[task.tool].kind, idx))

    def _push_ready(self, idx: int) -> None:
        task = self._tasks[idx]
        self._ready.push(self._uses[task.tool].kind, self._graph.priority(idx), idx)

    def _fail_unreachable(self) -> None:
        """At close: tasks waiting on never-added tasks, or in a cycle, can never run."""
        now = time.perf_counter()
        for missing in self._graph.missing():
            for idx in sorted(self._graph.dependents_of(missing)):
                if self._graph.is_waiting(idx):
                    self._fail_task(idx, "invalid", missing_dependency_error(idx, missing), now)
        cycle = self._graph.find_cycle()
        while cycle:
            err = cycle_error(cycle)
            members = cycle[:-1]
            for idx in members:  # every member fails for the cycle; none is merely "skipped"
                self._record_failure(self._failure(idx, "invalid", err), now)
            for idx in members:
                for skipped in self._graph.fail(idx):
                    if skipped not in members:
                        self._record_failure(TaskFailure(skipped, self._tasks[skipped].tool, "skipped",
                                                         cause=idx), now)
            cycle = self._graph.find_cycle()

    # -- taking a ready task (under the lock) ------------------------------------------------------

    def _take(self, kind: str, worker: Optional[str]) -> Optional[Attempt]:
        """Pop and start the best runnable ready task of ``kind``, or None when there is none. A
        thread-lane ``worker`` taking it starts it now: its ``started`` event is stamped here."""
        ready = self._ready
        while not self._cancelled:
            idx = ready.pop(kind)
            if idx is None:
                return None
            task = self._tasks[idx]
            use = self._uses[task.tool]
            tool = use.tool
            if tool.max_concurrency is not None:
                if idx in self._slotted:
                    self._slotted.discard(idx)
                elif not self._parts.limits.acquire_or_hold(tool.name, tool.max_concurrency, self, idx):
                    continue  # held: the slot will be handed to it when a call of the tool ends
            try:
                attempt = self._prepare(idx, task, use)
            except Exception as err:  # past _prepare's own guard: still only this task fails
                self._attempts.pop(idx, None)
                self._fail_task(idx, "failed", err, time.perf_counter(), step="preparing the call")
                continue
            if attempt is not None:
                if worker is not None:
                    self._log.append(_STARTED, idx, time.perf_counter(), worker)
                return attempt
        return None

    def _prepare(self, idx: int, task: Task, use: ToolUse) -> Optional[Attempt]:
        """Resolve the task's arguments and record its start; None if it settled instead (its
        arguments could not be resolved, or the cache answered it)."""
        tool = use.tool
        step = "resolving arguments"
        try:
            args, kwargs = resolve(task, self._observed.__getitem__)
            number = self._tries.pop(idx, 0) + 1 if self._tries else 1
            attempt = Attempt(idx, number, next(_tokens), args, kwargs, tool, use.kind)
            if use.cache and self._cache is not None:
                step = "looking up the cache"
                # the key is the call as planned: a RunContext given to the tool is not part of it
                attempt.cache_key = call_key(tool.name, args, kwargs)
                if attempt.cache_key is not None:
                    hit, value = self._cache.lookup(attempt.cache_key)
                    if hit:
                        self._release_slot(tool)
                        self._attempts[idx] = attempt
                        self._settle(attempt, Outcome(value, None, "", time.perf_counter(), 0.0, "cache"),
                                     cached=True)
                        return None
            if use.context_parameter is not None:
                step = "building the RunContext"
                view = self._parts.backends.context_view(tool, self)
                attempt.kwargs = {**kwargs, use.context_parameter: RunContext(idx, view)}
        except Exception as err:  # the engine's own step failed: that task fails, the run goes on
            self._release_slot(tool)
            kind = "invalid" if isinstance(err, KeyError) or step == "resolving arguments" else "failed"
            self._fail_task(idx, kind, err, time.perf_counter(), step=step)
            return None
        self._attempts[idx] = attempt
        if tool.timeout is not None:
            attempt.timer = self._parts.timers.schedule(
                time.monotonic() + tool.timeout, partial(self._guarded, self._expire, attempt))
        return attempt

    # -- thread tasks: run by the engine's thread lane ---------------------------------------------

    def serve_thread_task(self, lane: Any, worker: str) -> Tuple[bool, int]:
        """Called by a thread-lane worker: run this run's ready thread tasks one after another, each
        recorded and the next taken under one hold of the lock, until none is left or another run is
        waiting for its turn. Returns whether the last call took less than waking a thread does, and
        how many calls were made."""
        quick, calls = False, 0
        stats, ready = self._parts.stats, self._ready
        with self._lock:
            attempt = self._take("thread", worker)
        while attempt is not None:
            lane.calls += 1
            calls += 1
            tool = attempt.tool
            mean = stats.mean(tool.name)
            quick_expected = mean is not None and mean < _QUICK_CALL
            lane.in_quick_call[worker] = quick_expected
            more_here = ready.count and ready.has("thread")
            if more_here and self not in lane.queued:  # others may take those (hints read without
                lane.offer(self, wake=False)            # the lane's lock)
            if (more_here or lane.runs_waiting()) and (not quick_expected or not lane.watching):
                # Ready work (this run's or another's) waits: one more worker comes for it, unless
                # this call is over before a woken thread would be up.
                lane.taken(quick_in_hand=quick_expected)
            if self._listeners:
                self._notify()
            outcome = self._call(attempt, tool, worker)
            quick = outcome.finished - outcome.started < _QUICK_CALL
            if self._shared_store:
                outcome = self._store_outcome(attempt, outcome)
            with self._lock:
                self._settle_guarded(attempt, outcome)
                attempt = None if lane.others_waiting(self) else self._take("thread", worker)
                # Tasks of other kinds were released: offer them to their lanes.
                kinds = ready.kinds() if attempt is None or ready.count > ready.size("thread") else None
            if kinds is not None:
                self._offer(kinds, wake=False)
            elif self._listeners or self._handoffs or self._abandoned != self._lent or self._notes:
                self._after()
        return quick, calls

    def _call(self, attempt: Attempt, tool: Tool, worker: str) -> Outcome:
        """Run a thread tool's call here, in the caller's context when it has any variables."""
        began = time.perf_counter()
        try:
            if len(self._context):
                value = self._context.copy().run(tool.func, *attempt.args, **attempt.kwargs)
            else:
                value = tool.func(*attempt.args, **attempt.kwargs)
            error: Optional[BaseException] = None
        except BaseException as exc:  # the tool's failure (even SystemExit) becomes the task's record
            value, error = None, exc
        ended = time.perf_counter()
        self._parts.stats.record(tool.name, ended - began)
        return _outcome((value, error, "", began, ended, worker, ""))

    # -- after the lock ----------------------------------------------------------------------------

    def _offer(self, kinds: List[str], wake: bool) -> None:
        """Offer the run to the lanes of the kinds it has ready tasks of, then run what waits for
        the lock to be free: listeners, the end-of-run actions."""
        parts = self._parts
        for kind in kinds:
            if kind == "thread":
                parts.threads.offer(self, wake, self._startable() if wake else 1)
            else:
                lane = parts.submit_lanes[kind]
                lane.offer(self)
                lane.pump()
        self._after()

    def _startable(self) -> int:
        """How many ready thread tasks could start at once (a hint, read without the lock): one when
        the best of them usually takes microseconds (one worker runs them all sooner)."""
        idx = self._ready.peek("thread")
        task = self._tasks.get(idx) if idx is not None else None
        if task is None:
            return 1
        mean = self._parts.stats.mean(task.tool)
        return 1 if mean is not None and mean < _QUICK_CALL else self._ready.size("thread")

    def _after(self) -> None:
        if self._notes:
            with self._lock:
                notes, self._notes = self._notes, []
            for level, message, args in notes:
                _log.log(level, message, *args)
        if self._abandoned != self._lent:  # the lane lends a worker per abandoned call still running
            with self._lock:
                change, self._lent = self._abandoned - self._lent, self._abandoned
            self._parts.threads.lend(change)
        if self._handoffs:
            with self._lock:
                handoffs, self._handoffs = self._handoffs, []
            for held in handoffs:
                held.run.resume_held(held.idx)
        if self._listeners:
            self._notify()
        if self._over and self._on_over:
            with self._lock:
                actions, self._on_over = self._on_over, []
            for action in actions:
                action()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
