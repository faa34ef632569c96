"""The event-driven scheduler on thread tools: correctness against a serial reference, failure
propagation, streaming, priorities, limits, events, and no thread left behind."""

from __future__ import annotations

import random
import threading

import pytest

from llmcompiler import errors
from llmcompiler.plan import Task
from llmcompiler import Engine, RunResult, run_tasks
from llmcompiler.tools import ToolRegistry

WAIT = 30  # seconds: every wait in these tests is bounded


def combine(*values):
    """Deterministic, order-sensitive: the observation depends on every input."""
    return hash(("combine",) + tuple(values)) & 0xFFFF


def random_dag(rng: random.Random, size: int):
    tasks = []
    for idx in range(1, size + 1):
        deps = rng.sample(range(1, idx), min(idx - 1, rng.randint(0, 3)))
        tasks.append(Task(idx, "combine", (idx,) + tuple(f"${d}" for d in deps)))
    return tasks


def test_seeded_random_dags_match_a_serial_reference():
    rng = random.Random(2024)
    with Engine({"combine": combine}, max_workers=16) as engine:
        for _ in range(300):
            tasks = random_dag(rng, rng.choice([1, 2, 5, 20, 100, 500]))
            shuffled = rng.sample(tasks, len(tasks))  # list order must not matter
            result = engine.run(shuffled, timeout=WAIT)
            assert not result.failures
            assert result.observations == _reference(tasks)


def _reference(tasks):
    """The plain serial reference: each task in index order, its references read from a dict."""
    observations = {}
    for task in sorted(tasks, key=lambda t: t.idx):
        inputs = [observations[int(a[1:])] if isinstance(a, str) else a for a in task.args]
        observations[task.idx] = combine(*inputs)
    return observations


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 16])
def test_random_dags_with_every_worker_count(workers):
    rng = random.Random(workers)
    with Engine({"combine": combine}, max_workers=workers) as engine:
        for _ in range(20):
            tasks = random_dag(rng, rng.randint(1, 300))
            assert engine.run(tasks, timeout=WAIT).observations == _reference(tasks)


def test_references_are_resolved_whole_nested_and_in_text():
    seen = {}

    def record(*args, **kwargs):
        seen["call"] = (args, kwargs)
        return "done"

    tools = {"make": lambda: {"n": 7}, "record": record}
    plan = [Task(1, "make"), Task(2, "record", ("$1", "n is $1!", ["${1}", ("$1",)]), {"d": {"k": "$1"}})]
    result = run_tasks(plan, tools, timeout=WAIT)
    assert result.observations[2] == "done"
    args, kwargs = seen["call"]
    assert args == ({"n": 7}, "n is {'n': 7}!", [{"n": 7}, ({"n": 7},)])
    assert kwargs == {"d": {"k": {"n": 7}}}


def test_plan_text_and_seed_dicts_are_accepted():
    tools = {"sleep_next": lambda t: t, "sleep_total": lambda time1=0, time2=0: time1 + time2}
    seed = [
        {"idx": 1, "tool_name": "sleep_next", "args": {"t": 1}, "dependencies": []},
        {"idx": 2, "tool_name": "sleep_next", "args": {"t": 2}, "dependencies": []},
        {"idx": 3, "tool_name": "sleep_total", "args": {"time1": "$1", "time2": "$2"}, "dependencies": [1, 2]},
    ]
    assert run_tasks(seed, tools).observations == {1: 1, 2: 2, 3: 3}
    text = "1. sleep_next(1)\n2. sleep_next(t=2)\n3. sleep_total($1, time2=$2)\n4. join()<END_OF_PLAN>"
    assert run_tasks(text, tools).observations == {1: 1, 2: 2, 3: 3}


def test_a_failure_skips_everything_downstream_and_independent_branches_finish():
    def boom(x):
        raise ValueError(f"bad input {x}")

    tools = {"ok": lambda *a: "ok", "boom": boom}
    plan = [Task(1, "ok"), Task(2, "boom", ("$1",)), Task(3, "ok", ("$2",)), Task(4, "ok", ("$3", "$1")),
            Task(5, "ok", ("$1",))]
    result = run_tasks(plan, tools, timeout=WAIT)
    assert result.observations == {1: "ok", 5: "ok"}
    failure = result.failures[2]
    assert failure.kind == "failed" and failure.error_type == "ValueError"
    assert failure.message == "bad input ok" and "in boom" in failure.traceback
    assert failure.args == ("ok",) and failure.tool == "boom"
    assert isinstance(failure.exception, ValueError)
    assert {i: (f.kind, f.cause) for i, f in result.failures.items() if i != 2} == {
        3: ("skipped", 2), 4: ("skipped", 2)}  # the failed task is the reason, however deep
    assert "skipped: it depends on task 2" in str(result.failures[3])


def test_a_thousand_waiters_do_not_occupy_the_two_workers():
    release = threading.Event()
    tools = {"slow": lambda: release.wait(WAIT) and "slow", "after": lambda x, i: (x, i)}
    plan = [Task(i, "after", ("$1001", i)) for i in range(1, 1001)] + [Task(1001, "slow")]
    with Engine(tools, max_workers=2) as engine:
        run = engine.start(plan)
        run.close()
        next(e for e in run if e.kind == "started")  # bounded: the slow task starts at once
        # Only the slow task runs: the waiters hold no worker while task 1001 blocks.
        started = [e for e in run.result().events if e.kind == "started"]
        assert [e.task for e in started] == [1001]
        release.set()
        result = run.wait(WAIT)
    assert len(result.observations) == 1001 and result.observations[7] == ("slow", 7)


def test_tasks_added_while_running_and_a_forward_dependency():
    gate = threading.Event()
    tools = {"gate": lambda: gate.wait(WAIT) and 1, "inc": lambda x: x + 1}
    with Engine(tools, max_workers=4) as engine:
        run = engine.start([Task(1, "gate")])
        run.add(Task(3, "inc", ("$2",), dependencies=frozenset({2})))  # task 2 not added yet
        run.add(Task(2, "inc", ("$1",)))
        gate.set()
        run.add(Task(4, "inc", ("$3",)))
        run.close()
        result = run.wait(WAIT)
        with pytest.raises(errors.RunClosedError):
            run.add(Task(5, "inc", (1,)))
    assert result.observations == {1: 1, 2: 2, 3: 3, 4: 4}


def test_close_fails_tasks_waiting_on_tasks_never_added_and_cycles():
    tools = {"inc": lambda x: x + 1}
    with Engine(tools) as engine:
        run = engine.start()
        run.add(Task(1, "inc", ("$9",)))
        run.add(Task(2, "inc", ("$1",)))
        run.add(Task(3, "inc", ("$4",)))
        run.add(Task(4, "inc", ("$3",)))
        run.add(Task(5, "inc", (0,)))
        run.close()
        result = run.wait(WAIT)
    assert result.observations == {5: 1}
    assert result.failures[1].kind == "invalid" and "depends on task 9, which is neither" in result.failures[1].message
    assert result.failures[2].kind == "skipped"
    assert isinstance(result.failures[3].exception, errors.CycleError)
    assert "form a cycle" in result.failures[4].message


def test_invalid_input_is_refused_before_anything_runs():
    calls = []
    tools = {"f": lambda x: calls.append(x)}
    with pytest.raises(errors.ToolCallError, match="task 2: f\\(\\) got an unexpected keyword argument 'y'"):
        run_tasks([Task(1, "f", (1,)), Task(2, "f", (), {"y": 1})], tools)
    with pytest.raises(errors.ToolCallError, match="unknown tool 'g'"):
        run_tasks([Task(1, "f", (1,)), Task(2, "g")], tools)
    with pytest.raises(errors.DuplicateTaskError):
        run_tasks([Task(1, "f", (1,)), Task(1, "f", (2,))], tools)
    with pytest.raises(errors.CycleError):
        run_tasks([Task(1, "f", ("$2",)), Task(2, "f", ("$1",))], tools)
    assert calls == []


def test_the_longest_chain_starts_first_when_workers_are_scarce():
    order = []
    tools = {"t": lambda *a: order.append(a[0]) or a[0]}
    # Task 5 heads a chain of three; tasks 1-4 are leaves. One worker: 5 must go first.
    plan = [Task(i, "t", (i,)) for i in range(1, 5)] + [Task(5, "t", (5,)), Task(6, "t", (6, "$5")),
                                                         Task(7, "t", (7, "$6"))]
    run_tasks(plan, tools, max_workers=1, timeout=WAIT)
    assert order[0] == 5 and order[1:5] == [1, 2, 3, 4] or order[:2] == [5, 6]


def test_max_concurrency_is_honoured():
    active, peak, lock = [0], [0], threading.Lock()

    pair = threading.Barrier(2, timeout=WAIT)  # two calls must overlap, or the barrier breaks

    def limited(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        pair.wait()
        with lock:
            active[0] -= 1
        return i

    registry = ToolRegistry()
    registry.register(limited, max_concurrency=2)
    result = run_tasks([Task(i, "limited", (i,)) for i in range(1, 13)], registry, max_workers=8)
    assert len(result.observations) == 12 and peak[0] == 2


def test_retries_with_backoff_for_retryable_errors_only():
    attempts = {"flaky": 0, "fatal": 0}

    def flaky():
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ConnectionError("try again")
        return "ok"

    def fatal():
        attempts["fatal"] += 1
        raise KeyError("no")

    registry = ToolRegistry()
    registry.register(flaky, retries=3, backoff=0.001, retry_on=ConnectionError)
    registry.register(fatal, retries=3, backoff=0.001, retry_on=ConnectionError)
    result = run_tasks([Task(1, "flaky"), Task(2, "fatal")], registry, timeout=WAIT)
    assert result.observations == {1: "ok"} and attempts == {"flaky": 3, "fatal": 1}
    assert [e.kind for e in result.events if e.task == 1].count("retrying") == 2


def stuck_until(release: threading.Event, returned: threading.Event):
    """A tool that blocks until ``release`` is set, and says when it has returned."""
    def stuck():
        try:
            return release.wait(WAIT)
        finally:
            returned.set()
    return stuck


def test_a_thread_tool_past_its_timeout_is_abandoned_and_its_dependents_skip():
    release, returned = threading.Event(), threading.Event()
    registry = ToolRegistry()
    registry.register(stuck_until(release, returned), name="stuck", timeout=0.05)
    registry.register(lambda *a: "ok", name="ok")
    with Engine(registry) as engine:
        result = engine.run([Task(1, "stuck"), Task(2, "ok", ("$1",)), Task(3, "ok")], timeout=WAIT)
        assert not returned.is_set()  # the run ended while the abandoned call still blocks
        release.set()  # let the abandoned thread return so the engine can close cleanly
    assert result.failures[1].kind == "timeout" and result.failures[2].kind == "skipped"
    assert result.observations == {3: "ok"}


@pytest.mark.parametrize("workers", [1, 2])
def test_abandoned_calls_do_not_keep_the_workers_other_tasks_need(workers):
    """Found by ``make stress``: with as many abandoned (timed-out) thread calls as thread workers,
    the tasks after them were never started and the run hung."""
    release = threading.Event()
    registry = ToolRegistry()
    registry.register(lambda i: release.wait(WAIT), name="stuck", timeout=0.05)
    registry.register(lambda *a: a[0], name="ok")
    plan = [Task(i, "stuck", (i,)) for i in range(1, workers + 1)]
    plan += [Task(10, "ok", (10,)), Task(11, "ok", (11, "$10")), Task(12, "ok", (12, "$1"))]
    try:
        with Engine(registry, max_workers=workers) as engine:
            result = engine.run(plan, timeout=10)  # a hang fails the test after 10 s
    finally:
        release.set()
    assert {i: f.kind for i, f in result.failures.items()} == {
        **{i: "timeout" for i in range(1, workers + 1)}, 12: "skipped"}
    assert result.observations == {10: 10, 11: 11}


def test_cancel_keeps_what_was_observed():
    gate = threading.Event()
    tools = {"quick": lambda: "q", "blocked": lambda: gate.wait(WAIT), "after": lambda x: x}
    with Engine(tools) as engine:
        run = engine.start([Task(1, "quick"), Task(2, "blocked"), Task(3, "after", ("$2",))])
        run.close()
        for event in run:
            if event.kind == "finished" and event.task == 1:
                break
        run.cancel()
        result = run.wait(WAIT)
        gate.set()
    assert result.cancelled and result.observations == {1: "q"}
    assert {i: f.kind for i, f in result.failures.items()} == {2: "cancelled", 3: "cancelled"}


def test_events_are_complete_ordered_and_delivered_to_the_callback():
    seen = []
    tools = {"f": lambda *a: 1, "bad": lambda: 1 / 0}
    result = run_tasks([Task(1, "f"), Task(2, "f", ("$1",)), Task(3, "bad"), Task(4, "f", ("$3",))],
                       tools, on_event=seen.append)
    assert seen == result.events
    kinds = {(e.task, e.kind) for e in result.events}
    assert {(1, "queued"), (1, "started"), (1, "finished"), (3, "failed"), (4, "skipped")} <= kinds
    times = [e.time for e in result.events]
    assert times == sorted(times)
    assert all(e.worker for e in result.events if e.kind == "started")
    per_task = [e.kind for e in result.events if e.task == 2]
    assert per_task == ["queued", "started", "finished"]


def test_iterating_a_run_yields_events_as_they_happen():
    tools = {"f": lambda x: x}
    with Engine(tools) as engine:
        run = engine.start([Task(i, "f", (i,)) for i in range(1, 6)])
        run.close()
        finished = sorted(e.task for e in run if e.kind == "finished")
    assert finished == [1, 2, 3, 4, 5]


def test_known_observations_from_an_earlier_plan_can_be_referenced():
    tools = {"add": lambda a, b: a + b}
    with Engine(tools) as engine:
        first = engine.run([Task(1, "add", (1, 2))])
        second = engine.run("2. add($1, 10)", known=first.observations)
    assert second.observations == {2: 13}


def test_the_callback_may_add_tasks_without_deadlock():
    tools = {"f": lambda x: x}
    with Engine(tools) as engine:
        holder = {}

        def on_event(event):
            if event.kind == "finished" and event.task == 1:
                holder["run"].add(Task(2, "f", ("$1",)))
                holder["run"].close()

        run = holder["run"] = engine.start(on_event=on_event)
        run.add(Task(1, "f", ("x",)))
        assert run.wait(WAIT).observations == {1: "x", 2: "x"}


def test_concurrent_runs_on_one_engine_stay_apart():
    tools = {"combine": combine}
    rng = random.Random(5)
    plans = [random_dag(rng, 200) for _ in range(4)]
    results = {}
    with Engine(tools, max_workers=8) as engine:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, engine.run(plans[i])))
                   for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert all(results[i].observations == _reference(plans[i]) for i in range(4))


def test_run_timeout_cancels_and_carries_the_partial_result():
    gate = threading.Event()
    tools = {"quick": lambda: 1, "blocked": lambda: gate.wait(WAIT)}
    with Engine(tools) as engine:
        with pytest.raises(errors.RunTimeoutError) as caught:
            engine.run([Task(1, "quick"), Task(2, "blocked")], timeout=0.2)
        gate.set()
    assert isinstance(caught.value.result, RunResult)
    assert caught.value.result.observations == {1: 1}


def test_a_closed_engine_refuses_new_runs_and_close_is_idempotent():
    engine = Engine({"f": lambda: 1})
    assert engine.run([Task(1, "f")]).observations == {1: 1}
    engine.close()
    engine.close()
    with pytest.raises(errors.RunClosedError):
        engine.run([Task(1, "f")])


def test_default_thread_workers_are_sized_for_io():
    active, peak, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(32, timeout=WAIT)

    def wait_for_all(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        barrier.wait()
        return i

    result = run_tasks([Task(i, "w", (i,)) for i in range(1, 33)], {"w": wait_for_all}, timeout=WAIT)
    assert len(result.observations) == 32 and peak[0] == 32


def test_a_failing_event_callback_does_not_stall_the_run():
    def broken(event):
        if event.kind == "finished":
            raise RuntimeError("callback broke")

    tools = {"f": lambda x: x}
    with Engine(tools) as engine:
        run = engine.start([Task(1, "f", (1,)), Task(2, "f", ("$1",))], on_event=broken)
        run.close()
        with pytest.raises(RuntimeError, match="callback broke"):
            run.wait(WAIT)
        assert run.result().observations == {1: 1, 2: 1}


def test_close_does_not_wait_for_an_abandoned_thread_call():
    release, returned = threading.Event(), threading.Event()
    registry = ToolRegistry()
    registry.register(stuck_until(release, returned), name="stuck", timeout=0.05)
    engine = Engine(registry)
    try:
        result = engine.run([Task(1, "stuck")], timeout=WAIT)
        assert result.failures[1].kind == "timeout"
        engine.close()  # the stuck call still runs: close must not wait for it
        assert not returned.is_set()  # close returned before the call did
    finally:
        release.set()  # the abandoned call returns; its thread then exits (checked by no_leaks)


def test_a_run_leaves_no_thread_behind():
    before = set(threading.enumerate())
    failing = {"ok": lambda: 1, "bad": lambda: 1 / 0}
    run_tasks([Task(1, "ok"), Task(2, "bad"), Task(3, "ok")], failing, timeout=WAIT)
    with Engine(failing) as engine:
        engine.run([Task(1, "ok")], timeout=WAIT)
    assert set(threading.enumerate()) == before


def test_a_usually_quick_tool_that_blocks_does_not_hold_back_waiting_tasks():
    released = threading.Event()

    def call(kind, *after):
        if kind == "block":  # quick every time before: now it waits for the task queued behind it
            return released.wait(WAIT)
        if kind == "release":
            released.set()
        return kind

    plan = [Task(1, "call", ("quick",))] + [Task(i, "call", ("quick", f"${i - 1}")) for i in range(2, 41)]
    plan += [Task(41, "call", ("block", "$40")), Task(42, "call", ("release", "$40"))]
    result = run_tasks(plan, {"call": call}, max_workers=4, timeout=WAIT)
    # True only if task 42 ran while task 41 blocked; held back, 41 would time out its wait (False).
    assert result.observations[41] is True and result.observations[42] == "release"
