"""Tests of llmcompiler.compiler: the planner -> scheduler -> joiner -> replan loop, with ScriptedLLM.

Every wait is bounded (ScriptedLLM answers at once or after a fixed delay; tools sleep briefly), and
every LLMCompiler is closed, so conftest's leak check finds no thread or process left behind.
"""

from __future__ import annotations

import threading
import time

import pytest

from llmcompiler.compiler import CompilerResult, LLMCompiler
from llmcompiler.errors import (JoinerOutputError, LLMError, PlanSyntaxError, RunClosedError, ToolCallError,
                                UnknownReferenceError)
from llmcompiler.llm import ScriptedLLM, Usage
from llmcompiler.prompts import parse_joiner_output, planner_messages
from llmcompiler.rounds import JoinerDecision
from llmcompiler import Engine
from llmcompiler.tools import ToolRegistry


def search(query: str) -> str:
    """Look something up."""
    return f"found({query})"


def combine(first: str, second: str) -> str:
    """Put two results together."""
    return f"{first} + {second}"


def broken(text: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot handle {text!r}")


def slow(text: str) -> str:
    """Takes a little while."""
    time.sleep(0.05)
    return text.upper()


def registry() -> ToolRegistry:
    return ToolRegistry([search, combine, broken, slow])


FINISH = "Thought: done.\nAction: Finish(the answer)"


def system_prompt(call) -> str:
    return call[0]["content"]


def user_prompt(call) -> str:
    return call[-1]["content"]


def is_planner_call(call) -> bool:
    return "join()<END_OF_PLAN>" in system_prompt(call)


# -- the whole loop ----------------------------------------------------------------------------------


def test_answer_is_exactly_inside_finish_with_nested_parentheses():
    plan = ('Thought: look it up.\n1. search("tokyo")\n2. search("paris")\n3. combine($1, $2)\n'
            "join()<END_OF_PLAN>")
    joiner = "Thought: both found.\nAction: Finish(Tokyo (13.96 M) is bigger than Paris (f(2) = 2.1 M))"
    llm = ScriptedLLM([plan, joiner])
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("Which is bigger?")
    assert isinstance(result, CompilerResult)
    assert result.answer == "Tokyo (13.96 M) is bigger than Paris (f(2) = 2.1 M)"
    assert result.thought == "both found."
    assert result.finished and not result.replans_exhausted
    assert result.observations == {1: "found(tokyo)", 2: "found(paris)", 3: "found(tokyo) + found(paris)"}
    assert sorted(result.tasks) == [1, 2, 3] and result.failures == {}
    assert result.plans == [plan] and result.replans == 0
    assert {event.task for event in result.events} == {1, 2, 3}
    assert "3. combine($1, $2) -> found(tokyo) + found(paris)" in user_prompt(llm.calls[1])


def test_replan_continues_indices_and_refers_to_earlier_observations():
    plan_1 = '1. search("tokyo")\n2. broken("paris")\n3. combine($1, $2)\njoin()<END_OF_PLAN>'
    replan = "Thought: task 2 failed.\nAction: Replan(paris is missing: broken() failed)"
    plan_2 = 'Thought: reuse task 1.\n4. search("paris")\n5. combine($1, $4)\n6. search("about $5")\njoin()'
    llm = ScriptedLLM([plan_1, replan, plan_2, FINISH])
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("Compare Tokyo and Paris.")
    assert result.answer == "the answer" and result.replans == 1
    assert result.observations[5] == "found(tokyo) + found(paris)"  # $1 from the first plan
    assert result.observations[6] == "found(about found(tokyo) + found(paris))"
    assert result.failures[2].kind == "failed" and result.failures[3].kind == "skipped"
    assert [task.idx for task in result.rounds[1].tasks] == [4, 5, 6]
    assert result.rounds[0].replan_reason == "paris is missing: broken() failed"
    second_plan_prompt = user_prompt(llm.calls[2])
    assert is_planner_call(llm.calls[2])
    assert "Start numbering at 4." in second_plan_prompt
    assert "paris is missing: broken() failed" in second_plan_prompt
    assert "ValueError: cannot handle 'paris'" in second_plan_prompt
    assert "1. search('tokyo') -> found(tokyo)" in second_plan_prompt
    assert "it depends on task 2, which did not finish" in second_plan_prompt


@pytest.mark.parametrize("max_replans", [0, 1])
def test_replans_are_bounded(max_replans):
    plan = '{n}. search("x{n}")\njoin()<END_OF_PLAN>'
    responses = []
    for n in range(1, max_replans + 2):
        responses += [plan.format(n=n), f"Thought: not enough.\nAction: Replan(try again {n})"]
    llm = ScriptedLLM(responses + ["never used"])
    with LLMCompiler(llm, registry(), max_replans=max_replans) as compiler:
        result = compiler.run("An impossible question?")
    assert result.replans_exhausted and result.answer is None and not result.finished
    assert result.replans == max_replans and len(llm.calls) == 2 * (max_replans + 1)
    last_verdict = JoinerDecision("replan", f"try again {max_replans + 1}", "not enough.")
    assert result.rounds[-1].decision == last_verdict
    assert "No new plan is possible now" in user_prompt(llm.calls[-1])
    assert all("No new plan" not in user_prompt(call) for call in llm.calls[:-1])
    assert sorted(result.observations) == list(range(1, max_replans + 2))


def test_finish_in_the_last_round_is_the_answer():
    llm = ScriptedLLM(['1. search("a")\njoin()', "Action: Replan(more)", '2. search("b")\njoin()', FINISH])
    with LLMCompiler(llm, registry(), max_replans=1) as compiler:
        result = compiler.run("q?")
    assert result.answer == "the answer" and not result.replans_exhausted and result.replans == 1


def test_the_package_exports_the_compiler():
    import llmcompiler

    assert llmcompiler.LLMCompiler is LLMCompiler and llmcompiler.CompilerResult is CompilerResult


def test_invalid_arguments():
    llm = ScriptedLLM([])
    with pytest.raises(ValueError, match="max_replans"):
        LLMCompiler(llm, registry(), max_replans=-1)
    with pytest.raises(TypeError, match="stream"):
        LLMCompiler(object(), registry())
    with pytest.raises(TypeError, match="needs tools"):
        LLMCompiler(llm)
    with LLMCompiler(llm, registry()) as compiler:
        with pytest.raises(ValueError, match="question"):
            compiler.run("  ")


# -- streaming -------------------------------------------------------------------------------------


class TimedLLM:
    """Wraps a model and records when each chunk arrived, per call."""

    def __init__(self, inner):
        self.inner = inner
        self.arrivals = []

    def stream(self, messages):
        arrivals = []
        self.arrivals.append(arrivals)
        for chunk in self.inner.stream(messages):
            arrivals.append(time.perf_counter())
            yield chunk


def test_first_task_starts_before_the_plan_is_finished():
    plan = ['1. slow("a")\n', '2. slow("b")\n', '3. combine($1, $2)\n', 'join()<END_OF_PLAN>']
    llm = TimedLLM(ScriptedLLM([plan, [FINISH]], delay=0.2))
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("Stream it.")
    last_chunk = llm.arrivals[0][-1]
    started = {event.task: event.time for event in result.events if event.kind == "started"}
    finished = {event.task: event.time for event in result.events if event.kind == "finished"}
    assert started[1] < llm.arrivals[0][1] < last_chunk  # before the second line even arrived
    assert finished[1] < last_chunk and started[2] < last_chunk
    assert result.rounds[0].parsed_at[1] < last_chunk
    assert result.timings.overlap > 0
    assert result.answer == "the answer"


# -- broken plans ---------------------------------------------------------------------------------


def test_plan_error_mid_stream_keeps_tasks_and_replans_with_the_error():
    plan_1 = ['1. slow("a")\n', "Now I search the web\n", '3. slow("never")\n', "join()<END_OF_PLAN>"]
    plan_2 = '2. combine($1, "b")\njoin()<END_OF_PLAN>'
    llm = ScriptedLLM([plan_1, plan_2, FINISH])
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("q?")
    assert result.answer == "the answer" and result.replans == 1
    assert result.observations == {1: "A", 2: "A + b"}  # task 1 ran and was kept; line 3 was never read
    assert len(result.plan_errors) == 1 and isinstance(result.plan_errors[0], PlanSyntaxError)
    assert result.rounds[0].decision is None  # the joiner was not asked about a broken plan
    assert is_planner_call(llm.calls[1])
    prompt = user_prompt(llm.calls[1])
    assert "line 2: expected '<n>. tool(args)', got 'Now I search the web'" in prompt
    assert "Start numbering at 2." in prompt and "1. slow('a') -> A" in prompt


def test_unknown_tool_mid_stream_is_a_reason_to_replan():
    plan_1 = '1. search("a")\n2. serch("b")\n3. search("c")\njoin()'
    llm = ScriptedLLM([plan_1, '2. search("b")\njoin()', FINISH])
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("q?")
    assert isinstance(result.plan_errors[0], ToolCallError)
    assert sorted(result.observations) == [1, 2]
    prompt = user_prompt(llm.calls[1])
    assert "unknown tool 'serch'" in prompt and "did you mean 'search'" in prompt


def test_plan_error_in_the_last_round_still_asks_the_joiner():
    llm = ScriptedLLM(['1. search("a")\n2. search(oops)\njoin()', FINISH])
    with LLMCompiler(llm, registry(), max_replans=0) as compiler:
        result = compiler.run("q?")
    assert result.answer == "the answer" and result.observations == {1: "found(a)"}
    assert "The plan was cut short by an error: line 2" in user_prompt(llm.calls[1])


def test_referring_to_a_failed_earlier_task_is_a_plan_error():
    plan_2 = '2. combine($1, "x")\njoin()'
    llm = ScriptedLLM(['1. broken("a")\njoin()', "Action: Replan(retry)", plan_2, FINISH])
    with LLMCompiler(llm, registry(), max_replans=1) as compiler:
        result = compiler.run("q?")
    error = result.plan_errors[0]
    assert isinstance(error, UnknownReferenceError) and error.reference == 1
    assert "failed in an earlier plan" in str(error) and 2 not in result.tasks


def test_lenient_mode_reads_sloppy_plans_and_answers():
    llm = ScriptedLLM(["Here is my plan:\n1. search(Austin Powers)\njoin()", "The answer is 42."])
    with LLMCompiler(llm, registry(), lenient=True) as compiler:
        result = compiler.run("q?")
    assert result.observations == {1: "found(Austin Powers)"} and result.answer == "The answer is 42."


def test_unreadable_joiner_answer_raises_with_the_text():
    llm = ScriptedLLM(['1. search("a")\njoin()', "I think it is 42."])
    with LLMCompiler(llm, registry()) as compiler:
        with pytest.raises(JoinerOutputError) as caught:
            compiler.run("q?")
    assert caught.value.text == "I think it is 42."


def test_model_error_mid_plan_cancels_the_run_and_raises():
    class Failing:
        def stream(self, messages):
            yield '1. slow("a")\n'
            raise LLMError("connection lost")

    with LLMCompiler(Failing(), registry()) as compiler:
        with pytest.raises(LLMError, match="connection lost"):
            compiler.run("q?")


def test_execution_timeout_cancels_slow_tasks():
    def sleepy(seconds: float) -> str:
        time.sleep(seconds)
        return "woke"

    llm = ScriptedLLM(['1. sleepy(0.5)\n2. search("fast")\njoin()', FINISH])
    with LLMCompiler(llm, {"sleepy": sleepy, "search": search}, execution_timeout=0.1) as compiler:
        result = compiler.run("q?")
    assert result.failures[1].kind == "cancelled" and result.answer == "the answer"
    assert "1. sleepy(0.5) cancelled" in user_prompt(llm.calls[1])


# -- the joiner's answer ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Thought: easy.\nAction: Finish(42)", ("finish", "42", "easy.")),
    ("action :  finish ( 42 )", ("finish", "42", None)),
    ("Finish(yes)", ("finish", "yes", None)),
    ("  finish (yes)\n", ("finish", "yes", None)),
    ("Thought: a\nAction: Finish(line one\nline two (with parens))\n",
     ("finish", "line one\nline two (with parens)", "a")),
    ("Thought: sure. Action: Finish(f(g(x)) = (1, 2))", ("finish", "f(g(x)) = (1, 2)", "sure.")),
    ("Thought: t\nAction: Replan(need the (missing) data)", ("replan", "need the (missing) data", "t")),
    ("ACTION: REPLAN()", ("replan", "", None)),
    ("Action: Finish(a) <END_OF_RESPONSE>", ("finish", "a", None)),
    ("Action: Finish(x)\nThought: that was easy (really)", ("finish", "x", None)),
    ("Thought: one\nThought: two\nAction:\nFinish(z)", ("finish", "z", "two")),
    ("Action: Finish(first)\nAction: Replan(second)", ("finish", "first", None)),
])
def test_joiner_output_is_parsed_tolerantly(text, expected):
    assert parse_joiner_output(text) == JoinerDecision(*expected)


@pytest.mark.parametrize("text", ["I think the answer is 42.", "", "Thought: hmm", "Action: Finish(unclosed",
                                  "Action: Answer(42)"])
def test_joiner_output_without_an_action_is_an_error(text):
    with pytest.raises(JoinerOutputError) as caught:
        parse_joiner_output(text)
    assert caught.value.text == text
    assert isinstance(caught.value, ValueError)


def test_lenient_joiner_output():
    assert parse_joiner_output("  it is 42 ", lenient=True) == JoinerDecision("finish", "it is 42", None)
    assert parse_joiner_output("Action: Finish(unclosed", lenient=True).text == "unclosed"


# -- prompts, timings, usage, callbacks ---------------------------------------------------------------


def test_planner_prompt_has_tools_format_rules_and_question():
    llm = ScriptedLLM(['1. search("a")\njoin()', FINISH])
    tools = registry()
    with LLMCompiler(llm, tools) as compiler:
        compiler.run("How tall is it?")
    system, user = system_prompt(llm.calls[0]), user_prompt(llm.calls[0])
    for line in tools.describe().splitlines():
        assert line in system
    assert "join()<END_OF_PLAN>" in system and "$N" in system and "Thought:" in system
    assert "literals only" in system
    assert "Question: How tall is it?" in user and "Start numbering at 1." in user
    joiner_system = system_prompt(llm.calls[1])
    assert "Action: Finish(" in joiner_system and "Action: Replan(" in joiner_system
    assert planner_messages(tools, "q", [], 7)[1]["content"].endswith("Start numbering at 7.")


class MeteredLLM(ScriptedLLM):
    """A scripted model that reports usage like OpenAIChat: a new ``last_usage`` per call."""

    def __init__(self, responses):
        super().__init__(responses)
        self.last_usage = None

    def stream(self, messages):
        for chunk in super().stream(messages):
            yield chunk
        self.last_usage = Usage(100, 10, 110)


def test_timings_and_usage():
    llm = MeteredLLM(['1. slow("a")\n2. slow("b")\njoin()', FINISH])
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("q?")
    timings = result.timings
    assert timings.planning > 0 and timings.joining > 0 and timings.execution >= 0.05
    assert timings.total >= max(timings.planning, timings.execution, timings.joining)
    assert 0 <= timings.overlap <= timings.execution
    assert result.usage == Usage(200, 20, 220)


def test_usage_is_none_when_the_model_reports_none():
    with LLMCompiler(ScriptedLLM(['1. search("a")\njoin()', FINISH]), registry()) as compiler:
        assert compiler.run("q?").usage is None


def test_callbacks_see_tasks_events_and_rounds():
    seen = {"tasks": [], "events": [], "rounds": []}
    llm = ScriptedLLM(['1. search("a")\n2. search("b")\njoin()', FINISH])
    with LLMCompiler(llm, registry()) as compiler:
        result = compiler.run("q?", on_task=lambda task: seen["tasks"].append(task.idx),
                              on_event=seen["events"].append, on_round=seen["rounds"].append)
    assert seen["tasks"] == [1, 2] and seen["events"] == result.events
    assert seen["rounds"] == result.rounds


def test_an_on_event_error_is_raised_once_the_run_is_over():
    def explode(event):
        if event.kind == "finished":
            raise RuntimeError("display broke")

    llm = ScriptedLLM(['1. slow("a")\n2. slow($1)\njoin()', FINISH])
    with LLMCompiler(llm, registry(), execution_timeout=5) as compiler:
        with pytest.raises(RuntimeError, match="display broke"):
            compiler.run("q?", on_event=explode)


def test_given_engine_is_used_and_not_closed():
    tools = registry()
    with Engine(tools) as engine:
        compiler = LLMCompiler(ScriptedLLM(['1. search("a")\njoin()', FINISH]), engine=engine)
        assert compiler.tools is engine.tools
        assert compiler.run("q?").answer == "the answer"
        compiler.close()
        compiler.close()
        with pytest.raises(RunClosedError):
            compiler.run("q?")
        assert engine.run('1. search("still open")\n').observations == {1: "found(still open)"}
        with pytest.raises(ValueError, match="differ"):
            LLMCompiler(ScriptedLLM([]), registry(), engine=engine)


class RoleLLM:
    """Answers by role: a fixed plan to the planner, a fixed verdict to the joiner (thread-safe)."""

    def __init__(self, plan, verdict):
        self.plan, self.verdict = plan, verdict

    def stream(self, messages):
        return iter([self.plan if is_planner_call(messages) else self.verdict])


def test_concurrent_runs_share_one_compiler():
    answers = []
    with LLMCompiler(RoleLLM('1. slow("x")\n2. slow("y")\njoin()', FINISH), registry()) as compiler:
        threads = [threading.Thread(target=lambda: answers.append(compiler.run("q?"))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert [result.answer for result in answers] == ["the answer"] * 3
    assert all(result.observations == {1: "X", 2: "Y"} for result in answers)


def test_the_demo_script_answers_with_one_replan():
    from llmcompiler.examples import DEMO_QUESTION, demo_llm, example_registry

    with LLMCompiler(demo_llm(delay=0), example_registry()) as compiler:
        result = compiler.run(DEMO_QUESTION)
    assert result.finished and result.replans == 1 and result.failures[2].kind == "failed"
    assert result.failures[8].kind == "skipped"
    assert [task.idx for task in result.rounds[1].tasks] == [9, 10, 11]
    ratio = result.observations[7] / result.observations[10]
    assert result.observations[11] == pytest.approx(ratio, abs=1e-3)
    # The scripted answer's numbers match what the tools computed.
    assert f"about {result.observations[7] / 1e6:.1f} million" in result.answer
    assert f"{result.observations[10] / 1e6:.1f} million" in result.answer
    assert f"about {ratio:.1f} times more" in result.answer
