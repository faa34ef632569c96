"""Tools for test_dask.py: top-level functions, so Dask workers import them by name."""

import os
import time


def add(a, b):
    return a + b


def describe(*parts):
    return " | ".join(str(part) for part in parts)


def fail(message):
    raise ValueError(message)


def where():
    return os.getpid()


def nap_then_mark(seconds, marker):
    """Sleep, then write ``marker``: a file that appears only if the call was left to finish."""
    time.sleep(seconds)
    with open(marker, "w") as out:
        out.write("finished")
    return "rested"


def wait_for_file(path, limit):
    """Block until ``path`` exists (the test creates it to let this call go) or ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.path.exists(path)


def kill_worker():
    """End the Dask worker process running this call, as a crash would."""
    os._exit(3)
