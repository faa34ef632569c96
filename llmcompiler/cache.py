"""Calls worth not repeating: ``CallCache``, the observations of a question's cacheable calls.

A tool registered with ``cache=True`` (never the default: most tools read a changing world) answers an
identical call (same tool, same resolved arguments) from an earlier observation of the same cache,
without running again; its ``finished`` event has ``cached=True``. ``LLMCompiler`` keeps one cache per
question, so a replan that asks again for what an earlier plan observed gets it at once.

Arguments are compared by value: lists and tuples, dicts (by items) and sets are frozen into a key; a
call whose arguments cannot be frozen into a hashable key is simply never cached. Failed calls are never
cached. Thread-safe (one lock, held only for a dict lookup or insert).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Hashable, Optional, Tuple

__all__ = ["CallCache"]

class _Unfreezable(Exception):
    """An argument that cannot be part of a cache key."""


def _frozen(value: Any) -> Hashable:
    kind = type(value)
    if kind in (str, int, float, bool, bytes) or value is None:
        return (kind.__name__, value)  # 1 and 1.0 and True are different calls
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(_frozen(item) for item in value))
    if kind is dict:
        return ("dict", tuple(sorted(((repr(k), _frozen(v)) for k, v in value.items()))))
    if kind is set or kind is frozenset:
        return (kind.__name__, frozenset(_frozen(item) for item in value))
    raise _Unfreezable(kind.__name__)


def call_key(tool: str, args: tuple, kwargs: Dict[str, Any]) -> Optional[Tuple[Any, ...]]:
    """A hashable key for the call, or None when an argument cannot be compared by value."""
    try:
        return (tool, _frozen(args), _frozen(kwargs))
    except (_Unfreezable, TypeError, RecursionError):
        return None


class CallCache:
    """Observations of cacheable calls, by tool and arguments, shared by the runs given it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observations: Dict[Tuple[Any, ...], Any] = {}
        self.hits = 0

    def lookup(self, key: Tuple[Any, ...]) -> Tuple[bool, Any]:
        """``(True, observation)`` for a call seen before, else ``(False, None)``."""
        with self._lock:
            if key not in self._observations:
                return False, None
            self.hits += 1
            return True, self._observations[key]

    def remember(self, key: Tuple[Any, ...], observation: Any) -> None:
        """Keep a finished call's observation."""
        with self._lock:
            self._observations[key] = observation

    def __len__(self) -> int:
        with self._lock:
            return len(self._observations)
