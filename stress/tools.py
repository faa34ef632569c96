"""Tools of the random DAGs, as top-level functions so worker processes import them by name.

Every tool is deterministic: ``node`` folds its inputs into a 32-bit value, so the serial reference
computes the same observations. ``fail`` always raises; ``stall`` blocks past its timeout; ``die``
kills its worker process.
"""

import os
import threading

# Set when a case ends, so thread calls abandoned at their timeout return and their threads end.
# Worker processes have their own copy, never set: there the call blocks until it is killed.
RELEASE = threading.Event()


def node(idx, *inputs):
    value = idx * 2654435761
    for item in inputs:
        value = (value * 31 + item) & 0xFFFFFFFF
    return value


def fail(idx, *inputs):
    raise ValueError(f"task {idx} fails by design")


def stall(idx, *inputs):
    RELEASE.wait(120)
    return -1


def die(idx, *inputs):
    os._exit(7)
