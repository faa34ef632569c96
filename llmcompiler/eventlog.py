"""A run's events, kept compact, and their delivery to the caller's ``on_event``.

``EventLog`` stores each event as four array entries (kind, task, time, worker): about 25 bytes, where an
``Event`` tuple with its float costs over 100. ``Event`` objects are built only when someone reads them
(``RunResult.events``, iterating a run, ``on_event``), so a 100,000-task run that nobody watches never
makes one. Appends happen under the run's lock; readers take a consistent length first (appends never
move what is already there).

``Delivery`` is the one place a run's events reach ``on_event``: a daemon thread of the run's own, in
order, so a slow callback never holds up a tool call, a drainer, the timer thread or a pool's thread.
It stops calling a callback that raised (the run goes on; ``Run.wait()`` re-raises the error).
"""

from __future__ import annotations

import threading
from array import array
from typing import Any, Callable, Iterator, List, Mapping, Optional

from ._signals import start_thread
from .results import Event

__all__ = ["EventLog", "Delivery", "KINDS"]

# Event kinds, by code. ``submitted``: handed to a process pool or an executor (not yet started there).
KINDS = ("queued", "submitted", "started", "finished", "failed", "skipped", "retrying", "cancelled")
CODE = {kind: code for code, kind in enumerate(KINDS)}


class EventLog:
    """Append-only compact event storage. Appends under the owner's lock; reads need none."""

    __slots__ = ("_kinds", "_tasks", "_times", "_workers", "_cached", "_tools")

    def __init__(self, tools: Mapping[int, Any]) -> None:
        self._kinds = array("B")
        self._tasks = array("q")
        self._times = array("d")
        self._workers: List[Optional[str]] = []
        self._cached: set = set()     # positions of finished events answered from a CallCache
        self._tools = tools           # idx -> Task, to name each event's tool when it is read

    def append(self, kind: int, task: int, time: float, worker: Optional[str] = None,
               cached: bool = False) -> None:
        # The worker entry goes last: a reader sizes the log by it, so every other column is there.
        if cached:
            self._cached.add(len(self._workers))
        self._kinds.append(kind)
        self._tasks.append(task)
        self._times.append(time)
        self._workers.append(worker)

    def __len__(self) -> int:
        return len(self._workers)

    def event(self, position: int) -> Event:
        idx = self._tasks[position]
        task = self._tools.get(idx)
        return Event(KINDS[self._kinds[position]], idx, task.tool if task is not None else "",
                     self._times[position], self._workers[position], position in self._cached)

    def events(self, start: int = 0, stop: Optional[int] = None) -> List[Event]:
        """Events ``start`` to ``stop`` (default: all so far), as ``Event`` records."""
        stop = len(self) if stop is None else stop
        return [self.event(position) for position in range(start, stop)]

    def count(self, kind: str) -> int:
        """How many events of ``kind`` there are."""
        return self._kinds[:len(self)].count(CODE[kind])


class Delivery:
    """Hands a run's events to ``on_event`` from a daemon thread of its own, in order.

    ``source`` yields the run's events as they happen and ends when the run is over (iterating a
    ``Run``). ``error`` is the first exception the callback raised; after it, no more calls are made.
    """

    def __init__(self, source: Iterator[Event], on_event: Callable[[Event], None], name: str) -> None:
        self._source = source
        self._on_event = on_event
        self.error: Optional[Exception] = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        start_thread(self._thread)

    def _loop(self) -> None:
        for event in self._source:
            if self.error is not None:
                continue  # drain to the end, so the run's listener count goes back to zero
            try:
                self._on_event(event)
            except Exception as err:  # the caller's code broke: stop calling it, not the run
                self.error = err

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event was delivered (the run is over). False if ``timeout`` passed, or when
        called from the callback itself (it cannot wait for its own return)."""
        if threading.current_thread() is self._thread:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()
