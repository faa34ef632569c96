"""Tests for llmcompiler.tools: registration, decorators, paths, process tools, check(), rendering."""

import concurrent.futures
import functools
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:  # the tools_fixture_* modules are imported by path
    sys.path.insert(0, TESTS_DIR)

from llmcompiler import loading  # noqa: E402
from llmcompiler.errors import ToolCallError, ToolDefinitionError  # noqa: E402
from llmcompiler.plan import Task  # noqa: E402
from llmcompiler._tool_options import EXECUTOR_RULE  # noqa: E402
from llmcompiler.tools import Tool, ToolRegistry, as_registry, load_path, tool  # noqa: E402

import tools_fixture_mod  # noqa: E402

NO_PATH_MESSAGE = ("cannot run in a process: a process tool is loaded in a worker process by its import "
                   "path; lambdas, closures and nested functions have none")
ADVICE = "define it at module top level, or register it by 'module:attr' path"


def search(query: str) -> str:
    """Search the web
    for a query.

    More detail that the description leaves out.
    """
    return f"results for {query}"


def math(problem: str, context: list = ()) -> float:
    """Solve a math problem."""
    return 42.0


def only_positional(x: int, /) -> int:
    return x


def top_level(x: int) -> int:
    return x * 10


class Adder:
    """A picklable callable instance."""

    def __init__(self, amount: int):
        self.amount = amount

    def __call__(self, x: int) -> int:
        return x + self.amount


class Locked:
    """A callable instance that cannot be pickled (it holds a lock)."""

    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self) -> None:
        return None


@pytest.fixture
def registry():
    return ToolRegistry([search, math])



# -- registration and options ----------------------------------------------------------------------


def test_defaults_come_from_the_function():
    registered = ToolRegistry().register(search)
    assert registered.name == "search"
    assert registered.description == "Search the web for a query."
    assert (registered.executor, registered.timeout, registered.retries) == ("thread", None, 0)
    assert registered.retry_on == (Exception,)
    assert registered.backoff == 0.05
    assert registered.max_concurrency is None
    assert registered.func is search


def test_options_are_stored():
    registered = ToolRegistry().register(
        top_level, name="scale", executor="process", timeout=2, retries=3, max_concurrency=4,
        retry_on=(ValueError, KeyError), backoff=0.5, description="Scale a number.")
    assert registered.name == "scale"
    assert registered.executor == "process"
    assert registered.timeout == 2.0 and isinstance(registered.timeout, float)
    assert registered.retries == 3
    assert registered.max_concurrency == 4
    assert registered.retry_on == (ValueError, KeyError)
    assert registered.backoff == 0.5
    assert registered.description == "Scale a number."


def test_single_exception_class_for_retry_on():
    assert Tool(search, retry_on=TimeoutError).retry_on == (TimeoutError,)


@pytest.mark.parametrize("option, value, expected", [
    ("executor", "my pool", "executor must be " + EXECUTOR_RULE + ", got 'my pool'"),
    ("retries", -1, "retries must be an int >= 0, got -1"),
    ("retries", 1.5, "retries must be an int >= 0, got 1.5"),
    ("retries", True, "retries must be an int >= 0, got True"),
    ("timeout", 0, "timeout must be a number of seconds > 0 or None, got 0"),
    ("timeout", "5", "timeout must be a number of seconds > 0 or None, got '5'"),
    ("timeout", float("nan"), "timeout must be a number of seconds > 0 or None, got nan"),
    ("max_concurrency", 0, "max_concurrency must be an int >= 1 or None, got 0"),
    ("retry_on", "ValueError", "retry_on must be exception classes, got 'ValueError'"),
    ("retry_on", [ValueError, int], "retry_on must be exception classes, got <class 'int'>"),
    ("backoff", -0.1, "backoff must be a number of seconds >= 0, got -0.1"),
    ("description", 3, "description must be a str, got int"),
])
def test_invalid_options_name_the_tool_and_the_option(option, value, expected):
    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry().register(search, **{option: value})
    assert str(caught.value) == f"tool 'search': {expected}"
    assert caught.value.tool == "search"


@pytest.mark.parametrize("name", ["my tool", "1st", ""])
def test_names_must_be_identifiers(name):
    with pytest.raises(ToolDefinitionError, match="is not a Python identifier; pass name="):
        ToolRegistry().register(search, name=name)


def test_a_lambda_needs_a_name():
    with pytest.raises(ToolDefinitionError, match=r"tool name '<lambda>' .* is not a Python identifier"):
        ToolRegistry().register(lambda: 1)
    assert ToolRegistry().register(lambda: 1, name="one")() == 1


def test_join_is_reserved():
    def join(items: list) -> str:
        return ",".join(items)

    with pytest.raises(ToolDefinitionError, match="tool name 'join' is reserved: 'join\\(\\)' ends a plan"):
        ToolRegistry().register(join)
    assert ToolRegistry().register(join, name="join_items").name == "join_items"


def test_duplicate_names_are_refused(registry):
    with pytest.raises(ToolDefinitionError) as caught:
        registry.register(top_level, name="search")
    assert str(caught.value) == ("tool 'search' is already registered; pass name='...' to register "
                                 "this one under another name")
    assert registry["search"].func is search


def test_neither_callable_nor_path_is_refused():
    with pytest.raises(ToolDefinitionError, match="a tool must be a callable or a 'module:attr' path, got int"):
        ToolRegistry().register(3)


# -- decorators -------------------------------------------------------------------------------------


def test_bare_decorator_returns_a_tool_that_looks_like_the_function():
    def lookup(key: str) -> str:
        """Look a key up."""
        return key.upper()

    decorated = tool(lookup)
    assert isinstance(decorated, Tool)
    assert decorated.__wrapped__ is lookup
    assert decorated.__name__ == "lookup" and decorated.__doc__ == "Look a key up."
    assert decorated.__module__ == __name__ and decorated.__qualname__ == lookup.__qualname__
    assert decorated("a") == "A"  # still callable as the function
    assert decorated(key="b") == "B"


def test_decorator_with_options():
    @tool(name="fetch_page", retries=2, timeout=5)
    def fetch(url: str) -> str:
        return url

    assert isinstance(fetch, Tool)
    assert (fetch.name, fetch.retries, fetch.timeout) == ("fetch_page", 2, 5.0)
    assert fetch("u") == "u"


def test_decorator_validates_options_at_once():
    with pytest.raises(ToolDefinitionError, match="tool 'f': retries must be an int >= 0"):
        @tool(retries=-2)
        def f():
            pass


def test_tool_decorator_registers_nowhere():
    @tool
    def lonely() -> None:
        pass

    fresh = ToolRegistry()
    assert len(fresh) == 0
    assert fresh.register(lonely) is lonely  # no overrides: the same Tool is stored


def test_registry_decorator_forms():
    reg = ToolRegistry()

    @reg.tool
    def first(x: int) -> int:
        return x + 1

    @reg.tool(name="second_tool", max_concurrency=2)
    def second(x: int) -> int:
        return x + 2

    assert reg.names() == ["first", "second_tool"]
    assert reg["first"] is first and reg["second_tool"] is second
    assert second.max_concurrency == 2
    assert first(1) == 2 and second(1) == 3


def test_registry_decorator_refuses_unknown_options():
    with pytest.raises(ToolDefinitionError, match="unknown tool option\\(s\\) retry; expected some of name"):
        ToolRegistry().tool(retry=2)


def test_register_overrides_a_tools_options_without_changing_it():
    base = tool(search, retries=1, timeout=3)
    reg = ToolRegistry()
    derived = reg.register(base, retries=4, name="web")
    assert derived is not base
    assert (derived.name, derived.retries, derived.timeout) == ("web", 4, 3.0)
    assert (base.name, base.retries) == ("search", 1)
    assert reg["web"] is derived


# -- the registry as a container and as_registry --------------------------------------------------


def test_container_protocol(registry):
    assert len(registry) == 2
    assert "search" in registry and "nope" not in registry
    assert [t.name for t in registry] == ["search", "math"] == registry.names()
    assert registry.get("nope") is None and registry.get("nope", 7) == 7
    assert registry.get("math").func is math


def test_getitem_raises_tool_call_error_listing_known_tools(registry):
    with pytest.raises(ToolCallError) as caught:
        registry["serch"]
    assert isinstance(caught.value, TypeError)
    assert str(caught.value) == "unknown tool 'serch'; known tools: math, search; did you mean 'search'?"
    assert caught.value.tool == "serch"


def test_as_registry_from_a_dict_of_functions():
    reg = as_registry({"web": search, "calc": tool(math), "fetch": "tools_fixture_mod:fetch"})
    assert reg.names() == ["web", "calc", "fetch"]
    assert reg["web"].func is search and reg["calc"].func is math
    assert reg["fetch"]("x") == "fetched x (2)"


def test_as_registry_passes_a_registry_through_and_accepts_lists(registry):
    assert as_registry(registry) is registry
    assert as_registry([search, top_level]).names() == ["search", "top_level"]


def test_as_registry_refuses_a_string():
    with pytest.raises(ToolDefinitionError, match="got str; for a module of tools use ToolRegistry.from_module"):
        as_registry("tools_fixture_mod")


# -- path tools ---------------------------------------------------------------------------------------


def test_path_tool_is_imported_lazily(monkeypatch):
    monkeypatch.setattr(loading, "_loaded", {})
    sys.modules.pop("tools_fixture_lazy", None)
    reg = ToolRegistry()
    lazy = reg.register("tools_fixture_lazy:lookup", executor="process")
    assert lazy.name == "lookup"
    assert lazy.path == "tools_fixture_lazy:lookup"
    assert repr(lazy) == "<Tool 'lookup' (process) tools_fixture_lazy:lookup>"
    assert "tools_fixture_lazy" not in sys.modules  # registration, path and repr import nothing
    assert lazy.process_target() == "tools_fixture_lazy:lookup"  # imports, to tell whether it is async
    assert "tools_fixture_lazy" in sys.modules
    assert lazy("k") == "value of k"
    assert lazy.description == "Look a key up."
    assert lazy.func is sys.modules["tools_fixture_lazy"].lookup


def test_path_to_a_nested_attribute_and_to_a_tool():
    nested = Tool("tools_fixture_mod:Outer.attr")
    assert nested.name == "attr" and nested(1) == 2
    wrapped = Tool("tools_fixture_mod:shout")
    assert wrapped.func is tools_fixture_mod.shout.__wrapped__  # the Tool found there is unwrapped
    assert load_path("tools_fixture_mod:shout") is tools_fixture_mod.shout.__wrapped__


@pytest.mark.parametrize("path", ["no_colon", "a:b:c", ":attr", "module:", "my module:f", "mod:1f"])
def test_malformed_paths_are_refused_at_registration(path):
    with pytest.raises(ToolDefinitionError, match=f"tool path '{path}'"):
        ToolRegistry().register(path, name="anything")


@pytest.mark.parametrize("path, expected", [
    ("tools_fixture_nowhere:f", "cannot load 'tools_fixture_nowhere:f': no module named "
                                "'tools_fixture_nowhere'; check the spelling and that the module is on sys.path"),
    ("tools_fixture_mod:missing", "cannot load 'tools_fixture_mod:missing': 'tools_fixture_mod' has no "
                                  "attribute 'missing'"),
    ("tools_fixture_mod:Outer.gone", "cannot load 'tools_fixture_mod:Outer.gone': 'tools_fixture_mod.Outer' "
                                     "has no attribute 'gone'"),
    ("tools_fixture_mod:NOT_CALLABLE", "cannot load 'tools_fixture_mod:NOT_CALLABLE': NOT_CALLABLE is a int, "
                                       "not a callable"),
    ("tools_fixture_broken:f", "cannot load 'tools_fixture_broken:f': importing 'tools_fixture_broken' raised "
                               "RuntimeError: boom at import"),
])
def test_load_path_errors_name_the_path_and_the_problem(path, expected):
    with pytest.raises(ToolDefinitionError) as caught:
        load_path(path)
    assert str(caught.value) == expected


def test_a_failed_import_is_a_tool_call_error_in_check():
    reg = ToolRegistry()
    reg.register("tools_fixture_nowhere:fetch")  # registration does not import
    with pytest.raises(ToolCallError) as caught:
        reg.check(Task(3, "fetch", ("x",)))
    assert str(caught.value).startswith(
        "task 3: tool 'fetch' is unavailable: cannot load 'tools_fixture_nowhere:fetch': no module named")
    assert (caught.value.tool, caught.value.task) == ("fetch", 3)
    assert isinstance(caught.value.__cause__, ToolDefinitionError)
    assert caught.value.__cause__.tool == "fetch"


def test_concurrent_first_use_loads_one_callable(monkeypatch):
    monkeypatch.setattr(loading, "_loaded", {})
    path_tool = Tool("tools_fixture_mod:fetch")
    start = threading.Barrier(8)
    results = []

    def use():
        start.wait(timeout=10)
        results.append(path_tool.func)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8 and all(found is tools_fixture_mod.fetch for found in results)


# -- process tools -------------------------------------------------------------------------------------


def test_process_tool_refuses_a_lambda():
    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry().register(lambda x: x, name="ident", executor="process")
    assert str(caught.value) == (f"tool 'ident' {NO_PATH_MESSAGE}, and "
                                 "test_process_tool_refuses_a_lambda.<locals>.<lambda> is a lambda; " + ADVICE)
    assert caught.value.tool == "ident"


def test_process_tool_refuses_a_nested_function():
    def nested(x):
        return x

    with pytest.raises(ToolDefinitionError) as caught:
        tool(nested, executor="process")
    assert str(caught.value) == (f"tool 'nested' {NO_PATH_MESSAGE}, and "
                                 f"{nested.__qualname__} is a nested function; {ADVICE}")


def test_process_tool_refuses_a_closure():
    factor = 3

    def scaled(x):
        return x * factor

    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry().register(scaled, executor="process")
    assert str(caught.value) == (f"tool 'scaled' {NO_PATH_MESSAGE}, and "
                                 f"{scaled.__qualname__} is a closure; {ADVICE}")


def test_process_tool_refuses_an_unpicklable_instance():
    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry().register(Locked(), name="locked", executor="process")
    message = str(caught.value)
    assert message.startswith("tool 'locked' cannot run in a process: it has no import path and cannot be "
                              "pickled (TypeError: ")
    assert message.endswith(ADVICE)


def test_thread_tools_may_be_lambdas_but_have_no_process_target():
    ident = ToolRegistry().register(lambda x: x, name="ident")
    assert ident.path is None
    with pytest.raises(ToolDefinitionError, match="tool 'ident' cannot run in a process"):
        ident.process_target()


def test_top_level_function_has_a_path():
    registered = ToolRegistry().register(top_level, executor="process")
    assert registered.path == f"{__name__}:top_level"
    assert registered.process_target() == f"{__name__}:top_level"
    assert load_path(registered.path) is top_level


def test_decorated_top_level_function_has_a_path_to_its_tool():
    assert tools_fixture_mod.square.path == "tools_fixture_mod:square"
    assert tools_fixture_mod.square.process_target() == "tools_fixture_mod:square"
    assert load_path("tools_fixture_mod:square") is tools_fixture_mod.square.__wrapped__


def test_partial_and_callable_instance_are_sent_pickled():
    partial = functools.partial(tools_fixture_mod.fetch, retries=5)
    by_partial = ToolRegistry().register(partial, executor="process")
    assert by_partial.name == "fetch" and by_partial.path is None
    assert by_partial.process_target() is partial
    adder = Adder(2)
    by_instance = ToolRegistry().register(adder, name="add_two", executor="process")
    assert by_instance.process_target() is adder


def test_process_targets_run_in_a_spawned_worker():
    targets = [
        (tools_fixture_mod.square.process_target(), 7, 49),
        (Tool(functools.partial(tools_fixture_mod.fetch, retries=5), executor="process").process_target(),
         "u", "fetched u (5)"),
        (Tool("tools_fixture_lazy:lookup", executor="process").process_target(), "k", "value of k"),
    ]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        futures = [pool.submit(tools_fixture_mod.run_target, target, arg) for target, arg, _ in targets]
        assert [future.result(timeout=60) for future in futures] == [want for _, _, want in targets]


def test_a_tool_pickles_and_keeps_its_options():
    original = ToolRegistry().register(tools_fixture_mod.square, retries=2, name="sq")
    restored = pickle.loads(pickle.dumps(original))
    assert (restored.name, restored.executor, restored.retries) == ("sq", "process", 2)
    assert restored(3) == 9


# -- check() ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, expected", [
    (Task(5, "serch", ("x",)), "task 5: unknown tool 'serch'; known tools: math, search; did you mean 'search'?"),
    (Task(5, "translate", ("x",)), "task 5: unknown tool 'translate'; known tools: math, search"),
    (Task(2, "search", (), {"q": "x"}), "task 2: search() got an unexpected keyword argument 'q'"),
    (Task(2, "search", (), {"querry": "x"}),
     "task 2: search() got an unexpected keyword argument 'querry'; did you mean 'query'?"),
    (Task(2, "search"), "task 2: search() missing a required argument: 'query'"),
    (Task(4, "search", ("a", "b")), "task 4: search() too many positional arguments"),
    (Task(4, "search", ("a",), {"query": "b"}), "task 4: search() multiple values for argument 'query'"),
])
def test_check_errors(registry, task, expected):
    with pytest.raises(ToolCallError) as caught:
        registry.check(task)
    assert str(caught.value) == expected
    assert (caught.value.tool, caught.value.task) == (task.tool, task.idx)


def test_check_positional_only_passed_by_keyword():
    reg = ToolRegistry([only_positional])
    with pytest.raises(ToolCallError) as caught:
        reg.check(Task(6, "only_positional", (), {"x": 1}))
    assert str(caught.value) == ("task 6: only_positional() takes 'x' by position only; "
                                 "pass it as a positional argument")


def test_check_on_an_empty_registry():
    with pytest.raises(ToolCallError, match="known tools: none \\(the registry is empty\\)"):
        ToolRegistry().check(Task(1, "search", ("x",)))


def test_check_accepts_references_anywhere_a_value_is(registry):
    registry.check(Task(3, "search", ("$1",)))
    registry.check(Task(3, "search", (), {"query": "${2}"}))
    registry.check(Task(3, "math", ("ratio of $1 to $2",), {"context": ["$1", "$2"]}))


def test_bind_returns_bound_arguments(registry):
    bound = registry["math"].bind(("2+2",), {"context": ["$1"]})
    assert bound.arguments == {"problem": "2+2", "context": ["$1"]}
    with pytest.raises(ToolCallError, match=r"^math\(\) missing a required argument: 'problem'$"):
        registry["math"].bind((), {})


def test_unreadable_signature_accepts_any_arguments():
    class Opaque:
        __signature__ = "unreadable"  # inspect.signature raises TypeError, as for some builtins

        def __call__(self, *args, **kwargs):
            return args, kwargs

    reg = ToolRegistry()
    reg.register(Opaque(), name="opaque")
    reg.check(Task(1, "opaque", (1, 2), {"anything": 3}))
    assert reg["opaque"].describe() == "opaque(*args, **kwargs)"


# -- describe() and schemas() ----------------------------------------------------------------------


def test_describe_numbers_the_tools(registry):
    assert registry.describe() == (
        "1. search(query: str) -> str — Search the web for a query.\n"
        "2. math(problem: str, context: list = ()) -> float — Solve a math problem."
    )


def test_describe_and_schema_of_a_richly_annotated_function():
    import tools_fixture_annotated as annotated

    rich = Tool(annotated.search)
    assert rich.describe() == (
        "search(query: str, tags: list[str], limit: int = 10, *scopes: str, ratio: float = 0.5, "
        "exact: bool = False, lang: Literal['en', 'de'] = 'en', since: int | None = None, "
        "until: int | None = None, ids: Sequence[int] = (), pair: tuple[int, ...] = (1, 2), "
        "options: Mapping[str, Any] = {}, anything: Any = 0, raw=MISSING, **extra: str) "
        "-> list[dict[str, Any]] — Search the web for a query."
    )
    optional_int = {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert rich.schema() == {"type": "function", "function": {
        "name": "search",
        "description": "Search the web for a query.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "tags": {"type": "array", "items": {"type": "string"}},
                "limit": {"type": "integer", "description": "How many results.", "default": 10},
                "ratio": {"type": "number", "default": 0.5},
                "exact": {"type": "boolean", "default": False},
                "lang": {"enum": ["en", "de"], "type": "string", "default": "en"},
                "since": optional_int,
                "until": optional_int,
                "ids": {"type": "array", "items": {"type": "integer"}, "default": []},
                "pair": {"type": "array", "items": {"type": "integer"}, "default": [1, 2]},
                "options": {"type": "object", "default": {}},
                "anything": {"default": 0},
                "raw": {},
            },
            "required": ["query", "tags"],
            "additionalProperties": True,
        },
    }}


def test_unresolvable_annotations_fall_back_to_their_text():
    import tools_fixture_annotated as annotated

    price = Tool(annotated.price)
    assert price.describe() == "price(amount: Decimal, currency: str = 'EUR') -> str — Format a price."
    assert price.schema()["function"]["parameters"] == {
        "type": "object",
        "properties": {"amount": {}, "currency": {"type": "string", "default": "EUR"}},
        "required": ["amount"],
        "additionalProperties": False,
    }


def test_schemas_follow_registration_order(registry):
    assert [schema["function"]["name"] for schema in registry.schemas()] == ["search", "math"]
    assert registry.schemas()[1]["function"]["parameters"] == {
        "type": "object",
        "properties": {"problem": {"type": "string"},
                       "context": {"type": "array", "items": {}, "default": []}},  # items: issue 10
        "required": ["problem"],
        "additionalProperties": False,
    }


def test_a_tool_without_docstring_has_no_dash():
    assert Tool(top_level).describe() == "top_level(x: int) -> int"


def test_given_description_and_class_tools():
    assert Tool(Adder, description="Make an adder.").describe() == "Adder(amount: int) — Make an adder."


# -- from_module ---------------------------------------------------------------------------------------


def test_from_module_prefers_a_registry_attribute():
    import tools_fixture_registry

    assert ToolRegistry.from_module("tools_fixture_registry") is tools_fixture_registry.registry
    assert tools_fixture_registry.registry.names() == ["ping"]


def test_from_module_collects_module_level_tools():
    reg = ToolRegistry.from_module("tools_fixture_mod")
    assert reg.names() == ["shout", "square"]
    assert reg["shout"] is tools_fixture_mod.shout


def test_from_module_without_tools():
    with pytest.raises(ToolDefinitionError) as caught:
        ToolRegistry.from_module("tools_fixture_empty")
    assert str(caught.value) == ("module 'tools_fixture_empty' defines no tools: give it a ToolRegistry named "
                                 "'registry' or 'tools', or decorate its functions with @tool")


def test_from_module_that_cannot_be_imported():
    with pytest.raises(ToolDefinitionError, match="cannot import tool module 'tools_fixture_nowhere'"):
        ToolRegistry.from_module("tools_fixture_nowhere")


# -- the module itself -------------------------------------------------------------------------------


def test_importing_tools_has_no_side_effects():
    code = ("import logging, sys, threading; import llmcompiler.tools; "
            "print(threading.active_count(), len(logging.getLogger().handlers), 'tools_fixture_mod' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(TESTS_DIR), check=True).stdout
    assert out.split() == ["1", "0", "False"]
