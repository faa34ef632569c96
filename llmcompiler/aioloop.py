"""``AsyncLoop``: the engine's one event loop, on one daemon thread, for ``async def`` tools.

A coroutine tool waits without holding a thread: two hundred of them awaiting the network at once cost
one thread, not two hundred pool threads. The bridge is the standard one:
``asyncio.run_coroutine_threadsafe`` hands the coroutine to the loop's thread and returns a
``concurrent.futures.Future``; cancelling that future cancels the coroutine (how timeouts and run
cancellation reach it). Nothing here ever blocks the loop.

    caller thread                              loop thread ("llmcompiler-async")
    -------------                              ---------------------------------
    submit(func, args, kwargs, context)  --->  Task created in a copy of ``context``:
                                                 started = perf_counter(); await func(...)
    Future[CallOutcome]                  <---    CallOutcome(value or error, started, finished)
    future.cancel()                      --->    task.cancel()
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Optional

from ._signals import start_thread
from .calls import CallOutcome, format_traceback

__all__ = ["AsyncLoop"]

THREAD_NAME = "llmcompiler-async"


class AsyncLoop:
    """One event loop on one daemon thread, started on first use. Thread-safe; ``close()`` is
    idempotent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def submit(self, func: Callable[..., Any], args: tuple, kwargs: dict,
               context: contextvars.Context) -> "Future[CallOutcome]":
        """Run ``func(*args, **kwargs)`` (an ``async def``) on the loop, inside a copy of ``context``
        (so the caller's contextvars reach it, as with ``asyncio.to_thread``).

        Returns a future of its ``CallOutcome``: the tool's exception is in the outcome, with
        ``started``/``finished`` stamped on the loop's thread with ``time.perf_counter()``. Cancelling
        the future cancels the coroutine. Raises ``RunClosedError`` once the loop is closed.
        """
        loop = self._started_loop()
        # The Handle made by call_soon_threadsafe captures the context current here, and the Task it
        # creates copies that one: the coroutine runs in a copy of ``context``. A run's context may be
        # entered by two threads submitting at once, which a Context refuses: each enters a copy.
        return context.copy().run(asyncio.run_coroutine_threadsafe, _outcome_of(func, args, kwargs), loop)

    def close(self) -> None:
        """Cancel every coroutine still running, stop the loop and join its thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            # A coroutine that swallows its cancellation could hold this for ever: the thread is a
            # daemon, so a bounded wait leaves nothing that keeps the interpreter alive.
            thread.join(timeout=10)

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                from .errors import RunClosedError

                raise RunClosedError("the engine's event loop is closed; create a new Engine")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                running = threading.Event()
                self._thread = threading.Thread(target=_serve, args=(loop, running), name=THREAD_NAME,
                                                daemon=True)
                start_thread(self._thread)
                running.wait()
                self._loop = loop
            return self._loop


def _serve(loop: asyncio.AbstractEventLoop, running: threading.Event) -> None:
    """The loop thread: serve until stopped, then cancel what is left and close the loop."""
    asyncio.set_event_loop(loop)
    loop.call_soon(running.set)
    try:
        loop.run_forever()
    finally:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _outcome_of(func: Callable[..., Any], args: tuple, kwargs: dict) -> CallOutcome:
    """Await one call and describe how it ended; a cancellation propagates (the future is cancelled)."""
    started = time.perf_counter()
    try:
        value = func(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
    except asyncio.CancelledError:
        raise
    except (Exception, SystemExit) as err:  # SystemExit would otherwise stop the loop itself
        return CallOutcome(None, err, format_traceback(err), started, time.perf_counter(), THREAD_NAME)
    return CallOutcome(value, None, "", started, time.perf_counter(), THREAD_NAME)
