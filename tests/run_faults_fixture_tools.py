"""Process tools for test_run_faults.py: top-level functions, so worker processes import them."""

import os
import signal
import sys
import threading


class NeedsTwoArguments(Exception):
    """An exception that pickles but cannot be unpickled (its __init__ wants two arguments)."""

    def __init__(self, first, second):
        super().__init__(f"{first} and {second}")


def exit_politely(code=4):
    sys.exit(code)


def raise_unpicklable_error():
    raise NeedsTwoArguments("one", "two")


def raise_error_holding_a_lock():
    err = RuntimeError("holds a lock")
    err.lock = threading.Lock()
    raise err


def kill_self_logging(path):
    """Append this worker's pid to ``path``, then SIGKILL the worker: it dies on every attempt."""
    with open(path, "a") as log:
        log.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def return_generator():
    return (i for i in range(3))


def square(x):
    return x * x


def nap_then(seconds, value):
    import time

    time.sleep(seconds)
    return value


def hang_ignoring_sigterm(seconds):
    import time

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "woke"


def text_length(text):
    return len(text)
