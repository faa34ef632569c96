"""The local OpenAI-compatible test server shared by the LLM tests, and helpers to write its answers.

The server is a stdlib ThreadingHTTPServer on 127.0.0.1, port 0. Each test sets ``server.respond`` to a
function that writes the raw response (often in pieces, with small pauses, to split events across TCP
reads). Every wait has a timeout, and the fixture joins the server's threads and checks none is left.
``read_answer(client, transport)`` collects a client's chunks through ``stream`` or ``astream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

KEY = "sk-test-SECRET-0123456789"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
PAUSE = 0.02  # between pieces written separately, so the client reads them separately


# -- the server ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes, unless a test says otherwise

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append({"path": self.path, "headers": headers, "body": json.loads(raw)})
        try:
            self.server.respond(self)
        except OSError:
            pass  # the client hung up (after its timeout, or closing early): nothing to answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def _no_response(handler: _Handler) -> None:
    raise AssertionError("the test did not set server.respond")


@contextlib.contextmanager
def serving(ssl_context=None):
    """A running test server (TLS with ``ssl_context``); shut down and its threads joined on exit."""
    threads_before = set(threading.enumerate())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    scheme = "http"
    if ssl_context is not None:
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    httpd.requests = []
    httpd.respond = _no_response
    httpd.release = threading.Event()  # set at teardown: handlers that stall stop waiting
    httpd.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        for leftover in set(threading.enumerate()) - threads_before:  # handler threads
            leftover.join(timeout=5)
    assert not (set(threading.enumerate()) - threads_before), "a server thread was left behind"


@pytest.fixture
def server():
    with serving() as httpd:
        yield httpd


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)


def start(handler: _Handler, status: int = 200, content_type: str = "text/event-stream", **headers: str):
    """Send the status line and headers (``Transfer_Encoding=...`` sends ``Transfer-Encoding``)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.flush()


def write_pieces(handler: _Handler, pieces) -> None:
    for piece in pieces:
        handler.wfile.write(piece)
        handler.wfile.flush()
        time.sleep(PAUSE)


def event(payload: dict, newline: bytes = b"\n") -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + newline + newline


def delta(text: str, newline: bytes = b"\n") -> bytes:
    return event({"choices": [{"index": 0, "delta": {"content": text}}]}, newline)


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
DONE = b"data: [DONE]\n\n"


def normal_answer(handler: _Handler) -> None:
    start(handler)
    write_pieces(
        handler,
        [
            event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            delta("Hel"),
            delta("lo"),
            event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
            event({"choices": [], "usage": USAGE}),
            DONE,
        ],
    )


def read_answer(client, transport: str, messages=None) -> list:
    """The chunks of ``client``'s answer, read with ``stream`` ("sync") or ``astream`` ("async")."""
    messages = MESSAGES if messages is None else messages
    if transport == "sync":
        return list(client.stream(messages))

    async def collect():
        return [chunk async for chunk in client.astream(messages)]

    return asyncio.run(collect())
