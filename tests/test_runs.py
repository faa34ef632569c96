"""Many runs on one engine: isolation, fair sharing, limits across runs, events off the scheduling
path; and the rule that every engine step settles the task it concerns."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from llmcompiler import Engine, Task
from llmcompiler.tools import ToolRegistry

import runs_fixture_tools as fx

WAIT = 60
HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + WAIT
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def process_registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(fx.nap_marked, executor="process")
    reg.register(fx.square, executor="process")
    reg.register(fx.nap_marked, name="nap_limited", executor="process", timeout=30)
    return reg


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_stopping_one_run_leaves_another_runs_process_calls_alone(tmp_path, how):
    a_marker, b_marker = str(tmp_path / "a"), str(tmp_path / "b")
    with Engine(process_registry(), process_workers=2) as engine:
        run_b = engine.start([Task(1, "nap_marked", (1.5, b_marker, 6)), Task(2, "square", ("$1",))])
        run_b.close()
        run_a = engine.start([Task(1, "nap_marked", (30, a_marker, "never"))])
        run_a.close()
        wait_for_file(a_marker)
        wait_for_file(b_marker)  # both calls really run, in the two workers
        if how == "cancel":
            run_a.cancel()
            result_a = run_a.wait(WAIT)
        else:
            with pytest.raises(Exception):
                run_a.wait(0.01)
            run_a.cancel()
            result_a = run_a.wait(WAIT)
        result_b = run_b.wait(WAIT)
    assert result_a.cancelled and result_a.failures[1].kind == "cancelled"
    assert result_b.failures == {} and not result_b.cancelled
    assert result_b.observations == {1: 6, 2: 36}


def test_a_run_timeout_through_engine_run_spares_the_other_run(tmp_path):
    b_marker = str(tmp_path / "b")
    with Engine(process_registry(), process_workers=2) as engine:
        run_b = engine.start([Task(1, "nap_marked", (1.0, b_marker, 7)), Task(2, "square", ("$1",))])
        run_b.close()
        wait_for_file(b_marker)
        with pytest.raises(TimeoutError) as caught:
            engine.run([Task(1, "nap_marked", (30, str(tmp_path / "a")))], timeout=0.3)
        assert caught.value.result.failures[1].kind == "cancelled"
        result_b = run_b.wait(WAIT)
    assert result_b.failures == {} and result_b.observations == {1: 7, 2: 49}


def test_max_concurrency_holds_across_every_run_of_the_engine():
    running, peak, lock = [0], [0], threading.Lock()

    def limited(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return x

    reg = ToolRegistry()
    reg.register(limited, max_concurrency=2)
    with Engine(reg, max_workers=16) as engine:
        runs = [engine.start([Task(i, "limited", (i,)) for i in range(1, 9)]) for _ in range(4)]
        for run in runs:
            run.close()
        results = [run.wait(WAIT) for run in runs]
    assert all(r.observations == {i: i for i in range(1, 9)} for r in results)
    assert peak[0] == 2


def test_ready_work_is_taken_round_robin_across_runs():
    order = []
    gate = threading.Event()

    def step(name):
        gate.wait(WAIT)
        order.append(name)
        return name

    with Engine({"step": step}, max_workers=1) as engine:
        first = engine.start([Task(1, "step", ("blocker",))])
        a = engine.start([Task(i, "step", (f"a{i}",)) for i in range(1, 5)])
        b = engine.start([Task(i, "step", (f"b{i}",)) for i in range(1, 5)])
        for run in (first, a, b):
            run.close()
        gate.set()
        for run in (first, a, b):
            run.wait(WAIT)
    later = order[1:]
    assert sorted(later) == sorted([f"a{i}" for i in range(1, 5)] + [f"b{i}" for i in range(1, 5)])
    runs_in_turn = [name[0] for name in later]
    assert all(x != y for x, y in zip(runs_in_turn, runs_in_turn[1:])), order


def test_a_callback_that_blocks_never_holds_up_tool_calls():
    released = threading.Event()
    calls = []

    def blocking(event):
        calls.append(event.kind)
        released.wait(WAIT)  # blocks until every task has run: only possible if calls go on without it

    tasks = [Task(i, "inc", ("$%d" % (i - 1),) if i > 1 else (0,)) for i in range(1, 11)]
    with Engine({"inc": lambda x: x + 1}) as engine:
        run = engine.start(tasks, on_event=blocking)
        run.close()
        deadline = time.monotonic() + WAIT
        while len(run.result().observations) < 10:
            assert time.monotonic() < deadline, "tool calls waited for the callback"
            time.sleep(0.005)
        assert len(calls) == 1  # the callback is still on its first event
        released.set()
        result = run.wait(WAIT)
    assert result.observations[10] == 10
    assert calls == [e.kind for e in result.events]


def test_the_callback_runs_on_the_runs_delivery_thread_in_order():
    threads, kinds = set(), []

    def watch(event):
        threads.add(threading.current_thread().name)
        kinds.append((event.task, event.kind))

    with Engine({"inc": lambda x: x + 1}) as engine:
        result = engine.run([Task(1, "inc", (1,)), Task(2, "inc", ("$1",))], on_event=watch)
    assert threads == {"llmcompiler-events"}
    assert kinds == [(e.task, e.kind) for e in result.events]


class Unprintable:
    def __str__(self):
        raise KeyError("no text for you")


@pytest.mark.parametrize("value", [math.factorial(2000), Unprintable()], ids=["huge-int", "raising-str"])
def test_a_value_that_cannot_be_filled_in_fails_only_its_dependent(value):
    tools = {"make": lambda: value, "use": lambda text: len(text), "other": lambda: "fine"}
    tasks = [Task(1, "make"), Task(2, "use", ("the result is $1",), {}, frozenset({1})),
             Task(3, "use", ("$2",)), Task(4, "other")]
    with Engine(tools) as engine:
        result = engine.run(tasks, timeout=WAIT)
    assert result.observations[1] is value and result.observations[4] == "fine"
    if isinstance(value, int):  # filled in with its exact digits (more than str() allows)
        from llmcompiler.text import int_text

        assert result.observations[2] == len("the result is ") + len(int_text(value))
    else:
        assert result.failures[2].step == "resolving arguments"
        assert result.failures[3].kind == "skipped" and result.failures[3].cause == 2


def test_a_failing_timer_action_fails_its_task_and_the_run_ends(monkeypatch):
    from llmcompiler.scheduler import Run

    def broken_expire(self, attempt):
        raise RuntimeError("timer action broke")

    monkeypatch.setattr(Run, "_expire", broken_expire)
    reg = ToolRegistry()
    reg.register(lambda: time.sleep(0.2) or "late", name="slow", timeout=0.01)
    reg.register(lambda x: x, name="echo")
    with Engine(reg) as engine:
        result = engine.run([Task(1, "slow"), Task(2, "echo", ("$1",)), Task(3, "echo", (3,))],
                            timeout=WAIT)
    assert result.observations == {3: 3}
    assert result.failures[1].step == "a timer callback"
    assert "timer action broke" in result.failures[1].message
    assert result.failures[2].kind == "skipped"


def test_an_abandoned_thread_call_does_not_hold_the_interpreter_open(tmp_path):
    script = tmp_path / "abandon.py"
    script.write_text(textwrap.dedent("""
        import time
        from llmcompiler import Engine, Task, ToolRegistry
        reg = ToolRegistry()
        reg.register(lambda: time.sleep(120), name="hang", timeout=0.1)
        with Engine(reg) as engine:
            result = engine.run([Task(1, "hang")])
        print(result.failures[1].kind, flush=True)
    """))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["timeout"]


def test_an_engine_keeps_no_finished_run():
    import gc
    import weakref

    with Engine({"inc": lambda x: x + 1}) as engine:
        result = engine.run([Task(1, "inc", (1,))])
        run_ref = weakref.ref(next(iter(engine._runs)) if engine._runs else result)
        del result
        gc.collect()
        assert not list(engine._runs)
    assert run_ref() is None


def test_a_task_added_after_its_dependency_failed_skips_what_already_waits_on_it():
    """Task 2 waits on task 3 (not added yet); task 1 fails; task 3, added after, depends on task 1:
    3 is skipped at once, and so is 2, so the run ends instead of waiting on 2 for ever."""
    def fail():
        raise ValueError("no")

    with Engine({"fail": fail, "noop": lambda *args: 1}) as engine:
        run = engine.start()
        run.add(Task(2, "noop", dependencies=[3]))
        run.add(Task(1, "fail"))
        for event in run:
            if event.kind == "failed":
                break
        run.add(Task(3, "noop", ("$1",)))
        run.close()
        result = run.wait(WAIT)
    assert {idx: (f.kind, f.cause) for idx, f in result.failures.items()} == {
        1: ("failed", None), 2: ("skipped", 3), 3: ("skipped", 1)}
