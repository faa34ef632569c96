"""Which ready task goes next: a run's ready queue, the engine's concurrency limits, tool estimates.

* ``ReadyQueue`` (one per run, guarded by the run's lock): per executor kind, ordered by the
  estimated time left on each task's longest chain (``TaskGraph.priority``), ties to the lower index.
* ``Limits`` (one per engine, its own lock, a leaf: nothing is called while it is held): per-tool
  ``max_concurrency`` across every run of the engine, since a rate-limited API does not care which
  question called it. A task over its tool's limit is *held* here in arrival order; when a call of that
  tool ends, its slot passes straight to the oldest held task (of whichever run), so a limit is never
  exceeded and held tasks are served first come, first served.
* ``ToolStats`` (one per engine, no lock: single dict reads and writes): each tool's moving-average call duration, to
  spot calls shorter than waking a thread and to estimate the time left on a chain.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, NamedTuple, Optional, Tuple

__all__ = ["ReadyQueue", "Limits", "HeldTask", "ToolStats"]


class _Queue:
    """The ready tasks of one kind: a heap of their distinct keys (negated priorities), and for each
    key a heap of its tasks' indices. Tasks of one plan share few priorities (a chain's height in
    equal costs), so a push or a pop orders plain ints in a bucket, not ``(priority, idx)`` tuples in
    one heap as large as the queue."""

    __slots__ = ("keys", "buckets", "size")

    def __init__(self) -> None:
        self.keys: List[float] = []
        self.buckets: Dict[float, List[int]] = {}
        self.size = 0

    def fill(self, keyed: Iterable[Tuple[float, int]]) -> None:
        """Replace the contents with ``(key, idx)`` pairs, ordered at once."""
        buckets: Dict[float, List[int]] = {}
        for key, idx in keyed:
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [idx]
            else:
                bucket.append(idx)
        for bucket in buckets.values():
            heapq.heapify(bucket)
        self.keys = list(buckets)
        heapq.heapify(self.keys)
        self.buckets = buckets
        self.size = sum(map(len, buckets.values()))

    def indices(self) -> List[int]:
        return [idx for bucket in self.buckets.values() for idx in bucket]


class ReadyQueue:
    """Ready tasks of one run by executor kind, each kind ordered by priority (highest first), ties
    to the lower index. Not thread-safe: the run's lock guards it."""

    __slots__ = ("_queues", "count")

    def __init__(self) -> None:
        self._queues: Dict[str, _Queue] = {}
        self.count = 0  # ready tasks of every kind

    def push(self, kind: str, priority: float, idx: int) -> None:
        queue = self._queues.get(kind)
        if queue is None:
            queue = self._queues[kind] = _Queue()
        key = -priority
        bucket = queue.buckets.get(key)
        if bucket is None:
            queue.buckets[key] = [idx]
            heapq.heappush(queue.keys, key)
        else:
            heapq.heappush(bucket, idx)
        queue.size += 1
        self.count += 1

    def pop(self, kind: str) -> Optional[int]:
        """The ready task of ``kind`` with the most time left on its chain, or None."""
        queue = self._queues.get(kind)
        if queue is None or not queue.size:
            return None
        key = queue.keys[0]
        bucket = queue.buckets[key]
        idx = heapq.heappop(bucket)
        if not bucket:
            del queue.buckets[key]
            heapq.heappop(queue.keys)
        queue.size -= 1
        self.count -= 1
        return idx

    def peek(self, kind: str) -> Optional[int]:
        """The task ``pop(kind)`` would return, left in place. Also read without the lock, as a hint
        (``Run._startable``): None when a pop emptied the bucket between the two reads."""
        queue = self._queues.get(kind)
        if queue is None or not queue.size:
            return None
        try:
            return queue.buckets[queue.keys[0]][0]
        except (KeyError, IndexError):
            return None

    def has(self, kind: str) -> bool:
        queue = self._queues.get(kind)
        return queue is not None and queue.size > 0

    def size(self, kind: str) -> int:
        queue = self._queues.get(kind)
        return 0 if queue is None else queue.size

    def kinds(self) -> List[str]:
        """The kinds that have ready tasks."""
        return [kind for kind, queue in self._queues.items() if queue.size]

    def reprioritise(self, priority: Any, new: Iterable[Tuple[str, int]] = ()) -> None:
        """Re-key every kind with ``priority(idx)`` (after a batch raised heights), adding the ``new``
        ready tasks, ``(kind, idx)``, on the way: each kind ordered once for all."""
        members = {kind: queue.indices() for kind, queue in self._queues.items()}
        for kind, idx in new:
            found = members.get(kind)
            if found is None:
                found = members[kind] = []
            found.append(idx)
        for kind, indices in members.items():
            queue = self._queues.get(kind)
            if queue is None:
                queue = self._queues[kind] = _Queue()
            self.count += len(indices) - queue.size
            queue.fill((-priority(idx), idx) for idx in indices)

    def clear(self) -> None:
        """Empty the queue."""
        self._queues.clear()
        self.count = 0


class HeldTask(NamedTuple):
    """A ready task waiting for a slot of its tool's ``max_concurrency``."""

    run: Any  # the scheduler's Run (typed loosely: this module sits below the scheduler)
    idx: int


class Limits:
    """Per-tool concurrency limits shared by every run of an engine. Thread-safe (a leaf lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Dict[str, int] = {}
        self._held: Dict[str, Deque[HeldTask]] = {}

    def acquire_or_hold(self, tool: str, limit: int, run: Any, idx: int) -> bool:
        """Take a slot, or hold ``idx`` of ``run`` until one is handed to it; True when taken."""
        with self._lock:
            running = self._running.get(tool, 0)
            if running < limit:
                self._running[tool] = running + 1
                return True
            self._held.setdefault(tool, deque()).append(HeldTask(run, idx))
            return False

    def release(self, tool: str) -> Optional[HeldTask]:
        """A call of ``tool`` ended. Returns the held task its slot now belongs to, if any (the slot
        stays taken for it); otherwise frees the slot."""
        with self._lock:
            held = self._held.get(tool)
            if held:
                return held.popleft()
            self._running[tool] -= 1
            return None


class ToolStats:
    """Moving averages of tool call durations, per tool name. Thread-safe without a lock (see
    ``record``)."""

    __slots__ = ("_mean",)

    def __init__(self) -> None:
        self._mean: Dict[str, float] = {}

    def record(self, tool: str, seconds: float) -> None:
        # No lock: two calls recording at once may lose one sample of an average, never corrupt it
        # (a dict read and a dict write are each atomic); this runs once per call, on the hot path.
        previous = self._mean.get(tool)
        self._mean[tool] = seconds if previous is None else 0.75 * previous + 0.25 * seconds

    def mean(self, tool: str) -> Optional[float]:
        """The tool's moving-average duration in seconds, or None before its first call."""
        return self._mean.get(tool)  # a dict read: atomic, no lock needed

    def estimate(self, tool: str) -> float:
        """The tool's estimated duration for ordering: its mean, else the mean of the tools known
        (so an unknown tool is taken as typical), else 1.0 (every tool alike: order by count)."""
        found = self._mean.get(tool)
        if found is not None:
            return found
        known = list(self._mean.values())
        return sum(known) / len(known) if known else 1.0
