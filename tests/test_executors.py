"""The process lane at unit level, with real worker processes: batches, outcomes, clocks, kills."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

import llmcompiler.executors as executors
from llmcompiler.errors import ToolDefinitionError
from llmcompiler.executors import CallOutcome, Pools, ProcessCall, Timers, default_start_method

import faults_fixture_tools as fx

WAIT = 60
FX = "faults_fixture_tools"


@pytest.fixture
def pools():
    made = Pools(process_workers=2)
    yield made
    made.close()


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_a_batch_runs_in_order_in_one_worker_with_errors_per_call(pools):
    calls = [ProcessCall(1, f"{FX}:square", (3,), {}), ProcessCall(2, f"{FX}:fail", ("no",), {}),
             ProcessCall(3, fx.square, (4,), {}), ProcessCall(4, f"{FX}:make_lock", (), {}),
             ProcessCall(5, f"{FX}:async_double", (21,), {}), ProcessCall(6, f"{FX}:pid_of_worker", (), {})]
    _, future = pools.submit_calls(calls)
    outcomes = future.result(WAIT)
    assert all(isinstance(o, CallOutcome) for o in outcomes) and len(outcomes) == 6
    assert [outcomes[i].value for i in (0, 2, 4)] == [9, 16, 42]
    assert isinstance(outcomes[1].error, ValueError) and str(outcomes[1].error) == "no"
    assert "Traceback" in outcomes[1].traceback and "raise ValueError(message)" in outcomes[1].traceback
    assert isinstance(outcomes[3].error, TypeError) and "the result, of type lock, cannot be pickled" in str(outcomes[3].error)
    pid = outcomes[5].value
    assert pid != os.getpid() and {o.worker for o in outcomes} == {f"process-{pid}"}
    assert all(o.error is None for o in (outcomes[0], outcomes[2], outcomes[4], outcomes[5]))


def test_started_and_finished_are_on_the_parents_clock(pools):
    pools.submit_process(1, f"{FX}:square", (1,), {})[1].result(WAIT)  # the worker is up
    before = time.perf_counter()
    _, future = pools.submit_calls([ProcessCall(1, f"{FX}:nap", (0.05, "a"), {}),
                                    ProcessCall(2, f"{FX}:perf_counter_now", (), {})])
    first, second = future.result(WAIT)
    after = time.perf_counter()
    assert before <= first.started <= first.finished <= second.started <= second.finished <= after
    assert first.finished - first.started >= 0.05  # the nap itself, measured by the worker
    assert second.started <= second.value <= second.finished  # the tool read the same clock


def test_submit_process_is_a_batch_of_one(pools):
    generation, future = pools.submit_process(7, f"{FX}:square", (5,), {})
    outcome = future.result(WAIT)
    assert isinstance(outcome, CallOutcome) and outcome.value == 25 and outcome.error is None
    assert generation is pools.process_generation()


def test_what_a_tool_raises_comes_back_even_when_it_cannot_be_pickled(pools):
    _, future = pools.submit_calls([ProcessCall(1, f"{FX}:raise_unpicklable", ("boom",), {}),
                                    ProcessCall(2, f"{FX}:call_sys_exit", (4,), {}),
                                    ProcessCall(3, f"{FX}:no_such_tool", (), {})])
    unpicklable, exited, missing = future.result(WAIT)
    assert isinstance(unpicklable.error, RuntimeError)
    assert "UnpicklableError: boom" in str(unpicklable.error) and "UnpicklableError" in unpicklable.traceback
    assert isinstance(exited.error, SystemExit) and exited.error.code == 4  # the worker lives on
    assert isinstance(missing.error, ToolDefinitionError) and "no_such_tool" in str(missing.error)


def test_the_running_slot_names_the_call_running_now(pools):
    generation, future = pools.submit_calls([ProcessCall(11, f"{FX}:square", (2,), {}),
                                             ProcessCall(12, f"{FX}:nap", (WAIT, None), {})])
    wait_until(lambda: generation.pid_of(12) is not None, "the second call to start")
    assert generation.pid_of(11) is None  # done already: a death now is the second call's
    assert pools.kill_tokens(generation, [11, 99]) == 0  # nothing running those: nothing killed
    assert pools.kill_tokens(generation, [12]) == 1
    with pytest.raises(BrokenProcessPool):
        future.result(WAIT)
    assert generation.dead_tokens() == {12}
    assert pools.process_generation() is not generation  # retired: a fresh pool serves what follows
    assert pools.submit_process(13, f"{FX}:square", (3,), {})[1].result(WAIT).value == 9


def test_kill_tokens_kills_only_the_culprits_and_blames_only_them(pools):
    generation = pools.process_generation()
    futures = {token: pools.submit_process(token, f"{FX}:nap", (WAIT, None), {})[1] for token in (21, 22)}
    wait_until(lambda: generation.pid_of(21) and generation.pid_of(22), "both calls to start")
    bystander = generation.pid_of(22)
    assert pools.kill_tokens(generation, [21]) == 1
    for future in futures.values():
        with pytest.raises(BrokenProcessPool):
            future.result(WAIT)  # the bystander's call is caught in the breakage ...
    assert generation.dead_tokens() == {21}  # ... but never blamed for it
    assert bystander != 0


def test_the_start_method_policy_lives_here():
    assert default_start_method() == "forkserver"  # Linux has it
    assert Pools().start_method == default_start_method()
    assert not hasattr(executors, "_loaded")  # one cache of loaded tools: tools.load_path's
    assert not hasattr(__import__("llmcompiler.store").store, "_default_start_method")


def test_a_timer_action_that_raises_is_logged_and_the_timer_goes_on(caplog):
    timers = Timers()
    ran = threading.Event()

    def broken():
        raise RuntimeError("broken action")

    try:
        with caplog.at_level(logging.ERROR, logger="llmcompiler"):
            now = time.monotonic()
            timers.schedule(now, broken)
            timers.schedule(now + 0.01, ran.set)
            assert ran.wait(WAIT)
        assert [r.exc_info[1].args for r in caplog.records if r.exc_info] == [("broken action",)]
        assert all(r.name == "llmcompiler" for r in caplog.records)
    finally:
        timers.close()


def test_a_worker_is_blamed_for_the_call_it_was_killed_for(pools):
    generation, future = pools.submit_process(31, f"{FX}:nap", (WAIT, None), {})
    wait_until(lambda: generation.pid_of(31) is not None, "the call to start")
    assert generation.running_tokens() == {31: generation.pid_of(31)}
    slot = list(generation.running).index(31)
    assert pools.kill_tokens(generation, [31]) == 1
    generation.running[slot] = 32  # as if the worker had moved on to its next call before dying
    with pytest.raises(BrokenProcessPool):
        future.result(WAIT)
    assert generation.dead_tokens() == {31}
