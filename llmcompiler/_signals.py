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
from typing import Iterator

__all__ = ["interrupts_blocked", "mask_kept", "start_thread"]

_CAN_MASK = hasattr(signal, "pthread_sigmask")  # POSIX; elsewhere SIGINT goes to the main thread


@contextlib.contextmanager
def interrupts_blocked() -> Iterator[None]:
    """Block SIGINT in this thread for the block's duration (threads started inside inherit it); a
    SIGINT arriving meanwhile stays pending and is delivered when the block ends."""
    if not _CAN_MASK:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def mask_kept() -> Iterator[None]:
    """Restore this thread's signal mask after the block: ``multiprocessing``'s resource tracker,
    started on first need (a pool's shared memory), unblocks SIGINT in the thread that starts it."""
    if not _CAN_MASK:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, the thread beginning with SIGINT blocked."""
    with interrupts_blocked():
        thread.start()
