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


def stall_marking(path, seconds):
    """Write ``path`` (so the test knows this call began), then block for ``seconds``."""
    import time

    with open(path, "a") as out:
        out.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return "woke"


def die_once_marked(path):
    """Kill this worker as soon as ``path`` exists (bounded wait), breaking the pool under others."""
    import time

    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    os._exit(9)
