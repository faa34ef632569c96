"""Where a run keeps its observations: one interface, a local store and a Manager-backed one.

* ``LocalStore``: a dict behind a lock. Cheapest; visible to the threads of this process only.
* ``ManagerStore``: a dict held by a ``multiprocessing.Manager`` server process, reachable from this
  process and from every worker process it is handed to (it pickles as its address, key and token, and
  reconnects on the other side). Each read or write is one round trip to the manager.

Both pass the same contract tests (``tests/test_store.py``). The scheduler resolves references in the
parent and sends plain values to workers, so a run only needs a shared store when tools themselves read
observations from another process; ``Engine(store="auto")`` therefore uses a ``LocalStore`` (see the
README's measurements) and ``store="manager"`` opts in.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Any, Dict, Iterator, Optional

from .errors import StoreError

__all__ = ["ObservationStore", "LocalStore", "ManagerStore"]


class ObservationStore(ABC):
    """Task index -> observation. Implementations are safe to use from several threads at once."""

    @abstractmethod
    def set(self, idx: int, value: Any) -> None:
        """Record task ``idx``'s observation (replacing any earlier one)."""

    @abstractmethod
    def get(self, idx: int) -> Any:
        """Task ``idx``'s observation. Raises ``KeyError`` if there is none."""

    @abstractmethod
    def __contains__(self, idx: object) -> bool:
        """Whether task ``idx`` has an observation."""

    @abstractmethod
    def snapshot(self) -> Dict[int, Any]:
        """A plain dict copy of every observation."""

    def __len__(self) -> int:
        return len(self.snapshot())

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self.snapshot()))

    def clear(self) -> None:
        """Forget every observation (a store can be reused across runs)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the store holds. Idempotent. The default does nothing."""


class LocalStore(ObservationStore):
    """Observations in a dict of this process, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observations: Dict[int, Any] = {}

    def set(self, idx: int, value: Any) -> None:
        with self._lock:
            self._observations[idx] = value

    def get(self, idx: int) -> Any:
        with self._lock:
            return self._observations[idx]

    def __contains__(self, idx: object) -> bool:
        with self._lock:
            return idx in self._observations

    def snapshot(self) -> Dict[int, Any]:
        with self._lock:
            return dict(self._observations)

    def __len__(self) -> int:
        with self._lock:
            return len(self._observations)

    def clear(self) -> None:
        with self._lock:
            self._observations.clear()


_MANAGER_DIED = (EOFError, ConnectionError, BrokenPipeError, OSError)


class ManagerStore(ObservationStore):
    """Observations in a ``multiprocessing`` ``SyncManager`` dict, shared with worker processes.

    ``ManagerStore(context=None)`` starts its own manager process, listening on a Unix socket (or
    127.0.0.1 where there are none) with a random 32-byte authkey; ``close()`` shuts it down. Pickled into
    a worker process, the store reconnects to the same manager and never shuts it down. When the manager
    process is gone, every method raises ``StoreError`` saying so.
    """

    def __init__(self, context: Any = None) -> None:
        import multiprocessing
        import os
        from multiprocessing.managers import SyncManager

        ctx = context or multiprocessing.get_context(_default_start_method())
        # address=None: the platform's local family (a Unix socket on POSIX, a named pipe on Windows).
        address = None
        self._authkey = os.urandom(32)
        self._manager: Optional[SyncManager] = SyncManager(address, self._authkey, ctx=ctx)
        self._manager.start()
        self._dict = self._manager.dict()
        self._owner = True
        self._closed = False

    @property
    def address(self) -> Any:
        """Where the manager listens (a socket path, or a host/port pair)."""
        return self._dict._token.address

    @property
    def manager_process(self) -> Any:
        """The manager's ``Process`` object (None in a worker that reconnected)."""
        return self._manager._process if self._manager is not None else None

    def __reduce__(self) -> Any:
        return (_reconnect, (self._dict._token, self._authkey))

    def _call(self, method: str, *args: Any) -> Any:
        if self._closed:
            raise StoreError("the manager store is closed")
        try:
            return getattr(self._dict, method)(*args)
        except KeyError:
            raise
        except _MANAGER_DIED as err:
            raise StoreError(f"the observation store's manager process is gone ({err!r})") from err

    def set(self, idx: int, value: Any) -> None:
        self._call("__setitem__", idx, value)

    def get(self, idx: int) -> Any:
        return self._call("__getitem__", idx)

    def __contains__(self, idx: object) -> bool:
        return bool(self._call("__contains__", idx))

    def snapshot(self) -> Dict[int, Any]:
        return dict(self._call("copy"))

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def clear(self) -> None:
        self._call("clear")

    def alive(self) -> bool:
        """Whether the manager is still running: False once closed; in a worker that reconnected, True
        unless closed (the worker cannot see the manager process)."""
        if self._closed:
            return False
        process = self.manager_process
        return process is None or process.is_alive()

    def close(self) -> None:
        """Shut the manager down (only in the process that started it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        manager, self._manager = self._manager, None
        if self._owner and manager is not None:
            try:
                manager.shutdown()
            except _MANAGER_DIED:
                pass  # already dead: nothing left to shut down
            process = manager._process
            if process is not None:
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)


def _reconnect(token: Any, authkey: bytes) -> ManagerStore:
    """Rebuild a store in another process: a proxy to the same dict, authenticated with its key."""
    from multiprocessing.managers import DictProxy

    store = ManagerStore.__new__(ManagerStore)
    store._authkey = authkey
    store._manager = None
    store._dict = DictProxy(token, "pickle", authkey=authkey)
    store._owner = False
    store._closed = False
    return store


def _default_start_method() -> str:
    """``forkserver`` where the platform has it, else ``spawn``: both are safe with threads running."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
