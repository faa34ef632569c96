"""Async tools on the engine's loop, tools that read the run (RunContext), calls answered from a
cache, executors given to the engine, and ordering by estimated time."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmcompiler import Engine, Task, ToolRegistry
from llmcompiler.cache import CallCache
from llmcompiler.context import RunContext
from llmcompiler.errors import ToolCallError

import features_fixture_tools as fx

WAIT = 60


def test_two_hundred_async_tools_wait_together_on_one_loop_thread():
    state = {"now": 0, "peak": 0, "threads": set()}

    async def fetch(i):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        state["threads"].add(threading.current_thread().name)
        await asyncio.sleep(0.1)
        state["now"] -= 1
        return i

    with Engine({"fetch": fetch}, max_workers=4) as engine:
        result = engine.run([Task(i, "fetch", (i,)) for i in range(1, 201)], timeout=WAIT)
    assert result.observations == {i: i for i in range(1, 201)}
    assert state["peak"] == 200  # all awaiting at once: not 200 x 0.1 s / workers
    assert len(state["threads"]) == 1


def test_async_thread_and_process_tools_mix_in_one_run():
    async def double(x):
        await asyncio.sleep(0)
        return 2 * x

    reg = ToolRegistry()
    reg.register(double)
    reg.register(fx.square, executor="process")
    reg.register(lambda x: x + 1, name="inc")
    with Engine(reg, process_workers=1) as engine:
        result = engine.run("1. double(3)\n2. square($1)\n3. inc($2)\n4. double($3)\njoin()", timeout=WAIT)
    assert result.observations == {1: 6, 2: 36, 3: 37, 4: 74}
    kinds = [e.kind for e in result.events if e.task == 1]
    assert kinds == ["queued", "submitted", "started", "finished"]


def test_an_async_tool_past_its_timeout_is_cancelled():
    cancelled = threading.Event()

    async def hang():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    reg = ToolRegistry()
    reg.register(hang, timeout=0.05)
    reg.register(lambda x: x, name="echo")
    with Engine(reg) as engine:
        result = engine.run([Task(1, "hang"), Task(2, "echo", ("$1",)), Task(3, "echo", (3,))], timeout=WAIT)
        assert cancelled.wait(WAIT)
    assert result.failures[1].kind == "timeout" and result.failures[2].kind == "skipped"
    assert result.observations == {3: 3}


def test_an_async_tool_is_retried_and_its_limit_holds():
    state = {"calls": 0, "now": 0, "peak": 0, "failed": False}

    async def flaky(i):
        state["calls"] += 1
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        if i == 1 and not state["failed"]:
            state["failed"] = True
            raise ConnectionError("the first call of task 1 fails")
        return i

    reg = ToolRegistry()
    reg.register(flaky, retries=1, retry_on=ConnectionError, backoff=0.001, max_concurrency=2)
    with Engine(reg) as engine:
        result = engine.run([Task(i, "flaky", (i,)) for i in range(1, 9)], timeout=WAIT)
    assert result.observations == {i: i for i in range(1, 9)}
    assert state["peak"] == 2 and state["calls"] == 9


def test_a_thread_tool_reads_the_runs_observations_through_run_context():
    def summary(label: str, ctx: RunContext) -> str:
        return f"{label}: task {ctx.task} sees {sorted(ctx.observations.items())}"

    reg = ToolRegistry()
    reg.register(summary)
    reg.register(lambda x: x, name="echo")
    assert "ctx" not in reg.describe()
    with Engine(reg) as engine:
        result = engine.run([Task(1, "echo", (5,)), Task(2, "echo", (7,)),
                             Task(3, "summary", ("sum",), {}, frozenset({1, 2}))], timeout=WAIT)
        with pytest.raises(ToolCallError, match="ctx"):
            engine.run([Task(1, "summary", ("x",), {"ctx": "forged"})])
    assert result.observations[3] == "sum: task 3 sees [(1, 5), (2, 7)]"


def test_a_process_tool_reads_the_run_through_the_manager_store():
    reg = ToolRegistry()
    reg.register(fx.total_so_far, executor="process")
    reg.register(fx.square, executor="process")
    with Engine(reg, store="local", process_workers=1) as engine:
        with pytest.raises(ToolCallError, match="store='manager'"):
            engine.run([Task(1, "total_so_far")])
    with Engine(reg, store="manager", process_workers=1) as engine:
        result = engine.run([Task(1, "square", (3,)), Task(2, "square", (4,)),
                             Task(3, "total_so_far", (), {}, frozenset({1, 2}))], timeout=WAIT)
    assert result.observations == {1: 9, 2: 16, 3: 25}


def test_a_cacheable_call_is_answered_from_the_questions_earlier_observations():
    calls = []

    def lookup(q):
        calls.append(q)
        return q.upper()

    reg = ToolRegistry()
    reg.register(lookup, cache=True)
    reg.register(lambda q: q, name="plain")
    cache = CallCache()
    with Engine(reg) as engine:
        first = engine.run([Task(1, "lookup", ("a",)), Task(2, "plain", ("p",))], cache=cache)
        second = engine.run([Task(3, "lookup", ("a",)), Task(4, "lookup", ("b",)), Task(5, "plain", ("p",))],
                            cache=cache, known=first.observations)
    assert calls == ["a", "b"]
    assert second.observations == {3: "A", 4: "B", 5: "p"}
    finished = {e.task: e.cached for e in second.events if e.kind == "finished"}
    assert finished == {3: True, 4: False, 5: False}
    assert not any(e.kind == "started" and e.task == 3 for e in second.events)


def test_tools_run_on_an_executor_given_to_the_engine():
    reg = ToolRegistry()
    reg.register(fx.where, executor="cluster")  # importable: another executor may be remote
    with ThreadPoolExecutor(2, thread_name_prefix="cluster") as cluster:
        with Engine(reg, executors={"cluster": cluster}) as engine:
            result = engine.run([Task(1, "where", (1,)), Task(2, "where", ("$1",))], timeout=WAIT)
        with Engine(reg) as engine, pytest.raises(ToolCallError, match="cluster"):
            engine.run([Task(1, "where", (1,))])
    assert result.observations == {1: (True, 1), 2: (True, (True, 1))}


@pytest.mark.parametrize("priority, first", [("time", "slow"), ("count", "quick")])
def test_ready_tasks_are_ordered_by_estimated_time_left_or_by_count(priority, first):
    order = []

    def slow():
        order.append("slow")
        time.sleep(0.05)

    def quick(*deps):
        order.append("quick")
        time.sleep(0.001)

    reg = ToolRegistry()
    reg.register(slow)
    reg.register(quick)
    with Engine(reg, max_workers=1, priority=priority) as engine:
        engine.run([Task(1, "slow"), Task(2, "quick")])  # the engine learns how long each takes
        order.clear()
        # task 1 (slow, nothing after it) vs task 2 (quick, two quick tasks after it)
        engine.run([Task(1, "slow"), Task(2, "quick"), Task(3, "quick", ("$2",)), Task(4, "quick", ("$3",))])
    assert order[0] == first


def test_a_cacheable_tool_that_reads_the_run_is_cached_by_its_planned_arguments():
    calls = []

    def tagged(q: str, ctx: RunContext) -> str:
        calls.append(q)
        return f"{q}@{ctx.task}"

    reg = ToolRegistry()
    reg.register(tagged, cache=True)
    cache = CallCache()
    with Engine(reg) as engine:
        first = engine.run([Task(1, "tagged", ("a",))], cache=cache)
        second = engine.run([Task(2, "tagged", ("a",))], cache=cache, known=first.observations)
    assert calls == ["a"] and second.observations == {2: "a@1"}
