"""The engine's event loop for async tools, and the lane over any concurrent.futures.Executor."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from llmcompiler.aioloop import THREAD_NAME, AsyncLoop
from llmcompiler.calls import CallOutcome
from llmcompiler.errors import RunClosedError
from llmcompiler.executors import default_start_method, process_context
from llmcompiler.remote import ExecutorLane

import faults_fixture_tools as fx

WAIT = 60
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


@pytest.fixture
def loop():
    made = AsyncLoop()
    yield made
    made.close()


async def echo(value):
    await asyncio.sleep(0)
    return value, request_id.get(), threading.current_thread().name


async def fail(message):
    await asyncio.sleep(0)
    raise ValueError(message)


def test_a_coroutine_runs_on_the_loop_thread_in_the_callers_context(loop):
    request_id.set("req-42")
    before = time.perf_counter()
    outcome = loop.submit(echo, ("hello",), {}, contextvars.copy_context()).result(WAIT)
    after = time.perf_counter()
    assert isinstance(outcome, CallOutcome) and outcome.error is None
    assert outcome.value == ("hello", "req-42", THREAD_NAME) and outcome.worker == THREAD_NAME
    assert before <= outcome.started <= outcome.finished <= after


def test_a_tools_exception_is_in_the_outcome(loop):
    outcome = loop.submit(fail, ("bad input",), {}, contextvars.copy_context()).result(WAIT)
    assert isinstance(outcome.error, ValueError) and str(outcome.error) == "bad input"
    assert "raise ValueError(message)" in outcome.traceback and outcome.value is None


def test_two_hundred_coroutines_wait_at_once_on_one_thread(loop):
    total = 200
    state = {"active": 0, "most": 0}
    threads = set()
    everyone_in = asyncio.Event()  # made lazily on the loop: see below

    async def wait_with_the_others():
        nonlocal everyone_in
        threads.add(threading.get_ident())
        state["active"] += 1
        state["most"] = max(state["most"], state["active"])
        if state["active"] == total:
            everyone_in.set()
        await asyncio.wait_for(everyone_in.wait(), WAIT)  # a serial loop would never get here
        await asyncio.sleep(0.1)
        state["active"] -= 1
        return True

    context = contextvars.copy_context()
    futures = [loop.submit(wait_with_the_others, (), {}, context) for _ in range(total)]
    outcomes = [f.result(WAIT) for f in futures]
    assert [o.value for o in outcomes] == [True] * total
    assert state["most"] == total and len(threads) == 1


def test_cancelling_the_future_cancels_the_coroutine(loop):
    started, cancelled = threading.Event(), threading.Event()

    async def wait_for_ever():
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = loop.submit(wait_for_ever, (), {}, contextvars.copy_context())
    assert started.wait(WAIT)
    assert future.cancel()
    assert cancelled.wait(WAIT)
    with pytest.raises(CancelledError):
        future.result(WAIT)


def test_close_cancels_what_is_left_and_joins_the_thread():
    loop = AsyncLoop()
    started = threading.Event()

    async def wait_for_ever():
        started.set()
        await asyncio.sleep(3600)

    future = loop.submit(wait_for_ever, (), {}, contextvars.copy_context())
    assert started.wait(WAIT)
    loop.close()
    loop.close()
    assert future.cancelled()
    assert not any(t.name == THREAD_NAME for t in threading.enumerate())
    with pytest.raises(RunClosedError):
        loop.submit(echo, (1,), {}, contextvars.copy_context())


def test_an_unused_loop_starts_no_thread():
    before = threading.active_count()
    AsyncLoop().close()
    assert threading.active_count() == before


# -- ExecutorLane ---------------------------------------------------------------------------------------


def test_a_lane_over_a_process_pool_answers_with_outcomes_on_the_parents_clock():
    with ProcessPoolExecutor(1, mp_context=process_context(default_start_method())) as executor:
        lane = ExecutorLane(executor, "cluster")
        lane.submit("faults_fixture_tools:square", (1,), {}).result(WAIT)  # the worker is up
        before = time.perf_counter()
        nap = lane.submit("faults_fixture_tools:nap", (0.05, "slept"), {}).result(WAIT)
        after = time.perf_counter()
        failed = lane.submit(fx.fail, ("remote failure",), {}).result(WAIT)
        asynchronous = lane.submit("faults_fixture_tools:async_double", (4,), {}).result(WAIT)
    assert nap.value == "slept" and nap.error is None
    # Wall-clock stamps translated to this process's perf_counter: the same machine, so within the
    # clocks' resolution of the window the parent saw.
    slack = 0.005
    assert before - slack <= nap.started <= nap.finished <= after + slack
    assert nap.finished - nap.started >= 0.04
    assert nap.worker.startswith("cluster-") and nap.worker.endswith(tuple("0123456789"))
    assert str(os.getpid()) not in nap.worker.split("-")[-1:]
    assert isinstance(failed.error, ValueError) and "remote failure" in failed.traceback
    assert asynchronous.value == 8


def test_cancelling_a_lane_call_cancels_it_when_queued_and_abandons_it_when_running():
    started, release = threading.Event(), threading.Event()

    def hold():
        started.set()
        return release.wait(WAIT)

    with ThreadPoolExecutor(1) as executor:
        lane = ExecutorLane(executor, "threads")
        running = lane.submit(hold, (), {})
        queued = lane.submit(fx.square, (3,), {})
        assert started.wait(WAIT)
        assert queued.cancel() and running.cancel()
        assert lane.abandoned == 1  # the running one could not be stopped; the queued one was
        release.set()
    assert running.cancelled() and queued.cancelled()


def test_a_lane_reports_the_executors_own_failure_on_the_future():
    executor = ThreadPoolExecutor(1)
    executor.shutdown()
    lane = ExecutorLane(executor)
    with pytest.raises(RuntimeError):
        lane.submit(fx.square, (2,), {})


def test_a_context_entered_by_another_thread_can_still_submit(loop):
    """Two threads of one run submit at once with the run's one Context: neither may be refused
    (a Context can be entered by one thread at a time; each submission enters a copy)."""
    context = contextvars.copy_context()
    context.run(request_id.set, "shared")
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        leave.wait(WAIT)

    holder = threading.Thread(target=context.run, args=(hold,))
    holder.start()
    try:
        assert inside.wait(WAIT)
        outcome = loop.submit(echo, ("x",), {}, context).result(WAIT)
    finally:
        leave.set()
        holder.join(WAIT)
    assert outcome.error is None and outcome.value[:2] == ("x", "shared")
