"""Tests for config.py: tools from TOML and JSON files, every problem reported at once."""

import json
import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:  # tools_fixture_config is named by path in the files
    sys.path.insert(0, TESTS_DIR)

from llmcompiler.config import ConfigProblem, load_config, registry_from_config  # noqa: E402
from llmcompiler.errors import ToolConfigError, ToolDefinitionError  # noqa: E402
from llmcompiler.plan import Task  # noqa: E402

import tools_fixture_config as fixture  # noqa: E402

GOOD_TOML = """
[[tools]]
path = "tools_fixture_config:search"
name = "web_search"
timeout = 10
retries = 2
retry_on = ["TimeoutError", "tools_fixture_config:RateLimited", "json.JSONDecodeError"]
backoff = 0.25
max_concurrency = 4
description = "Search the web."
cache = true

[[tools]]
path = "tools_fixture_config:fetch"

[[tools]]
path = "tools_fixture_config:square"
timeout = 5

[[tools]]
path = "tools_fixture_config:with_context"
executor = "cluster"
"""


needs_tomllib = pytest.mark.skipif(sys.version_info < (3, 11), reason="TOML is read with tomllib (3.11+)")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems_of(tmp_path, name, text):
    with pytest.raises(ToolConfigError) as caught:
        load_config(write(tmp_path, name, text))
    return caught.value


def check_good_registry(registry):
    assert registry.names() == ["web_search", "fetch", "square", "with_context"]
    search = registry["web_search"]
    assert search.func is fixture.search
    assert (search.executor, search.timeout, search.retries, search.backoff, search.max_concurrency,
            search.cache) == ("thread", 10.0, 2, 0.25, 4, True)
    assert search.retry_on == (TimeoutError, fixture.RateLimited, json.JSONDecodeError)
    assert search.description == "Search the web."
    assert (registry["fetch"].executor, registry["fetch"].cache) == ("async", False)
    square = registry["square"]  # a @tool: its own options are the defaults, the file's override them
    assert (square.executor, square.retries, square.timeout) == ("process", 1, 5.0)
    assert square.process_target() == "tools_fixture_config:square"
    assert registry["with_context"].executor == "cluster"
    assert registry["with_context"].context_parameter == "ctx"
    registry.check(Task(1, "web_search", ("q",), {"limit": 2}))


@needs_tomllib
def test_a_toml_file(tmp_path):
    check_good_registry(load_config(write(tmp_path, "tools.toml", GOOD_TOML)))


def test_the_same_as_json(tmp_path):
    entries = [
        {"path": "tools_fixture_config:search", "name": "web_search", "timeout": 10, "retries": 2,
         "retry_on": ["TimeoutError", "tools_fixture_config:RateLimited", "json.JSONDecodeError"],
         "backoff": 0.25, "max_concurrency": 4, "description": "Search the web.", "cache": True},
        {"path": "tools_fixture_config:fetch", "timeout": None},
        {"path": "tools_fixture_config:square", "timeout": 5},
        {"path": "tools_fixture_config:with_context", "executor": "cluster"},
    ]
    check_good_registry(load_config(write(tmp_path, "tools.json", json.dumps({"tools": entries}))))


def test_a_single_retry_on_name(tmp_path):
    registry = registry_from_config({"tools": [{"path": "tools_fixture_config:search",
                                                "retry_on": "ConnectionError"}]})
    assert registry["search"].retry_on == (ConnectionError,)


@needs_tomllib
def test_every_problem_is_reported_at_once(tmp_path):
    text = """
[[tools]]
path = "tools_fixture_config:search"
timout = 3
retries = -1

[[tools]]
path = "tools_fixture_nowhere:search"

[[tools]]
path = "tools_fixture_config:missing"

[[tools]]
path = "tools_fixture_config:fetch"
executor = "thread"

[[tools]]
path = "tools_fixture_config:search"
retry_on = ["TimeoutErr", "tools_fixture_config:NOT_A_CLASS"]

[[tools]]
name = "nameless"
cache = "yes"

[[tools]]
path = "tools_fixture_config:two_contexts"

[[tools]]
path = "tools_fixture_config:square"
name = "search"
executor = "my pool"
"""
    error = problems_of(tmp_path, "tools.toml", text)
    assert isinstance(error, ToolDefinitionError) and isinstance(error, TypeError)
    assert all(isinstance(problem, ConfigProblem) for problem in error.problems)
    found = [(problem.entry, problem.tool, problem.message) for problem in error.problems]
    assert found == [
        (1, "search", "unknown key 'timout'; did you mean 'timeout'? The keys are path, name, executor, "
                      "timeout, retries, retry_on, backoff, max_concurrency, description, cache."),
        (1, "search", "retries must be an int >= 0, got -1"),
        (2, "search", "cannot load 'tools_fixture_nowhere:search': no module named 'tools_fixture_nowhere'; "
                      "check the spelling and that the module is on sys.path"),
        (3, "missing", "cannot load 'tools_fixture_config:missing': 'tools_fixture_config' has no attribute "
                       "'missing'"),
        (4, "fetch", "tool 'fetch' is an async def function: executor 'thread' would only create its "
                     "coroutine, never run it; use executor='async' (or leave it out)"),
        (5, "search", "retry_on: 'TimeoutErr' is not a builtin exception (name another as 'module:Class'); "
                      "did you mean 'TimeoutError'?; 'tools_fixture_config:NOT_A_CLASS' is a int, "
                      "not an exception class"),
        (6, "nameless", "no 'path'; give the tool as path = 'module:attribute'"),
        (6, "nameless", "cache must be True or False, got 'yes'"),
        (7, "two_contexts", "parameters 'a', 'b' are all annotated RunContext; a tool takes at most one"),
        (8, "search", "executor must be 'thread', 'process', 'async', or the name (an identifier) of an "
                      "executor given to the Engine as Engine(executors={name: executor}), got 'my pool'"),
    ]
    message = str(error)
    assert message.splitlines()[0] == f"{error.path}: 10 problems in the tool config:"
    assert message.splitlines()[3] == ("  entry 2 (search): cannot load 'tools_fixture_nowhere:search': no "
                                       "module named 'tools_fixture_nowhere'; check the spelling and that "
                                       "the module is on sys.path")
    assert error.path.endswith("tools.toml")


def test_a_name_used_twice(tmp_path):
    error = problems_of(tmp_path, "tools.json", json.dumps({"tools": [
        {"path": "tools_fixture_config:search"}, {"path": "tools_fixture_config:fetch", "name": "search"}]}))
    assert [str(problem) for problem in error.problems] == [
        "entry 2 (search): the name 'search' is already used by entry 1; give this one name = '...'"]


@pytest.mark.parametrize("name, text, expected", [
    ("tools.yaml", "tools: []", "expected a .toml or .json file (the extension says which format it is)"),
    pytest.param("tools.toml", "[[tools]\npath = 1", "not valid TOML: ", marks=needs_tomllib),
    ("tools.json", '{"tools": [', "not valid JSON: Expecting value: line 1 column 12 (char 11)"),
    ("tools.json", "[]", "the file must hold a table (an object) with a 'tools' list, got a list"),
    pytest.param("tools.toml", "", "expected a non-empty 'tools' list ([[tools]] tables in TOML), got nothing",
                 marks=needs_tomllib),
    ("tools.json", "{}", "expected a non-empty 'tools' list ([[tools]] tables in TOML), got nothing"),
    ("tools.json", '{"tools": []}', "expected a non-empty 'tools' list ([[tools]] tables in TOML), got []"),
    ("tools.json", '{"tools": {"path": "a:b"}}', "expected a non-empty 'tools' list ([[tools]] tables in "
                                                 "TOML), got a table"),
    ("tools.json", '{"tools": ["a:b"]}', "entry 1: expected a table with a 'path', got a string"),
    ("tools.json", '{"tools": [{"path": 3}]}', "entry 1: path must be a 'module:attribute' string, got int"),
    ("tools.json", '{"tools": [{"path": "nocolon"}]}', "entry 1 (nocolon): tool path 'nocolon' must look "
                                                      "like 'module:attribute'"),
])
def test_file_level_problems(tmp_path, name, text, expected):
    error = problems_of(tmp_path, name, text)
    assert len(error.problems) == 1
    assert str(error.problems[0]).startswith(expected)


@needs_tomllib
def test_unknown_top_level_keys_and_an_empty_list_together(tmp_path):
    error = problems_of(tmp_path, "tools.toml", "tool = 1\n")
    assert [str(problem) for problem in error.problems] == [
        "unknown top-level key 'tool'; did you mean 'tools'? The file holds a 'tools' list ([[tools]] in TOML).",
        "expected a non-empty 'tools' list ([[tools]] tables in TOML), got nothing"]


def test_an_unreadable_or_missing_file(tmp_path):
    error = problems_of(tmp_path, "bad.json", "")
    assert str(error.problems[0]) == "not valid JSON: Expecting value: line 1 column 1 (char 0)"
    (tmp_path / "bad.json").write_bytes(b'{"tools": "\xff"}')
    error = pytest.raises(ToolConfigError, load_config, str(tmp_path / "bad.json")).value
    assert str(error.problems[0]).startswith("not UTF-8 text (invalid start byte at byte 11)")
    error = pytest.raises(ToolConfigError, load_config, str(tmp_path / "none.json")).value
    assert str(error.problems[0]) == "cannot read it: No such file or directory"


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="tomllib reads TOML here")
def test_toml_before_python_3_11_says_to_use_json(tmp_path):
    error = problems_of(tmp_path, "tools.toml", GOOD_TOML)
    assert [str(problem) for problem in error.problems] == [
        "reading TOML needs Python 3.11 or later (tomllib); write the file as JSON "
        '({"tools": [{"path": ...}]}) instead']
