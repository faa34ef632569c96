"""``ExecutorLane``: any ``concurrent.futures.Executor`` as a lane for tools (a Dask cluster's
``Client.get_executor()``, a user's own pool), answering with ``CallOutcome``s like the process pool.

    parent                                         the executor's worker (maybe another machine)
    ------                                         ---------------------------------------------
    lane.submit(target, args, kwargs)  --------->  run_remote: load target, call it, stamp time.time()
    Future[CallOutcome] (parent's clock)  <------  CallOutcome (wall clock): started/finished shifted
                                                   by the parent's perf_counter - time.time() offset

What differs from the process pool: a remote call cannot be killed by us. Cancelling the lane's future
tries the executor's own ``cancel()`` (it works while the call is still queued); a call already running
is abandoned: it runs to its end over there and its outcome is dropped. Start and end times come from the
worker's wall clock, so the clocks of other machines are assumed to be in sync with this one (NTP keeps
them within milliseconds); on this machine the translation is exact to the offset's measurement.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import Executor, Future, InvalidStateError
from typing import Any, Optional

from .calls import CallOutcome, run_call

__all__ = ["ExecutorLane", "run_remote", "clock_offset"]


def run_remote(target: Any, args: tuple, kwargs: dict, lane: str) -> CallOutcome:
    """Executor-side entry (a module-level function, so any executor can pickle it): run one call
    and stamp it with ``time.time()``, which, unlike ``perf_counter``, is comparable across machines.
    Never raises: the tool's exception is the outcome's error."""
    worker = f"{lane}-{socket.gethostname()}-{os.getpid()}"
    return run_call(target, args, kwargs, time.time, worker)


def clock_offset() -> float:
    """``time.perf_counter() - time.time()`` here and now: added to a wall-clock stamp, it gives the
    parent's ``perf_counter`` reading for the same instant. Read between two wall-clock reads, so its
    error is at most half of one ``perf_counter`` call."""
    before = time.time()
    counter = time.perf_counter()
    after = time.time()
    return counter - (before + after) / 2


class ExecutorLane:
    """Tool calls on any ``concurrent.futures.Executor``. Thread-safe; the executor stays the
    caller's (``close()`` never shuts it down)."""

    def __init__(self, executor: Executor, name: str = "executor") -> None:
        self.executor = executor
        self.name = name
        self._lock = threading.Lock()
        self._abandoned = 0

    def submit(self, target: Any, args: tuple, kwargs: dict) -> "Future[CallOutcome]":
        """Send one call (``target``: a ``"module:attr"`` path importable over there, or a picklable
        callable). Returns a future of its ``CallOutcome``, times on this process's ``perf_counter``.

        The future fails only when the executor does (it was shut down, a worker was lost, the call
        could not be pickled). ``future.cancel()`` always succeeds here; over there it cancels a call
        still queued and abandons one already running (``abandoned`` counts those). Raises whatever
        the executor's own ``submit`` raises (e.g. ``RuntimeError`` after its shutdown).
        """
        remote = self.executor.submit(run_remote, target, args, kwargs, self.name)
        local: "Future[CallOutcome]" = Future()  # kept pending until done, so cancel() always works
        remote.add_done_callback(lambda done: self._settle(local, done))
        local.add_done_callback(lambda done: self._forward_cancel(done, remote))
        return local

    @property
    def abandoned(self) -> int:
        """How many cancelled calls were already running over there and could not be stopped."""
        with self._lock:
            return self._abandoned

    def _settle(self, local: "Future[CallOutcome]", remote: Future) -> None:
        if local.cancelled():
            return  # cancelled here first: the outcome no longer counts
        if remote.cancelled():  # the executor cancelled it (e.g. its shutdown)
            local.cancel()
            return
        try:
            outcome: Optional[CallOutcome] = remote.result()
            error: Optional[BaseException] = None
        except BaseException as err:  # the executor's failure (or its cancellation), not the tool's
            outcome, error = None, err
        try:
            if error is not None:
                local.set_exception(error)
            else:
                assert outcome is not None
                offset = clock_offset()  # measured now: the two clocks drift apart over hours
                local.set_result(outcome._replace(started=outcome.started + offset,
                                                  finished=outcome.finished + offset))
        except InvalidStateError:
            pass  # cancelled between the check and now

    def _forward_cancel(self, local: Future, remote: Future) -> None:
        if local.cancelled() and not remote.cancel() and not remote.done():
            with self._lock:
                self._abandoned += 1
