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
