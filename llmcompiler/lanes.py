"""Where ready tasks run: the engine's lanes, one per executor kind, shared by every run.

* ``ThreadLane``: daemon worker threads of the engine's own (not a ``ThreadPoolExecutor``, whose
  threads are joined at interpreter exit: a call abandoned after its timeout would hold the process
  open). A worker takes a ready task from the next run in turn, runs it, records it and comes back for
  the next, so a chain of thread tasks costs no handoff between threads. Workers are woken one at a
  time: a worker that has taken a task wakes (or starts) the next only if ready tasks remain, and not
  while it holds a call that usually returns in microseconds; a one-shot *stall watch* then wakes one
  if that call does not come back within ``STALL`` seconds. Threads start on first need.
* ``SubmitLane``: for kinds that run elsewhere (process pools, the engine's event loop, any
  ``concurrent.futures.Executor``): at most ``capacity`` calls in flight for the whole engine; runs with
  ready tasks are served in turn.

Fairness: a run with ready tasks waits in a lane's queue of runs, once; a worker (or a free slot) serves
the run at the head, one task, and the run goes to the back if it has more. Ready work is therefore taken
round-robin across runs, one task per turn, whatever each run's size.

Locks: each lane has one, a leaf: a lane never calls a run while holding it, and runs offer themselves to
lanes only after releasing their own lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Deque, List

__all__ = ["ThreadLane", "SubmitLane", "STALL"]

log = logging.getLogger("llmcompiler")

STALL = 1e-3  # seconds a usually quick call may hold waiting tasks back before another worker wakes


class ThreadLane:
    """The engine's thread workers. ``offer(run, wake)`` after a run's ready thread tasks changed."""

    def __init__(self, size: int, timers: Any, name: str = "llmcompiler") -> None:
        self.size = size
        self._timers = timers
        self._name = name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._runs: Deque[Any] = deque()  # runs with ready thread tasks, in turn order
        self.queued: set = set()          # the runs in _runs (each at most once); read as a hint
        self._threads: List[threading.Thread] = []
        self._idle = 0                    # workers waiting for work
        self._waking = 0                  # workers notified or started, not yet back for work
        self.calls = 0                    # thread calls started so far, counted by the runs without
                                          # the lock: only "did it change" is ever asked of it
        self._busy: set = set()           # names of the workers serving a run now
        self.watching = False
        self._closed = False

    def offer(self, run: Any, wake: bool) -> None:
        """``run`` has ready thread tasks. ``wake``: make sure a worker comes for them (False when the
        caller is a worker that is about to come back for work anyway)."""
        with self._lock:
            if self._closed:
                return
            if run not in self.queued:
                self.queued.add(run)
                self._runs.append(run)
            if wake:
                self._wake()

    def taken(self, quick_in_hand: bool) -> None:
        """A worker took a task and its run has more: wake the next worker (one at a time), or, when
        the call in hand usually takes microseconds, only arm the stall watch."""
        with self._lock:
            if quick_in_hand:
                if not self.watching and not self._closed:
                    self.watching = True
                    self._timers.schedule(time.monotonic() + STALL, self._watch_for(self.calls))
            else:
                self._wake()

    def others_waiting(self, run: Any) -> bool:
        """Whether a run other than ``run`` waits for a turn (a hint, read without the lock)."""
        runs = self._runs
        return bool(runs) and (len(runs) > 1 or runs[0] is not run)

    def _wake(self) -> None:
        """Under the lock: one more worker comes for work, unless one is on its way already."""
        if self._waking or not self._runs:
            return
        if self._idle:
            self._waking += 1
            self._work.notify()
        elif len(self._threads) < self.size:
            self._waking += 1
            thread = threading.Thread(target=self._loop, name=f"{self._name}-{len(self._threads) + 1}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _watch_for(self, calls: int) -> Any:
        def watch() -> None:
            with self._lock:
                self.watching = False
                if self.calls == calls:  # no call started since: every awake worker is stuck
                    self._wake()
        return watch

    def _loop(self) -> None:
        worker = threading.current_thread().name
        woken = True
        quick = False  # the last call this worker ran took microseconds
        seen = mine = 0  # calls of the whole lane when this worker's last turn began; its own since
        while True:
            with self._lock:
                self._busy.discard(worker)
                if woken:
                    self._waking -= 1
                    woken = False
                # Two workers trading microsecond calls only contend: once another worker has made
                # progress since this one's last turn, this one steps back (the stall watch brings it
                # back if every awake worker gets stuck).
                if quick and self.calls - seen > mine and self._busy:
                    self._idle_until_woken()
                while not self._runs:
                    if self._closed:
                        return
                    self._idle_until_woken()
                if self._closed:
                    return
                run = self._runs.popleft()
                self.queued.discard(run)
                seen = self.calls
                self._busy.add(worker)
            try:
                quick, mine = run.serve_thread_task(self, worker)
            except Exception:  # a run's own code failed outside a task: never lose the worker
                log.exception("llmcompiler: a run failed while serving a thread task")
                quick, mine = False, 0
            del run  # an idle worker must not keep a finished run alive

    def _idle_until_woken(self) -> None:
        """Under the lock: wait until notified (by _wake) or closed."""
        self._idle += 1
        self._work.wait()
        self._idle -= 1
        if self._waking:
            self._waking -= 1

    @property
    def threads(self) -> int:
        """Worker threads started so far."""
        return len(self._threads)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers: idle ones exit now and are joined; a worker still in a call (abandoned
        after a timeout or a cancel) is a daemon thread and exits when its call returns. Idempotent."""
        with self._lock:
            self._closed = True
            self._runs.clear()
            self.queued.clear()
            self._work.notify_all()
            threads = list(self._threads)
            busy = set(self._busy)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread() and thread.name not in busy:
                thread.join(max(0.0, deadline - time.monotonic()))


class SubmitLane:
    """Calls handed to an executor (process pool, event loop, any ``Executor``), engine-wide capacity.

    ``offer(run)`` after a run's ready tasks of this kind changed, then ``pump()`` (never under a run's
    lock): it asks runs in turn for a task while fewer than ``capacity`` calls are in flight. A run
    submits the task itself (``run.submit_next(lane)``, returning False when it had none) and calls
    ``call_ended()`` when the call's outcome is in."""

    def __init__(self, kind: str, capacity: int, workers: int) -> None:
        self.kind = kind
        self.capacity = capacity
        self.workers = workers      # calls that run at once; beyond that, calls queue in the executor
        self._lock = threading.Lock()
        self._runs: Deque[Any] = deque()
        self.queued: set = set()
        self.in_flight = 0
        self._closed = False

    def offer(self, run: Any) -> None:
        with self._lock:
            if not self._closed and run not in self.queued:
                self.queued.add(run)
                self._runs.append(run)

    def pump(self) -> None:
        while True:
            with self._lock:
                if self._closed or self.in_flight >= self.capacity or not self._runs:
                    return
                run = self._runs.popleft()
                self.queued.discard(run)
                self.in_flight += 1
            submitted = False
            try:
                submitted = run.submit_next(self)
            finally:
                if not submitted:
                    with self._lock:
                        self.in_flight -= 1

    def call_ended(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def has_free_worker(self) -> bool:
        """Whether a call submitted now would start at once (counting the one being submitted)."""
        return self.in_flight <= self.workers

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._runs.clear()
            self.queued.clear()

