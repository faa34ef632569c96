"""One contract, run against every ObservationStore; plus what only the manager store does."""

import multiprocessing
import os
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.connection import Client

import pytest

from llmcompiler import errors
from llmcompiler.executors import default_start_method, process_context
from llmcompiler.store import LocalStore, ManagerNamespace, ManagerStore, ObservationStore, StoreMapping

import store_fixture_workers as workers


def context():
    return process_context(default_start_method())


@pytest.fixture(scope="module")
def manager():
    made = ManagerStore(context())
    yield made
    made.close()


@pytest.fixture(params=["local", "manager", "namespace"])
def store(request):
    if request.param == "local":
        made = LocalStore()
    elif request.param == "manager":
        made = ManagerStore(context())
    else:
        made = request.getfixturevalue("manager").namespace()
    yield made
    made.close()


def test_set_then_get(store: ObservationStore):
    store.set(1, {"a": [1, 2]})
    assert store.get(1) == {"a": [1, 2]}
    assert 1 in store and 2 not in store


def test_missing_is_a_key_error(store: ObservationStore):
    with pytest.raises(KeyError):
        store.get(7)


def test_values_of_any_type_and_size(store: ObservationStore):
    big = b"x" * 1_000_000
    store.set(1, None)
    store.set(2, big)
    store.set(3, ("tuple", 1.5))
    assert store.get(1) is None and store.get(2) == big and store.get(3) == ("tuple", 1.5)


def test_snapshot_len_iter_clear(store: ObservationStore):
    for idx in (3, 1, 2):
        store.set(idx, idx * 10)
    assert store.snapshot() == {1: 10, 2: 20, 3: 30}
    assert len(store) == 3 and list(store) == [1, 2, 3]
    store.clear()
    assert len(store) == 0 and store.snapshot() == {}


def test_concurrent_writers_lose_nothing(store: ObservationStore):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.set(i, i), range(200)))
    assert store.snapshot() == {i: i for i in range(200)}


def test_close_is_idempotent_and_a_closed_store_says_so(store: ObservationStore):
    store.set(1, 1)
    store.close()
    store.close()
    if isinstance(store, LocalStore):
        assert store.get(1) == 1  # a local store holds nothing worth releasing
    else:
        with pytest.raises(errors.StoreError, match="closed"):
            store.get(1)


def test_store_mapping_is_a_read_only_view(store: ObservationStore):
    view = StoreMapping(store)
    store.set(2, "two")
    store.set(1, "one")
    assert dict(view) == {1: "one", 2: "two"} and len(view) == 2 and list(view) == [1, 2]
    assert 1 in view and 3 not in view and view.get(3) is None
    with pytest.raises(KeyError):
        view[3]
    with pytest.raises(TypeError):
        view[3] = "three"  # type: ignore[index]
    store.set(3, "three")
    assert view[3] == "three"  # it reads the store now, not a copy


def test_manager_store_is_shared_with_worker_processes():
    store = ManagerStore(context())
    try:
        store.set(1, "from the parent")
        with ProcessPoolExecutor(2, mp_context=context()) as pool:
            seen = list(pool.map(workers.write_and_read, [store] * 4, range(10, 14)))
        assert seen == ["from the parent"] * 4
        assert {idx: store.get(idx) for idx in range(10, 14)} == {i: i * i for i in range(10, 14)}
    finally:
        store.close()


def test_namespaces_are_separate_and_reach_workers(manager):
    first, second = manager.namespace(), manager.namespace()
    try:
        first.set(1, "first run")
        second.set(1, "second run")
        manager.set(1, "the store itself")
        assert isinstance(first, ManagerNamespace)
        with ProcessPoolExecutor(1, mp_context=context()) as pool:
            assert pool.submit(workers.write_and_read, first, 5).result(60) == "first run"
            assert pool.submit(workers.read_all, StoreMapping(second)).result(60) == [(1, "second run")]
            assert pool.submit(workers.close_in_worker, second).result(60) == "closed"
        assert first.snapshot() == {1: "first run", 5: 25}
        assert second.snapshot() == {1: "second run"}  # a worker's close removed nothing
        first.close()
        assert second.get(1) == "second run" and manager.get(1) == "the store itself"
    finally:
        first.close()
        second.close()


def test_closing_a_namespace_removes_its_observations_from_the_manager(manager):
    namespace = manager.namespace()
    namespace.set(1, b"x" * 1000)
    reopened = pickle.loads(pickle.dumps(namespace))  # as a worker would hold it
    namespace.close()
    assert reopened.snapshot() == {}


def test_an_unpicklable_value_is_a_type_error_naming_it_and_the_store_goes_on(manager):
    namespace = manager.namespace()
    try:
        with pytest.raises(TypeError, match="observation 4: a value of type lock cannot be pickled") as caught:
            namespace.set(4, threading.Lock())
        assert not isinstance(caught.value, errors.StoreError)
        namespace.set(5, "fine")
        assert namespace.snapshot() == {5: "fine"}
    finally:
        namespace.close()


def test_manager_listens_on_a_local_socket_with_a_random_key():
    first, second = ManagerStore(context()), ManagerStore(context())
    try:
        assert isinstance(first.address, str) and os.path.exists(first.address)  # a Unix socket path
        assert first._authkey != second._authkey
        assert first._authkey != bytes(multiprocessing.current_process().authkey)
    finally:
        first.close()
        second.close()


def test_a_connection_with_a_wrong_key_is_refused(manager):
    with pytest.raises(multiprocessing.AuthenticationError):
        Client(manager.address, authkey=os.urandom(32))
    connection = Client(manager.address, authkey=manager._authkey)  # the right key is let in
    connection.close()
    manager.set(1, "still serving")
    assert manager.get(1) == "still serving"


def test_a_dead_manager_is_a_store_error_not_a_hang():
    store = ManagerStore(context())
    namespace = store.namespace()
    try:
        store.manager_process.kill()
        store.manager_process.join(timeout=5)
        assert not store.alive()
        with pytest.raises(errors.StoreError, match="manager process is gone"):
            store.set(1, 1)
        with pytest.raises(errors.StoreError, match="manager process is gone"):
            namespace.get(1)
        with pytest.raises(errors.StoreError, match="manager process is gone"):
            store.namespace()
        namespace.close()  # closing what is already gone is not an error
    finally:
        store.close()
