"""One contract, run against every ObservationStore; plus what only the manager store does."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from llmcompiler import errors
from llmcompiler.store import LocalStore, ManagerStore, ObservationStore

import store_fixture_workers as workers


@pytest.fixture(params=["local", "manager"])
def store(request):
    made = LocalStore() if request.param == "local" else ManagerStore()
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
    assert len(store) == 0


def test_concurrent_writers_lose_nothing(store: ObservationStore):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.set(i, i), range(200)))
    assert store.snapshot() == {i: i for i in range(200)}


def test_close_is_idempotent(store: ObservationStore):
    store.close()
    store.close()


def test_manager_store_is_shared_with_worker_processes():
    store = ManagerStore()
    try:
        store.set(1, "from the parent")
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            seen = list(pool.map(workers.write_and_read, [store] * 4, range(10, 14)))
        assert seen == ["from the parent"] * 4
        assert {idx: store.get(idx) for idx in range(10, 14)} == {i: i * i for i in range(10, 14)}
    finally:
        store.close()


def test_manager_listens_locally_with_a_random_key():
    first, second = ManagerStore(), ManagerStore()
    try:
        assert isinstance(first.address, str)  # a Unix socket path: never a network address
        assert first._authkey != second._authkey
        assert first._authkey != bytes(multiprocessing.current_process().authkey)
    finally:
        first.close()
        second.close()


def test_a_dead_manager_is_a_store_error_not_a_hang():
    store = ManagerStore()
    try:
        store.manager_process.kill()
        store.manager_process.join(timeout=5)
        assert not store.alive()
        with pytest.raises(errors.StoreError, match="manager process is gone"):
            store.set(1, 1)
    finally:
        store.close()
