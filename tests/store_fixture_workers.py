"""Functions that worker processes import by name in test_store.py."""


def write_and_read(store, idx):
    store.set(idx, idx * idx)
    return store.get(1)


def read_all(observations):
    """What a process tool sees through a StoreMapping: every (index, value), in order."""
    return sorted(observations.items())


def close_in_worker(store):
    """A worker closing its copy of a namespace only disconnects it."""
    store.close()
    return "closed"
