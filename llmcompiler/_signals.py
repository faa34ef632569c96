"""Ctrl-C reaches the caller's main thread at once: the engine's own threads never take SIGINT.

The kernel hands a process-wide SIGINT to any thread that does not block it; Python runs its handler
only in the main thread, and only once that thread runs again. When the kernel picks one of the
engine's threads while the main thread waits in ``Run.wait()``, nothing wakes the main thread and the
``KeyboardInterrupt`` waits for the run to end by itself. So every thread the engine starts (lane
workers, the timer thread, the event loop, the per-run delivery thread, and a process pool's manager
and feeder threads, started by its first submit) begins with SIGINT blocked: a thread inherits the
signal mask of the thread that starts it, so the mask is set only around the start. Python code in
those threads is unaffected (Python signal handlers run in the main thread anyway).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import ContextManager, Iterator, Tuple

__all__ = ["interrupts_blocked", "interrupts_unblocked", "mask_kept", "start_thread"]

_CAN_MASK = hasattr(signal, "pthread_sigmask")  # POSIX; elsewhere SIGINT goes to the main thread


@contextlib.contextmanager
def _mask(how: int, signals: Tuple[int, ...]) -> Iterator[None]:
    """``pthread_sigmask(how, signals)`` for the block's duration; this thread's mask as it was after."""
    if not _CAN_MASK:
        yield
        return
    previous = signal.pthread_sigmask(how, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def interrupts_blocked() -> ContextManager[None]:
    """Block SIGINT in this thread for the block's duration (threads started inside inherit it); a
    SIGINT arriving meanwhile stays pending and is delivered when the block ends."""
    return _mask(signal.SIG_BLOCK, (signal.SIGINT,))


def interrupts_unblocked() -> ContextManager[None]:
    """Unblock SIGINT in this thread for the block's duration: for starting a process that outlives
    the engine and serves the caller too (multiprocessing's forkserver), which inherits the mask."""
    return _mask(signal.SIG_UNBLOCK, (signal.SIGINT,))


def mask_kept() -> ContextManager[None]:
    """Restore this thread's signal mask after the block: ``multiprocessing``'s resource tracker,
    started on first need (a pool's shared memory), unblocks SIGINT in the thread that starts it."""
    return _mask(signal.SIG_BLOCK, ())


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, the thread beginning with SIGINT blocked."""
    with interrupts_blocked():
        thread.start()
