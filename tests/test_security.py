"""What no plan text, and no server, can make the engine do.

* A plan cannot import a module, evaluate an expression, read or write a file, or call anything but a
  registered tool with literal arguments: every hostile plan is parsed and run while ``__import__``,
  ``importlib.import_module``, ``open``, ``eval``, ``exec``, ``compile`` and ``os.system`` record their
  calls, and the tools record theirs.
* The manager store listens only on a Unix socket (no TCP or UDP port), in a directory only this user
  can enter, with a random key; a connection with another key is refused.
* An API key never appears in an error, its traceback, a log record, a repr or a trace, even when the
  server echoes it back.
"""

from __future__ import annotations

import builtins
import importlib
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Client
from multiprocessing import AuthenticationError

import pytest

from llmcompiler import Engine, LLMCompiler, OpenAIChat, PlanParser, ToolRegistry, parse_plan, run_tasks
from llmcompiler import errors

import faults_fixture_tools as fx

WAIT = 30
LITERAL_TYPES = (str, int, float, bool, type(None), list, tuple, dict)


class Watch:
    """Records every call to the functions a hostile plan would need, and every tool call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, marker: str):
        self.marker = marker
        self.imports: list = []
        self.opened: list = []
        self.evaluated: list = []
        self.compiled: list = []
        self.commands: list = []
        self.tool_calls: list = []
        real_import, real_import_module = builtins.__import__, importlib.import_module
        real_open, real_compile = builtins.open, builtins.compile

        def watched_import(name, *args, **kwargs):
            if name not in sys.modules:
                self.imports.append(name)
            return real_import(name, *args, **kwargs)

        def watched_import_module(name, *args, **kwargs):
            self.imports.append(name)
            return real_import_module(name, *args, **kwargs)

        def watched_open(file, *args, **kwargs):
            self.opened.append(file)
            return real_open(file, *args, **kwargs)

        def watched_compile(source, filename, mode, flags=0, *args, **kwargs):
            import ast

            self.compiled.append(bool(flags & ast.PyCF_ONLY_AST))  # a tree is fine; code is not
            return real_compile(source, filename, mode, flags, *args, **kwargs)

        def refuse(kind):
            def refused(*args, **kwargs):
                self.evaluated.append((kind, args))
                raise AssertionError(f"{kind} called with {args!r}")
            return refused

        def refuse_command(*args, **kwargs):
            self.commands.append(args)
            raise AssertionError(f"a command was run: {args!r}")

        monkeypatch.setattr(builtins, "__import__", watched_import)
        monkeypatch.setattr(importlib, "import_module", watched_import_module)
        monkeypatch.setattr(builtins, "open", watched_open)
        monkeypatch.setattr(builtins, "compile", watched_compile)
        monkeypatch.setattr(builtins, "eval", refuse("eval"))
        monkeypatch.setattr(builtins, "exec", refuse("exec"))
        for name in ("system", "popen", "execv", "execve", "spawnv", "posix_spawn"):
            monkeypatch.setattr(os, name, refuse_command)
        monkeypatch.setattr(subprocess, "Popen", refuse_command)

    def registry(self) -> ToolRegistry:
        def search(query="", *rest, **extra):
            self.tool_calls.append(("search", (query,) + rest, extra))
            return f"found {query!r}"

        return ToolRegistry({"search": search})

    def assert_nothing_happened(self) -> None:
        assert self.imports == [], f"modules imported: {self.imports}"
        assert self.opened == [], f"files opened: {self.opened}"
        assert self.evaluated == [] and self.commands == []
        assert all(self.compiled), "something was compiled to code, not to a syntax tree"
        assert not os.path.exists(self.marker)
        for tool, args, kwargs in self.tool_calls:  # only the registered tool, with literals only
            assert tool == "search"
            assert all(_is_literal(value) for value in (*args, *kwargs.values())), (args, kwargs)


def _is_literal(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(_is_literal(key) and _is_literal(item) for key, item in value.items())
    return type(value) in LITERAL_TYPES


def hostile_plans(marker: str) -> list:
    touch = f"__import__('os').system('touch {marker}')"
    return [
        f"1. search({touch})",
        f"1. search(q={touch})",
        f"1. search([{touch}])",
        "1. search(open('/etc/passwd').read())",
        f"1. search(open({marker!r}, 'w'))",
        "1. search(eval('6 * 7'))",
        "1. search(exec('import os'))",
        "1. search(compile('1', 'x', 'eval'))",
        "1. search(().__class__.__mro__[1].__subclasses__())",
        "1. search(search.__globals__['__builtins__'])",
        "1. search(globals())",
        "1. search(lambda: __import__('os'))",
        "1. search(getattr(search, '__code__'))",
        "1. search('a')\n2. search($1.__class__)",
        "1. search('a')\n2. search($1.__class__.__init__.__globals__)",
        "1. search('a')\n2. search(${1}.upper())",
        "1. search('a')\n2. search($1[0])",
        f"1. os.system('touch {marker}')",
        "1. __import__('os')",
        "1. eval('1')",
        "1. open('/etc/passwd')",
        "1. __builtins__('x')",
        "1. search.__globals__('x')",
        "1. subprocess.run(['ls'])",
        "1. search(f'{__import__(\"os\").getcwd()}')",
        "1. search(\"\"\"\n\"\"\" + __import__('os').name)",
        f"1. search('ok')\n2. search({touch})",
        "1. search(**__import__('os').environ)",
        "1. search(*__import__('os').listdir('/'))",
        "1. search([x for x in __import__('os').listdir('/')])",
    ]


@pytest.fixture
def watch(monkeypatch, tmp_path):
    # Warm up first: everything the engine imports lazily is loaded before the recording starts.
    run_tasks("1. search('warm up')\n2. search($1)", {"search": lambda q: q}, timeout=WAIT)
    parse_plan("1. search('x')", lenient=True)
    return Watch(monkeypatch, str(tmp_path / "marker"))


def test_the_watch_sees_what_a_tool_does(watch):
    """The recording is real: a tool (trusted code) that imports, opens, compiles and evaluates is
    seen doing each, so the checks below would see a plan that managed to."""
    def misbehave():
        with pytest.raises(AssertionError, match="exec"):  # importing source runs its code: refused
            __import__("colorsys")
        with open(watch.marker, "w"):
            pass
        compile("1", "<x>", "eval")
        with pytest.raises(AssertionError):
            eval("1")
        return "did it"

    sys.modules.pop("colorsys", None)
    registry = watch.registry()
    registry.register(misbehave)
    result = run_tasks("1. misbehave()", registry, timeout=WAIT)
    assert result.observations == {1: "did it"}, result.failures
    assert "colorsys" in watch.imports and watch.marker in watch.opened
    assert watch.evaluated and not all(watch.compiled)
    with pytest.raises(AssertionError):
        watch.assert_nothing_happened()
    os.remove(watch.marker)


def test_no_hostile_plan_imports_evaluates_opens_or_calls_anything(watch):
    modules_before = set(sys.modules)
    accepted_strictly = []
    for text in hostile_plans(watch.marker):
        for lenient in (False, True):
            try:
                run_tasks(parse_plan(text, lenient=lenient), watch.registry(), timeout=WAIT)
                if not lenient:
                    accepted_strictly.append(text)
            except (errors.PlanError, errors.ToolCallError):
                pass
            parser = PlanParser(lenient=lenient)  # the streaming parser, one character at a time
            try:
                for char in text:
                    parser.feed(char)
                parser.close()
            except errors.PlanError:
                pass
    watch.assert_nothing_happened()
    assert set(sys.modules) == modules_before
    assert accepted_strictly == []  # strict mode refuses every one of them


def test_lenient_mode_passes_code_to_the_tool_as_text_and_runs_none_of_it(watch):
    text = f"1. search(__import__('os').system('touch {watch.marker}'))"
    result = run_tasks(parse_plan(text, lenient=True), watch.registry(), timeout=WAIT)
    assert result.observations[1] == repr(f"__import__('os').system('touch {watch.marker}')").join(
        ["found ", ""])
    watch.assert_nothing_happened()


def test_code_in_string_arguments_and_observations_stays_text(watch):
    code = f"__import__('os').system('touch {watch.marker}')"
    registry = watch.registry()
    registry.register(lambda: code, name="code")
    plan = f'1. code()\n2. search($1)\n3. search("run: $1")\n4. search({code!r})\n5. search("${{1}}")'
    result = run_tasks(plan, registry, timeout=WAIT)
    assert result.observations[2] == f"found {code!r}" and result.observations[4] == f"found {code!r}"
    assert result.observations[3] == f"found {('run: ' + code)!r}"
    watch.assert_nothing_happened()


@pytest.mark.parametrize("tool_name", ["os.system", "__import__", "eval", "builtins.open", "search.__call__",
                                       "__builtins__", "getattr", "subprocess:run", "os:system"])
def test_task_dicts_naming_anything_but_a_registered_tool_are_refused(tool_name, watch):
    item = {"idx": 1, "tool_name": tool_name, "args": {"query": f"touch {watch.marker}"}}
    with pytest.raises((errors.PlanError, errors.ToolCallError)):
        run_tasks([item], watch.registry(), timeout=WAIT)
    watch.assert_nothing_happened()
    assert watch.tool_calls == []


def test_a_tool_name_is_looked_up_in_the_registry_never_imported(watch):
    registry = watch.registry()
    with pytest.raises(errors.ToolCallError, match="unknown tool 'system'"):
        run_tasks("1. system('ls')", registry, timeout=WAIT)
    with pytest.raises(errors.ToolCallError, match="unknown tool 'tools_fixture_mod'"):
        run_tasks("1. tools_fixture_mod('x')", registry, timeout=WAIT)
    watch.assert_nothing_happened()


# -- the manager store -------------------------------------------------------------------------------

def _process_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(fx.square, executor="process")
    return registry


def _manager_of(engine: Engine):
    engine.run("1. square(3)", timeout=WAIT)  # the manager starts with the first run that needs it
    store = engine._manager_store
    assert store is not None and store.alive()
    return store


def _socket_inodes(pid: int) -> set:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _inodes_in(table: str) -> set:
    try:
        with open(f"/proc/net/{table}") as lines:
            next(lines)
            return {line.split()[9 if table != "unix" else 6] for line in lines if line.strip()}
    except FileNotFoundError:
        return set()


def test_the_manager_listens_only_on_a_private_unix_socket():
    with Engine(_process_registry(), store="manager", process_workers=1) as engine:
        store = _manager_of(engine)
        address = store.address
        assert isinstance(address, str) and os.path.exists(address)  # a socket path, not (host, port)
        assert os.stat(os.path.dirname(address)).st_mode & 0o077 == 0  # only this user can reach it
        sockets = _socket_inodes(store.manager_process.pid)
        network = set().union(*(_inodes_in(t) for t in ("tcp", "tcp6", "udp", "udp6")))
        assert sockets and not sockets & network
        assert sockets & _inodes_in("unix")


def test_a_connection_with_a_wrong_key_is_refused_and_the_manager_goes_on():
    with Engine(_process_registry(), store="manager", process_workers=1) as engine:
        store = _manager_of(engine)
        own = bytes(multiprocessing.current_process().authkey)  # this process's key is not the one
        for key in (b"wrong", bytes(len(store._authkey)), os.urandom(32), own):
            with pytest.raises(AuthenticationError):
                Client(store.address, authkey=key)
        unauthenticated = Client(store.address, authkey=None)  # no key: the manager only challenges
        try:
            assert unauthenticated.recv_bytes().startswith(b"#CHALLENGE#")
        finally:
            unauthenticated.close()
        Client(store.address, authkey=store._authkey).close()  # the right key is let in
        assert engine.run("1. square(4)\n2. square($1)", timeout=WAIT).observations == {1: 16, 2: 256}


def test_two_engines_get_different_keys():
    with Engine(_process_registry(), store="manager", process_workers=1) as first, \
            Engine(_process_registry(), store="manager", process_workers=1) as second:
        one, two = _manager_of(first), _manager_of(second)
        assert one._authkey != two._authkey and len(one._authkey) >= 16
        with pytest.raises(AuthenticationError):
            Client(one.address, authkey=two._authkey)


# -- API keys ----------------------------------------------------------------------------------------

KEY = "sk-test-4f7c1e0b9a2d4c8e8b1f3a5d7e9c0b2a"


class EchoingServer:
    """A local OpenAI-compatible endpoint that fails every request with ``status`` and echoes the
    Authorization header it got (as real servers do in part: "Incorrect API key provided: sk-...")."""

    def __init__(self, status: int, answers: tuple = ()):
        self.received: list = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                server_self.received.append(auth)
                if status == 200:
                    return self.stream(answers[min(len(server_self.received), len(answers)) - 1])
                body = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}",
                                             "headers": dict(self.headers)}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Echo-Authorization", auth)
                self.end_headers()
                self.wfile.write(body)

            def stream(self, text):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(WAIT)


def everything_shown(err: BaseException) -> str:
    """Every text a person or a log could see of ``err``: str, repr, attributes, the formatted
    traceback with its chained causes."""
    parts = [str(err), repr(err), repr(vars(err)), repr(err.args)]
    parts += traceback.format_exception(type(err), err, err.__traceback__)
    cause = err.__cause__ or err.__context__
    while cause is not None:
        parts += [str(cause), repr(cause), repr(getattr(cause, "__dict__", {}))]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("status", [401, 500])
def test_an_api_key_never_appears_in_errors_logs_or_reprs(status, caplog):
    caplog.set_level(logging.DEBUG)
    with EchoingServer(status) as server:
        client = OpenAIChat("m", base_url=server.url, api_key=KEY, timeout=WAIT)
        with pytest.raises(errors.LLMError) as caught:
            client.complete([{"role": "user", "content": "hi"}])
        with LLMCompiler(client, {"search": lambda q: q}) as compiler:
            with pytest.raises(errors.LLMError) as through_compiler:
                compiler.run("What is the population of Tokyo?")
    assert server.received and all(KEY in header for header in server.received)  # the key was sent
    assert isinstance(caught.value, errors.LLMHTTPError) and caught.value.status == status
    for err in (caught.value, through_compiler.value):
        assert KEY not in everything_shown(err)
    assert KEY not in repr(client) and KEY not in repr(vars(client)) and KEY not in str(client)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert KEY not in logged


def test_an_api_key_from_the_environment_never_reaches_the_cli_output_or_trace(tmp_path):
    with EchoingServer(401) as server:
        trace = tmp_path / "trace.json"
        env = dict(os.environ, OPENAI_API_KEY=KEY, PYTHONPATH=os.path.dirname(__file__))
        done = subprocess.run(
            [sys.executable, "-m", "llmcompiler", "ask", "What is 2 + 2?", "--base-url", server.url,
             "--model", "m", "--tools", "cli_fixture_tools", "--trace", str(trace), "--timeout", "10"],
            capture_output=True, text=True, timeout=60, env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert server.received and KEY in server.received[0]
    assert done.returncode != 0 and "401" in done.stderr + done.stdout
    assert KEY not in done.stdout and KEY not in done.stderr
    assert not trace.exists() or KEY not in trace.read_text()


def test_an_api_key_never_reaches_the_output_or_trace_of_a_successful_ask(tmp_path):
    plan = '1. echo("hello")\njoin()<END_OF_PLAN>'
    with EchoingServer(200, answers=(plan, "Thought: done.\nAction: Finish(said hello)")) as server:
        trace = tmp_path / "trace.json"
        env = dict(os.environ, OPENAI_API_KEY=KEY, PYTHONPATH=os.path.dirname(__file__))
        done = subprocess.run(
            [sys.executable, "-m", "llmcompiler", "ask", "Say hello", "--base-url", server.url,
             "--model", "m", "--tools", "cli_fixture_tools", "--trace", str(trace), "--timeout", "10"],
            capture_output=True, text=True, timeout=60, env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    assert len(server.received) == 2 and all(KEY in header for header in server.received)
    assert "said hello" in done.stdout and trace.exists() and "echo" in trace.read_text()
    assert KEY not in done.stdout + done.stderr + trace.read_text()
