"""asyncio: awaiting a run never blocks the loop; cancelling the await cancels the run; the caller's
context variables reach thread tools."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from llmcompiler import Engine, Task

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_awaiting_a_run_leaves_the_loop_free():
    gate = threading.Event()
    ticks = []

    def slow(x):
        gate.wait(30)  # returns once the loop has ticked: only possible if the loop is free
        return x * 2

    async def main():
        with Engine({"slow": slow, "inc": lambda x: x + 1}) as engine:
            async def ticker():
                while not gate.is_set():
                    ticks.append(1)
                    if len(ticks) >= 5:
                        gate.set()
                    await asyncio.sleep(0.001)

            ticking = asyncio.ensure_future(ticker())
            result = await engine.arun([Task(1, "slow", (2,)), Task(2, "inc", ("$1",))])
            await ticking
            return result

    result = asyncio.run(main())
    assert result.observations == {1: 4, 2: 5}
    assert len(ticks) >= 5


def test_cancelling_the_awaiting_task_cancels_the_run():
    entered, release = threading.Event(), threading.Event()

    def hang():
        entered.set()
        release.wait(30)
        return "late"

    async def main():
        with Engine({"hang": hang, "inc": lambda x: x + 1}) as engine:
            run = engine.astart([Task(1, "hang"), Task(2, "inc", ("$1",))])
            run.close()
            waiting = asyncio.ensure_future(run.wait())
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            result = run.run.result()
            release.set()
            return result

    result = asyncio.run(main())
    assert result.cancelled
    assert result.failures[1].kind == "cancelled" and result.failures[2].kind == "cancelled"


def test_async_for_yields_every_event_in_order():
    async def main():
        with Engine({"inc": lambda x: x + 1}) as engine:
            run = engine.astart([Task(1, "inc", (1,)), Task(2, "inc", ("$1",))])
            run.close()
            seen = [(event.task, event.kind) async for event in run]
            result = await run.wait()
            return seen, result

    seen, result = asyncio.run(main())
    assert seen == [(e.task, e.kind) for e in result.events]
    assert ("2", "finished") not in seen and (2, "finished") in seen


def test_the_callers_context_variables_reach_thread_tools():
    def who():
        return request_id.get()

    with Engine({"who": who}) as engine:
        token = request_id.set("req-42")
        try:
            result = engine.run([Task(i, "who") for i in range(1, 6)])
        finally:
            request_id.reset(token)
        untagged = engine.run([Task(1, "who")])
    assert set(result.observations.values()) == {"req-42"}
    assert untagged.observations == {1: "none"}
