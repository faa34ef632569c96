"""Tests of what the compiler loop hands back: partial results on every error raised after tools ran, values
that do not print cleanly, the planner and joiner as different models with usage per model, one call
cache per question, and logging that never shows an API key.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import traceback

import pytest

from llm_server import DONE, KEY, delta, no_openai_environment, server, start, write_pieces  # noqa: F401
from llmcompiler.compiler import LLMCompiler
from llmcompiler.engine import Engine
from llmcompiler.errors import JoinerOutputError, LLMConnectionError, LLMError, RunTimeoutError
from llmcompiler.llm import ScriptedLLM, Usage
from llmcompiler.openai_chat import OpenAIChat
from llmcompiler.results import RunInterrupted
from llmcompiler.tools import ToolRegistry

WAIT = 5
FINISH = "Thought: done.\nAction: Finish(the answer)"


def search(query: str) -> str:
    """Look something up."""
    return f"found({query})"


def broken(text: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot handle {text!r}")


class MeteredLLM(ScriptedLLM):
    """A scripted model that reports usage like OpenAIChat (a new ``last_usage`` per call), by name."""

    def __init__(self, responses, model="scripted", per_call=Usage(100, 10, 110)):
        super().__init__(responses)
        self.model, self.per_call, self.last_usage = model, per_call, None

    def stream(self, messages):
        yield from super().stream(messages)
        self.last_usage = Usage(self.per_call.prompt_tokens, self.per_call.completion_tokens,
                                self.per_call.total_tokens)


class FailingAfter:
    """Streams scripted answers; answer ``fail_at`` (0-based) raises ``error`` after its chunks."""

    def __init__(self, answers, fail_at, error):
        self.answers, self.fail_at, self.error, self.calls = list(answers), fail_at, error, 0

    def stream(self, messages):
        number, self.calls = self.calls, self.calls + 1
        yield from self.answers[number]
        if number == self.fail_at:
            raise self.error


# -- nothing computed is lost ----------------------------------------------------------------------


def test_an_unreadable_joiner_answer_carries_everything_computed():
    llm = MeteredLLM(['1. search("a")\n2. broken("b")\njoin()', "I think it is 42."])
    with LLMCompiler(llm, [search, broken]) as compiler:
        with pytest.raises(JoinerOutputError) as caught:
            compiler.run("q?")
    partial = caught.value.result
    assert not partial.complete and partial.answer is None and not partial.replans_exhausted
    assert partial.plans == ['1. search("a")\n2. broken("b")\njoin()']
    assert partial.observations == {1: "found(a)"} and partial.failures[2].kind == "failed"
    assert sorted(partial.tasks) == [1, 2] and {event.task for event in partial.events} == {1, 2}
    assert partial.rounds[0].joiner == "I think it is 42."
    assert partial.timings.planning > 0 and partial.timings.joining > 0 and partial.timings.total > 0
    assert partial.usage == Usage(200, 20, 220)


def test_a_joiner_call_that_fails_carries_the_result():
    llm = ScriptedLLM(['1. search("a")\njoin()'])  # nothing left for the joiner: LLMError
    with LLMCompiler(llm, [search]) as compiler:
        with pytest.raises(LLMError, match="no response left") as caught:
            compiler.run("q?")
    assert caught.value.result.observations == {1: "found(a)"}
    assert caught.value.result.rounds[0].joining_finished is None


def test_a_replan_whose_model_fails_carries_both_plans():
    answers = ['1. search("a")\njoin()', "Action: Replan(more)", ['2. search("b")\n']]
    llm = FailingAfter(answers, fail_at=2, error=LLMConnectionError("connection lost"))
    with LLMCompiler(llm, [search]) as compiler:
        with pytest.raises(LLMConnectionError) as caught:
            compiler.run("q?")
    partial = caught.value.result
    assert [round_.number for round_ in partial.rounds] == [1, 2]
    assert partial.rounds[0].replan_reason == "more"
    assert sorted(partial.tasks) == [1, 2] and partial.observations[1] == "found(a)"
    assert 2 in partial.observations or partial.failures[2].kind == "cancelled"


def test_an_interrupt_becomes_run_interrupted_with_the_result():
    finished = threading.Event()

    class InterruptedPlanner:
        def stream(self, messages):
            yield '1. search("a")\n'
            assert finished.wait(timeout=WAIT)
            raise KeyboardInterrupt

    def on_event(event):
        if event.kind == "finished":
            finished.set()

    with LLMCompiler(InterruptedPlanner(), [search]) as compiler:
        with pytest.raises(RunInterrupted) as caught:
            compiler.run("q?", on_event=on_event)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.result.observations == {1: "found(a)"} and not caught.value.result.complete


def test_a_run_that_will_not_end_raises_run_timeout_with_the_result(monkeypatch):
    llm = ScriptedLLM(['1. search("a")\njoin()', FINISH])
    with LLMCompiler(llm, [search], execution_timeout=0.01) as compiler:
        start_run = compiler.engine.start

        def stuck(*args, **kwargs):
            run = start_run(*args, **kwargs)
            run.wait = lambda timeout=None: (_ for _ in ()).throw(RunTimeoutError("the run is stuck"))
            return run

        monkeypatch.setattr(compiler.engine, "start", stuck)
        with pytest.raises(RunTimeoutError, match="stuck") as caught:
            compiler.run("q?")
    partial = caught.value.result
    assert isinstance(caught.value, TimeoutError) and sorted(partial.tasks) == [1]
    assert not partial.complete and llm.remaining == 1


# -- values that do not print cleanly ----------------------------------------------------------------


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


def hazards() -> ToolRegistry:
    def long_text() -> str:
        """100 MB of text."""
        return "x" * 100_000_000

    def huge_int() -> int:
        """An int of 5,001 digits."""
        return 10 ** 5000

    def unprintable() -> object:
        """An object whose str and repr raise."""
        return Unprintable()

    def recursive() -> list:
        """A list that contains itself."""
        found = [1]
        found.append(found)
        return found

    def loud_failure() -> str:
        """Fails with a 10 MB message."""
        raise ValueError("e" * 10_000_000)

    return ToolRegistry([long_text, huge_int, unprintable, recursive, loud_failure, search])


def test_values_that_do_not_print_are_shown_shortened_and_kept_whole():
    plan = "1. long_text()\n2. huge_int()\n3. unprintable()\n4. recursive()\n5. loud_failure()\njoin()"
    llm = ScriptedLLM([plan, "Action: Replan(check)", '6. search("more")\njoin()', FINISH])
    with LLMCompiler(llm, hazards(), max_replans=1, observation_limit=500) as compiler:
        result = compiler.run("q?")
    assert result.answer == "the answer"
    observations = result.observations
    assert len(observations[1]) == 100_000_000 and observations[2] == 10 ** 5000
    assert isinstance(observations[3], Unprintable) and observations[4][1] is observations[4]
    prompts = [call[-1]["content"] for call in llm.calls[1:]]  # joiner, planner (replan), joiner
    for prompt in prompts:
        assert len(prompt) < 10_000
        lines = {line.split(".", 1)[0]: line for line in prompt.splitlines() if line[:1].isdigit()}
        assert "more characters" in lines["1"] and lines["2"].startswith("2. huge_int() -> 10000")
        assert "<unprintable Unprintable" in lines["3"] and "[1, [...]]" in lines["4"]
        assert lines["5"].startswith("5. loud_failure() failed: ValueError: eeee") and len(lines["5"]) < 600


# -- planner and joiner --------------------------------------------------------------------------------


def test_the_planner_and_the_joiner_may_be_different_models():
    planner = MeteredLLM(['1. search("a")\njoin()', '2. search("b")\njoin()'], model="big")
    joiner = MeteredLLM(["Action: Replan(more)", FINISH], model="small", per_call=Usage(50, 5, 55))
    with LLMCompiler(planner, [search], joiner_llm=joiner) as compiler:
        result = compiler.run("q?")
    assert result.answer == "the answer" and result.observations == {1: "found(a)", 2: "found(b)"}
    assert all("join()<END_OF_PLAN>" in call[0]["content"] for call in planner.calls)
    assert all("Action: Finish(" in call[0]["content"] for call in joiner.calls)
    assert len(planner.calls) == len(joiner.calls) == 2
    assert result.usage_by_model == {"big": Usage(200, 20, 220), "small": Usage(100, 10, 110)}
    assert result.usage == Usage(300, 30, 330)


def test_one_model_for_both_reports_its_usage_once():
    llm = MeteredLLM(['1. search("a")\njoin()', FINISH], model="only")
    with LLMCompiler(llm, [search]) as compiler:
        result = compiler.run("q?")
    assert result.usage_by_model == {"only": Usage(200, 20, 220)} and result.usage == Usage(200, 20, 220)


def test_a_joiner_without_stream_is_refused():
    with pytest.raises(TypeError, match="joiner_llm must have a stream"):
        LLMCompiler(ScriptedLLM([]), [search], joiner_llm=object())


# -- one call cache per question -----------------------------------------------------------------------


class RecordingEngine(Engine):
    """An engine that records the cache each run is started with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.caches = []

    def start(self, tasks=(), *, on_event=None, known=None, cache=None):
        self.caches.append(cache)
        return super().start(tasks, on_event=on_event, known=known)


def test_every_run_of_a_question_shares_one_cache_and_questions_do_not():
    script = ['1. search("a")\njoin()', "Action: Replan(more)", '2. search("a")\njoin()', FINISH]
    with RecordingEngine([search]) as engine:
        compiler = LLMCompiler(ScriptedLLM(script * 2), engine=engine)
        compiler.run("first?")
        compiler.run("second?")
    first, second, third, fourth = engine.caches
    assert first is not None and first is second and third is fourth and first is not third


@pytest.mark.skipif("cache" not in inspect.signature(Engine.start).parameters
                    or "cache" not in inspect.signature(ToolRegistry.register).parameters,
                    reason="Engine.start(cache=...) or register(..., cache=True) has not landed in this tree yet")
def test_a_replan_asking_again_for_a_cacheable_call_answers_from_the_cache():
    calls = []

    def lookup(query: str) -> str:
        """Counts its calls."""
        calls.append(query)
        return f"looked up {query}"

    registry = ToolRegistry()
    registry.register(lookup, cache=True)
    script = ['1. lookup("a")\njoin()', "Action: Replan(more)", '2. lookup("a")\njoin()', FINISH]
    with LLMCompiler(ScriptedLLM(script), registry) as compiler:
        result = compiler.run("q?")
    assert calls == ["a"] and result.observations == {1: "looked up a", 2: "looked up a"}
    assert [event.task for event in result.events if event.kind == "finished" and event.cached] == [2]


# -- logging -------------------------------------------------------------------------------------------


def test_logs_tell_the_story_and_never_show_the_key(server, caplog):
    answers = ['1. search("a")\n2. search("b")\njoin()<END_OF_PLAN>', "Action: Replan(more)",
               '3. search("c")\njoin()<END_OF_PLAN>', FINISH]

    def respond(handler):
        echo = handler.headers["Authorization"]  # a careless server showing the key back
        if len(handler.server.requests) in (1, 3):  # the first planner call and the joiner fail once
            start(handler, 503, "application/json")
            handler.wfile.write(json.dumps({"error": {"message": f"busy; you sent {echo}"}}).encode())
            return
        start(handler)
        write_pieces(handler, [delta(answers.pop(0)), DONE])

    server.respond = respond
    llm = OpenAIChat("m", base_url=server.url, api_key=KEY, retry_wait=0.001)
    with caplog.at_level(logging.DEBUG, logger="llmcompiler"):
        with LLMCompiler(llm, [search]) as compiler:
            result = compiler.run("q?")
        bad = OpenAIChat("m", base_url=server.url, api_key=KEY, retries=0)
        server.respond = lambda handler: (start(handler, 401, "application/json"),
                                          handler.wfile.write(json.dumps({"error": {
                                              "message": f"bad key {handler.headers['Authorization']}"}}).encode()))
        with LLMCompiler(bad, [search]) as compiler:
            with pytest.raises(LLMError) as caught:
                compiler.run("q?")
    assert result.answer == "the answer"
    texts = [record.getMessage() + repr(record.args) + (record.exc_text or "") for record in caplog.records]
    assert all(KEY not in text for text in texts)
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + repr(caught.value.result)
    assert KEY not in shown and "bad key Bearer ***" in shown
    levels = {(record.name, record.levelname) for record in caplog.records}
    assert ("llmcompiler.llm", "WARNING") in levels and ("llmcompiler.compiler", "DEBUG") in levels
    messages = [record.getMessage() for record in caplog.records if record.levelname == "INFO"]
    assert messages[0] == "question: q?" and any(m.startswith("replanning after plan 1") for m in messages)
    assert any(m.startswith("answered after 2 plan(s)") for m in messages)


def test_a_task_whose_arguments_are_huge_is_shown_shortened():
    from llmcompiler.plan import Task
    from llmcompiler.prompts import joiner_messages
    from llmcompiler.results import RunResult
    from llmcompiler.rounds import Round

    round_ = Round(1, 1, tasks=[Task(1, "count", (10 ** 5000,)), Task(2, "echo", ("x" * 50_000,))])
    round_.result = RunResult({1: 10 ** 5000, 2: "y" * 50_000}, {}, [], {})
    prompt = joiner_messages("q?", [round_], last=True, observation_limit=300)[1]["content"]
    lines = {line[:2]: line for line in prompt.splitlines() if line[:1].isdigit()}
    assert lines["1."].startswith("1. count(") and "-> 1000" in lines["1."] and len(lines["1."]) < 700
    assert lines["2."].startswith("2. echo('xxx") and len(prompt) < 2_000


# -- a question's own timeout ------------------------------------------------------------------------


def _held_tools():
    release = threading.Event()

    def hold() -> str:
        """Blocks until released."""
        release.wait(timeout=WAIT)
        return "held"

    return [hold, search], release


def test_a_question_past_its_timeout_raises_with_the_result():
    tools, release = _held_tools()
    llm = ScriptedLLM(['1. search("a")\n2. hold()\njoin()', FINISH])
    try:
        with LLMCompiler(llm, tools) as compiler:
            with pytest.raises(RunTimeoutError, match="not answered within 0.2 s") as caught:
                compiler.run("q?", timeout=0.2)
    finally:
        release.set()
    partial = caught.value.result
    assert not partial.complete and partial.observations == {1: "found(a)"}
    assert partial.failures[2].kind == "cancelled" and llm.remaining == 1  # the joiner was not asked


def test_a_slow_plan_past_the_timeout_stops_being_read():
    llm = ScriptedLLM([[f'{n}. search("{n}")\n' for n in range(1, 200)] + ["join()"], FINISH], delay=0.01)
    with LLMCompiler(llm, [search]) as compiler:
        with pytest.raises(RunTimeoutError) as caught:
            compiler.run("q?", timeout=0.1)
    partial = caught.value.result
    assert 0 < len(partial.tasks) < 199 and set(partial.observations) | set(partial.failures) == set(partial.tasks)


def test_arun_past_its_timeout_even_with_a_stalled_model():
    class Stalled:
        closed = False

        async def astream(self, messages):
            try:
                yield '1. search("a")\n'
                await asyncio.sleep(30)
            finally:
                Stalled.closed = True

        def stream(self, messages):  # pragma: no cover - arun uses astream
            raise AssertionError("stream() must not be used by arun")

    with LLMCompiler(Stalled(), [search]) as compiler:
        with pytest.raises(RunTimeoutError, match="not answered within 0.2 s") as caught:
            asyncio.run(compiler.arun("q?", timeout=0.2))
    assert Stalled.closed and sorted(caught.value.result.tasks) == [1]


def test_a_question_within_its_timeout_answers():
    with LLMCompiler(ScriptedLLM(['1. search("a")\njoin()', FINISH] * 2), [search]) as compiler:
        assert compiler.run("q?", timeout=WAIT).answer == "the answer"
        assert asyncio.run(compiler.arun("q?", timeout=WAIT)).answer == "the answer"
        with pytest.raises(ValueError, match="timeout"):
            compiler.run("q?", timeout=0)


def test_a_models_own_timeout_error_is_not_taken_for_the_questions():
    class Impatient:
        async def astream(self, messages):
            yield '1. search("a")\n'
            raise TimeoutError("the model's own")

        def stream(self, messages):  # pragma: no cover - arun uses astream
            raise AssertionError("stream() must not be used by arun")

    for timeout in (None, WAIT):
        with LLMCompiler(Impatient(), [search]) as compiler:
            with pytest.raises(TimeoutError, match="the model's own"):
                asyncio.run(compiler.arun("q?", timeout=timeout))
