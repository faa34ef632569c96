"""The process pools tools run on, the entry point of worker processes, and the engine's one timer
thread. (Thread tools run on the engine's own daemon workers: ``lanes.ThreadLane``.)

``Pools`` owns a ``ProcessPoolExecutor`` (CPU-bound tools), started on first use and kept warm across
runs. A process pool that breaks (a worker died or
was killed for a timeout or a cancelled run) is replaced by a new *generation*; every pool records, in
shared memory, which call each of its workers is running *now*, so the scheduler can tell the call whose
worker died from the calls that were only caught in the breakage.

    parent                                      worker process (slot k)
    ------                                      -----------------------
    submit_calls([ProcessCall, ...])    --->    for each call, in order:
                                                  running[k] = call.token
                                                  load the target ("module:attr" or a callable), call it
                                                  running[k] = 0; pickle its CallOutcome on its own
    future <-- [CallOutcome, ...]       <---    (a tool's exception is in its outcome, never the future's)

A work item's future fails only when the pool itself breaks (``BrokenProcessPool``) or an argument
cannot be pickled to the worker. Every worker watches the parent's lifeline (``lifeline.py``) and exits
within moments of the parent's death. Pools the user never closed are killed by an exit hook, so a busy
or hung worker never holds the interpreter open at exit.

``Timers`` is a single thread that sleeps until the earliest deadline (tool timeouts, retry backoff) on a
condition variable: it wakes only when a deadline is due or the schedule changes, never to poll.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from concurrent.futures import Future
from concurrent.futures.process import ProcessPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from .calls import CallOutcome, ProcessCall, outcomes_from, pickled_outcome, run_call, unpickled_outcome
from .lifeline import lifeline_reader, watch_parent
from .mainguard import check_main_guard

__all__ = ["Pools", "Timers", "ProcessGeneration", "CallOutcome", "ProcessCall", "DEFAULT_THREAD_WORKERS",
           "run_calls", "run_in_worker", "default_start_method"]

_log = logging.getLogger("llmcompiler")

# Thread tools mostly wait on the network; the pool is sized for waiting, not for the CPU count.
DEFAULT_THREAD_WORKERS = 32

_KILL = getattr(signal, "SIGKILL", signal.SIGTERM)


def default_start_method() -> str:
    """``"forkserver"`` where the platform has it, else ``"spawn"``: both are safe with threads
    running, unlike ``"fork"`` (used only when asked for)."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


# -- worker process side -------------------------------------------------------------------------------
# Set once per worker process by _init_worker; read by _run_one in the same process only.
_slot = -1
_running: Any = None   # shared array: slot -> token of the call running there now (0 = idle)


def _init_worker(lifeline: Any, running: Any, pids: Any, counter: Any) -> None:
    global _slot, _running
    watch_parent(lifeline)
    with counter.get_lock():
        _slot = counter.value
        counter.value += 1
    _running = running
    pids[_slot] = os.getpid()


class _Outcomes:
    """What a work item sends back: each call's outcome pickled on its own in the worker (so one
    unpicklable result fails only its call), rebuilt into ``List[CallOutcome]`` when unpickled."""

    __slots__ = ("entries",)

    def __init__(self, entries: List[tuple]) -> None:
        self.entries = entries  # (pickled outcome, started, finished, worker) per call

    def __reduce__(self) -> Any:
        return (outcomes_from, (self.entries,))


class _Outcome(_Outcomes):
    """One call's ``_Outcomes``, rebuilt into a single ``CallOutcome``."""

    __slots__ = ()

    def __reduce__(self) -> Any:
        return (unpickled_outcome, self.entries[0])


def _run_one(call: ProcessCall) -> tuple:
    worker = f"process-{os.getpid()}"
    _running[_slot] = call.token  # a death from here on is blamed on this call
    try:
        outcome = run_call(call.target, call.args, call.kwargs, time.perf_counter, worker)
    finally:
        _running[_slot] = 0
    return (pickled_outcome(outcome), outcome.started, outcome.finished, worker)


def run_calls(calls: Sequence[ProcessCall]) -> Any:
    """Worker-process entry: run ``calls`` one after another; the future's result is their
    ``List[CallOutcome]``, in order."""
    return _Outcomes([_run_one(ProcessCall(*call)) for call in calls])


def run_in_worker(token: int, target: Any, args: tuple, kwargs: dict) -> Any:
    """Worker-process entry for a single call; the future's result is its ``CallOutcome``."""
    return _Outcome([_run_one(ProcessCall(token, target, args, kwargs))])


# -- parent side ---------------------------------------------------------------------------------------


class ProcessGeneration:
    """One process pool and the shared slots that say which call each of its workers runs now."""

    def __init__(self, number: int, workers: int, context: Any) -> None:
        self.number = number
        self.running = context.Array("q", workers, lock=False)
        self.pids = context.Array("i", workers, lock=False)
        counter = context.Value("i", 0)
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker,
            initargs=(lifeline_reader(), self.running, self.pids, counter),
        )
        self.culprits: Optional[set] = None  # tokens of calls whose worker died, once known
        # pid -> the token it was killed for: a worker may move on to its next call between the
        # decision to kill it and its death, and must be blamed for the call it was killed for.
        self._killed_for: Dict[int, int] = {}

    def running_tokens(self) -> Dict[int, int]:
        """Token -> worker pid, for every call running now (read from shared memory, no round trip)."""
        return {token: self.pids[slot] for slot, token in enumerate(self.running) if token}

    def pid_of(self, token: int) -> Optional[int]:
        """The pid of the worker running ``token`` now, if any."""
        for slot, running in enumerate(self.running):
            if running == token:
                return self.pids[slot] or None
        return None

    def dead_tokens(self) -> set:
        """Tokens of the calls whose worker process has exited (computed once, at the first ask)."""
        if self.culprits is None:
            # Read while the pool fails its futures, before it terminates the surviving workers
            # (SIGTERM); a worker the pool itself terminated is never a culprit. ``_processes`` is
            # private to concurrent.futures but has kept its meaning since Python 3.3.
            terminated = -getattr(signal, "SIGTERM", 15)
            exited = {pid for pid, proc in list(self.pool._processes.items())
                      if proc.exitcode is not None and proc.exitcode != terminated}
            running = {self.pids[slot]: token for slot, token in enumerate(self.running) if token}
            running.update(self._killed_for)
            self.culprits = {token for pid, token in running.items() if pid in exited}
        return self.culprits

    def kill_tokens(self, tokens: Iterable[int]) -> int:
        """SIGKILL the workers running any of ``tokens`` now; returns how many were killed."""
        wanted = set(tokens)
        victims = {pid: token for token, pid in self.running_tokens().items() if token in wanted and pid}
        killed = 0
        for pid, token in victims.items():
            self._killed_for[pid] = token
            try:
                os.kill(pid, _KILL)
                killed += 1
            except ProcessLookupError:
                del self._killed_for[pid]  # it ended on its own just now
        return killed

    def kill(self, wait: bool = True) -> None:
        """Kill every worker process of this generation at once (SIGKILL); with ``wait``, reap them."""
        processes = list((self.pool._processes or {}).values())
        for proc in processes:
            if proc.exitcode is None:
                proc.kill()
        if not wait:
            return
        self.pool.shutdown(wait=True, cancel_futures=True)
        for proc in processes:
            proc.join(timeout=5)


# Pools not closed yet: killed by _kill_live_pools when the interpreter exits.
_live_pools: "weakref.WeakSet[Pools]" = weakref.WeakSet()


class Pools:
    """The (replaceable) process pool of one engine. Methods are thread-safe. (Thread tools run on
    the engine's ``lanes.ThreadLane``.)"""

    def __init__(
        self, thread_workers: Optional[int] = None, process_workers: Optional[int] = None,
        start_method: Optional[str] = None,
    ) -> None:
        self.thread_workers = thread_workers or DEFAULT_THREAD_WORKERS  # the engine's thread lane size
        self.process_workers = process_workers or os.cpu_count() or 1
        self.start_method = start_method or default_start_method()
        self._lock = threading.Lock()
        self._process: Optional[ProcessGeneration] = None
        self._generations = itertools.count(1)
        self._retired: List[ProcessGeneration] = []
        self._closed = False
        _live_pools.add(self)

    @property
    def context(self) -> Any:
        """The multiprocessing context of this engine's processes (``process_context``): what a
        ``ManagerStore`` for this engine is started with."""
        return process_context(self.start_method)

    def process_generation(self) -> ProcessGeneration:
        """The current process pool generation, started on first use.

        Raises ``ProcessStartError`` (before any process starts) when the main script starts it from
        unguarded top-level code, and ``RunClosedError`` once closed.
        """
        with self._lock:
            self._check_open()
            if self._process is None:
                check_main_guard(self.start_method)
                self._process = ProcessGeneration(next(self._generations), self.process_workers,
                                                  process_context(self.start_method))
            return self._process

    def submit_calls(self, calls: Sequence[ProcessCall]) -> Tuple[ProcessGeneration, "Future[List[CallOutcome]]"]:
        """Send ``calls`` to one worker as one work item, run one after another there.

        Returns the generation and a future whose result is their ``List[CallOutcome]`` in order. A
        tool's exception (or an unpicklable result) is that call's outcome; the future fails only with
        ``BrokenProcessPool`` (a worker died: ask ``dead_tokens()`` whose) or with the pickling error of
        an argument. Raises ``ProcessStartError``, ``RunClosedError``, or ``BrokenProcessPool`` when
        the current pool broke just now (``retire`` it and submit again).
        """
        generation = self.process_generation()
        return generation, generation.pool.submit(run_calls, tuple(calls))

    def submit_process(
        self, token: int, target: Any, args: tuple, kwargs: dict
    ) -> Tuple[ProcessGeneration, "Future[CallOutcome]"]:
        """``submit_calls`` for one call: the future's result is its single ``CallOutcome``."""
        generation = self.process_generation()
        return generation, generation.pool.submit(run_in_worker, token, target, args, kwargs)

    def retire(self, generation: ProcessGeneration) -> None:
        """Replace a broken (or to-be-killed) generation: the next submit starts a fresh pool."""
        with self._lock:
            if self._process is generation:
                self._process = None
                self._retired.append(generation)

    def kill_tokens(self, generation: ProcessGeneration, tokens: Iterable[int]) -> int:
        """SIGKILL only the workers of ``generation`` running one of ``tokens`` now (a timed-out call,
        a cancelled run's calls); returns how many were killed. The pool then breaks: it is retired,
        and the other calls caught in the breakage are not in ``generation.dead_tokens()``."""
        killed = generation.kill_tokens(tokens)
        if killed:
            self.retire(generation)
        return killed

    def kill_worker(self, generation: ProcessGeneration, token: int) -> bool:
        """SIGKILL the worker running ``token`` (a timed-out task). The pool breaks; returns success."""
        return self.kill_tokens(generation, (token,)) > 0

    def kill_processes(self) -> None:
        """Kill every process worker now; the next submit starts a fresh pool."""
        with self._lock:
            generation, self._process = self._process, None
        if generation is not None:
            generation.kill()

    def close(self) -> None:
        """Shut the process pools down and reap every worker. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            generations = self._retired + ([self._process] if self._process else [])
            self._process, self._retired = None, []
        _live_pools.discard(self)
        for generation in generations:
            if generation.culprits is not None:  # it broke: whatever is left of it is killed
                generation.kill()
            else:
                generation.pool.shutdown(wait=True)
            for proc in list((generation.pool._processes or {}).values()):
                proc.join(timeout=5)

    def kill_at_exit(self) -> None:
        """Kill every worker of every generation without waiting (the interpreter is exiting); no
        new pool starts after this."""
        self._closed = True
        generations = self._retired + ([self._process] if self._process else [])  # no lock: may be held
        for generation in generations:
            generation.kill(wait=False)

    def _check_open(self) -> None:
        if self._closed:
            from .errors import RunClosedError

            raise RunClosedError("the engine is closed; create a new Engine to run more tasks")


def process_context(start_method: str) -> Any:
    """The multiprocessing context for ``start_method``. For ``forkserver``, the server preloads
    this module instead of ``__main__`` (the default), so it never runs the main script, and a worker
    has the engine's code imported before its first call."""
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload([__name__])
    return context


def _kill_live_pools() -> None:
    for pools in list(_live_pools):
        pools.kill_at_exit()


# concurrent.futures joins its pools' threads at exit, waiting for every busy worker's call; the
# threading module runs these hooks last-registered first, and concurrent.futures.process (imported
# above) registered its own already, so this runs before it and no busy worker holds the exit.
threading._register_atexit(_kill_live_pools)


class Timers:
    """Deadlines on one lazily started thread. ``schedule`` returns a handle for ``cancel``."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set = set()
        self._ids = itertools.count()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def schedule(self, deadline: float, action: Callable[[], None]) -> int:
        """Call ``action()`` on the timer thread at ``time.monotonic() >= deadline``."""
        handle = next(self._ids)
        with self._changed:
            if self._closed:
                return handle
            heapq.heappush(self._heap, (deadline, handle, action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="llmcompiler-timers", daemon=True)
                self._thread.start()
            self._changed.notify()
        return handle

    def cancel(self, handle: int) -> None:
        with self._changed:
            self._cancelled.add(handle)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._closed:
                    if self._heap and self._heap[0][1] in self._cancelled:
                        self._cancelled.discard(heapq.heappop(self._heap)[1])
                        continue
                    delay = self._heap[0][0] - time.monotonic() if self._heap else None
                    if delay is not None and delay <= 0:
                        break
                    self._changed.wait(delay)
                if self._closed:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:  # one failed action must not stop every later deadline
                _log.exception("llmcompiler: a timer action (%r) raised; the timer thread goes on", action)

    def close(self) -> None:
        """Stop the timer thread (pending actions are dropped) and join it. Idempotent."""
        with self._changed:
            self._closed = True
            self._heap.clear()
            self._changed.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
