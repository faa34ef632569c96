"""Tests of the command line: ``main([...])`` in-process, and ``python -m llmcompiler`` in a subprocess.

``ask`` talks to a stub OpenAI-compatible server on 127.0.0.1 (port 0) that streams scripted answers as
server-sent events. Every subprocess and server wait has a timeout.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ElementTree
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmcompiler.cli import main
from llmcompiler.examples import TIMES_VARIABLE, measured_calls

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:  # cli_fixture_tools is named by --tools
    sys.path.insert(0, TESTS_DIR)

GOOD_PLAN = ('Thought: two independent calls.\n1. slow_echo("hello", 0.2)\n2. slow_echo("world", 0.2)\n'
             "3. concat($1, $2)\n4. square(7)\njoin()<END_OF_PLAN>\n")
FAILING_PLAN = '1. echo("ok")\n2. fail("boom")\n3. concat($1, $2)\n'


def write(tmp_path, text, name="plan.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("llmcompiler: error: ")
    return lines[0]


# -- run ---------------------------------------------------------------------------------------------


def test_run_prints_observations_and_timeline(tmp_path, capsys):
    trace_path, timeline_path = tmp_path / "trace.json", tmp_path / "timeline.svg"
    code = main(["run", write(tmp_path, GOOD_PLAN), "--tools", "cli_fixture_tools", "--max-workers", "4",
                 "--trace", str(trace_path), "--timeline", str(timeline_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "1. slow_echo('hello', 0.2) -> hello" in out
    assert "3. concat($1, $2) -> hello world" in out
    assert "4. square(7) -> 49" in out
    assert "slow_echo" in out and "|" in out and "ms" in out  # the timeline
    assert "saved" in out  # the two 0.2 s calls ran at the same time
    written = json.loads(trace_path.read_text())
    names = {item["name"] for item in written["traceEvents"] if item["ph"] == "X"}
    assert names == {"1. slow_echo", "2. slow_echo", "3. concat", "4. square"}
    bars = [item for item in ElementTree.parse(timeline_path).iter("{http://www.w3.org/2000/svg}rect")
            if (item.get("class") or "").startswith("bar ")]
    assert sorted(item.get("data-task") for item in bars) == ["1", "2", "3", "4"]
    assert f"Timeline file written to {timeline_path}" in out


def test_run_timeline_by_worker(tmp_path, capsys):
    timeline_path = tmp_path / "timeline.svg"
    assert main(["run", write(tmp_path, GOOD_PLAN), "--tools", "cli_fixture_tools", "--timeline",
                 str(timeline_path), "--timeline-rows", "worker"]) == 0
    labels = [item.text for item in ElementTree.parse(timeline_path).iter("{http://www.w3.org/2000/svg}text")
              if item.get("class") == "label"]
    assert any(label.startswith("process-") for label in labels)  # square(7) ran in a worker process
    assert not any(label[0].isdigit() for label in labels)  # no per-task rows ("1. slow_echo")


def test_run_with_a_failing_task_exits_1(tmp_path, capsys):
    code = main(["run", write(tmp_path, FAILING_PLAN), "--tools", "cli_fixture_tools"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1. echo('ok') -> ok" in out
    assert "2. fail('boom') FAILED: ValueError: boom" in out
    assert "3. concat($1, $2) SKIPPED: it depends on task 2" in out


def test_run_reads_the_plan_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO('1. echo("from stdin")\n'))
    assert main(["run", "-", "--tools", "cli_fixture_tools"]) == 0
    assert "1. echo('from stdin') -> from stdin" in capsys.readouterr().out


def test_run_lenient_takes_sloppy_lines(tmp_path, capsys):
    plan = write(tmp_path, "Let me think.\n1. echo(plain words)\n")
    assert main(["run", plan, "--tools", "cli_fixture_tools", "--lenient"]) == 0
    assert "-> plain words" in capsys.readouterr().out


@pytest.mark.parametrize("plan, tools, expected", [
    (None, "cli_fixture_tools", "cannot read plan file"),
    (GOOD_PLAN, "no_such_tools_module_xyz", "no_such_tools_module_xyz"),
    ('1. echo("a")\nSearch the web\n', "cli_fixture_tools", "line 2: expected '<n>. tool(args)'"),
    ('1. ecko("a")\n', "cli_fixture_tools", "unknown tool 'ecko'"),
    ('1. echo("a", "b")\n', "cli_fixture_tools", "task 1: echo() too many positional arguments"),
])
def test_run_input_errors_exit_2_with_one_line(tmp_path, capsys, plan, tools, expected):
    path = str(tmp_path / "missing.txt") if plan is None else write(tmp_path, plan)
    assert main(["run", path, "--tools", tools]) == 2
    captured = capsys.readouterr()
    assert expected in one_error_line(captured.err)
    assert captured.out == ""


def test_trace_into_a_missing_directory_exits_2(tmp_path, capsys):
    code = main(["run", write(tmp_path, GOOD_PLAN), "--tools", "cli_fixture_tools",
                 "--trace", str(tmp_path / "nowhere" / "t.json")])
    assert code == 2
    assert "cannot write trace file" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["run"], ["run", "plan.txt"], ["run", "plan.txt", "--tools", "m", "--max-workers", "0"],
    ["ask", "q?", "--tools", "m", "--max-replans", "-1"], ["demo", "--delay", "soon"],
])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("llmcompiler")
    assert "error:" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("command, words", [
    ([], ["run", "ask", "demo"]),
    (["run"], ["PLAN_FILE", "--tools", "--max-workers", "--lenient", "--trace", "--timeline", "--quiet",
               "--verbose", "--timeline-rows"]),
    (["ask"], ["QUESTION", "--base-url", "--model", "--api-key-env", "--max-replans", "--joiner-model",
               "--timeline", "--quiet", "--verbose"]),
    (["demo"], ["--delay", "--trace", "--timeline", "--quiet", "--verbose"]),
])
def test_help_on_every_command(command, words, capsys):
    assert main(command + ["--help"]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in words)


# -- ask, against a stub OpenAI-compatible server -----------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        planner = "join()<END_OF_PLAN>" in body["messages"][0]["content"]
        text = self.server.plan if planner else self.server.verdict
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for start in range(0, len(text), 10):
            piece = {"choices": [{"delta": {"content": text[start:start + 10]}}]}
            self.wfile.write(f"data: {json.dumps(piece)}\n\n".encode())
        usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.plan = '1. echo("hi")\n2. slow_echo("there", 0.1)\n3. concat($1, $2)\njoin()<END_OF_PLAN>'
    httpd.verdict = "Thought: both are in.\nAction: Finish(hi there (greeting))"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def ask(server, *extra):
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return main(["ask", "Say hi there.", "--tools", "cli_fixture_tools", "--base-url", url, "--model", "stub",
                 *extra])


def test_ask_answers_with_timings_and_usage(server, monkeypatch, capsys):
    monkeypatch.setenv("STUB_KEY", "sk-stub")
    assert ask(server, "--api-key-env", "STUB_KEY") == 0
    out = capsys.readouterr().out
    assert "Answer: hi there (greeting)" in out
    assert "3. concat($1, $2) -> hi there" in out
    assert "planning" in out and "execution" in out and "joining" in out
    assert "tokens: 200 prompt + 40 completion = 240" in out
    assert [request["auth"] for request in server.requests] == ["Bearer sk-stub"] * 2
    assert server.requests[0]["body"]["model"] == "stub"


def test_ask_without_a_final_answer_exits_1(server, capsys):
    server.verdict = "Thought: no.\nAction: Replan(need more)"
    assert ask(server, "--max-replans", "0") == 1
    assert "No answer" in capsys.readouterr().out


def test_ask_with_an_unreadable_joiner_answer_exits_1(server, capsys):
    server.verdict = "just some text"
    assert ask(server) == 1
    assert "neither 'Action: Finish(...)'" in one_error_line(capsys.readouterr().err)


def test_ask_argument_errors_exit_2(server, monkeypatch, capsys):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    assert ask(server, "--api-key-env", "NO_SUCH_KEY_VAR") == 2
    assert "NO_SUCH_KEY_VAR" in one_error_line(capsys.readouterr().err)
    assert main(["ask", "q?", "--tools", "cli_fixture_tools", "--base-url", "ftp://example.com"]) == 2
    assert "base_url" in one_error_line(capsys.readouterr().err)
    assert server.requests == []


def test_ask_unreachable_server_exits_1(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["ask", "q?", "--tools", "cli_fixture_tools", "--base-url", f"http://127.0.0.1:{port}/v1",
                 "--timeout", "5"])
    assert code == 1
    assert "cannot connect" in one_error_line(capsys.readouterr().err)


# -- python -m llmcompiler -----------------------------------------------------------------------------


def run_module(*args, stdin=None, timeout=30, extra_env=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS_DIR]), **(extra_env or {}))
    return subprocess.run([sys.executable, "-m", "llmcompiler", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_module_help_and_bad_arguments():
    shown = run_module("--help")
    assert shown.returncode == 0 and "demo" in shown.stdout and "usage: llmcompiler" in shown.stdout
    bad = run_module("run", "--max-workers", "zero")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("llmcompiler run: error:")


def test_module_run_with_a_failing_plan_exits_1():
    finished = run_module("run", "-", "--tools", "cli_fixture_tools", stdin=FAILING_PLAN)
    assert finished.returncode == 1, finished.stderr
    assert "FAILED: ValueError: boom" in finished.stdout


def test_module_demo_runs_offline_and_its_figures_are_the_tools_own(tmp_path):
    """The demo's "one by one" sum comes from real started/finished events: each tool's own measured
    call lies inside its task's span, and the sum of the spans is what the demo prints."""
    times, trace_path = tmp_path / "times.tsv", tmp_path / "trace.json"
    finished = run_module("demo", "--trace", str(trace_path), extra_env={TIMES_VARIABLE: str(times)})
    assert finished.returncode == 0, finished.stderr
    out = finished.stdout
    assert "Plan 1 (streamed" in out and "Plan 2 (streamed" in out
    assert "joiner   Replan(" in out and "Answer: Tokyo will still have more people in 2050" in out
    assert "simulate_growth" in out and "~" in out  # the timeline, with the model's streaming
    assert "saved" in out
    assert finished.stderr == ""

    written = json.loads(trace_path.read_text())
    origin = written["otherData"]["clock_origin_s"]
    spans = [(item["args"]["tool"], origin + item["ts"] / 1e6, origin + (item["ts"] + item["dur"]) / 1e6)
             for item in written["traceEvents"] if item["ph"] == "X" and item["pid"] == 2]
    calls = measured_calls(str(times))
    assert sorted(call.tool for call in calls) == sorted(tool for tool, _, _ in spans)
    assert len(calls) == 10  # 11 tasks, one skipped
    assert _contained(calls, spans), (calls, spans)

    printed = float(re.search(r"tool calls one by one \(sum of their durations\) +([0-9.]+) s", out).group(1))
    span_sum = sum(end - start for _, start, end in spans)
    measured = sum(call.end - call.start for call in calls)
    assert printed == pytest.approx(span_sum, abs=0.006)  # printed with 2 decimals
    assert measured <= span_sum + 1e-6  # each call is inside its span (checked above)
    # The engine's own time per call (handing it over, stamping events) is small next to these
    # 0.15-0.3 s calls; a span that also counted time queued behind other calls would not be.
    assert span_sum - measured < 0.1 + 0.1 * measured, (span_sum, measured)


def _contained(calls, spans) -> bool:
    """Whether each measured call can be paired with a span of the same tool that contains it."""
    for tool in {call.tool for call in calls}:
        mine = [call for call in calls if call.tool == tool]
        theirs = [(start, end) for name, start, end in spans if name == tool]
        if not any(all(start <= call.start and call.end <= end for call, (start, end) in zip(mine, order))
                   for order in itertools.permutations(theirs)):
            return False
    return True


def test_ctrl_c_prints_what_was_observed_and_exits_130_at_once():
    """SIGINT once the tool has begun: exit 130 without waiting for the tool's 30 s sleep."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS_DIR]))
    command = [sys.executable, "-m", "llmcompiler", "run", "-", "--tools", "cli_fixture_tools"]
    child = subprocess.Popen(command,
                             cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        child.stdin.write('1. echo("quick")\n2. nap_after($1, 30)\n')  # nap begins once echo is done
        child.stdin.close()
        assert child.stdout.readline().startswith("nap started"), child.stderr.read()
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=20)  # well before the tool's 30 s: the exit waits for no call
        out, err = child.stdout.read(), child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        for stream in (child.stdout, child.stderr):
            stream.close()
    assert code == 130, err
    assert "2. nap_after($1, 30) CANCELLED" in out and "1. echo('quick') -> quick" in out
    assert err.strip().splitlines()[-1] == "llmcompiler: interrupted"
    assert "Traceback" not in err


def test_ctrl_c_while_the_model_streams_exits_130():
    """SIGINT in the demo while its planner streams (slowly), once its first task has started (a -vv
    log line says so)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS_DIR]))
    child = subprocess.Popen([sys.executable, "-m", "llmcompiler", "demo", "--delay", "0.05", "-vv"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in child.stderr:
            if "task 1 (population) started" in line:
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert child.returncode == 130, err
    assert "llmcompiler: interrupted" in err.splitlines()
    assert "Traceback" not in err and "Answer:" not in out
