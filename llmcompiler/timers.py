"""``Timers``: the engine's deadlines (tool timeouts, retry backoff) on one lazily started thread.

The thread sleeps until the earliest deadline on a condition variable: it wakes only when a deadline is
due or the schedule changes, never to poll. An action that raises is logged (``logging.getLogger(
"llmcompiler")``) and the thread goes on: one broken action never stops every later deadline.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, List, Optional, Tuple

from ._signals import start_thread

__all__ = ["Timers"]

_log = logging.getLogger("llmcompiler")


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
                start_thread(self._thread)
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
