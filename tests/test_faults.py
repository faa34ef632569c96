"""Process tools, the faults real tools cause, and the rule that nothing is left behind."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import pytest

from llmcompiler import errors
from llmcompiler.plan import Task
from llmcompiler import Engine, RunInterrupted, run_tasks
from llmcompiler.store import ManagerStore
from llmcompiler.tools import ToolRegistry

import faults_fixture_tools as fx
from conftest import child_pids

WAIT = 60


def registry(**process_options) -> ToolRegistry:
    reg = ToolRegistry()
    for func in (fx.square, fx.pid_of_worker, fx.exit_abruptly, fx.kill_self, fx.segfault, fx.nap,
                 fx.make_lock, fx.length, fx.count):
        reg.register(func, executor="process", **process_options.get(func.__name__, {}))
    reg.register(fx.die_once, executor="process", **process_options.get("die_once", {}))
    reg.register(lambda x: x + 1, name="inc")  # a thread tool
    reg.register(lambda: threading.Lock(), name="thread_lock")
    return reg


def test_one_run_mixes_thread_and_process_tools_across_dependencies():
    plan = [Task(1, "square", (3,)), Task(2, "inc", ("$1",)), Task(3, "square", ("$2",)),
            Task(4, "pid_of_worker")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning about forking with threads running
        result = run_tasks(plan, registry(), process_workers=2, timeout=WAIT)
    assert {k: result.observations[k] for k in (1, 2, 3)} == {1: 9, 2: 10, 3: 100}
    assert result.observations[4] != os.getpid()
    workers = {e.worker for e in result.events if e.kind == "finished"}
    assert any(w.startswith("process-") for w in workers) and any(w.startswith("llmcompiler") for w in workers)


def test_a_thread_only_run_starts_no_process():
    with Engine(registry()) as engine:
        engine.run([Task(1, "inc", (1,))])
        assert engine._pools._process is None
        assert not child_pids()


@pytest.mark.parametrize("killer", ["exit_abruptly", "kill_self", "segfault"])
def test_a_dying_worker_fails_its_task_only(killer):
    plan = [Task(1, "square", (2,)), Task(2, "nap", (0.5, "slow ok")), Task(3, killer),
            Task(4, "inc", ("$3",)), Task(5, "inc", ("$1",))]
    with Engine(registry(), process_workers=2) as engine:
        result = engine.run(plan, timeout=WAIT)
        again = engine.run([Task(1, "square", (5,))], timeout=WAIT)  # the pool was replaced
    failure = result.failures[3]
    assert failure.kind == "worker-died" and isinstance(failure.exception, errors.WorkerDiedError)
    assert "task 3" in failure.message and "died" in failure.message
    assert result.failures[4].kind == "skipped"
    assert result.observations == {1: 4, 2: "slow ok", 5: 5}
    assert again.observations == {1: 25}


def test_a_dead_worker_is_retried_when_the_tool_allows(tmp_path):
    marker = str(tmp_path / "died-once")
    reg = registry(die_once={"retries": 1, "backoff": 0.01})
    result = run_tasks([Task(1, "die_once", (marker,))], reg, process_workers=2, timeout=WAIT)
    assert result.observations == {1: "survived"}
    assert [e.kind for e in result.events].count("retrying") == 1


def test_a_process_tool_past_its_timeout_is_killed_and_the_run_goes_on():
    reg = registry(nap={"timeout": 0.3})
    plan = [Task(1, "nap", (30,)), Task(2, "inc", ("$1",)), Task(3, "square", (7,)), Task(4, "nap", (0.01, "quick"))]
    started = time.monotonic()
    with Engine(reg, process_workers=2) as engine:
        result = engine.run(plan, timeout=WAIT)
        took = time.monotonic() - started
        assert engine.run([Task(1, "square", (3,))], timeout=WAIT).observations == {1: 9}
    assert took < 15
    assert result.failures[1].kind == "timeout" and "timed out after 0.3 s" in result.failures[1].message
    assert result.failures[2].kind == "skipped"
    assert result.observations == {3: 49, 4: "quick"}


def test_an_unpicklable_argument_names_the_task_and_the_type():
    result = run_tasks([Task(1, "thread_lock"), Task(2, "length", ("$1",))], registry(), timeout=WAIT)
    failure = result.failures[2]
    assert "task 2" in failure.message and "argument 1 of type lock" in failure.message


def test_an_unpicklable_result_names_the_task():
    result = run_tasks([Task(1, "make_lock")], registry(), timeout=WAIT)
    failure = result.failures[1]
    assert failure.kind == "failed" and "task 1" in failure.message and "result" in failure.message


def test_cancel_terminates_running_process_tools_and_keeps_observations():
    with Engine(registry(), process_workers=2) as engine:
        run = engine.start([Task(1, "square", (4,)), Task(2, "nap", (30,))])
        run.close()
        for event in run:
            if event.kind == "finished" and event.task == 1:
                break
        deadline = time.monotonic() + WAIT
        generation = engine._pools.process_generation()
        while not any(generation.running):  # task 2's call is running in a worker
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        run.cancel()
        result = run.wait(WAIT)
        assert time.monotonic() - started < 10
    assert result.cancelled and result.observations == {1: 16}
    assert result.failures[2].kind == "cancelled"


def test_keyboard_interrupt_shuts_everything_down_and_returns_the_partial_result():
    assert threading.current_thread() is threading.main_thread()
    with Engine(registry(), process_workers=2) as engine:
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            with pytest.raises(RunInterrupted) as caught:
                engine.run([Task(1, "square", (6,)), Task(2, "nap", (30,))], timeout=WAIT)
        finally:
            timer.join(WAIT)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.result.observations == {1: 36}
    assert caught.value.result.failures[2].kind == "cancelled"


def test_process_tools_share_observations_through_a_manager_store():
    with Engine(registry(), store="manager", process_workers=2) as engine:
        result = engine.run([Task(1, "square", (3,)), Task(2, "square", ("$1",))], timeout=WAIT)
        store = engine._manager_store
        # the run had a namespace of its own in the manager, removed when the run was over
        assert isinstance(store, ManagerStore) and store.snapshot() == {}
    assert result.observations == {1: 9, 2: 81}
    assert not store.alive()


def test_a_dead_manager_fails_the_run_with_a_clear_error():
    with Engine(registry(), store="manager", process_workers=2) as engine:
        engine._store_for_run()  # starts the engine's manager
        manager = engine._manager_store.manager_process

        def kill_manager_after_task_1(event):
            if event.kind == "finished" and event.task == 1:
                manager.kill()
                manager.join(WAIT)

        plan = [Task(1, "square", (2,)), Task(2, "nap", (1.0, "late")), Task(3, "inc", (1,)),
                Task(4, "inc", ("$2",))]
        with pytest.raises(errors.StoreError, match="manager process is gone") as caught:
            engine.run(plan, timeout=WAIT, on_event=kill_manager_after_task_1)
        with pytest.raises(errors.StoreError, match="manager process is gone"):
            engine.run([Task(1, "inc", (1,))])  # a new run on the dead manager says so at once
    assert "had not finished" in str(caught.value) and "4" in str(caught.value)
    assert caught.value.result.observations[1] == 4  # what was computed is kept


def test_the_start_method_is_explicit_and_fork_only_when_asked():
    with Engine(registry()) as engine:
        assert engine._pools.start_method in ("forkserver", "spawn")
    with Engine(registry(), start_method="spawn") as engine:
        assert engine.run([Task(1, "square", (2,))], timeout=WAIT).observations == {1: 4}


def test_process_tool_priority_and_many_tasks_through_two_workers():
    plan = [Task(i, "square", (i,)) for i in range(1, 41)] + [Task(41, "count", (1000,))]
    result = run_tasks(plan, registry(), process_workers=2, timeout=WAIT)
    assert result.observations == {**{i: i * i for i in range(1, 41)}, 41: fx.count(1000)}


def test_workers_that_cannot_start_fail_the_task_instead_of_looping(monkeypatch):
    import llmcompiler.executors as executors

    # Every worker dies in its initializer, before taking any task (as when the main module
    # cannot be re-imported in a spawned worker).
    monkeypatch.setattr(executors, "_init_worker", fx.fail_to_start)
    started = time.monotonic()
    result = run_tasks([Task(1, "square", (2,))], registry(), process_workers=2, timeout=WAIT)
    assert time.monotonic() - started < WAIT / 2
    failure = result.failures[1]
    assert failure.kind == "worker-died" and "broke 3 times" in failure.message
