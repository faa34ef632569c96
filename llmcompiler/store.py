"""Where a run keeps its observations: one interface, a local store and a Manager-backed one.

* ``LocalStore``: a dict behind a lock. Cheapest; visible to the threads of this process only.
* ``ManagerStore``: a dict held by a ``multiprocessing.Manager`` server process, reachable from this
  process and from every worker process it is handed to (it pickles as its address, key and token, and
  reconnects on the other side). Each read or write is one round trip to the manager.
  ``ManagerStore.namespace()`` gives each run its own dict in the same manager (``ManagerNamespace``),
  removed when the run closes it: runs never clear one another's observations.
* ``StoreMapping``: a read-only mapping over any store, for ``RunContext.observations``.

Both pass the same contract tests (``tests/test_store.py``). The scheduler resolves references in the
parent and sends plain values to workers, so a run only needs a shared store when tools themselves read
observations from another process; ``Engine(store="auto")`` therefore uses a ``LocalStore`` (see the
README's measurements) and ``store="manager"`` opts in.
"""

from __future__ import annotations

import pickle
import threading
from abc import ABC, abstractmethod
from typing import Any, Dict, Iterator, Mapping, Optional

from .errors import StoreError
from .lifeline import lifeline_reader, watch_parent
from .mainguard import check_main_guard

__all__ = ["ObservationStore", "LocalStore", "ManagerStore", "ManagerNamespace", "StoreMapping"]


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
_CANNOT_PICKLE = (pickle.PicklingError, TypeError, AttributeError, RecursionError)


class _ManagerDict(ObservationStore):
    """Observations in one dict held by a manager process, reached through its proxy (thread-safe: a
    proxy keeps one connection per thread). What ``ManagerStore`` and its namespaces have in common."""

    _authkey: bytes
    _dict: Any
    _owner: bool
    _closed: bool

    def __reduce__(self) -> Any:
        return (_reconnect, (type(self), self._dict._token, self._authkey))

    def _call(self, method: str, *args: Any) -> Any:
        if self._closed:
            raise StoreError(f"the {self._what} is closed")
        try:
            return getattr(self._dict, method)(*args)
        except KeyError:
            raise
        except _MANAGER_DIED as err:
            raise StoreError(f"the observation store's manager process is gone ({err!r})") from err

    _what = "manager store"

    def set(self, idx: int, value: Any) -> None:
        """Record task ``idx``'s observation in the manager. Raises ``TypeError`` naming the value's
        type when it cannot be pickled to the manager (only that observation is concerned), and
        ``StoreError`` when the manager is gone."""
        try:
            self._call("__setitem__", idx, value)
        except _CANNOT_PICKLE as err:  # raised while pickling, before anything was sent
            raise TypeError(f"observation {idx}: a value of type {type(value).__name__} cannot be "
                            f"pickled to the observation store's manager process ({err})") from err

    def get(self, idx: int) -> Any:
        return self._call("__getitem__", idx)

    def __contains__(self, idx: object) -> bool:
        return bool(self._call("__contains__", idx))

    def snapshot(self) -> Dict[int, Any]:
        return dict(self._call("copy"))

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._call("keys")))

    def clear(self) -> None:
        self._call("clear")


class ManagerStore(_ManagerDict):
    """Observations in a ``multiprocessing`` ``SyncManager`` dict, shared with worker processes.

    ``ManagerStore(context)`` starts its own manager process with the caller's multiprocessing
    ``context`` (the engine passes ``multiprocessing.get_context(pools.start_method)``). The manager
    listens on a Unix socket (a named pipe on Windows), never a network address, and accepts only
    connections that prove its random 32-byte authkey. It watches the lifeline: it exits by itself when
    this process dies. ``namespace()`` gives each run a store of its own in the same manager;
    ``close()`` shuts the manager down. Pickled into a worker process, the store reconnects to the same
    dict and never shuts the manager down. When the manager process is gone, every method raises
    ``StoreError`` saying so. Raises ``ProcessStartError`` when the main script would be re-run by the
    manager process (see ``mainguard``).
    """

    def __init__(self, context: Any) -> None:
        import os
        from multiprocessing.managers import SyncManager

        check_main_guard(context.get_start_method())
        self._authkey = os.urandom(32)
        # address=None: the platform's local family (a Unix socket on POSIX, a named pipe on Windows).
        self._manager: Optional[SyncManager] = SyncManager(None, self._authkey, ctx=context)
        self._manager.start(watch_parent, (lifeline_reader(),))
        self._dict = self._manager.dict()
        self._owner = True
        self._closed = False

    @property
    def address(self) -> Any:
        """Where the manager listens (a socket path)."""
        return self._dict._token.address

    @property
    def manager_process(self) -> Any:
        """The manager's ``Process`` object (None in a worker that reconnected)."""
        return self._manager._process if self._manager is not None else None

    def namespace(self) -> "ManagerNamespace":
        """A new, empty store in the same manager (its own dict): one per run, so runs never see or
        clear each other's observations. Picklable into workers like this store. Raises
        ``StoreError`` when the manager is gone."""
        if self._closed or self._manager is None:
            raise StoreError("only the process that started the manager store can make namespaces"
                             if not self._closed else "the manager store is closed")
        try:
            proxy = self._manager.dict()
        except _MANAGER_DIED as err:
            raise StoreError(f"the observation store's manager process is gone ({err!r})") from err
        return ManagerNamespace(proxy, self._authkey)

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


class ManagerNamespace(_ManagerDict):
    """One run's observations in a ``ManagerStore``'s manager (its own dict). Made by
    ``ManagerStore.namespace()``; picklable into workers. ``close()``, in the process that made it,
    removes its observations from the manager; in a worker it only disconnects."""

    _what = "store namespace"

    def __init__(self, proxy: Any, authkey: bytes) -> None:
        self._dict = proxy
        self._authkey = authkey
        self._owner = True
        self._closed = False

    def close(self) -> None:
        """Remove this namespace's observations (in its owner) and disconnect. Idempotent; a manager
        that is already gone is not an error here."""
        if self._closed:
            return
        if self._owner:
            try:
                self._dict.clear()
            except _MANAGER_DIED:
                pass  # the manager is gone, and its observations with it
        self._closed = True
        self._dict = None  # the manager drops the dict once no proxy refers to it


def _reconnect(kind: type, token: Any, authkey: bytes) -> _ManagerDict:
    """Rebuild a store in another process: a proxy to the same dict, authenticated with its key."""
    from multiprocessing.managers import DictProxy

    store = kind.__new__(kind)
    store._authkey = authkey
    if kind is ManagerStore:
        store._manager = None
    store._dict = DictProxy(token, "pickle", authkey=authkey)
    store._owner = False
    store._closed = False
    return store


class StoreMapping(Mapping[int, Any]):
    """A read-only ``Mapping[int, Any]`` view of an ``ObservationStore`` (task index -> observation),
    for ``RunContext.observations``. Every lookup reads the store now; picklable when the store is (a
    ``ManagerStore`` or namespace: a process tool then reads through the manager from its worker)."""

    __slots__ = ("_store",)

    def __init__(self, store: ObservationStore) -> None:
        self._store = store

    def __getitem__(self, idx: int) -> Any:
        return self._store.get(idx)

    def __contains__(self, idx: object) -> bool:
        return idx in self._store

    def __iter__(self) -> Iterator[int]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def __reduce__(self) -> Any:
        return (StoreMapping, (self._store,))

    def __repr__(self) -> str:
        return f"StoreMapping({type(self._store).__name__})"
