"""Tests of ``await LLMCompiler.arun(question)``: the same loop as ``run``, never blocking the caller's event
loop, and cancelled with the awaiting task.

"The loop is free" is shown by events: a tool waits for a ticker coroutine on the caller's loop to tick,
so an ``arun`` that blocked its loop would leave the tool waiting (and the test failing).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

import faults_fixture_tools
from llmcompiler.compiler import LLMCompiler
from llmcompiler.errors import JoinerOutputError, LLMError
from llmcompiler.llm import ScriptedLLM
from llmcompiler.tools import ToolRegistry

WAIT = 5  # seconds any test waits for an event at most
FINISH = "Thought: done.\nAction: Finish(the answer)"


def search(query: str) -> str:
    """Look something up."""
    return f"found({query})"


async def _ticker(armed: threading.Event, ticked: threading.Event) -> None:
    """Once ``armed``, tick every few ms on the loop; set ``ticked`` after five ticks."""
    ticks = 0
    while True:
        await asyncio.sleep(0.002)
        if armed.is_set():
            ticks += 1
            if ticks >= 5:
                ticked.set()


def test_arun_answers_and_the_loop_keeps_ticking_while_tools_run():
    armed, ticked = threading.Event(), threading.Event()

    def gate() -> str:
        """Opens once the caller's event loop has ticked."""
        armed.set()
        return "opened" if ticked.wait(timeout=WAIT) else "the loop was blocked"

    llm = ScriptedLLM(['1. gate()\n2. search($1)\njoin()<END_OF_PLAN>', FINISH], delay=0.001)

    async def main(compiler):
        ticker = asyncio.ensure_future(_ticker(armed, ticked))
        try:
            return await compiler.arun("q?")
        finally:
            ticker.cancel()

    with LLMCompiler(llm, [gate, search]) as compiler:
        result = asyncio.run(main(compiler))
    assert result.answer == "the answer" and result.complete
    assert result.observations == {1: "opened", 2: "found(opened)"}


def test_arun_and_run_give_the_same_result():
    plan = '1. search("a")\n2. search("b $1")\njoin()'
    replan = "Action: Replan(more)"
    plan_2 = '3. search("c $2")\njoin()'
    results = []
    for runner in ("run", "arun"):
        llm = ScriptedLLM([plan, replan, plan_2, FINISH])
        with LLMCompiler(llm, [search]) as compiler:
            if runner == "run":
                results.append(compiler.run("q?"))
            else:
                results.append(asyncio.run(compiler.arun("q?")))
    sync, async_ = results
    assert sync.observations == async_.observations == {1: "found(a)", 2: "found(b found(a))",
                                                        3: "found(c found(b found(a)))"}
    assert sync.plans == async_.plans and sync.answer == async_.answer == "the answer"
    assert [r.replan_reason for r in sync.rounds] == [r.replan_reason for r in async_.rounds]


def _cancelled_tools():
    started, release = threading.Event(), threading.Event()
    ran_after = []

    def hold() -> str:
        """Blocks until released."""
        started.set()
        release.wait(timeout=WAIT)
        return "held"

    def after(value: str) -> str:
        """Must never run once the question is cancelled."""
        ran_after.append(value)
        return value

    registry = ToolRegistry([hold, after])
    registry.register(faults_fixture_tools.nap, executor="process")
    return registry, started, release, ran_after


@pytest.mark.parametrize("while_", ["tools run", "the plan streams"])
def test_cancelling_the_awaiting_task_cancels_the_run(while_):
    registry, started, release, ran_after = _cancelled_tools()
    if while_ == "tools run":
        llm = ScriptedLLM(['1. nap(30)\n2. hold()\n3. after($2)\njoin()<END_OF_PLAN>', FINISH])
    else:  # the last line comes only after a long pause
        llm = PausingPlanner(['1. nap(30)\n2. hold()\n', '3. after($2)\njoin()<END_OF_PLAN>'], FINISH)
    events, added = [], []

    async def main(compiler):
        answering = asyncio.ensure_future(compiler.arun("q?", on_event=events.append,
                                                        on_task=lambda task: added.append(task.idx)))
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, WAIT)
        answering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await answering

    try:
        with LLMCompiler(llm, registry) as compiler:
            asyncio.run(main(compiler))
    finally:
        release.set()
    cancelled = {event.task for event in events if event.kind == "cancelled"}
    ended = {event.task for event in events if event.kind in ("finished", "failed", "cancelled", "skipped")}
    assert {1, 2} <= cancelled and ran_after == []
    assert {event.task for event in events if event.kind == "started"} <= ended  # nothing left running
    assert llm.remaining == 1  # the joiner was never asked
    assert added == ([1, 2, 3] if while_ == "tools run" else [1, 2])
    if while_ == "the plan streams":
        assert llm.closed  # the planner's stream was closed, not left waiting


class PausingPlanner:
    """Streams the first chunk of the plan at once and the rest only after a long pause."""

    def __init__(self, plan, verdict):
        self.answers, self.closed = [plan, [verdict]], False

    @property
    def remaining(self):
        return len(self.answers)

    async def astream(self, messages):
        first, *rest = self.answers.pop(0)
        try:
            yield first
            for chunk in rest:
                await asyncio.sleep(30)
                yield chunk
        finally:
            self.closed = True

    def stream(self, messages):  # pragma: no cover - arun uses astream
        raise AssertionError("stream() must not be used by arun")


def test_arun_errors_carry_the_partial_result():
    llm = ScriptedLLM(['1. search("a")\njoin()', "I think it is 42."])
    with LLMCompiler(llm, [search]) as compiler:
        with pytest.raises(JoinerOutputError) as caught:
            asyncio.run(compiler.arun("q?"))
    partial = caught.value.result
    assert not partial.complete and partial.observations == {1: "found(a)"}
    assert partial.rounds[0].joiner == "I think it is 42."


def test_arun_with_a_model_that_only_streams():
    class StreamOnly:
        model = "stream-only"

        def __init__(self, answers):
            self.answers = list(answers)

        def stream(self, messages):
            yield from [self.answers.pop(0)]

    with LLMCompiler(StreamOnly(['1. search("x")\njoin()', FINISH]), [search]) as compiler:
        result = asyncio.run(compiler.arun("q?"))
    assert result.answer == "the answer" and result.observations == {1: "found(x)"}


def test_arun_model_failure_mid_plan_cancels_and_raises():
    class Failing:
        async def astream(self, messages):
            yield '1. search("a")\n'
            raise LLMError("connection lost")

        def stream(self, messages):  # pragma: no cover - arun uses astream
            raise AssertionError("stream() must not be used by arun")

    with LLMCompiler(Failing(), [search]) as compiler:
        with pytest.raises(LLMError, match="connection lost") as caught:
            asyncio.run(compiler.arun("q?"))
    assert sorted(caught.value.result.tasks) == [1]


class RoleModel:
    """Answers by what it is asked, so any question can start afresh: plan 1, a replan, plan 2, finish."""

    async def astream(self, messages):
        system, user = messages[0]["content"], messages[-1]["content"]
        if "join()<END_OF_PLAN>" in system:
            plan = ('1. search("a")\n2. pause($1)\n3. search("$2")\njoin()' if "numbering at 1." in user
                    else '4. pause("b")\n5. search($4)\njoin()')
            for line in plan.splitlines(keepends=True):
                await asyncio.sleep(0)
                yield line
        else:
            yield FINISH if "Plan 2:" in user else "Action: Replan(more)"

    def stream(self, messages):  # pragma: no cover - arun uses astream
        raise AssertionError("stream() must not be used by arun")


@pytest.mark.parametrize("cancel_after", [1, 3, 6, 9, 12, 100])
def test_cancelling_at_any_event_ends_cleanly_and_the_engine_goes_on(cancel_after):
    """Cancel the awaiting task at the n-th scheduler event (or never, past the last): the question
    either ends with CancelledError or answers; every task that started has ended; the same compiler
    then answers the next question."""
    def pause(text: str) -> str:
        """A short call."""
        threading.Event().wait(0.005)
        return text

    events = []

    async def main(compiler):
        loop = asyncio.get_running_loop()
        answering = None

        def on_event(event):
            events.append(event)
            if len(events) == cancel_after:
                loop.call_soon_threadsafe(answering.cancel)

        answering = asyncio.ensure_future(compiler.arun("q?", on_event=on_event))
        try:
            return await answering
        except asyncio.CancelledError:
            return None

    with LLMCompiler(RoleModel(), [search, pause]) as compiler:
        result = asyncio.run(main(compiler))
        started = {e.task for e in events if e.kind == "started"}
        ended = {e.task for e in events if e.kind in ("finished", "failed", "cancelled", "skipped")}
        assert started <= ended
        again = asyncio.run(compiler.arun("next?"))
    assert again.answer == "the answer" and again.observations[5] == "found(b)"
    if cancel_after > len(events):  # never cancelled
        assert result is not None
    if cancel_after <= len(events) // 2:  # cancelled well before the end: no answer
        assert result is None
    if result is not None:  # not cancelled, or cancelled too late to matter
        assert result.observations == again.observations and result.answer == "the answer"
