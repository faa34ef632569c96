"""What happens to a task's outcome: observe and release, retry, resubmit, or fail and skip.

``Settling`` is the half of ``scheduler.Run`` that records outcomes; it is a mixin of ``Run`` and owns
no state of its own: every method here reads and writes the run's state under the run's lock (the
methods named ``_settle*``, ``_explained``, ``_fail*``, ``_record_failure``, ``_cancel_all``,
``_check_over`` and ``_resume_held`` expect the caller to hold it; ``_record``, ``_expire``,
``_retry``, ``_guarded`` and ``resume_held`` take it themselves). See ``scheduler`` for the state and
the lock order.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Callable, List, Optional

from .errors import StoreError, TaskTimeoutError, WorkerReturnError
from .eventlog import CODE
from .faults import (breakage_verdict, explain_pickling, failure_kind, format_traceback,
                     is_pickling_error, retry_delay)
from .outcomes import Attempt, Outcome
from .results import TaskFailure
from .tools import Tool

__all__ = ["Settling", "message_of"]

_STARTED, _FINISHED, _RETRYING = CODE["started"], CODE["finished"], CODE["retrying"]


class Settling:
    """Outcome handling for ``scheduler.Run`` (see the module docstring)."""

    _lock: Any
    _parts: Any

    # -- outcomes ----------------------------------------------------------------------------------

    def _record(self, attempt: Attempt, outcome: Outcome) -> None:
        """Record a submitted call's outcome (on the thread that learned of it)."""
        lane = attempt.lane
        outcome = self._store_outcome(attempt, outcome)
        with self._lock:
            self._settle_guarded(attempt, outcome)
            kinds = self._ready.kinds()
        if lane is not None:
            lane.call_ended()
            lane.pump()  # a slot is free: the next run in turn may submit
        self._offer(kinds, wake=True)

    def _store_outcome(self, attempt: Attempt, outcome: Outcome) -> Outcome:
        """Write the observation to the shared store, outside the lock (a round trip to the manager),
        before it is recorded: a dependent reading the store then finds it. Returns the outcome, its
        error set when the store refused the value."""
        if not self._shared_store or outcome.error is not None or attempt.stale:
            return outcome
        try:
            self.store.set(attempt.idx, outcome.value)
        except StoreError as err:  # the manager is gone: the run cannot go on
            with self._lock:
                self.store_error = err
                running = self._cancel_all(err)
            self._parts.backends.stop(running)
            return outcome._replace(error=err)
        except Exception as err:  # this value cannot be stored: only this task fails
            return outcome._replace(error=err, step="storing the observation")
        return outcome

    def _settle_guarded(self, attempt: Attempt, outcome: Outcome) -> None:
        """Under the lock: ``_settle``, and if recording itself fails, fail the task plainly."""
        try:
            self._settle(attempt, outcome)
        except Exception as err:  # recording raised (the engine's own code): the task fails plainly
            self._attempts.pop(attempt.idx, None)
            if attempt.idx not in self._failures and attempt.idx not in self._graph.finished:
                self._fail_task(attempt.idx, "failed", err, time.perf_counter(), step="recording the outcome")

    def _settle(self, attempt: Attempt, outcome: Outcome, cached: bool = False,
                call_ended: bool = True) -> None:
        """Record an attempt's outcome (under the lock): observe and release, retry, or fail and skip.
        A max_concurrency slot is held from the take to the end of the call (``call_ended``), even
        when the outcome no longer counts: an abandoned call still loads the API it calls."""
        idx = attempt.idx
        tool = attempt.tool
        if call_ended and not cached and tool.max_concurrency is not None:
            self._release_slot(tool)
        if attempt.stale or self._attempts.get(idx) is not attempt:
            if attempt.stale and attempt.kind == "thread" and attempt.abandoned:
                self._abandoned -= 1  # an abandoned thread call came back at last
            return
        error = outcome.error
        if error is not None:
            error = self._explained(attempt, error)
            if error is None:
                return  # resubmitted: it was only caught in another worker's death
        del self._attempts[idx]
        if attempt.timer is not None:
            self._parts.timers.cancel(attempt.timer)
        if attempt.kind != "thread" and outcome.started:
            self._log.append(_STARTED, idx, outcome.started, outcome.worker)
        now = outcome.finished or time.perf_counter()
        if error is None:  # observed: its dependents may be ready now
            released = self._graph.done(idx, outcome.value)  # recorded there (the run's _observed)
            self._log.append(_FINISHED, idx, now, outcome.worker, cached)
            if attempt.cache_key is not None and not cached:
                self._cache.remember(attempt.cache_key, outcome.value)  # type: ignore[attr-defined]
            if released:
                for ready in released:
                    self._push_ready(ready)
            elif self._closed:
                self._check_over()
            return
        if attempt.number <= tool.retries and isinstance(error, tool.retry_on) and not self._cancelled \
                and not outcome.step:
            self._log.append(_RETRYING, idx, now, outcome.worker)
            self._tries[idx] = attempt.number
            self._note(logging.WARNING, "task %d: tool '%s' failed (%s), retry %d of %d", idx, tool.name,
                       type(error).__name__, attempt.number, tool.retries)
            self._parts.timers.schedule(time.monotonic() + retry_delay(tool.backoff, attempt.number),
                                        partial(self._guarded, self._retry, idx))
            return
        kind = failure_kind(error)
        if kind != "failed":  # a timeout or a worker's death: the engine's business, not the tool's
            self._note(logging.WARNING, "%s", message_of(error))  # it names the task and the tool
        self._fail_task(idx, kind, error, now, outcome.worker, outcome.step, attempt, outcome.traceback)

    def _explained(self, attempt: Attempt, error: BaseException) -> Optional[BaseException]:
        """The error a failed attempt is recorded with, in the engine's words where the engine's
        machinery failed; None when the attempt was resubmitted instead (a pool breakage it was only
        caught in)."""
        idx, tool = attempt.idx, attempt.tool
        if isinstance(error, BrokenProcessPool):
            return self._breakage(attempt, error)
        if isinstance(error, WorkerReturnError):  # the engine's words: say which task
            return WorkerReturnError(f"task {idx}: tool '{tool.name}': {error}")
        if attempt.kind == "process" and is_pickling_error(error):
            return explain_pickling(idx, tool.name, attempt.args, attempt.kwargs, error)
        if isinstance(error, CancelledError) and not self._cancelled:
            return TaskTimeoutError(f"task {idx}: tool '{tool.name}' was cancelled by its executor")
        return error

    def _breakage(self, attempt: Attempt, cause: BaseException) -> Optional[BaseException]:
        """A process pool broke under this attempt: resubmit it (None) or return its error."""
        backends = self._parts.backends
        backends.retire(attempt)
        if attempt.expired is not None:
            return attempt.expired
        idx = attempt.idx
        verdict = breakage_verdict(idx, self._tasks[idx].tool, attempt.token, backends.dead_tokens(attempt),
                                   self._breakages.get(idx, 0), cause)
        self._breakages[idx] = verdict.breakages
        if not verdict.resubmit:
            return verdict.error
        self._note(logging.INFO, "task %d: caught in another worker's death, resubmitted", idx)
        del self._attempts[idx]
        self._tries[idx] = attempt.number - 1  # a free resubmission: not an attempt of its own
        self._push_ready(idx)
        return None

    def _expire(self, attempt: Attempt) -> None:
        """Timer callback: the attempt ran past its tool's timeout."""
        tool = self._tasks[attempt.idx].tool
        timeout = self._uses[tool].tool.timeout
        error = TaskTimeoutError(f"task {attempt.idx}: tool '{tool}' timed out after {timeout} s")
        with self._lock:
            if self._attempts.get(attempt.idx) is not attempt or attempt.stale:
                return
            if attempt.kind == "process":
                attempt.expired = error  # the worker is killed; the pool's breakage settles it
            else:  # a thread, a coroutine or a remote call: settled now, stopped if it can be
                self._settle_stale(attempt, error)
            kinds = self._ready.kinds()
        if attempt.kind != "thread" and self._parts.backends.stop([attempt]):
            # Not stopped: a process call that has not begun in a worker yet (so no worker can be
            # killed for it). It is timed out now, and its worker killed once it begins.
            with self._lock:
                if self._attempts.get(attempt.idx) is attempt and not attempt.stale:
                    self._settle_stale(attempt, error)
                kinds = self._ready.kinds()
            self._stop_when_started(attempt, 0.01)
        self._offer(kinds, wake=True)

    def _settle_stale(self, attempt: Attempt, error: BaseException) -> None:
        """Under the lock: fail a still-running attempt now; its call goes on, no longer counting."""
        self._note(logging.WARNING, "task %d: its %s call is abandoned; it runs on until it returns",
                   attempt.idx, attempt.kind)
        self._settle(attempt, Outcome(None, error, "", 0.0, 0.0, None), call_ended=False)
        attempt.stale = True
        if attempt.kind == "thread":
            attempt.abandoned = True
            self._abandoned += 1

    def _stop_when_started(self, attempt: Attempt, delay: float) -> None:
        """Stop a stale call that had not begun when it was to be stopped: look again after ``delay``
        (doubling, at most 1 s) until it has been stopped or has ended."""
        future = attempt.future
        if future is None or future.done() or not self._parts.backends.stop([attempt]):
            return
        self._parts.timers.schedule(time.monotonic() + delay,
                                    partial(self._stop_when_started, attempt, min(2 * delay, 1.0)))

    def _retry(self, idx: int) -> None:
        """Timer callback: the backoff before a retry is over; the task is ready again."""
        with self._lock:
            if self._cancelled or idx in self._failures:
                return
            self._push_ready(idx)
            kinds = self._ready.kinds()
        self._offer(kinds, wake=True)

    def _guarded(self, action: Callable[..., None], subject: Any) -> None:
        """Run a timer callback; if the engine's own code fails in it, fail the task it concerns."""
        try:
            action(subject)
        except Exception as err:
            idx = subject.idx if isinstance(subject, Attempt) else subject
            with self._lock:
                self._attempts.pop(idx, None)
                if idx not in self._failures and idx not in self._observed:
                    self._fail_task(idx, "failed", err, time.perf_counter(), step="a timer callback")
                kinds = self._ready.kinds()
            self._offer(kinds, wake=True)

    def _release_slot(self, tool: Tool) -> None:
        """A call of ``tool`` ended (or never began): its max_concurrency slot goes to the oldest
        held task of any run, or is freed."""
        if tool.max_concurrency is None:
            return
        held = self._parts.limits.release(tool.name)
        if held is None:
            return
        if held.run is self:
            self._resume_held(held.idx)
        else:  # another run's lock cannot be taken under this one's: resumed in _after()
            self._handoffs.append(held)

    def resume_held(self, idx: int) -> None:
        """A held task of this run was handed its tool's slot (called from another run)."""
        with self._lock:
            self._resume_held(idx)
            kinds = self._ready.kinds()
        self._offer(kinds, wake=True)

    def _resume_held(self, idx: int) -> None:
        if self._cancelled or idx in self._failures:
            self._release_slot(self._uses[self._tasks[idx].tool].tool)  # pass the slot on
            return
        self._slotted.add(idx)
        self._push_ready(idx)

    # -- failures and the end of the run (under the lock) ------------------------------------------

    def _failure(self, idx: int, kind: str, err: BaseException, step: str = "") -> TaskFailure:
        return TaskFailure(idx, self._tasks[idx].tool, kind, type(err).__name__, message_of(err),
                           format_traceback(err) if kind != "invalid" else "", exception=err, step=step)

    def _fail_task(self, idx: int, kind: str, err: BaseException, now: float, worker: Optional[str] = None,
                   step: str = "", attempt: Optional[Attempt] = None, traceback: str = "") -> None:
        failure = self._failure(idx, kind, err, step)
        if traceback:
            failure.traceback = traceback
        if attempt is not None:
            failure.args, failure.kwargs, failure.attempts = attempt.args, attempt.kwargs, attempt.number
        self._record_failure(failure, now, worker)
        for skipped in self._graph.fail(idx):
            self._record_failure(TaskFailure(skipped, self._tasks[skipped].tool, "skipped", cause=idx), now)
        self._check_over()

    def _record_failure(self, failure: TaskFailure, now: float, worker: Optional[str] = None) -> None:
        self._failures[failure.task] = failure
        kind = failure.kind if failure.kind in ("skipped", "cancelled") else "failed"
        self._log.append(CODE[kind], failure.task, now, worker)

    def _cancel_all(self, err: Optional[BaseException]) -> List[Attempt]:
        """Cancel every unfinished task and end the run; return the attempts still running, for the
        caller to stop once the lock is released. ``err`` is why, if not the caller's ``cancel()``."""
        if self._over:
            return []
        self._note(logging.INFO, "run cancelled%s: %d tasks unfinished", f" ({message_of(err)})" if err else "",
                   self._graph.unfinished)
        running = list(self._attempts.values())
        for attempt in running:
            attempt.stale = True
            if attempt.kind == "thread":
                attempt.abandoned = True
                self._abandoned += 1
        self._attempts.clear()
        self._ready.clear()
        now = time.perf_counter()
        for idx in self._graph.cancel_all():
            failure = TaskFailure(idx, self._tasks[idx].tool, "cancelled")
            if err is not None:
                failure.error_type, failure.message, failure.exception = type(err).__name__, message_of(err), err
            self._record_failure(failure, now)
        self._cancelled = self._closed = True
        self._check_over()
        return [attempt for attempt in running if attempt.kind != "thread"]

    def _note(self, level: int, message: str, *args: Any) -> None:
        """Under the lock: a log record to emit once the lock is released (a handler is the caller's
        code, which never runs under it)."""
        self._notes.append((level, message, args))

    def _check_over(self) -> None:
        if self._over or not self._closed or self._graph.unfinished:
            return
        self._over = True
        self.finished = time.perf_counter()
        self._changed.notify_all()
        self._note(logging.DEBUG, "run over after %.3f s: %d observations, %d failures",
                   self.finished - self.started, len(self._observed), len(self._failures))



def message_of(err: BaseException) -> str:
    """An exception's message for a ``TaskFailure``: shortened, and never raising."""
    from .text import short_text

    try:
        return short_text(str(err), 2000)
    except Exception:
        return f"({type(err).__name__}: its message cannot be shown)"
