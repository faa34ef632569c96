"""Views of a run's own record of observations: read-only for tools, and as an ``ObservationStore``.

* ``ObservationsView``: what ``RunContext.observations`` is in thread and async tools: a live,
  read-only mapping. Lookups read the run's dict directly (a dict read is atomic); iteration copies
  the keys under the run's lock.
* ``RecordStore``: ``Run.store`` for a run without a shared store: the run's own record, read through
  the store interface at no cost (nothing is copied or written twice).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping

from .errors import StoreError
from .store import ObservationStore

__all__ = ["ObservationsView", "RecordStore"]


class ObservationsView(Mapping):
    """A read-only, live view of a run's observations."""

    def __init__(self, observed: Dict[int, Any], lock: Any) -> None:
        self._observed = observed
        self._lock = lock

    def __getitem__(self, idx: int) -> Any:
        return self._observed[idx]

    def __iter__(self) -> Iterator[int]:
        with self._lock:
            return iter(sorted(self._observed))

    def __len__(self) -> int:
        return len(self._observed)


class RecordStore(ObservationStore):
    """A run's own record of observations, seen as an ``ObservationStore``."""

    def __init__(self, observed: Dict[int, Any]) -> None:
        self._observed = observed

    def set(self, idx: int, value: Any) -> None:
        self._observed[idx] = value

    def get(self, idx: int) -> Any:
        return self._observed[idx]

    def __contains__(self, idx: object) -> bool:
        return idx in self._observed

    def snapshot(self) -> Dict[int, Any]:
        return dict(self._observed)

    def clear(self) -> None:
        raise StoreError("a run's own record cannot be cleared")
