"""One tool call away from the scheduler: what is sent (``ProcessCall``) and what comes back
(``CallOutcome``), and the one function that runs a call and stamps its times (``run_call``).

Every lane that runs tools outside the scheduler's threads (process workers, the async loop, any
``concurrent.futures.Executor``) answers with a ``CallOutcome``: the tool's exception is part of the
outcome, never a failure of the future that carries it, so a failed future always means the lane itself
broke (a worker died, the pool was shut down).
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import traceback as traceback_module
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

__all__ = ["CallOutcome", "ProcessCall", "run_call", "load_target", "pickled_outcome",
           "unpickled_outcome"]


class ProcessCall(NamedTuple):
    """One call sent to a worker: ``token`` (unique per attempt, > 0: what the worker's running slot
    holds while the call runs), ``target`` (a ``"module:attr"`` path or a picklable callable), and the
    call's resolved ``args`` and ``kwargs``."""

    token: int
    target: Any
    args: tuple
    kwargs: dict


class CallOutcome(NamedTuple):
    """How one call ended, as the lane that ran it saw it.

    ``value`` is the tool's return value (None when it raised); ``error`` the tool's exception (None
    when it returned), its formatted traceback text in ``traceback``. ``started`` and ``finished`` are
    when the call really began and ended, on the parent's ``time.perf_counter()`` clock: a process
    worker stamps them with its own ``perf_counter()``, which on Linux, macOS and Windows is one
    system-wide monotonic clock (CLOCK_MONOTONIC, mach_absolute_time, QueryPerformanceCounter), so it
    needs no translation; a remote executor's stamps are translated (see ``remote.ExecutorLane``).
    ``worker`` names where it ran (``"process-<pid>"``, the async loop's thread, a remote host).
    """

    value: Any
    error: Optional[BaseException]
    traceback: str
    started: float
    finished: float
    worker: str


def load_target(target: Any) -> Callable[..., Any]:
    """The callable ``target`` names: a ``"module:attr"`` path (through ``tools.load_path``, which
    imports each path once per process) or the callable itself. Raises ``ToolDefinitionError``."""
    if isinstance(target, str):
        from .tools import load_path

        return load_path(target)
    return target


def run_call(target: Any, args: tuple, kwargs: dict, clock: Callable[[], float], worker: str) -> CallOutcome:
    """Run one call here and now; never raises (the tool's exception, or a failure to load it, is the
    outcome's ``error``).

    An ``async def`` target (or a target that returns an awaitable) is run to completion with
    ``asyncio.run``: this is for lanes without an event loop of their own (process workers, remote
    executors). ``clock`` stamps ``started`` and ``finished``.
    """
    started = clock()
    try:
        value = load_target(target)(*args, **kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
    except BaseException as err:  # SystemExit and KeyboardInterrupt too: the tool's, not the worker's
        return CallOutcome(None, err, format_traceback(err), started, clock(), worker)
    return CallOutcome(value, None, "", started, clock(), worker)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def format_traceback(error: BaseException) -> str:
    """The traceback text of ``error``, as ``traceback.print_exception`` would show it."""
    return "".join(traceback_module.format_exception(type(error), error, error.__traceback__))


def pickled_outcome(outcome: CallOutcome) -> bytes:
    """``outcome`` pickled, to be sent back from a worker; never raises.

    A value that cannot be pickled becomes the outcome's error: a ``TypeError`` naming its type. An
    exception that cannot be pickled is replaced by a ``RuntimeError`` carrying its type and text (its
    traceback text is kept), so only this call's outcome is affected, never its batch.
    """
    try:
        return pickle.dumps(outcome)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
    if outcome.error is None:
        replacement: BaseException = TypeError(
            f"the result, of type {type(outcome.value).__name__}, cannot be pickled back from the "
            f"worker process ({reason}); return plain data (str, numbers, lists, dicts)")
        text = ""
    else:
        replacement = RuntimeError(
            f"{type(outcome.error).__name__}: {outcome.error} (the exception itself cannot be pickled "
            f"back from the worker process: {reason})")
        text = outcome.traceback
    return pickle.dumps(outcome._replace(value=None, error=replacement, traceback=text))


def unpickled_outcome(blob: bytes, started: float, finished: float, worker: str) -> CallOutcome:
    """The outcome pickled in ``blob``; never raises: a blob that cannot be unpickled here (its class
    does not import in this process) becomes an outcome whose error says so."""
    try:
        return pickle.loads(blob)
    except Exception as err:
        error = TypeError(f"the call's outcome came back but cannot be unpickled in this process "
                          f"({type(err).__name__}: {err})")
        return CallOutcome(None, error, "", started, finished, worker)


def outcomes_from(blobs: Sequence[tuple]) -> List[CallOutcome]:
    """Rebuild a batch's outcomes from ``(blob, started, finished, worker)`` entries; never raises."""
    return [unpickled_outcome(*entry) for entry in blobs]
