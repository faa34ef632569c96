"""Process tools for test_faults.py: top-level functions, so worker processes can import them."""

import ctypes
import os
import signal
import threading
import time


def square(x):
    return x * x


def pid_of_worker():
    return os.getpid()


def exit_abruptly(code=3):
    os._exit(code)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def segfault():
    ctypes.string_at(0)


def nap(seconds, value=None):
    time.sleep(seconds)
    return value


def die_once(marker):
    """Kill the worker the first time (no marker file yet), succeed afterwards."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(9)
    return "survived"


def make_lock():
    return threading.Lock()


def length(value):
    return len(value)


def count(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


def fail_to_start(*initargs):
    """A worker initializer that kills the worker before it takes any task."""
    os._exit(1)


async def async_double(x):
    import asyncio

    await asyncio.sleep(0)
    return 2 * x


def fail(message):
    raise ValueError(message)


class UnpicklableError(Exception):
    """An exception carrying a lock: it cannot be pickled back to the parent."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable(message):
    raise UnpicklableError(message)


def call_sys_exit(code):
    import sys

    sys.exit(code)


def perf_counter_now():
    return time.perf_counter()
