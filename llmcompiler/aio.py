"""asyncio bridges: await a run without blocking the event loop, iterate its events with ``async for``.

A run's own threads do the work; these bridges only move its end and its events onto the caller's loop
with ``loop.call_soon_threadsafe`` (as ``asyncio.wrap_future`` does), so the loop never blocks on a lock
or a ``result()``. Cancelling the awaiting task cancels the run; the run's end then settles the await.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterable, Union

from .results import Event, RunResult

__all__ = ["arun", "AsyncRun"]


async def arun(engine: Any, tasks: Union[str, Iterable[Any]], *, timeout: Any = None, **options: Any) -> RunResult:
    """``engine.run(tasks, ...)`` awaited: see ``Engine.arun``."""
    from .engine import _as_tasks

    batch = _as_tasks(tasks, options.get("known") or {})
    run = AsyncRun(engine.start(**options))
    try:
        run.run._add_batch(batch, validated=True)  # noqa: SLF001 - the engine's own run
        run.run.close()
        return await run.wait(timeout)
    except BaseException:
        run.run.cancel()
        raise


class AsyncRun:
    """A run seen from an event loop: ``async for event in run``, ``await run.wait()``, ``cancel()``."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def add(self, task: Any) -> None:
        self.run.add(task)

    def close(self) -> None:
        self.run.close()

    def cancel(self) -> None:
        self.run.cancel()

    async def wait(self, timeout: Any = None) -> RunResult:
        """The run's result once it is over. Cancelling this await cancels the run. With ``timeout``,
        a run still going is cancelled and ``RunTimeoutError`` raised, its ``result`` attached."""
        from .errors import RunTimeoutError

        loop = asyncio.get_running_loop()
        over = loop.create_future()

        def settle() -> None:
            if not over.done():
                over.set_result(None)

        self.run.when_over(lambda: loop.call_soon_threadsafe(settle))
        try:
            await asyncio.wait_for(asyncio.shield(over), timeout)
        except asyncio.TimeoutError:
            self.run.cancel()
            err = RunTimeoutError(f"the run did not finish within {timeout} s")
            err.result = self.run.result()  # type: ignore[attr-defined]
            raise err from None
        except asyncio.CancelledError:
            self.run.cancel()
            raise
        if getattr(self.run, "_delivery", None) is not None:  # events may still be on their way
            return await loop.run_in_executor(None, self.run.wait)
        return self.run.wait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        queue: "asyncio.Queue[Any]" = asyncio.Queue()
        end = object()

        def pump() -> None:  # a thread of its own: iterating a run blocks between events
            try:
                for event in self.run:
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, end)

        import threading

        threading.Thread(target=pump, name="llmcompiler-aevents", daemon=True).start()
        while True:
            item = await queue.get()
            if item is end:
                return
            yield item

