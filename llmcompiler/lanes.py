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
round-robin across runs, one task per turn, whatever each run's size. A thread worker keeps serving its
run (no handoff on a chain) while idle workers remain for the runs that wait; once none is left, it
yields its turn after each task.

Locks: each lane has one, a leaf: a lane never calls a run while holding it, and runs offer themselves to
lanes only after releasing their own lock.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections import deque
from typing import Any, Deque, List

from ._signals import start_thread

__all__ = ["ThreadLane", "SubmitLane", "Submission", "STALL"]

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
        self._names = itertools.count(1)
        self._lent = 0                    # workers lent for abandoned calls still running
        self._idle = 0                    # workers waiting for work
        self._notified = 0                # idle workers notified, not yet back for work
        self._starting = 0                # workers started, not yet taking work
        self.calls = 0                    # thread calls started so far, counted by the runs without
                                          # the lock: only "did it change" is ever asked of it
        self._busy: set = set()           # names of the workers serving a run now
        self.in_quick_call: dict = {}     # worker name -> whether its call now usually takes
                                          # microseconds (written by the worker itself, read as a hint)
        self.watching = False
        self._closed = False

    def offer(self, run: Any, wake: bool, count: int = 1) -> None:
        """``run`` has ready thread tasks. ``wake``: make sure a worker comes for them (False when the
        caller is a worker that is about to come back for work anyway); ``count``: as many as that,
        when the caller knows that many calls can start at once."""
        with self._lock:
            if self._closed:
                return
            if run not in self.queued:
                self.queued.add(run)
                self._runs.append(run)
            if wake:
                self._wake(count)

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

    def runs_waiting(self) -> bool:
        """Whether any run waits for a turn (a hint, read without the lock)."""
        return bool(self._runs)

    def others_waiting(self, run: Any) -> bool:
        """Whether a run other than ``run`` waits for a turn that no idle worker is left to give it
        (a hint, read without the lock): then the worker serving ``run`` yields its turn."""
        runs = self._runs
        return bool(runs) and (len(runs) > 1 or runs[0] is not run) and self._idle <= self._notified

    def _wake(self, count: int = 1) -> None:
        """Under the lock: make sure ``count`` workers are on their way for work (notified, or started
        if none is idle). Workers on their way wake the next ones if work is left when they get it, so
        no more are woken than will find something to do."""
        if not self._runs:
            return
        on_the_way = self._notified + self._starting
        want = count
        while on_the_way < want:
            if self._idle > self._notified:
                self._notified += 1
                self._work.notify()
            elif len(self._threads) < self.size + self._lent:
                self._starting += 1
                thread = threading.Thread(target=self._loop, name=f"{self._name}-{next(self._names)}",
                                          daemon=True)
                self._threads.append(thread)
                start_thread(thread)
            else:
                return
            on_the_way += 1

    def lend(self, count: int) -> None:
        """``count`` thread calls were abandoned (timed out or cancelled, still running): the lane may
        start that many workers beyond its size, so abandoned calls never starve other tasks;
        a negative count: abandoned calls came back, and as many workers retire once idle."""
        with self._lock:
            self._lent = max(0, self._lent + count)
            if count > 0:
                self._wake()

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
                    self._starting -= 1
                    woken = False
                # Two workers trading microsecond calls only contend: when another worker is in such
                # a call now and has made progress since this one's last turn, this one steps back (the
                # stall watch brings it back if every awake worker gets stuck). A worker in a longer
                # call is no reason to step back: the ready work would wait for it. A closed lane
                # notifies no one again: a worker coming back after close() never steps back.
                if quick and not self._closed and self.calls - seen > mine and \
                        any(self.in_quick_call.get(other) for other in self._busy):
                    self._idle_until_woken()
                while not self._runs:
                    if self._closed:
                        return
                    if len(self._threads) > self.size + self._lent:  # a lent worker, no longer needed
                        self._threads.remove(threading.current_thread())
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
        if self._notified:
            self._notified -= 1

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
        # A busy worker is finishing its bookkeeping (microseconds) or is stuck in an abandoned call
        # (it may never return): those get a short grace, the idle ones the whole timeout.
        grace = time.monotonic() + min(timeout, 0.2)
        for thread in threads:
            if thread is not threading.current_thread():
                until = grace if thread.name in busy else deadline
                thread.join(max(0.0, until - time.monotonic()))


class Submission(enum.Enum):
    """What a run did when a submit lane offered it a slot."""

    SENT = "a work item was handed to the executor"
    NOTHING = "it had no ready task of the lane's kind"
    HELD = "its next task waits for a free worker (its timeout clock would start before its call)"


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
            answer = Submission.NOTHING
            try:
                answer = run.submit_next(self)
            finally:
                if answer is not Submission.SENT:
                    with self._lock:
                        self.in_flight -= 1
            if answer is Submission.HELD:
                return  # it waits for a call to end, which pumps again (looping now would spin)

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

