"""Verdicts on what went wrong with a call, kept apart from the scheduling that acts on them.

* ``breakage_verdict``: a process pool broke under a call. Was the call's own worker the one that died
  (blame it: ``WorkerDiedError``), or was it only caught in another worker's death (resubmit it, at no
  cost to its retry budget)? A breakage no dead worker explains (workers that cannot even start) counts
  against every call caught in it, so a pool that keeps breaking ends the run instead of looping.
* ``explain_pickling``: name the argument (or the result) that could not cross to or from a worker.
* ``retry_delay``: the backoff before retry ``k``.
* ``failure_kind``: the ``TaskFailure.kind`` an exception stands for.
* ``format_traceback`` (from ``calls``, the one source): the exception's traceback as text.

Pure functions of their arguments: no locks, no state.
"""

from __future__ import annotations

import pickle
from typing import Any, Dict, NamedTuple, Optional, Set

from .calls import format_traceback
from .errors import TaskTimeoutError, WorkerDiedError

__all__ = ["BreakageVerdict", "breakage_verdict", "explain_pickling", "is_pickling_error", "retry_delay",
           "failure_kind", "format_traceback", "MAX_FREE_BREAKAGES"]

MAX_FREE_BREAKAGES = 3  # a call caught in this many pool breakages is failed, not resubmitted again


class BreakageVerdict(NamedTuple):
    """What to do with a call whose process pool broke: ``resubmit`` it, or fail it with ``error``."""

    resubmit: bool
    error: Optional[BaseException]
    breakages: int  # breakages the call has been caught in so far, this one included


def breakage_verdict(idx: int, tool: str, token: int, dead: Set[int], caught_before: int,
                     cause: BaseException) -> BreakageVerdict:
    """Judge a breakage: ``dead`` holds the tokens of the calls whose worker died."""
    caught = caught_before + (not dead)
    if token not in dead and caught < MAX_FREE_BREAKAGES:
        return BreakageVerdict(True, None, caught)
    suffix = "" if caught < MAX_FREE_BREAKAGES else \
        f" (the process pool broke {caught} times under it: can workers start at all?)"
    died = WorkerDiedError(f"task {idx}: the worker process running tool '{tool}' died{suffix}")
    died.__cause__ = cause
    return BreakageVerdict(False, died, caught)


def is_pickling_error(error: BaseException) -> bool:
    return isinstance(error, pickle.PicklingError) or (
        isinstance(error, (TypeError, AttributeError)) and "pickle" in str(error))


def explain_pickling(idx: int, tool: str, args: tuple, kwargs: Dict[str, Any],
                     error: BaseException) -> BaseException:
    """A ``TypeError`` naming the argument (or the result) that could not be pickled."""
    values = [(f"argument {n + 1}", v) for n, v in enumerate(args)]
    values += [(f"argument '{k}'", v) for k, v in kwargs.items()]
    for name, value in values:
        try:
            pickle.dumps(value)
        except Exception:
            where = f"{name} of type {type(value).__name__}"
            break
    else:
        where = "its result"
    explained = TypeError(f"task {idx}: {where} cannot be pickled to or from the worker process "
                          f"of tool '{tool}' ({error})")
    explained.__cause__ = error
    return explained


def retry_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (1-based)."""
    return backoff * 2 ** (attempt - 1)


def failure_kind(error: BaseException) -> str:
    if isinstance(error, TaskTimeoutError):
        return "timeout"
    if isinstance(error, WorkerDiedError):
        return "worker-died"
    return "failed"
