"""The task fetching unit: an event-driven ready queue over thread and process pools.

Design
------
A run's tasks form a growing dependency graph (``graph.TaskGraph``). A task becomes *ready* when its last
dependency finishes, and it is handed to a worker at once: nothing sleeps and re-checks. Thread tools are
run by *drainer* loops on the engine's thread pool: a drainer takes the best ready task, runs it, records
the outcome, and takes the next ready task itself (often the dependent it just released), so a chain of
thread tasks costs no handoff between threads. Process tools are submitted to the process pool; their
future's done callback records the outcome the same way. When more tasks are ready than workers are free,
the one with the longest chain of dependents after it goes first (ties: lower index).

State
-----
Everything below is one run's, guarded by ``Run._lock`` (``Run._changed`` is a condition on it). Tool
code never runs under the lock; callbacks of the caller (``on_event``) never run under it either.

    _graph            dependency counts, dependents, heights          (lock)
    _tasks, _tool_of  idx -> Task, idx -> its Tool                    (lock)
    _thread_ready     heap of (-height, idx): ready thread tasks      (lock)
    _process_ready    heap of (-height, idx): ready process tasks     (lock)
    _throttled        tool name -> ready tasks held back by the tool's max_concurrency (lock)
    _tool_running     tool name -> running count, for tools with a max_concurrency (lock)
    _attempts         idx -> the _Attempt running now; _tries, _breakages: counts per task (lock)
    _drainers         drainer loops alive; _starting: of those, not yet taking tasks (lock)
    _in_flight        process calls submitted and not yet settled (lock)
    _abandoned        thread calls timed out or cancelled but still running (lock)
    _tool_time        tool name -> moving average of its thread calls, to spot quick tools (lock)
    _taken, _watching tasks started so far; whether a stall watch is armed (lock)
    _failures         idx -> TaskFailure                              (lock)
    _events           every Event, in order                           (lock to append; readers copy)
    _outbox           drainer starts and process submissions decided under the lock, made by the
                      same thread right after releasing it (a done callback may run at once)
    _observed         idx -> observation, this run's own record (and ``known``): references are
                      resolved from it, so a shared store costs one write per task and no reads
    store             the ObservationStore (its own lock): every observation is written there too,
                      for other processes to read; if it breaks, the run is cancelled (StoreError)
    _delivered        events handed to on_event so far                (_deliver_lock)

Timer callbacks (timeouts, retry backoff) and process done callbacks take the same lock; an
``_Attempt`` marked ``stale`` (timed out, cancelled) has its late outcome ignored, so every task is
settled exactly once.

The engine's pools, timer thread and store belong to the ``Engine``; a run only submits to them.
"""

from __future__ import annotations

import heapq
import itertools
import pickle
import threading
import time
import traceback as traceback_module
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Union)

from .errors import (CycleError, DuplicateTaskError, RunClosedError, RunTimeoutError, StoreError,
                     TaskTimeoutError, UnknownReferenceError, WorkerDiedError)
from .errors import ProcessStartError
from .executors import Pools, Timers
from .graph import TaskGraph
from .plan import Task, resolve
from .results import Event, RunResult, TaskFailure
from .store import ObservationStore
from .tools import Tool, ToolRegistry

__all__ = ["Run"]

TaskLike = Union[Task, Mapping[str, Any]]
Tools = Union[ToolRegistry, Mapping[str, Any]]


class _Attempt:
    """One try of one task (owned by the run's lock)."""

    __slots__ = ("number", "token", "args", "kwargs", "generation", "timer", "expired", "stale", "started",
                 "took")

    def __init__(self, number: int, token: int, args: tuple, kwargs: dict) -> None:
        self.number, self.token, self.args, self.kwargs = number, token, args, kwargs
        self.generation: Any = None
        self.started = 0.0
        self.took: Optional[float] = None  # how long a thread call ran, once it returned
        self.timer: Optional[int] = None
        self.expired = False   # its timeout passed (a process worker is being killed)
        self.stale = False     # its outcome no longer matters (timed out, cancelled)


_tokens = itertools.count(1)  # process-wide unique attempt tokens (shared-memory slot values)


class Run:
    """One run of tasks on an engine. Made by ``Engine.start()``; safe to use from any thread.

    ``add(task)`` while it runs, ``close()`` when no more tasks will come, then ``wait()`` for the
    ``RunResult``. Iterating over a run yields its events as they happen, until it is over.
    """

    def __init__(
        self, tools: ToolRegistry, pools: Pools, timers: Timers, store: ObservationStore, *,
        on_event: Optional[Callable[[Event], None]] = None, known: Optional[Mapping[int, Any]] = None,
    ) -> None:
        self._tools = tools
        self._pools = pools
        self._timers = timers
        self._thread_limit = pools.thread_workers
        self._process_limit = pools.process_workers
        self.store = store
        self.store_error: Optional[StoreError] = None
        self.callback_error: Optional[Exception] = None  # first exception raised by on_event
        self._on_event = on_event
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._deliver_lock = threading.RLock()
        self._delivered = 0
        self._listeners = 0       # threads iterating over the run's events, waiting on _changed
        self._observed: Dict[int, Any] = dict(known or {})
        for idx, value in self._observed.items():
            store.set(idx, value)
        self._graph = TaskGraph(self._observed)
        self._tasks: Dict[int, Task] = {}
        self._tool_of: Dict[int, Tool] = {}   # idx -> its Tool, looked up once at admission
        self._thread_ready: List[tuple] = []
        self._process_ready: List[tuple] = []
        self._throttled: Dict[str, List[tuple]] = {}
        self._tool_running: Dict[str, int] = {}
        self._attempts: Dict[int, _Attempt] = {}
        self._tries: Dict[int, int] = {}
        self._breakages: Dict[int, int] = {}   # idx -> process pool breakages it was caught in
        self._tool_time: Dict[str, float] = {}  # tool name -> moving average of a thread call (s)
        self._taken = 0            # tasks started so far, to tell a stall from progress
        self._watching = False     # a stall watch is armed
        self._failures: Dict[int, TaskFailure] = {}
        self._events: List[Event] = []
        self._outbox: List[tuple] = []
        self._drainers = 0        # drainer loops alive on the thread pool
        self._starting = 0        # of those, submitted but not yet taking tasks
        self._in_flight = 0       # process tasks submitted and not yet settled
        self._abandoned = 0       # thread calls still running whose outcome no longer counts
        self._closed = False
        self._cancelled = False
        self._over = False
        self.started = time.perf_counter()
        self.finished = 0.0

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
        batch = [task if isinstance(task, Task) else Task.from_dict(task) for task in tasks]
        for task in batch:
            self._tools.check(task)
        with self._lock:
            if self._closed:
                raise RunClosedError("tasks cannot be added to a run that was closed or cancelled")
            self._check_new(batch)
            for task in batch:
                self._admit(task, heights=len(batch) == 1)
            if len(batch) > 1:
                self._graph.update_heights(t.idx for t in batch)
                self._reprioritise()
            self._dispatch()
        self._flush()

    def close(self) -> None:
        """No more tasks will be added. Tasks still waiting on tasks never added, or on each other in a
        cycle, fail now (``invalid``), with their dependents skipped. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._fail_unreachable()
                self._check_over()
        self._deliver()

    def cancel(self) -> None:
        """Stop the run: nothing new starts, waiting tasks are cancelled, running process tools are
        terminated, running thread tools are abandoned (their results are ignored). Idempotent."""
        with self._lock:
            kill = any(attempt.generation is not None for attempt in self._attempts.values())
            self._cancel_all(None)
        if kill:
            self._pools.kill_processes()
        self._deliver()

    def wait(self, timeout: Optional[float] = None) -> RunResult:
        """Block until the run is over (closed and every task finished, failed or skipped; or cancelled)
        and return its result. Raises ``RunTimeoutError`` (the run goes on) when ``timeout`` passes,
        and re-raises the first exception ``on_event`` raised (the run itself went on without the
        callback; ``result()`` has what it produced)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._over, timeout):
                raise RunTimeoutError(
                    f"the run did not finish within {timeout} s ({self._graph.unfinished} tasks unfinished)")
        self._deliver()
        if self.callback_error is not None:
            raise self.callback_error
        return self.result()

    def done(self) -> bool:
        """Whether the run is over."""
        return self._over

    @property
    def abandoned_calls(self) -> int:
        """Thread tool calls still running though their outcome no longer counts (timed out or
        cancelled: a thread cannot be stopped). Their threads return to the pool when they finish."""
        with self._lock:
            return self._abandoned

    def result(self) -> RunResult:
        """The result so far (complete once the run is over)."""
        with self._lock:
            indices = set(self._tasks)
            failures = dict(sorted(self._failures.items()))
            events = list(self._events)
            observed = self._observed
            observations = {idx: observed[idx] for idx in sorted(indices) if idx in observed}
        return RunResult(observations, failures, events, dict(self._tasks), self._cancelled,
                         self.started, self.finished or time.perf_counter())

    def __iter__(self) -> Iterator[Event]:
        """Yield every event of the run, as it happens, until the run is over."""
        position = 0
        while True:
            with self._changed:
                self._listeners += 1
                try:
                    self._changed.wait_for(lambda: position < len(self._events) or self._over)
                finally:
                    self._listeners -= 1
                batch = self._events[position:]
                over = self._over
            position += len(batch)
            yield from batch
            if over and position >= len(self._events):
                return

    # -- admitting tasks (under the lock) ----------------------------------------------------------

    def _check_new(self, batch: Sequence[Task]) -> None:
        seen = set()
        for task in batch:
            if task.idx in self._tasks or task.idx in self._graph.finished or task.idx in seen:
                raise DuplicateTaskError(f"task {task.idx} was already added to this run", task=task.idx)
            if task.idx in task.dependencies:
                raise UnknownReferenceError(f"task {task.idx} depends on itself", task=task.idx,
                                            reference=task.idx)
            seen.add(task.idx)

    def _admit(self, task: Task, heights: bool) -> None:
        self._tasks[task.idx] = task
        self._tool_of[task.idx] = self._tools[task.tool]
        now = time.perf_counter()
        self._emit("queued", task.idx, now)
        ready, dead = self._graph.add(task.idx, task.dependencies, heights=heights)
        if dead is not None:
            self._record_failure(TaskFailure(task.idx, task.tool, "skipped", cause=dead), now)
        elif ready:
            self._push_ready(task.idx)

    def _push_ready(self, idx: int) -> None:
        entry = (-self._graph.height[idx], idx)
        if self._tool_of[idx].executor == "process":
            heapq.heappush(self._process_ready, entry)
        else:
            heapq.heappush(self._thread_ready, entry)

    def _reprioritise(self) -> None:
        """Re-key the ready heaps after heights changed (a batch was added)."""
        for heap in (self._thread_ready, self._process_ready):
            heap[:] = [(-self._graph.height[idx], idx) for _, idx in heap]
            heapq.heapify(heap)

    def _fail_unreachable(self) -> None:
        """At close: tasks waiting on never-added tasks, or in a cycle, can never run."""
        now = time.perf_counter()
        for missing in self._graph.missing():
            for idx in sorted(self._graph.dependents.get(missing, ())):
                if idx in self._graph.waiting:
                    err = UnknownReferenceError(
                        f"task {idx} depends on task {missing}, which was never added", task=idx,
                        reference=missing)
                    self._fail_invalid(idx, err, now)
        cycle = self._graph.find_cycle()
        while cycle:
            err = CycleError(f"tasks {' -> '.join(map(str, cycle))} form a cycle", cycle=cycle)
            members = cycle[:-1]
            for idx in members:  # every member fails for the cycle; none is merely "skipped"
                self._record_failure(TaskFailure(idx, self._tasks[idx].tool, "invalid", "CycleError",
                                                 str(err), exception=err), now)
            for idx in members:
                for skipped in self._graph.fail(idx):
                    if skipped not in members:
                        self._record_failure(
                            TaskFailure(skipped, self._tasks[skipped].tool, "skipped", cause=idx), now)
            cycle = self._graph.find_cycle()

    def _fail_invalid(self, idx: int, err: BaseException, now: float) -> None:
        self._record_failure(TaskFailure(idx, self._tasks[idx].tool, "invalid", type(err).__name__, str(err),
                                         exception=err), now)
        self._skip_dependents(idx, now)

    # -- handing out ready tasks (under the lock) --------------------------------------------------

    def _is_quick(self, idx: Optional[int]) -> bool:
        """Whether task ``idx``'s tool usually returns sooner than a sleeping thread wakes up.

        When it is and other tasks are waiting, a stall watch is armed (at most one at a time): a
        usually quick call that blocks this once must not hold the waiting tasks back."""
        if idx is None or self._tool_time.get(self._tasks[idx].tool, 1.0) >= _QUICK_CALL:
            return False
        if self._thread_ready and not self._watching:
            self._watching = True
            self._timers.schedule(time.monotonic() + _STALL, partial(self._watch, self._taken))
        return True

    def _watch(self, taken: int) -> None:
        """Timer callback: if no task was taken since the watch was armed while tasks were waiting,
        every awake drainer is stuck in a call: wake another one."""
        with self._lock:
            self._watching = False
            if self._taken == taken and not self._cancelled:
                self._dispatch()
        self._flush()

    def _dispatch(self, quick_in_hand: bool = False) -> None:
        """Start drainers for ready thread tasks and queue ready process tasks for submission.

        ``quick_in_hand``: the calling drainer is about to run a call that usually takes only
        microseconds; it will be back for the next ready task before a woken thread would be."""
        # Drainers are woken one at a time: a new one, once it has taken a task, wakes the next if
        # tasks are still waiting. Tasks that finish at once are then run by the drainers already
        # awake, instead of waking a thread per ready task that finds nothing left to do.
        if self._thread_ready and not self._starting and not quick_in_hand \
                and self._drainers < self._thread_limit:
            self._drainers += 1
            self._starting += 1
            self._outbox.append(("drain",))
        # Up to _PROCESS_QUEUE_DEPTH calls per process worker are handed to the pool ahead, so no worker
        # idles between calls (measured: 1.3x plain submit on a fan-out at 8, 1.9x at 2); a tool with a
        # timeout only goes when a worker is free, as its clock starts at submission.
        while self._process_ready and self._in_flight < _PROCESS_QUEUE_DEPTH * self._process_limit:
            if self._in_flight >= self._process_limit and \
                    self._tool_of[self._process_ready[0][1]].timeout is not None:
                break
            idx = self._pop_runnable(self._process_ready)
            if idx is None:
                break
            attempt = self._start(idx, worker=None)
            if attempt is not None:
                self._in_flight += 1
                self._outbox.append(("process", idx, attempt))

    def _pop_runnable(self, heap: List[tuple]) -> Optional[int]:
        """Pop the best ready task whose tool is under its max_concurrency; hold back the others."""
        while heap:
            entry = heapq.heappop(heap)
            tool = self._tool_of[entry[1]]
            limit = tool.max_concurrency
            if limit is not None and self._tool_running.get(tool.name, 0) >= limit:
                heapq.heappush(self._throttled.setdefault(tool.name, []), entry)
                continue
            if limit is not None:
                self._tool_running[tool.name] = self._tool_running.get(tool.name, 0) + 1
            return entry[1]
        return None

    def _start(self, idx: int, worker: Optional[str]) -> Optional[_Attempt]:
        """Resolve the task's references and record its start. None if resolving failed."""
        task = self._tasks[idx]
        try:
            args, kwargs = resolve(task, self._observed.__getitem__)
        except KeyError as err:
            self._fail_invalid(idx, err, time.perf_counter())
            self._release_slot(task.tool)
            return None
        number = self._tries.get(idx, 0) + 1
        self._tries[idx] = number
        self._taken += 1
        attempt = self._attempts[idx] = _Attempt(number, next(_tokens), args, kwargs)
        attempt.started = time.perf_counter()
        self._emit("started", idx, attempt.started, worker)
        return attempt

    def _release_slot(self, tool_name: str) -> None:
        """A task of ``tool_name`` stopped running: let a held-back task of that tool go."""
        count = self._tool_running.get(tool_name)
        if count is None:
            return
        self._tool_running[tool_name] = count - 1
        held = self._throttled.get(tool_name)
        if held:
            self._push_ready(heapq.heappop(held)[1])

    # -- thread tools: drainer loops on the thread pool --------------------------------------------

    def _drain(self) -> None:
        """Run ready thread tasks one after another until none is left, then retire."""
        worker = threading.current_thread().name
        with self._lock:
            self._starting -= 1
            idx, attempt = self._take_thread_task(worker)
            self._dispatch(self._is_quick(idx))
        self._flush()
        while attempt is not None:
            tool = self._tool_of[idx]
            began = time.perf_counter()
            try:
                outcome: Any = tool.func(*attempt.args, **attempt.kwargs)
                error: Optional[BaseException] = None
            except BaseException as exc:  # the tool's failure becomes the task's record
                outcome, error = None, exc
            attempt.took = time.perf_counter() - began  # the call alone, not waiting for the lock
            with self._lock:
                self._settle(idx, attempt, outcome, error, worker)
                idx, attempt = self._take_thread_task(worker)
                self._dispatch(self._is_quick(idx))
            self._flush()

    def _take_thread_task(self, worker: str) -> tuple:
        """Pop and start the best ready thread task, or retire this drainer. Under the lock."""
        while not self._cancelled:
            idx = self._pop_runnable(self._thread_ready)
            if idx is None:
                break
            attempt = self._start(idx, worker)
            if attempt is not None:
                timeout = self._tool_of[idx].timeout
                if timeout is not None:
                    attempt.timer = self._timers.schedule(
                        time.monotonic() + timeout, partial(self._expire, idx, attempt, timeout))
                return idx, attempt
        self._drainers -= 1
        self._check_over()
        return None, None

    # -- process tools ------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Make the submissions decided under the lock (never under it: callbacks may run at once)."""
        while self._outbox:  # read without the lock: each thread flushes after its own appends
            with self._lock:
                outbox, self._outbox = self._outbox, []
            for item in outbox:
                if item[0] == "drain":
                    self._submit_drainer()
                else:
                    self._submit_process(item[1], item[2])
        self._deliver()

    def _submit_drainer(self) -> None:
        try:
            self._pools.threads.submit(self._drain)
        except RuntimeError as err:  # the engine was closed under the run
            with self._lock:
                self._drainers -= 1
                self._starting -= 1
                self._cancel_all(err)

    def _submit_process(self, idx: int, attempt: _Attempt) -> None:
        tool = self._tool_of[idx]
        with self._lock:
            if attempt.stale:  # cancelled between the decision and now: never send it
                self._in_flight -= 1
                return
        for _ in range(2):  # once more on a fresh pool if this one broke just now
            try:
                generation, future = self._pools.submit_process(
                    attempt.token, tool.process_target(), attempt.args, attempt.kwargs)
                break
            except BrokenProcessPool:
                self._pools.retire(self._pools.process_generation())
            except ProcessStartError as err:  # fails this task only
                generation, future = None, _failed_future(err)
                break
            except RuntimeError as err:
                with self._lock:
                    self._cancel_all(err)
                return
        else:
            generation, future = None, None
        with self._lock:
            attempt.generation = generation
            if tool.timeout is not None and not attempt.stale:
                attempt.timer = self._timers.schedule(
                    time.monotonic() + tool.timeout, partial(self._expire, idx, attempt, tool.timeout))
        if future is None:
            self._process_done(idx, attempt, None, None)
        else:
            future.add_done_callback(partial(self._process_done, idx, attempt, generation))

    def _process_done(self, idx: int, attempt: _Attempt, generation: Any, future: Any) -> None:
        """Done callback of a process task's future (on the pool's thread): record, release, refill."""
        worker = outcome = error = None
        if future is None:
            error = BrokenProcessPool("the process pool could not be started")
        elif future.cancelled():
            error = CancelledError()
        else:
            error = future.exception()
            if error is None:
                call = future.result()  # an executors.CallOutcome
                outcome, error, worker = call.value, call.error, call.worker
        with self._lock:
            self._in_flight -= 1
            if isinstance(error, BrokenProcessPool) and not attempt.stale:
                error = self._breakage(idx, attempt, generation, error)
            elif error is not None and _is_pickling_error(error):
                error = _explain_pickling(self._tasks[idx], attempt, error)
            if error is not _REQUEUED:
                self._settle(idx, attempt, outcome, error, worker)
            self._dispatch()
        self._flush()

    def _breakage(self, idx: int, attempt: _Attempt, generation: Any, error: BaseException) -> Any:
        """A process pool broke under this task. Returns the task's error, or _REQUEUED when the task
        was only caught in another worker's death and is simply resubmitted."""
        self._pools.retire(generation)
        if attempt.expired:
            return attempt.expired
        dead = generation.dead_tokens() if generation is not None else set()
        # A breakage no task's worker explains (workers that cannot even start) counts against every
        # task caught in it, so that a pool that keeps breaking ends the run instead of looping.
        caught = self._breakages.get(idx, 0) + (not dead)
        self._breakages[idx] = caught
        if generation is not None and attempt.token not in dead and caught < _MAX_FREE_BREAKAGES:
            self._attempts.pop(idx, None)
            self._tries[idx] -= 1
            self._release_slot(self._tasks[idx].tool)
            self._push_ready(idx)
            return _REQUEUED
        died = WorkerDiedError(
            f"task {idx}: the worker process running tool '{self._tasks[idx].tool}' died"
            + ("" if caught < _MAX_FREE_BREAKAGES else
               f" (the process pool broke {caught} times under it: can workers start at all?)"))
        died.__cause__ = error
        return died

    def _expire(self, idx: int, attempt: _Attempt, timeout: float) -> None:
        """Timer callback: the attempt ran past its tool's timeout."""
        error = TaskTimeoutError(f"task {idx}: tool '{self._tasks[idx].tool}' timed out after {timeout} s")
        with self._lock:
            if self._attempts.get(idx) is not attempt or attempt.stale:
                return
            if attempt.generation is None:  # a thread: it cannot be stopped, only abandoned
                self._settle(idx, attempt, None, error, None)
                attempt.stale = True
                self._abandoned += 1
                self._dispatch()
                kill = None
            else:
                attempt.expired = error
                kill = attempt.generation
        if kill is not None:  # if it finished just now, its result arrives through the callback
            self._pools.kill_worker(kill, attempt.token)
        self._flush()

    # -- outcomes (under the lock) -----------------------------------------------------------------

    def _settle(self, idx: int, attempt: _Attempt, outcome: Any, error: Optional[BaseException],
                worker: Optional[str]) -> None:
        """Record an attempt's outcome: observe and release dependents, retry, or fail and skip."""
        if self._attempts.get(idx) is not attempt or attempt.stale:
            if attempt.stale and attempt.took is not None:
                self._abandoned -= 1  # an abandoned thread call came back at last
            return  # timed out, cancelled or superseded: this outcome no longer counts
        del self._attempts[idx]
        if attempt.timer is not None:
            self._timers.cancel(attempt.timer)
        task = self._tasks[idx]
        if self._tool_of[idx].max_concurrency is not None:
            self._release_slot(task.tool)
        now = time.perf_counter()
        if attempt.took is not None:  # a thread call: learn how long this tool takes
            previous = self._tool_time.get(task.tool)
            took = attempt.took
            self._tool_time[task.tool] = took if previous is None else 0.75 * previous + 0.25 * took
        if error is None:
            self._observed[idx] = outcome
            self._emit("finished", idx, now, worker)
            released = self._graph.done(idx)
            try:
                self.store.set(idx, outcome)
            except StoreError as err:  # kept in the result all the same: nothing observed is lost
                self.store_error = err
                self._cancel_all(err)
                return
            for ready in released:
                self._push_ready(ready)
            if self._closed and not released:
                self._check_over()
            return
        tool = self._tool_of[idx]
        if attempt.number <= tool.retries and isinstance(error, tool.retry_on) and not self._cancelled:
            self._emit("retrying", idx, now, worker)
            delay = tool.backoff * 2 ** (attempt.number - 1)
            self._timers.schedule(time.monotonic() + delay, partial(self._retry, idx))
            return
        kind = {TaskTimeoutError: "timeout", WorkerDiedError: "worker-died"}.get(type(error), "failed")
        self._record_failure(TaskFailure(
            idx, task.tool, kind, type(error).__name__, str(error), _format_traceback(error),
            attempt.args, attempt.kwargs, attempts=attempt.number, exception=error), now, worker)
        self._skip_dependents(idx, now)

    def _retry(self, idx: int) -> None:
        """Timer callback: the backoff before a retry is over; the task is ready again."""
        with self._lock:
            if self._cancelled or idx in self._failures:
                return
            self._push_ready(idx)
            self._dispatch()
        self._flush()

    def _record_failure(self, failure: TaskFailure, now: float, worker: Optional[str] = None) -> None:
        self._failures[failure.task] = failure
        kind = failure.kind if failure.kind in ("skipped", "cancelled") else "failed"
        self._emit(kind, failure.task, now, worker)

    def _skip_dependents(self, idx: int, now: float) -> None:
        for skipped in self._graph.fail(idx):
            self._record_failure(TaskFailure(skipped, self._tasks[skipped].tool, "skipped", cause=idx),
                                 time.perf_counter())
        self._check_over()

    def _cancel_all(self, err: Optional[BaseException]) -> None:
        """Cancel every unfinished task and end the run (under the lock). ``err`` is why, if not the
        caller's ``cancel()`` (for example, the engine was closed under the run)."""
        if self._over:
            return
        for idx, attempt in self._attempts.items():
            attempt.stale = True
            if self._tool_of[idx].executor == "thread":
                self._abandoned += 1
        self._attempts.clear()
        self._thread_ready.clear()
        self._process_ready.clear()
        self._throttled.clear()
        now = time.perf_counter()
        for idx in self._graph.cancel_all():
            failure = TaskFailure(idx, self._tasks[idx].tool, "cancelled")
            if err is not None:
                failure.error_type, failure.message, failure.exception = type(err).__name__, str(err), err
            self._record_failure(failure, now)
        self._cancelled = self._closed = True
        self._check_over()

    def _emit(self, kind: str, idx: int, now: float, worker: Optional[str] = None) -> None:
        self._events.append(Event(kind, idx, self._tasks[idx].tool, now, worker))

    def _check_over(self) -> None:
        if self._over or not self._closed or self._graph.unfinished:
            return
        self._over = True
        self.finished = time.perf_counter()
        self._changed.notify_all()

    def _deliver(self) -> None:
        """Hand new events to ``on_event`` (in order, one caller at a time, outside the state lock)
        and wake the threads iterating over the run."""
        if self._listeners:
            with self._changed:
                self._changed.notify_all()
        if self._on_event is None:
            return
        with self._deliver_lock:
            while self._delivered < len(self._events) and self.callback_error is None:
                event = self._events[self._delivered]
                self._delivered += 1
                try:
                    self._on_event(event)
                except Exception as err:  # the caller's code broke: stop calling it, not the run
                    self.callback_error = err


# A thread call shorter than this (seconds) is run by a drainer already awake rather than by waking
# another thread: waking one costs about as much, and many threads on tiny calls only contend.
_QUICK_CALL = 50e-6
# How long tasks may wait behind "quick" calls that did not come back before another drainer is woken.
_STALL = 1e-3
_PROCESS_QUEUE_DEPTH = 8
_MAX_FREE_BREAKAGES = 3  # a task caught in this many pool breakages is failed, not resubmitted again
_REQUEUED = object()  # marker: a process task caught in another worker's death was resubmitted


def _format_traceback(error: BaseException) -> str:
    return "".join(traceback_module.format_exception(type(error), error, error.__traceback__))


def _is_pickling_error(error: BaseException) -> bool:
    return isinstance(error, pickle.PicklingError) or (
        isinstance(error, (TypeError, AttributeError)) and "pickle" in str(error))


def _explain_pickling(task: Task, attempt: _Attempt, error: BaseException) -> BaseException:
    """Name the argument (or the result) that could not cross to or from the worker process."""
    values = [(f"argument {n + 1}", v) for n, v in enumerate(attempt.args)]
    values += [(f"argument '{k}'", v) for k, v in attempt.kwargs.items()]
    for name, value in values:
        try:
            pickle.dumps(value)
        except Exception:
            where = f"{name} of type {type(value).__name__}"
            break
    else:
        where = "its result"
    explained = TypeError(f"task {task.idx}: {where} cannot be pickled to or from the worker process "
                          f"of tool '{task.tool}' ({error})")
    explained.__cause__ = error
    return explained


def _failed_future(error: BaseException) -> Any:
    from concurrent.futures import Future

    future: Any = Future()
    future.set_exception(error)
    return future
