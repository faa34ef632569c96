"""The tools the workloads call. All are top-level functions of an importable module, so a worker
process can load them by path (``benchmarks.tools:spin``) when registered with ``executor="process"``.

Thread workloads use ``THREAD_TOOLS``; the same dict is given to the engine and to the baseline.
"""

from __future__ import annotations

import time
from typing import Any, Dict

__all__ = ["sleep", "stamp", "noop", "gather", "fail", "spin", "THREAD_TOOLS", "ToolFailure", "raised_at"]


class ToolFailure(Exception):
    """Raised on purpose by ``fail``."""


# perf_counter() of the latest ``fail`` call, just before it raised (this process only).
_raised_at = [0.0]


def sleep(seconds: float, *after: Any) -> float:
    """Sleep ``seconds``; ``after`` carries the observations this task waited for (unused)."""
    time.sleep(seconds)
    return seconds


def stamp(seconds: float = 0.0, *after: Any) -> float:
    """Note ``time.perf_counter()`` on entry, sleep ``seconds``, return the entry time (when the
    tool really started, by the tool's own clock)."""
    started = time.perf_counter()
    if seconds:
        time.sleep(seconds)
    return started


def noop(*args: Any, **kwargs: Any) -> None:
    """Do nothing (dispatch cost only)."""
    return None


def gather(*values: Any) -> int:
    """A fan-in: receives every observation it references; returns how many."""
    return len(values)


def fail(*args: Any) -> None:
    """Raise ``ToolFailure``, recording when (see ``raised_at``)."""
    _raised_at[0] = time.perf_counter()
    raise ToolFailure("failing on purpose")


def raised_at() -> float:
    """``time.perf_counter()`` of the latest ``fail`` in this process."""
    return _raised_at[0]


def spin(loops: int) -> int:
    """Pure-Python CPU work: ``loops`` iterations of integer arithmetic (holds the GIL throughout)."""
    total = 0
    for i in range(loops):
        total = (total + i * i) % 1000003
    return total


THREAD_TOOLS: Dict[str, Any] = {"sleep": sleep, "noop": noop, "gather": gather, "fail": fail, "stamp": stamp,
                                 "slow": sleep, "quick": sleep}
