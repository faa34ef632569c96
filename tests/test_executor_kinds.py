"""One contract, run against every executor kind a tool can name: "thread", "process" and "async"
(and, where observations travel, against both stores).

Each case states what a user of any kind may rely on: references are filled in, a tool's exception fails
its task and skips its dependents, a timeout fails the task and the run goes on, retries retry, cancel
keeps what was observed, and kinds mix in one run. The "async" kind is skipped, with the reason, while
the engine does not run ``async def`` tools.
"""

from __future__ import annotations

import functools

import pytest

from llmcompiler import Engine, parse_plan
from llmcompiler.errors import ToolDefinitionError
from llmcompiler.tools import ToolRegistry

import contract_fixture_tools as fx

WAIT = 60
KINDS = ["thread", "process", "async"]


@functools.lru_cache(maxsize=None)
def async_unsupported() -> str:
    """Why the engine cannot run ``async def`` tools here, or "" when it can (probed once)."""
    registry = ToolRegistry()
    try:
        registry.register(fx.add_async, name="add", executor="async")
    except ToolDefinitionError as err:
        return f"the registry refuses executor='async' ({err})"
    with Engine(registry) as engine:
        result = engine.run("1. add(1, 2)", timeout=WAIT)
    observed = result.observations.get(1)
    if hasattr(observed, "close") and hasattr(observed, "cr_code"):
        observed.close()  # never awaited: close it so no RuntimeWarning is left behind
        return "the engine calls async def tools as plain functions (the observation is a coroutine)"
    return ""


def tools_for(kind: str, **options) -> ToolRegistry:
    """The contract's tools, every one registered with ``executor=kind``, plus one thread tool ``inc``.
    ``options`` maps a tool name to extra registration options (timeout, retries, ...)."""
    if kind == "async" and async_unsupported():
        pytest.skip(f"async tools: {async_unsupported()}")
    functions = fx.ASYNC if kind == "async" else fx.SYNC
    registry = ToolRegistry()
    for name, func in functions.items():
        registry.register(func, name=name, executor=kind, **options.get(name, {}))
    registry.register(lambda x: x + 1, name="inc")
    return registry


@pytest.fixture(autouse=True)
def closed_gate():
    fx.GATE.clear()
    yield
    fx.GATE.set()  # an abandoned thread call returns now; the leak check then sees its thread end


@pytest.mark.parametrize("store", ["local", "manager"])
@pytest.mark.parametrize("kind", KINDS)
def test_references_are_filled_in_whole_and_in_text(kind, store):
    plan = '1. add(1, 2)\n2. add($1, 10)\n3. join_text("got $2", $1, [$2])\njoin()'
    with Engine(tools_for(kind), process_workers=2, store=store) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert result.observations == {1: 3, 2: 13, 3: "got 13 | 3 | [13]"}
    assert not result.failures


@pytest.mark.parametrize("store", ["local", "manager"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_raising_tool_fails_its_task_and_skips_its_dependents(kind, store):
    plan = '1. add(1, 1)\n2. fail("no such city")\n3. add($2, 1)\n4. join_text($3, $1)\n5. add($1, 5)'
    with Engine(tools_for(kind), process_workers=2, store=store) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert result.observations == {1: 2, 5: 7}
    failure = result.failures[2]
    assert (failure.kind, failure.error_type, failure.message) == ("failed", "ValueError", "no such city")
    assert {i: (f.kind, f.cause) for i, f in result.failures.items() if i != 2} == {
        3: ("skipped", 2), 4: ("skipped", 2)}


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_past_its_timeout_fails_and_the_run_goes_on(kind):
    registry = tools_for(kind, hang={"timeout": 0.2})
    plan = "1. hang(120)\n2. inc($1)\n3. add(2, 3)\n4. inc($3)"
    with Engine(registry, process_workers=2) as engine:
        result = engine.run(plan, timeout=WAIT)
        again = engine.run("1. add(4, 4)", timeout=WAIT)  # the kind still serves after a timeout
    assert result.failures[1].kind == "timeout" and "0.2" in result.failures[1].message
    assert result.failures[2].kind == "skipped" and result.failures[2].cause == 1
    assert result.observations == {3: 5, 4: 6}
    assert again.observations == {1: 8}


@pytest.mark.parametrize("kind", KINDS)
def test_a_retryable_error_is_retried(kind, tmp_path):
    options = {"flaky": {"retries": 2, "retry_on": ConnectionError, "backoff": 0.001},
               "fail": {"retries": 2, "retry_on": ConnectionError, "backoff": 0.001}}
    marker = str(tmp_path / "called-once")
    plan = f"1. flaky({marker!r})\n2. fail('not retryable')"
    with Engine(tools_for(kind, **options), process_workers=2) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert result.observations == {1: "ok"}
    retried = [e.task for e in result.events if e.kind == "retrying"]
    assert retried == [1]  # once for the ConnectionError; never for the ValueError
    assert result.failures[2].kind == "failed"


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_ends_the_run_and_keeps_what_was_observed(kind):
    with Engine(tools_for(kind), process_workers=2) as engine:
        run = engine.start(parse_plan("1. add(1, 2)\n2. hang(120)\n3. inc($2)"))
        run.close()
        seen = set()
        for event in run:  # a submitted call's start is stamped by its worker, known when it ends:
            seen.add((event.kind, event.task))  # "submitted" is what is known while it runs
            if ("finished", 1) in seen and seen & {("started", 2), ("submitted", 2)}:
                break
        run.cancel()
        result = run.wait(WAIT)
    assert result.cancelled and result.observations == {1: 3}
    assert {i: f.kind for i, f in result.failures.items()} == {2: "cancelled", 3: "cancelled"}


@pytest.mark.parametrize("kind", KINDS)
def test_many_tasks_through_few_workers_and_mixed_with_thread_tools(kind):
    lines = [f"{i}. add({i}, {i})" for i in range(1, 31)]
    lines.append("31. join_text(" + ", ".join(f"${i}" for i in range(1, 31)) + ")")
    lines.append("32. inc($30)")  # a thread tool after a tool of this kind
    lines.append("33. add($32, 1)")  # and this kind after the thread tool
    with Engine(tools_for(kind), max_workers=2, process_workers=2) as engine:
        result = engine.run("\n".join(lines), timeout=WAIT)
    assert result.observations[31] == " | ".join(str(2 * i) for i in range(1, 31))
    assert result.observations[32] == 61 and result.observations[33] == 62
    assert len(result.observations) == 33


def test_async_def_tools_run_concurrently_on_the_loop_not_one_per_thread():
    """200 coroutines are all inside the tool at once even with 2 thread workers: they share the
    engine's event loop. Counted, not timed: run one after another, the peak would be 1."""
    if async_unsupported():
        pytest.skip(f"async tools: {async_unsupported()}")
    fx.ACTIVE.update(now=0, peak=0)
    registry = ToolRegistry()
    registry.register(fx.gather_point)  # an async def: the "async" executor by default
    plan = "\n".join(f"{i}. gather_point(200, 20)" for i in range(1, 201))
    with Engine(registry, max_workers=2) as engine:
        result = engine.run(plan, timeout=WAIT)
    assert not result.failures
    assert fx.ACTIVE["peak"] == 200 and set(result.observations.values()) == {200}
