"""Tests for what a tool may be: async def tools, executor names, the cache flag, the RunContext parameter."""

import asyncio
import functools
import os
import pickle
import sys
from typing import Annotated, Optional

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:  # the tools_fixture_* modules are imported by path
    sys.path.insert(0, TESTS_DIR)

from llmcompiler.context import RunContext  # noqa: E402
from llmcompiler.errors import ToolCallError, ToolDefinitionError  # noqa: E402
from llmcompiler.plan import Task  # noqa: E402
from llmcompiler.tools import AsyncCall, Tool, ToolRegistry, tool  # noqa: E402

import tools_fixture_async  # noqa: E402


async def lookup(key: str) -> str:
    """Look a key up, asynchronously."""
    return key.upper()


def plain(key: str) -> str:
    return key


class AsyncAdder:
    def __init__(self, amount: int):
        self.amount = amount

    async def __call__(self, x: int) -> int:
        return x + self.amount


# -- async tools and executor names ------------------------------------------------------------------


@pytest.mark.parametrize("func", [
    lookup, functools.partial(lookup, "k"), functools.partial(functools.partial(lookup), "k"),
    AsyncAdder(1), tools_fixture_async.ASYNC_CALLABLE,
], ids=["async-def", "partial", "partial-of-partial", "instance", "module-instance"])
def test_async_callables_default_to_the_async_executor(func):
    registered = Tool(func, name="t")
    assert registered.is_async is True
    assert registered.executor == "async"


@pytest.mark.parametrize("func", [plain, functools.partial(plain, "k"), AsyncAdder, print],
                         ids=["def", "partial", "class", "builtin"])
def test_plain_callables_default_to_threads(func):
    registered = Tool(func, name="t")
    assert registered.is_async is False
    assert registered.executor == "thread"


def test_thread_for_an_async_def_says_to_use_async():
    with pytest.raises(ToolDefinitionError) as caught:
        Tool(lookup, executor="thread")
    assert str(caught.value) == ("tool 'lookup' is an async def function: executor 'thread' would only "
                                 "create its coroutine, never run it; use executor='async' (or leave it out)")
    assert caught.value.tool == "lookup"


def test_async_for_a_plain_function_is_refused():
    with pytest.raises(ToolDefinitionError, match="executor 'async' runs coroutine functions .* "
                                                  "use executor='thread'"):
        tool(plain, executor="async")


def test_custom_executor_names_are_kept_for_the_engine():
    assert Tool(plain, executor="cluster").executor == "cluster"
    assert Tool(lookup, executor="gpu_pool").executor == "gpu_pool"
    with pytest.raises(ToolDefinitionError, match="executor must be 'thread', 'process', 'async', or the name"):
        Tool(plain, executor="my-cluster")
    with pytest.raises(ToolDefinitionError, match="got 3"):
        Tool(plain, executor=3)


def test_a_path_tool_learns_its_executor_when_loaded():
    lazy = Tool("tools_fixture_async:fetch")
    assert lazy.executor == "async" and lazy.is_async
    wrong = ToolRegistry()
    wrong.register("tools_fixture_async:fetch", executor="thread")
    with pytest.raises(ToolCallError) as caught:  # found when the plan is checked, as an unusable tool
        wrong.check(Task(2, "fetch", ("u",)))
    assert str(caught.value).startswith("task 2: tool 'fetch' is unavailable: tool 'fetch' is an async def")


def test_an_async_process_tool_runs_to_the_end_in_a_worker():
    registered = Tool(lookup, executor="process")
    target = registered.process_target()
    assert target == AsyncCall(f"{__name__}:lookup")
    restored = pickle.loads(pickle.dumps(target))
    assert restored("abc") == "ABC"  # asyncio.run inside: the value, not a coroutine
    by_path = Tool("tools_fixture_async:fetch", executor="process").process_target()
    assert by_path == AsyncCall("tools_fixture_async:fetch")
    assert by_path("u") == "fetched u"
    assert Tool(AsyncAdder(5), name="add", executor="process").process_target()(1) == 6


def test_an_async_tool_called_directly_gives_its_coroutine():
    registered = tool(lookup)
    assert asyncio.run(registered("x")) == "X"


def test_registry_decorator_picks_async():
    registry = ToolRegistry()

    @registry.tool(timeout=2)
    async def ping(host: str) -> str:
        return host

    assert (ping.executor, ping.timeout) == ("async", 2.0)
    assert registry.names() == ["ping"]


# -- the cache flag ------------------------------------------------------------------------------------


def test_cache_is_off_by_default_and_kept_when_asked():
    assert Tool(plain).cache is False
    assert tool(cache=True)(plain).cache is True
    registry = ToolRegistry()
    assert registry.register(plain, cache=True).cache is True
    restored = pickle.loads(pickle.dumps(Tool("tools_fixture_async:fetch", cache=True)))
    assert restored.cache is True


def test_cache_must_be_a_bool():
    with pytest.raises(ToolDefinitionError) as caught:
        Tool(plain, cache="yes")
    assert str(caught.value) == "tool 'plain': cache must be True or False, got 'yes'"


def test_register_can_turn_the_cache_on_for_a_copy():
    base = tool(plain)
    copy = ToolRegistry().register(base, cache=True, name="cached")
    assert (base.cache, copy.cache) == (False, True)


# -- the RunContext parameter ----------------------------------------------------------------------------


def with_context(query: str, ctx: RunContext, limit: int = 5) -> str:
    """Search with the run's observations.

    Args:
        query: What to look for.
        ctx: The run.
        limit: How many.
    """
    return query


def optional_ctx(query: str, ctx: Optional[RunContext] = None) -> str:
    return query


def annotated_ctx(ctx: Annotated[RunContext, "the run"], query: str) -> str:
    return query


def keyword_ctx(query: str, *, ctx: RunContext) -> str:
    return query


@pytest.mark.parametrize("func, name", [
    (with_context, "ctx"), (optional_ctx, "ctx"), (annotated_ctx, "ctx"), (keyword_ctx, "ctx"),
    (tools_fixture_async.summarise, "ctx"), (tools_fixture_async.optional_context, "ctx"),
    (tools_fixture_async.union_context, "ctx"), (plain, None),
    (functools.partial(with_context, limit=2), "ctx"),
])
def test_context_parameter_is_found_by_its_annotation(func, name):
    assert Tool(func, name="t").context_parameter == name


@pytest.mark.parametrize("text, expected", [
    ("RunContext", True), ("llmcompiler.context.RunContext", True), ("Optional[RunContext]", True),
    ('Optional["RunContext"]', True), ("typing.Optional[ctx.RunContext]", True), ("RunContext | None", True),
    ("None | RunContext", True), ("Union[None, RunContext]", True), ("'RunContext'", True),
    ("list[RunContext]", False), ("RunContext | int", False), ("Union[RunContext, int, None]", False),
    ("MyRunContext", False), ("RunContextual", False), ("str", False),
])
def test_context_annotations_written_as_text(text, expected):
    def func(query: str, ctx: text) -> None:  # the annotation is the text, as when it cannot resolve
        pass

    assert Tool(func).context_parameter == ("ctx" if expected else None)


def test_context_parameter_of_a_path_tool_with_a_text_annotation():
    assert Tool("tools_fixture_async:summarise").context_parameter == "ctx"


def test_context_parameter_is_left_out_of_describe_and_schema():
    registered = Tool(with_context)
    assert registered.describe() == ("with_context(query: str, *, limit: int = 5) -> str — "
                                     "Search with the run's observations.")
    parameters = registered.schema()["function"]["parameters"]
    assert parameters["properties"] == {
        "query": {"type": "string", "description": "What to look for."},
        "limit": {"type": "integer", "description": "How many.", "default": 5}}
    assert parameters["required"] == ["query"]
    assert Tool(tools_fixture_async.summarise).describe() == (
        "summarise(text: str) -> str — Summarise, with the run's context (its annotation is text only).")


def test_check_binds_without_the_context_parameter():
    registry = ToolRegistry([with_context, annotated_ctx, keyword_ctx])
    registry.check(Task(1, "with_context", ("q",)))
    registry.check(Task(2, "with_context", ("q",), {"limit": 2}))
    registry.check(Task(3, "annotated_ctx", (), {"query": "q"}))
    registry.check(Task(4, "keyword_ctx", ("q",)))
    assert registry["with_context"].bind(("q",), {}).arguments == {"query": "q"}


@pytest.mark.parametrize("task, expected", [
    (Task(3, "with_context", ("q",), {"ctx": {}}),
     "task 3: with_context() takes 'ctx' from the run (it is annotated RunContext): a plan cannot pass it"),
    (Task(4, "with_context", ("q", "$1")),
     "task 4: with_context() takes 'ctx' from the run (it is annotated RunContext): a plan cannot pass it, "
     "and positional argument 2 would be it; give the arguments after it by keyword"),
    (Task(5, "with_context", ("q", "$1", 3)),
     "task 5: with_context() takes 'ctx' from the run (it is annotated RunContext): a plan cannot pass it, "
     "and positional argument 2 would be it; give the arguments after it by keyword"),
    (Task(6, "annotated_ctx", ("q",)),
     "task 6: annotated_ctx() takes 'ctx' from the run (it is annotated RunContext): a plan cannot pass it, "
     "and positional argument 1 would be it; give the arguments after it by keyword"),
    (Task(7, "keyword_ctx", ("q",), {"ctx": None}),
     "task 7: keyword_ctx() takes 'ctx' from the run (it is annotated RunContext): a plan cannot pass it"),
])
def test_a_task_that_passes_the_context_is_refused(task, expected):
    registry = ToolRegistry([with_context, annotated_ctx, keyword_ctx])
    with pytest.raises(ToolCallError) as caught:
        registry.check(task)
    assert str(caught.value) == expected
    assert (caught.value.task, caught.value.tool) == (task.idx, task.tool)


def test_two_context_parameters_are_refused_when_registered():
    def twice(a: RunContext, b: RunContext) -> None:
        pass

    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry([twice])
    assert str(caught.value) == ("tool 'twice': parameters 'a', 'b' are all annotated RunContext; "
                                 "a tool takes at most one")


def test_a_positional_only_context_is_refused_when_registered():
    def positional(ctx: RunContext, /, query: str) -> None:
        pass

    with pytest.raises(ToolDefinitionError) as caught:
        tool(positional)
    assert str(caught.value) == ("tool 'positional': parameter 'ctx' is annotated RunContext but is "
                                 "positional-only; the engine passes the context by keyword: make it an "
                                 "ordinary or keyword-only parameter")


def test_a_path_tool_with_a_bad_context_fails_its_check():
    registry = ToolRegistry(["tools_fixture_config:two_contexts"])  # registration imports nothing
    with pytest.raises(ToolCallError) as caught:
        registry.check(Task(1, "two_contexts"))
    assert str(caught.value) == ("task 1: tool 'two_contexts' is unavailable: parameters "
                                 "'a', 'b' are all annotated RunContext; a tool takes at most one")


def test_a_context_tool_still_calls_like_its_function():
    registered = tool(with_context)
    assert registered("q", RunContext(1, {})) == "q"


def test_an_async_process_tool_runs_through_the_engine():
    from llmcompiler.engine import run_tasks

    registry = ToolRegistry()
    registry.register("tools_fixture_async:fetch", executor="process", timeout=60)
    registry.register(plain)
    result = run_tasks('1. fetch("u")\n2. plain($1)\n', registry)
    assert result.failures == {}
    assert result.observations == {1: "fetched u", 2: "fetched u"}


def test_executor_names_say_what_an_engine_must_provide():
    registry = ToolRegistry([plain, lookup])
    registry.register(tools_fixture_async.fetch, name="remote", executor="cluster")
    registry.register("tools_fixture_mod:square", executor="process")
    registry.register("tools_fixture_async:fetch")  # imported to tell: an async def
    registry.register(plain, name="plain_again")
    assert registry.executor_names() == ["thread", "async", "cluster", "process"]
    assert ToolRegistry().executor_names() == []
