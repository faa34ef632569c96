"""How a run hands ready tasks to a submit lane (process pool, event loop, given executor).

``Submitting`` is the half of ``scheduler.Run`` that submits; a mixin of ``Run`` with no state of its
own (see ``scheduler`` for the state and the lock order). ``submit_next`` is called by a lane with a
free slot, never under the run's lock; ``_take_batch`` and ``_next_needs_free_worker`` run under it;
``_guarded_done`` runs on the thread that completed the future.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, List

from .eventlog import CODE
from .lanes import Submission
from .outcomes import Attempt, Outcome, read_outcomes

__all__ = ["Submitting"]

_SUBMITTED = CODE["submitted"]
_PROCESS_BATCH = 16  # process calls in one work item at most (only when many are ready)


class Submitting:
    """Submission for ``scheduler.Run`` (see the module docstring)."""

    _lock: Any
    _parts: Any

    def submit_next(self, lane: Any) -> Submission:
        """Called by a submit lane with a free slot: submit this run's best ready task of the lane's
        kind (for process tools, with more ready behind it, a batch of them: one work item, one
        round trip). Says whether it did, had nothing, or holds its next task for a free worker."""
        kind = lane.kind
        with self._lock:
            batch = self._take_batch(lane)
            more = self._ready.has(kind)
        if more:
            lane.offer(self)
        if not batch:
            self._after()
            return Submission.HELD if more else Submission.NOTHING
        batch[0].lane = lane  # the batch holds one slot of the lane; its first attempt gives it back
        try:
            future = self._parts.backends.submit(kind, batch, self._context)
        except Exception as err:  # could not hand them over: those tasks fail, the run goes on
            for attempt in batch:
                self._record(attempt, Outcome(None, err, "", 0.0, 0.0, None, step="submitting the call"))
            return Submission.SENT  # its slot was given back by the first record
        future.add_done_callback(partial(self._guarded_done, batch))
        if any(attempt.stale for attempt in batch):  # cancelled while it was being handed over
            self._parts.backends.stop([attempt for attempt in batch if attempt.stale])
        return Submission.SENT

    def _take_batch(self, lane: Any) -> List[Attempt]:
        """Under the lock: the attempts of one work item. A tool with a timeout goes alone and only
        to a free worker (its clock starts now); other process calls go several to a work item when
        more are ready than there are workers."""
        kind = lane.kind
        if not lane.has_free_worker() and self._next_needs_free_worker(kind):
            return []
        first = self._take(kind, None)
        if first is None:
            return []
        batch = [first]
        if kind == "process" and first.tool.timeout is None:
            size = min(_PROCESS_BATCH, self._ready.size(kind) // (2 * lane.workers))
            while len(batch) < size and not self._next_needs_free_worker(kind):
                attempt = self._take(kind, None)
                if attempt is None:
                    break
                batch.append(attempt)
        now = time.perf_counter()
        for attempt in batch:
            self._log.append(_SUBMITTED, attempt.idx, now)
        return batch

    def _next_needs_free_worker(self, kind: str) -> bool:
        idx = self._ready.peek(kind)
        return idx is not None and self._uses[self._tasks[idx].tool].tool.timeout is not None

    def _guarded_done(self, batch: List[Attempt], future: Any) -> None:
        """A submitted work item's future is done (on the executor's or the loop's thread)."""
        try:
            outcomes = read_outcomes(future, len(batch))
        except Exception as err:  # the outcome itself could not be read
            outcomes = [Outcome(None, err, "", 0.0, 0.0, None, step="reading the outcome")] * len(batch)
        for attempt, outcome in zip(batch, outcomes):
            self._record(attempt, outcome)
