"""The pools tools run on, and the entry point of worker processes; the start-method policy.

``Pools`` owns a ``ProcessPoolExecutor`` (CPU-bound tools), started on first use and kept warm across
runs (thread tools run on the engine's own daemon workers: ``lanes.ThreadLane``). A process pool that breaks (a worker died or
was killed for a timeout or a cancelled run) is replaced by a new *generation*; every pool records, in
shared memory, which call each of its workers is running *now*, so the scheduler can tell the call whose
worker died from the calls that were only caught in the breakage.

    parent                                      worker process (slot k)
    ------                                      -----------------------
    submit_calls([ProcessCall, ...])    --->    for each call, in order:
                                                  running[k] = call.token
                                                  load the target ("module:attr" or a callable), call it
                                                  running[k] = 0
    future <-- [CallOutcome, ...]       <---    the outcomes, pickled together (each alone only if one
                                                cannot be); a tool's exception is in its outcome

A work item's future fails only when the pool itself breaks (``BrokenProcessPool``): each call
crosses to the worker pickled on its own, so an argument that cannot be pickled, or a callable the
worker cannot import, fails only its own call. Every worker watches the parent's lifeline
(``lifeline.py``) and exits within moments of the parent's death. Pools the user never closed are killed by an exit hook, so a busy
or hung worker never holds the interpreter open at exit.

State
-----
    Pools._process, _retired, _closed   under Pools._lock (any caller thread); never held
                                                   while waiting on a process
    ProcessGeneration.running[k], pids[k]         shared memory: written by worker k only, read by the
                                                   parent without a lock (one aligned word per slot)
    ProcessGeneration._killed_for                 kill_tokens writes, dead_tokens reads (dict ops)
    ProcessGeneration.culprits                    computed once, by the first dead_tokens() caller
    _live_pools                                   a WeakSet: Pools add themselves, close() removes

``Timers`` (``timers.py``, re-exported here) is the engine's one timer thread.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
import weakref
from concurrent.futures import Future
from concurrent.futures.process import ProcessPoolExecutor
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .calls import (CallOutcome, ProcessCall, Unsendable, dumps, pickled_outcome, received, returnable,
                    run_call, sendable, unpickled_outcome, unreadable_outcome)
from ._signals import interrupts_blocked, interrupts_unblocked, mask_kept
from .lifeline import lifeline_reader, watch_parent
from .mainguard import check_main_guard
from .timers import Timers

__all__ = ["Pools", "Timers", "ProcessGeneration", "CallOutcome", "ProcessCall", "DEFAULT_THREAD_WORKERS",
           "run_calls", "default_start_method", "process_context"]

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
_worker = ""           # this worker's name in outcomes and events: "process-<pid>"


def _init_worker(lifeline: Any, running: Any, pids: Any, counter: Any) -> None:
    global _slot, _running, _worker
    watch_parent(lifeline)
    # Ctrl-C reaches the whole process group; the parent decides what stops (it cancels the run and
    # kills the workers it must), so a worker never dies of it, nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        _slot = counter.value
        counter.value += 1
    _running = running
    _worker = f"process-{os.getpid()}"
    pids[_slot] = os.getpid()


class _Outcomes:
    """What a work item sends back, rebuilt into ``List[CallOutcome]`` (or one ``CallOutcome`` for
    ``single``) when the parent unpickles it. The outcomes are pickled here, at once in the common
    case; if any of them cannot be, each is pickled on its own (``calls.pickled_outcome``), so an
    unpicklable result fails only its own call, never the batch."""

    __slots__ = ("outcomes", "single")

    def __init__(self, outcomes: List[CallOutcome], single: bool) -> None:
        self.outcomes = outcomes
        self.single = single

    def __reduce__(self) -> Any:
        # Runs on every call's way back, in a worker woken from its tool: the fewer steps the better.
        if self.single and self.outcomes[0].error is None:  # the common case: one call that returned
            outcome = self.outcomes[0]
            try:
                blob = dumps(tuple(outcome))
                return (_rebuilt_one, (blob, outcome.started, outcome.finished, outcome.worker))
            except Exception:
                pass  # the general path below makes the outcome say why
        self.outcomes = [returnable(o) if o.error is not None else o for o in self.outcomes]
        stamps = [(o.started, o.finished, o.worker) for o in self.outcomes]
        try:  # plain tuples: pickled by the C pickler alone, with no class to look up per call
            blob = dumps([tuple(o) for o in self.outcomes])
        except Exception:
            return (_rebuilt, ([pickled_outcome(o) for o in self.outcomes], stamps, self.single))
        return (_rebuilt, (blob, stamps, self.single))


def _rebuilt_one(blob: bytes, started: float, finished: float, worker: str) -> CallOutcome:
    """The parent's side of a single call's ``_Outcomes``; never raises (it runs on the pool's result
    thread)."""
    try:
        return CallOutcome._make(pickle.loads(blob))
    except Exception as err:  # some class does not import here
        return unreadable_outcome(err, started, finished, worker)


def _rebuilt(blobs: Any, stamps: List[tuple], single: bool) -> Any:
    """The parent's side of ``_Outcomes``; never raises (it runs on the pool's result thread)."""
    if isinstance(blobs, bytes):
        try:
            outcomes = [CallOutcome._make(fields) for fields in pickle.loads(blobs)]
        except Exception as err:  # some class does not import here: every call of the batch says so
            outcomes = [unreadable_outcome(err, *stamp) for stamp in stamps]
    else:
        outcomes = [unpickled_outcome(blob, *stamp) for blob, stamp in zip(blobs, stamps)]
    return outcomes[0] if single else outcomes


class _Calls:
    """What a work item carries: its calls, each pickled on its own when the pool pickles the item
    (``calls.sendable``), so a call that cannot be pickled fails alone, never its batch or the pool.
    The worker receives a plain tuple of those entries; ``run_calls`` rebuilds each
    (``calls.received``), so a call that cannot be rebuilt there fails alone too."""

    __slots__ = ("calls",)

    def __init__(self, calls: Sequence[ProcessCall]) -> None:
        self.calls = calls

    def __reduce__(self) -> Any:
        return (tuple, ([sendable(call) for call in self.calls],))


def _run_one(entry: Any, worker: str) -> CallOutcome:
    call = received(entry)
    if type(call) is Unsendable:
        now = time.perf_counter()
        return CallOutcome(None, call.error, "", now, now, worker)
    running = _running
    running[_slot] = call.token  # a death from here on is blamed on this call
    try:
        return run_call(call.target, call.args, call.kwargs, time.perf_counter, worker)
    finally:
        running[_slot] = 0


def run_calls(entries: Sequence[Any], single: bool = False) -> Any:
    """Worker-process entry: run the calls of ``entries`` (what ``calls.sendable`` made of each) one
    after another; the future's result is their ``List[CallOutcome]`` in order (with ``single``, the
    one call's ``CallOutcome``)."""
    worker = _worker or f"process-{os.getpid()}"  # set by _init_worker in the engine's pools
    return _Outcomes([_run_one(entry, worker) for entry in entries], single)


# -- parent side ---------------------------------------------------------------------------------------


class ProcessGeneration:
    """One process pool and the shared slots that say which call each of its workers runs now."""

    def __init__(self, number: int, workers: int, context: Any) -> None:
        self.number = number
        self._start_method = context.get_start_method()
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
        # Written by kill_tokens (timer or scheduler threads), read by dead_tokens; single dict
        # operations, atomic under the GIL.
        self._killed_for: Dict[int, int] = {}

    def submit(self, fn: Any, *args: Any) -> Future:
        """``pool.submit``; while the pool has not started its manager thread, with SIGINT blocked, so
        the threads (and the forkserver) it starts never take a Ctrl-C meant for the main thread
        (``_signals``). ``_executor_manager_thread`` is concurrent.futures' own (3.9+)."""
        if getattr(self.pool, "_executor_manager_thread", None) is not None:
            return self.pool.submit(fn, *args)
        if self._start_method == "forkserver":
            from multiprocessing import forkserver

            # Started first, with SIGINT as the caller's processes expect it (it forks them too),
            # even when this thread is one of the engine's.
            with interrupts_unblocked():
                forkserver.ensure_running()
        with interrupts_blocked():
            return self.pool.submit(fn, *args)

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
            exited = {pid for pid, proc in list((self.pool._processes or {}).items())
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
        if killed:
            self._wake_pool()
        return killed

    def _wake_pool(self) -> None:
        """Make the pool's manager thread look at its workers again. It waits on the exit sentinels of
        the workers it knew of when it last woke; ``submit`` wakes it *before* spawning a worker on
        demand (seen in CPython 3.11), so the death of the newest worker could go unnoticed until some
        result arrived. ``_executor_manager_thread_wakeup`` is private to concurrent.futures."""
        wakeup = getattr(self.pool, "_executor_manager_thread_wakeup", None)
        try:
            if wakeup is not None:
                wakeup.wakeup()
        except OSError:
            pass  # closed just now: the pool has seen the death already and is ending

    def over(self) -> bool:
        """Whether nothing of this generation runs any more: every worker has exited and the pool's
        manager thread is gone (a broken pool ends both by itself)."""
        manager = getattr(self.pool, "_executor_manager_thread", None)
        processes = list((self.pool._processes or {}).values())
        return (manager is None or not manager.is_alive()) and all(p.exitcode is not None for p in processes)

    def release(self) -> None:
        """Close the pipes of a generation that is over, now: its pool, its queues and the manager
        thread's wakeup form reference cycles, so left to the garbage collector each broken pool
        would hold its descriptors for a while. (``_result_queue``, ``_call_queue`` and the wakeup are private to
        concurrent.futures, with the same meaning since 3.8; each close is idempotent.)"""
        for name in ("_result_queue", "_call_queue", "_executor_manager_thread_wakeup"):
            queue = getattr(self.pool, name, None)
            if queue is not None:
                try:
                    queue.close()
                except (OSError, ValueError):
                    pass  # already closed
        for process in list((self.pool._processes or {}).values()):
            try:
                process.close()  # its sentinel pipe; it has exited (over() said so)
            except ValueError:
                pass  # still running after all: the garbage collector will see to it

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
    """The thread pool and the (replaceable) process pool of one engine. Methods are thread-safe."""

    def __init__(
        self, thread_workers: Optional[int] = None, process_workers: Optional[int] = None,
        start_method: Optional[str] = None,
    ) -> None:
        self.thread_workers = thread_workers or DEFAULT_THREAD_WORKERS
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
            if self._retired:
                self._release_over()
            if self._process is None:
                check_main_guard(self.start_method)
                with mask_kept():  # an engine thread keeps SIGINT blocked (see _signals)
                    self._process = ProcessGeneration(next(self._generations), self.process_workers,
                                                      process_context(self.start_method))
            return self._process

    def submit_calls(
        self, calls: Sequence[ProcessCall]
    ) -> Tuple[ProcessGeneration, "Future[List[CallOutcome]]"]:
        """Send ``calls`` to one worker as one work item, run one after another there.

        Returns the generation and a future whose result is their ``List[CallOutcome]`` in order. A
        tool's exception, an unpicklable result or argument, or a callable the worker cannot import is
        that call's outcome (the call does not run in the last two cases); the future fails only with
        ``BrokenProcessPool`` (a worker died: ask ``dead_tokens()`` whose). Raises
        ``ProcessStartError``, ``RunClosedError``, or ``BrokenProcessPool`` when the current pool broke
        just now (``retire`` it and submit again). The future is the batch's: ``future.cancel()``
        succeeds only while no call of it has started, and then cancels every call of the batch.
        """
        generation = self.process_generation()
        return generation, generation.submit(run_calls, _Calls(tuple(calls)))

    def submit_process(
        self, token: int, target: Any, args: tuple, kwargs: dict
    ) -> Tuple[ProcessGeneration, "Future[CallOutcome]"]:
        """``submit_calls`` for one call: the future's result is its single ``CallOutcome``.

        The call is pickled here, in the submitting thread, rather than in the pool's feeder thread
        (whose turn comes after a wake-up): on a chain this is on every step's way to the worker."""
        generation = self.process_generation()
        entry = sendable(ProcessCall(token, target, args, kwargs))
        return generation, generation.submit(run_calls, (entry,), True)

    def retire(self, generation: ProcessGeneration) -> None:
        """Replace a broken (or to-be-killed) generation: the next submit starts a fresh pool."""
        with self._lock:
            if self._process is generation:
                self._process = None
                self._release_over()
                self._retired.append(generation)

    def _release_over(self) -> None:
        """Under the lock: close and drop the retired generations that are over (checked at each
        retirement and each submit), so a long-lived engine whose pools keep breaking (timeouts,
        cancelled runs) holds only the ones still ending."""
        still_ending = []
        for retired in self._retired:
            if retired.over():
                retired.release()
            else:
                still_ending.append(retired)
        self._retired = still_ending

    def kill_tokens(self, generation: ProcessGeneration, tokens: Iterable[int]) -> int:
        """SIGKILL only the workers of ``generation`` running one of ``tokens`` now (a timed-out call,
        a cancelled run's calls); returns how many were killed. The pool then breaks: it is retired,
        and the other calls caught in the breakage are not in ``generation.dead_tokens()``."""
        killed = generation.kill_tokens(tokens)
        if killed:
            self.retire(generation)
            _log.warning("killed %d worker process(es) of process pool %d; the pool is replaced",
                         killed, generation.number)
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
        live = sum(1 for g in generations for p in list((g.pool._processes or {}).values())
                   if p.exitcode is None)
        for generation in generations:
            generation.kill(wait=False)
        if live:
            _log.warning("at exit: killed %d worker process(es) of an engine that was never closed", live)

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


