"""Faults real tools cause that ``test_faults.py`` does not cover. Each case: the run ends (every wait
is bounded), the outcome is the documented one, nothing of the innocent is lost, nothing is left
running (the ``no_leaks`` fixture checks threads and child processes after every test).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading

import pytest

import llmcompiler.executors as executors
from llmcompiler import Engine, RunInterrupted, ToolRegistry, run_tasks

import run_faults_fixture_tools as fx

WAIT = 20  # a hang costs this much and then fails the test with RunTimeoutError


class Unprintable:
    """An observation whose text cannot be made: ``str()`` raises."""

    def __str__(self):
        raise KeyError("no text for you")

    __repr__ = object.__repr__


def registry(**options) -> ToolRegistry:
    reg = ToolRegistry()
    for func in (fx.exit_politely, fx.raise_unpicklable_error, fx.raise_error_holding_a_lock,
                 fx.return_generator, fx.square, fx.kill_self_logging, fx.nap_then,
                 fx.hang_ignoring_sigterm, fx.text_length, fx.stall_marking, fx.die_once_marked):
        reg.register(func, executor="process", **options.get(func.__name__, {}))
    reg.register(lambda x=1: x, name="ok")
    reg.register(lambda: sys.exit(5), name="exit_thread")
    reg.register(lambda: threading.Lock(), name="lock")
    reg.register(lambda: math.factorial(2000), name="huge")
    reg.register(lambda: Unprintable(), name="unprintable")
    reg.register(lambda text: len(text), name="length")
    return reg


def kinds(result) -> dict:
    return {idx: failure.kind for idx, failure in result.failures.items()}


@pytest.mark.parametrize("tool", ["exit_thread", "exit_politely"])
def test_sys_exit_in_a_tool_fails_its_task_and_the_interpreter_stays(tool):
    with Engine(registry(), process_workers=2) as engine:
        result = engine.run(f"1. {tool}()\n2. ok($1)\n3. square(3)\n4. ok(7)", timeout=WAIT)
        again = engine.run("1. square(5)", timeout=WAIT)
    failure = result.failures[1]
    assert (failure.kind, failure.error_type) == ("failed", "SystemExit")
    assert kinds(result) == {1: "failed", 2: "skipped"}
    assert result.observations == {3: 9, 4: 7} and again.observations == {1: 25}


@pytest.mark.parametrize("tool, named", [
    ("raise_unpicklable_error", "NeedsTwoArguments"),
    ("raise_error_holding_a_lock", "lock"),
    ("return_generator", "generator"),
])
def test_a_value_that_cannot_come_back_from_a_worker_fails_only_its_task(tool, named):
    plan = f"1. {tool}()\n2. ok($1)\n3. square(3)\n4. square(4)"
    with Engine(registry(), process_workers=2) as engine:
        result = engine.run(plan, timeout=WAIT)
        again = engine.run("1. square(6)", timeout=WAIT)
    failure = result.failures[1]
    assert failure.kind == "failed" and "task 1" in failure.message and named in failure.message
    assert kinds(result) == {1: "failed", 2: "skipped"}  # no innocent task is blamed
    assert result.observations == {3: 9, 4: 16} and again.observations == {1: 36}


def test_a_task_that_kills_its_worker_every_time_fails_after_its_retries(tmp_path, monkeypatch):
    generations = []
    real_init = executors.ProcessGeneration.__init__

    def counted(self, *args, **kwargs):
        generations.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(executors.ProcessGeneration, "__init__", counted)
    log = tmp_path / "pids"
    reg = registry(kill_self_logging={"retries": 2, "backoff": 0.01})
    plan = [f"1. kill_self_logging({str(log)!r})", "2. ok($1)"] + [
        f"{i}. nap_then(0.05, {i})" for i in range(3, 9)]
    with Engine(reg, process_workers=2) as engine:
        result = engine.run("\n".join(plan), timeout=WAIT * 3)
    failure = result.failures[1]
    assert failure.kind == "worker-died" and failure.attempts == 3
    assert [e.task for e in result.events if e.kind == "retrying"] == [1, 1]
    assert len(set(log.read_text().split())) == 3  # three attempts, each in a worker of its own
    assert kinds(result) == {1: "worker-died", 2: "skipped"}
    assert result.observations == {i: i for i in range(3, 9)}  # tasks caught in a breakage: requeued
    assert 1 <= len(generations) <= 1 + 3  # one pool, plus at most one rebuild per death


def test_a_process_call_whose_timeout_passes_before_it_began_still_times_out(tmp_path):
    """Found by ``make stress`` (soak; 6 of 40 runs hung in a reduced script): when a process call's
    timeout passes before the call has begun in a worker (the pool is still starting, or being rebuilt
    after a death), no worker is killed and the call later runs to its end, however long. Here the
    timeout (10 ms) is shorter than a fresh pool takes to start."""
    began = tmp_path / "began"
    reg = registry(stall_marking={"timeout": 0.01})
    plan = f"1. stall_marking({str(began)!r}, 600)\n2. ok($1)\n3. square(3)"
    with Engine(reg, process_workers=1) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert kinds(result) == {1: "timeout", 2: "skipped"}
    assert result.observations == {3: 9}


def test_a_process_tool_that_ignores_sigterm_is_still_stopped_at_its_timeout():
    reg = registry(hang_ignoring_sigterm={"timeout": 0.3})
    with Engine(reg, process_workers=2) as engine:
        result = engine.run("1. hang_ignoring_sigterm(600)\n2. ok($1)\n3. square(2)", timeout=WAIT)
        again = engine.run("1. square(3)", timeout=WAIT)
    assert kinds(result) == {1: "timeout", 2: "skipped"}
    assert result.observations == {3: 4} and again.observations == {1: 9}


def test_ctrl_c_mid_run_cancels_and_returns_what_was_observed():
    """SIGINT is sent when the slow task has started and the quick one has finished: on an event,
    not on a timer."""
    assert threading.current_thread() is threading.main_thread()
    seen, sent = set(), threading.Event()

    def interrupt_when_ready(event):  # a process call's start is known when it ends: "submitted"
        seen.add((event.kind, event.task))
        if {("finished", 1), ("submitted", 2)} <= seen and not sent.is_set():
            sent.set()
            os.kill(os.getpid(), signal.SIGINT)

    with Engine(registry(), process_workers=2) as engine:
        with pytest.raises(RunInterrupted) as caught:
            engine.run("1. square(6)\n2. nap_then(600, 'never')\n3. ok($2)", timeout=WAIT * 3,
                       on_event=interrupt_when_ready)
    assert sent.is_set() and isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.result.observations == {1: 36}
    assert kinds(caught.value.result) == {2: "cancelled", 3: "cancelled"}


@pytest.mark.parametrize("length_tool", ["length", "text_length"])
def test_a_huge_int_filled_into_text_runs_the_task_with_the_exact_digits(length_tool):
    """Defect: filling a 5,736-digit int into a string raised in the engine's own code and the run
    hung. It must run, with the exact text."""
    digits = math.floor(math.lgamma(2001) / math.log(10)) + 1  # of 2000!, without printing it
    plan = f'1. huge()\n2. {length_tool}("the result is $1")\n3. ok()'
    result = run_tasks(plan, registry(), process_workers=2, timeout=WAIT)
    assert result.observations[2] == len("the result is ") + digits
    assert result.observations[3] == 1 and not result.failures


@pytest.mark.parametrize("length_tool", ["length", "text_length"])
def test_an_observation_whose_str_raises_fails_the_task_that_needs_its_text(length_tool):
    plan = f'1. unprintable()\n2. {length_tool}("the result is $1")\n3. ok($2)\n4. ok()\n5. ok($1)'
    result = run_tasks(plan, registry(), process_workers=2, timeout=WAIT)
    failure = result.failures[2]
    assert "task 2" in failure.message and "$1" in failure.message and "KeyError" in failure.message
    assert failure.step == "resolving arguments"
    assert kinds(result) == {2: failure.kind, 3: "skipped"}
    assert result.observations[4] == 1 and isinstance(result.observations[5], Unprintable)


def test_a_thread_observation_the_manager_cannot_store_fails_only_its_task():
    result = run_tasks("1. lock()\n2. ok($1)\n3. ok(3)\n4. square(4)", registry(), store="manager",
                       process_workers=1, timeout=WAIT)
    failure = result.failures[1]
    assert failure.error_type == "TypeError" and "lock" in failure.message
    assert kinds(result) == {1: failure.kind, 2: "skipped"}
    assert result.observations == {3: 3, 4: 16}


def test_pools_rebuilt_after_worker_deaths_hold_no_more_descriptors():
    """Found by ``make stress`` (soak: 32 -> 109 open descriptors over 10 rebuilds): a retired
    pool's pipes stay open until the engine closes. After the first rebuild, more deaths must not
    add descriptors."""
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    counts = []
    with Engine(registry(), process_workers=1) as engine:
        for _ in range(5):
            result = engine.run("1. exit_politely()\n2. square(2)", timeout=WAIT)  # a warm pool
            died = engine.run(f"1. kill_self_logging({os.devnull!r})\n2. square(3)", timeout=WAIT)
            assert died.failures[1].kind == "worker-died" and died.observations == {2: 9}
            assert result.observations == {2: 4}
            counts.append(open_fds())
    assert counts[-1] <= counts[0], counts


def test_a_timeout_that_cannot_be_armed_fails_only_its_task():
    """The engine's own step after the guarded ones (arming a task's timeout timer) raises: that task
    fails naming the step, its dependent is skipped, the others run, and the run ends."""
    tools = ToolRegistry()
    tools.register(lambda: 1, name="slow", timeout=5)
    tools.register(lambda *args: 2, name="ok")
    with Engine(tools) as engine:
        def refuse(*args, **kwargs):
            raise RuntimeError("the timer thread is gone")

        engine._parts.timers.schedule = refuse  # noqa: SLF001 - the fault to inject
        result = engine.run("1. slow()\n2. ok($1)\n3. ok()", timeout=WAIT)
    failure = result.failures[1]
    assert failure.step == "preparing the call" and "timer thread" in failure.message
    assert result.failures[2].kind == "skipped" and result.observations[3] == 2
