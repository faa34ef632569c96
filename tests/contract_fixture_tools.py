"""Tools for test_executor_kinds.py, one set per executor kind: top-level functions (so worker
processes import them by name), and ``async def`` twins for the "async" kind."""

import asyncio
import os
import threading

# Set by the test after a timeout case so an abandoned thread call returns; a worker process has its
# own copy, never set, so there the call blocks until the engine kills it.
GATE = threading.Event()


def add(a, b):
    return a + b


def join_text(*parts):
    return " | ".join(str(part) for part in parts)


def fail(message):
    raise ValueError(message)


def hang(seconds):
    GATE.wait(seconds)
    return "woke"


def flaky(marker):
    """Raise ConnectionError the first time (no marker file yet), return "ok" afterwards."""
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise ConnectionError("first call fails")
    return "ok"


async def add_async(a, b):
    await asyncio.sleep(0)
    return a + b


async def join_text_async(*parts):
    await asyncio.sleep(0)
    return " | ".join(str(part) for part in parts)


async def fail_async(message):
    await asyncio.sleep(0)
    raise ValueError(message)


async def hang_async(seconds):
    await asyncio.sleep(seconds)  # cancelled by the engine at the tool's timeout
    return "woke"


async def flaky_async(marker):
    await asyncio.sleep(0)
    return flaky(marker)


SYNC = {"add": add, "join_text": join_text, "fail": fail, "hang": hang, "flaky": flaky}
ASYNC = {"add": add_async, "join_text": join_text_async, "fail": fail_async, "hang": hang_async,
         "flaky": flaky_async}


ACTIVE = {"now": 0, "peak": 0}


async def gather_point(wanted, limit):
    """Wait (on the event loop, never blocking it) until ``wanted`` calls are inside at once, or
    ``limit`` seconds passed; returns how many were inside at the peak."""
    import time

    ACTIVE["now"] += 1
    ACTIVE["peak"] = max(ACTIVE["peak"], ACTIVE["now"])
    deadline = time.monotonic() + limit
    try:
        while ACTIVE["peak"] < wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # 200 pollers at 1 ms kept a slow machine's loop too busy to start more
        return ACTIVE["peak"]
    finally:
        ACTIVE["now"] -= 1
