"""One try of one task (``Attempt``) and what came of it (``Outcome``), whatever ran it.

A thread-lane worker builds the ``Outcome`` itself; for calls handed to a process pool, the engine's
event loop or an executor, ``read_outcome`` reads it from the call's future. Workers report a
``CallOutcome`` (``executors``): the tool's value or exception and when the call really began and ended
there; a future that failed (a broken pool, a cancelled call) gives each of its calls that error.
"""

from __future__ import annotations

from concurrent.futures import CancelledError
from typing import Any, Dict, List, NamedTuple, Optional

__all__ = ["Attempt", "Outcome", "read_outcomes"]


class Attempt:
    """One try of one task. Its fields are written under the run's lock."""

    __slots__ = ("idx", "number", "token", "args", "kwargs", "kind", "tool", "timer", "expired", "stale",
                 "abandoned", "cache_key", "lane", "generation", "future")

    def __init__(self, idx: int, number: int, token: int, args: tuple, kwargs: Dict[str, Any],
                 tool: Any, kind: str) -> None:
        self.idx, self.number, self.token, self.args, self.kwargs = idx, number, token, args, kwargs
        self.tool = tool         # the Tool it calls
        self.kind = kind         # where it runs: the tool's executor kind
        self.timer: Optional[int] = None
        self.expired: Optional[BaseException] = None  # its timeout passed; its worker is being killed
        self.stale = False       # its outcome no longer counts (timed out, cancelled)
        self.abandoned = False   # a thread call left running after it went stale
        self.cache_key: Any = None
        self.lane: Any = None        # the SubmitLane it went through, if any
        self.generation: Any = None  # the process pool generation it was submitted to
        self.future: Any = None


class Outcome(NamedTuple):
    """What came of an attempt. ``started``/``finished``: this process's ``perf_counter`` when the
    call really began and ended (0.0 when unknown); ``step`` names the engine's own step that failed,
    when it was not the tool."""

    value: Any
    error: Optional[BaseException]
    traceback: str
    started: float
    finished: float
    worker: Optional[str]
    step: str = ""


def read_outcomes(future: Any, count: int) -> List[Outcome]:
    """The outcomes of a submitted work item of ``count`` calls, from its done future."""
    if future.cancelled():
        return [Outcome(None, CancelledError(), "", 0.0, 0.0, None)] * count
    error = future.exception()
    if error is not None:  # the work item as a whole failed (a broken pool, an argument not pickled)
        return [Outcome(None, error, "", 0.0, 0.0, None)] * count
    result = future.result()
    calls = result if isinstance(result, list) else [result]
    return [Outcome(call.value, call.error, call.traceback, call.started, call.finished, call.worker)
            for call in calls]
