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
import io
import pickle
import traceback as traceback_module
from multiprocessing.reduction import ForkingPickler

from .errors import WorkerReturnError
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

__all__ = ["CallOutcome", "ProcessCall", "Unsendable", "run_call", "load_target", "pickled_outcome",
           "unpickled_outcome", "unreadable_outcome", "returnable", "sendable", "received", "dumps"]


def dumps(value: Any) -> bytes:
    """``value`` pickled, highest protocol: by the C pickler when it can (the common, fast case), else
    as the process pool itself would (multiprocessing's pickler, whose extra reducers handle
    connections and sockets). Raises what pickling raises."""
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except Exception:
        buffer = io.BytesIO()
        ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(value)
        return buffer.getvalue()


class ProcessCall(NamedTuple):
    """One call sent to a worker: ``token`` (unique per attempt, > 0: what the worker's running slot
    holds while the call runs), ``target`` (a ``"module:attr"`` path or a picklable callable), and the
    call's resolved ``args`` and ``kwargs``."""

    token: int
    target: Any
    args: tuple
    kwargs: dict


class Unsendable(NamedTuple):
    """A call that cannot cross to (or be rebuilt in) the worker process: its ``token`` and the
    ``error`` that becomes its outcome, naming what could not be pickled. The call never runs."""

    token: int
    error: BaseException


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


# "module:attr" -> the callable it names, in this process: filled by load_target, never emptied (a
# path is imported once per process anyway; failures are not kept, so a later call tries again).
_loaded: Dict[str, Callable[..., Any]] = {}

# Types whose instances are never awaitable: run_call skips inspect.isawaitable (an ABC check) for
# them, the common results of a tool.
_NEVER_AWAITABLE = frozenset({type(None), str, int, float, bool, bytes, list, tuple, dict, set})


def load_target(target: Any) -> Callable[..., Any]:
    """The callable ``target`` names: a ``"module:attr"`` path (through ``tools.load_path``, which
    imports each path once per process) or the callable itself. Raises ``ToolDefinitionError``."""
    if isinstance(target, str):
        loaded = _loaded.get(target)
        if loaded is None:
            from .tools import load_path

            loaded = _loaded[target] = load_path(target)
        return loaded
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
        if type(value) not in _NEVER_AWAITABLE and inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
    except BaseException as err:  # SystemExit and KeyboardInterrupt too: the tool's, not the worker's
        return CallOutcome(None, err, format_traceback(err), started, clock(), worker)
    return CallOutcome(value, None, "", started, clock(), worker)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def format_traceback(error: BaseException) -> str:
    """The traceback text of ``error``, as ``traceback.print_exception`` would show it; never raises
    (an exception whose own ``__str__`` breaks is named by its type)."""
    try:
        return "".join(traceback_module.format_exception(type(error), error, error.__traceback__))
    except Exception as err:
        return f"{type(error).__name__} (its traceback cannot be shown: {type(err).__name__})"


def pickled_outcome(outcome: CallOutcome) -> bytes:
    """``outcome`` pickled, to be sent back from a worker; never raises.

    A value that cannot be pickled becomes the outcome's error: a ``TypeError`` naming its type. An
    exception that cannot be pickled is replaced by a ``RuntimeError`` carrying its type and text (its
    traceback text is kept), so only this call's outcome is affected, never its batch.
    """
    try:
        return dumps(outcome)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
    if outcome.error is None:
        replacement: BaseException = WorkerReturnError(
            f"the result, of type {type(outcome.value).__name__}, cannot be pickled back from the "
            f"worker process ({reason}); return plain data (str, numbers, lists, dicts)")
        text = ""
    else:
        replacement = _unreturnable_error(outcome.error, reason)
        text = outcome.traceback
    return dumps(outcome._replace(value=None, error=replacement, traceback=text))


def returnable(outcome: CallOutcome) -> CallOutcome:
    """``outcome`` with an exception that could not be rebuilt in the parent (pickling works, unpickling
    fails: a class whose ``__init__`` needs other arguments, say) replaced by a ``WorkerReturnError``
    naming it. Only outcomes with an error pay for the check."""
    if outcome.error is None:
        return outcome
    try:
        pickle.loads(dumps(outcome.error))
        return outcome
    except Exception as err:
        return outcome._replace(error=_unreturnable_error(outcome.error, f"{type(err).__name__}: {err}"))


def _unreturnable_error(error: BaseException, reason: str) -> BaseException:
    try:
        text = str(error)
    except Exception:
        text = "(its message cannot be shown)"
    return WorkerReturnError(f"the tool raised {type(error).__name__}: {text}, and that exception cannot "
                             f"come back from the worker process ({reason})")


def unpickled_outcome(blob: bytes, started: float, finished: float, worker: str) -> CallOutcome:
    """The outcome pickled in ``blob``; never raises: a blob that cannot be unpickled here (its class
    does not import in this process) becomes an outcome whose error says so."""
    try:
        return pickle.loads(blob)
    except Exception as err:
        return unreadable_outcome(err, started, finished, worker)


def unreadable_outcome(err: Exception, started: float, finished: float, worker: str) -> CallOutcome:
    """The outcome of a call whose pickled outcome ``err`` stopped from being unpickled here."""
    error = WorkerReturnError(f"the call's outcome came back but cannot be unpickled in this process "
                              f"({type(err).__name__}: {err})")
    return CallOutcome(None, error, "", started, finished, worker)


def sendable(call: ProcessCall) -> Union[Tuple[int, bytes], Unsendable]:
    """``call`` pickled on its own, to travel inside a batch: ``(token, blob)``, or ``Unsendable``
    naming the part that cannot be pickled (so only this call fails, never its batch). Never raises."""
    try:
        return call.token, dumps(tuple(call))
    except Exception as err:
        return Unsendable(call.token, TypeError(f"{_unpicklable_part(call)} cannot be pickled to the "
                                                f"worker process ({type(err).__name__}: {err})"))


def received(entry: Union[Tuple[int, bytes], Unsendable]) -> Union[ProcessCall, Unsendable]:
    """In the worker: the call ``sendable`` made, or ``Unsendable`` when it cannot be rebuilt here
    (a callable defined in the main script that the worker cannot import, say). Never raises."""
    if isinstance(entry, Unsendable):
        return entry
    token, blob = entry
    try:
        return ProcessCall(*pickle.loads(blob))
    except Exception as err:
        return Unsendable(token, TypeError(
            f"the call cannot be unpickled in the worker process ({type(err).__name__}: {err}); a tool "
            "passed as a callable must be importable there: define it in a module, not in a function "
            "or the main script's unguarded code"))


def _unpicklable_part(call: ProcessCall) -> str:
    """Which part of ``call`` cannot be pickled, in the words of a plan: the tool or an argument."""
    parts = [("the tool", call.target)] + [(f"argument {n}", v) for n, v in enumerate(call.args, 1)]
    parts += [(f"argument '{k}'", v) for k, v in call.kwargs.items()]
    for name, value in parts:
        try:
            dumps(value)
        except Exception:
            return f"{name}, of type {type(value).__name__},"
    return "the call"
