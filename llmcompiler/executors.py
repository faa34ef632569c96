"""The pools tools run on, the entry point of worker processes, and the engine's one timer thread.

``Pools`` owns a ``ThreadPoolExecutor`` (I/O-bound tools) and a ``ProcessPoolExecutor`` (CPU-bound
tools), each started on first use and kept warm across runs. A process pool that breaks (a worker died or
was killed for a timeout) is replaced by a new *generation*; every pool records, in shared memory, which
task each of its workers is running, so the scheduler can tell the task whose worker died from the tasks
that were only caught in the breakage.

    parent                                     worker process (slot k)
    ------                                     -----------------------
    submit_process(token, target, args)  --->  running[k] = token
                                               load target ("module:attr" or pickled callable), call it
    future <-- (pid, result) or exception <--  running[k] = 0

``Timers`` is a single thread that sleeps until the earliest deadline (tool timeouts, retry backoff) on a
condition variable: it wakes only when a deadline is due or the schedule changes, never to poll.
"""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

from .store import _default_start_method

__all__ = ["Pools", "Timers", "DEFAULT_THREAD_WORKERS", "run_in_worker"]

# Thread tools mostly wait on the network; the pool is sized for waiting, not for the CPU count.
DEFAULT_THREAD_WORKERS = 32

# -- worker process side -------------------------------------------------------------------------------
# Set once per worker process by _init_worker; read by run_in_worker in the same process only.
_slot = -1
_running: Any = None   # shared array: slot -> token of the task running there (0 = idle)
_loaded: Dict[str, Callable[..., Any]] = {}


def _init_worker(running: Any, pids: Any, counter: Any) -> None:
    global _slot, _running
    with counter.get_lock():
        _slot = counter.value
        counter.value += 1
    _running = running
    pids[_slot] = os.getpid()


def run_in_worker(token: int, target: Any, args: tuple, kwargs: dict) -> Tuple[int, Any]:
    """Worker-process entry: run one tool call, marking this worker's slot busy with ``token``.

    ``target`` is a ``"module:attr"`` path (imported once per process) or a picklable callable.
    Returns ``(pid, result)``.
    """
    if isinstance(target, str):
        func = _loaded.get(target)
        if func is None:
            from .tools import load_path

            func = _loaded[target] = load_path(target)
    else:
        func = target
    _running[_slot] = token
    try:
        return os.getpid(), func(*args, **kwargs)
    finally:
        _running[_slot] = 0


# -- parent side ---------------------------------------------------------------------------------------


class ProcessGeneration:
    """One process pool and the shared slots that say which task each of its workers runs."""

    def __init__(self, number: int, workers: int, context: Any) -> None:
        self.number = number
        self.running = context.Array("q", workers, lock=False)
        self.pids = context.Array("i", workers, lock=False)
        counter = context.Value("i", 0)
        self.pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker,
            initargs=(self.running, self.pids, counter),
        )
        self.culprits: Optional[set] = None  # tokens of tasks whose worker died, once known

    def pid_of(self, token: int) -> Optional[int]:
        """The pid of the worker running ``token`` now, if any."""
        for slot, running in enumerate(self.running):
            if running == token:
                return self.pids[slot] or None
        return None

    def dead_tokens(self) -> set:
        """Tokens of the tasks whose worker process has exited (computed once, at the first ask)."""
        if self.culprits is None:
            # Read while the pool fails its futures, before it terminates the surviving workers
            # (SIGTERM); a worker the pool itself terminated is never a culprit. ``_processes`` is
            # private to concurrent.futures but has kept its meaning since Python 3.3.
            terminated = -getattr(signal, "SIGTERM", 15)
            exited = {pid for pid, proc in list(self.pool._processes.items())
                      if proc.exitcode is not None and proc.exitcode != terminated}
            self.culprits = {
                token for slot, token in enumerate(self.running) if token and self.pids[slot] in exited
            }
        return self.culprits

    def kill(self) -> None:
        """Kill every worker process of this generation at once (SIGKILL), then reap them."""
        processes = list((self.pool._processes or {}).values())
        for proc in processes:
            if proc.exitcode is None:
                proc.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for proc in processes:
            proc.join(timeout=5)


class Pools:
    """The thread pool and the (replaceable) process pool of one engine. Methods are thread-safe."""

    def __init__(
        self, thread_workers: Optional[int] = None, process_workers: Optional[int] = None,
        start_method: Optional[str] = None,
    ) -> None:
        self.thread_workers = thread_workers or DEFAULT_THREAD_WORKERS
        self.process_workers = process_workers or os.cpu_count() or 1
        self.start_method = start_method or _default_start_method()
        self._lock = threading.Lock()
        self._threads: Optional[ThreadPoolExecutor] = None
        self._process: Optional[ProcessGeneration] = None
        self._generations = itertools.count(1)
        self._retired: List[ProcessGeneration] = []
        self._closed = False

    @property
    def threads(self) -> ThreadPoolExecutor:
        """The thread pool, started on first use."""
        pool = self._threads
        if pool is None:
            with self._lock:
                self._check_open()
                if self._threads is None:
                    self._threads = _started_thread_pool(self.thread_workers)
                pool = self._threads
        return pool

    def process_generation(self) -> ProcessGeneration:
        """The current process pool generation, started on first use."""
        with self._lock:
            self._check_open()
            if self._process is None:
                import multiprocessing

                context = multiprocessing.get_context(self.start_method)
                self._process = ProcessGeneration(next(self._generations), self.process_workers, context)
            return self._process

    def submit_process(
        self, token: int, target: Any, args: tuple, kwargs: dict
    ) -> Tuple[ProcessGeneration, "Future[Any]"]:
        """Submit one call to the process pool; returns its generation and future."""
        generation = self.process_generation()
        return generation, generation.pool.submit(run_in_worker, token, target, args, kwargs)

    def retire(self, generation: ProcessGeneration) -> None:
        """Replace a broken (or to-be-killed) generation: the next submit starts a fresh pool."""
        with self._lock:
            if self._process is generation:
                self._process = None
                self._retired.append(generation)

    def kill_worker(self, generation: ProcessGeneration, token: int) -> bool:
        """SIGKILL the worker running ``token`` (a timed-out task). The pool breaks; returns success."""
        pid = generation.pid_of(token)
        if pid is None:
            return False
        self.retire(generation)
        try:
            os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def kill_processes(self) -> None:
        """Kill every process worker now (cancellation); the next submit starts a fresh pool."""
        with self._lock:
            generation, self._process = self._process, None
        if generation is not None:
            generation.kill()

    def close(self, wait_threads: bool = True) -> None:
        """Shut both pools down and reap every worker. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._threads = self._threads, None
            generations = self._retired + ([self._process] if self._process else [])
            self._process, self._retired = None, []
        for generation in generations:
            if generation.culprits is not None:  # it broke: whatever is left of it is killed
                generation.kill()
            else:
                generation.pool.shutdown(wait=True)
            for proc in list((generation.pool._processes or {}).values()):
                proc.join(timeout=5)
        if threads is not None:
            threads.shutdown(wait=wait_threads, cancel_futures=True)

    def _check_open(self) -> None:
        if self._closed:
            from .errors import RunClosedError

            raise RunClosedError("the engine is closed; create a new Engine to run more tasks")


def _started_thread_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool whose threads all exist already: no later run pays for starting one.

    ``ThreadPoolExecutor`` starts a thread inside ``submit`` only when none is idle; ``workers`` calls
    that each wait until all have started force it to start them all now (a few ms, once).
    """
    pool = ThreadPoolExecutor(workers, "llmcompiler")
    all_started = threading.Barrier(workers)

    def wait_for_the_others() -> None:
        try:
            all_started.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass  # starting threads was slow: the pool works all the same

    for _ in range(workers):
        pool.submit(wait_for_the_others)
    return pool


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
        import time

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
            action()

    def close(self) -> None:
        """Stop the timer thread (pending actions are dropped) and join it. Idempotent."""
        with self._changed:
            self._closed = True
            self._heap.clear()
            self._changed.notify()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
