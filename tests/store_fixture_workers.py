"""Functions that worker processes import by name in test_store.py."""


def write_and_read(store, idx):
    store.set(idx, idx * idx)
    return store.get(1)
