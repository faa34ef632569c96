"""Tests of ``python -m llmcompiler tools`` and of ``--config FILE`` for ``run`` and ``ask`` (``main([...])``)."""

import json
import os
import socket
import sys

import pytest

from llmcompiler.cli import main
from llmcompiler.schema_check import tool_schema_problems

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:  # the fixture tool modules are named by --tools and in config files
    sys.path.insert(0, TESTS_DIR)

CONFIG = json.dumps({"tools": [  # JSON: read on every Python (TOML needs 3.11; test_config covers it)
    {"path": "tools_fixture_cli:echo", "timeout": 10, "retries": 2,
     "retry_on": ["TimeoutError", "ConnectionError"], "max_concurrency": 4, "cache": True,
     "description": "Echo the text."},
    {"path": "tools_fixture_cli:concat"},
    {"path": "tools_fixture_config:with_context"},
    {"path": "tools_fixture_config:fetch"},
]})
BROKEN_CONFIG = json.dumps({"tools": [
    {"path": "tools_fixture_cli:echo", "retries": -1},
    {"path": "tools_fixture_cli:nothing"},
]})


def write(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_tools_lists_a_module(capsys):
    assert main(["tools", "--tools", "tools_fixture_cli"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "3 tools from tools_fixture_cli:",
        "", "echo(text: str) -> str", "    Return the text unchanged.",
        "    thread · no timeout · no retries · no concurrency limit · not cached",
        "", "concat(first: str, second: str) -> str", "    Join two texts with a space.",
        "    thread · no timeout · no retries · no concurrency limit · not cached",
        "", "square(x: int) -> int", "    Square a number, in a worker process.",
        "    process · timeout 30 s · no retries · at most 2 at once · not cached",
    ]


def test_tools_lists_a_config_file_with_its_limits(tmp_path, capsys):
    config = write(tmp_path, CONFIG, "tools.json")
    assert main(["tools", "--config", config]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"4 tools from {config}:"
    assert out[1:5] == ["", "echo(text: str) -> str", "    Echo the text.",
                        "    thread · timeout 10 s · 2 retries on TimeoutError, ConnectionError (backoff "
                        "0.05 s) · at most 4 at once · cached"]
    assert "with_context(text: str) -> str" in out  # the RunContext parameter is not the plan's
    assert ("    thread · no timeout · no retries · no concurrency limit · not cached · given the run's "
            "context as 'ctx'") in out
    assert "    async · no timeout · no retries · no concurrency limit · not cached" in out


def test_tools_as_json_carries_the_schemas(tmp_path, capsys):
    assert main(["tools", "--config", write(tmp_path, CONFIG, "tools.json"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [record["name"] for record in records] == ["echo", "concat", "with_context", "fetch"]
    echo = records[0]
    assert (echo["executor"], echo["timeout"], echo["retries"], echo["retry_on"], echo["max_concurrency"],
            echo["cache"]) == ("thread", 10.0, 2, ["TimeoutError", "ConnectionError"], 4, True)
    assert echo["path"] == "tools_fixture_cli:echo"
    assert records[2]["context_parameter"] == "ctx"
    assert list(records[2]["schema"]["function"]["parameters"]["properties"]) == ["text"]
    for record in records:
        assert tool_schema_problems(record["schema"]) == []


def test_a_broken_config_exits_2_naming_every_problem(tmp_path, capsys):
    config = write(tmp_path, BROKEN_CONFIG, "tools.json")
    assert main(["tools", "--config", config]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "  entry 1 (echo): retries must be an int >= 0, got -1",
        "  entry 2 (nothing): cannot load 'tools_fixture_cli:nothing': 'tools_fixture_cli' has no attribute "
        "'nothing'",
        f"llmcompiler: error: {config}: 2 problems in the tool config (listed above)",
    ]


def test_a_single_config_problem_is_the_error_line(tmp_path, capsys):
    missing = str(tmp_path / "none.json")
    assert main(["tools", "--config", missing]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"llmcompiler: error: {missing}: cannot read it: No such file or directory"]


@pytest.mark.parametrize("argv, expected", [
    (["tools"], "one of the arguments --tools --config is required"),
    (["tools", "--tools", "m", "--config", "f.json"], "argument --config: not allowed with argument --tools"),
    (["run", "plan.txt", "--tools", "m", "--config", "f.json"],
     "argument --config: not allowed with argument --tools"),
    (["ask", "q?"], "one of the arguments --tools --config is required"),
])
def test_exactly_one_tool_source(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_run_with_a_config_file(tmp_path, capsys):
    config = write(tmp_path, CONFIG, "tools.json")
    plan = write(tmp_path, '1. echo("hello")\n2. concat($1, "world")\n', "plan.txt")
    assert main(["run", plan, "--config", config]) == 0
    out = capsys.readouterr().out
    assert "1. echo('hello') -> hello" in out
    assert "2. concat($1, 'world') -> hello world" in out


def test_run_with_a_broken_config_runs_nothing(tmp_path, capsys):
    plan = write(tmp_path, '1. echo("hello")\n', "plan.txt")
    assert main(["run", plan, "--config", write(tmp_path, BROKEN_CONFIG, "tools.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "2 problems in the tool config" in captured.err


def test_ask_with_a_config_file_loads_it_before_the_model(tmp_path, capsys):
    assert main(["ask", "q?", "--config", write(tmp_path, BROKEN_CONFIG, "tools.json")]) == 2
    assert "2 problems in the tool config" in capsys.readouterr().err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["ask", "q?", "--config", write(tmp_path, CONFIG, "tools.json"), "--base-url",
                 f"http://127.0.0.1:{port}/v1", "--timeout", "5"])
    assert code == 1  # the tools loaded; the (closed) server is what failed
    assert "cannot connect" in capsys.readouterr().err
