"""Tests of the asyncio side of the models: ``OpenAIChat.astream`` against the real local server (stalls,
refused connections, cancellation, TLS), retries, error messages, ``ScriptedLLM.astream`` and the
``astream_of`` fallback for a model with only ``stream``.

"The event loop is free" is shown by events, not timings: the server (or the model) waits for a ticker
coroutine on the client's loop to tick before it sends more, so a client that blocked its loop would
never get the rest of its answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from llm_server import (DONE, KEY, MESSAGES, delta, no_openai_environment, normal_answer, read_answer,  # noqa: F401
                        server, serving, start, write_pieces)
from llmcompiler.errors import LLMConnectionError, LLMError, LLMHTTPError, LLMTimeoutError
from llmcompiler.llm import ScriptedLLM, acomplete, astream_of
from llmcompiler.openai_chat import OpenAIChat

WAIT = 5  # seconds any test waits for an event at most


async def _ticker(ticks: list, enough: int, ticked: threading.Event) -> None:
    """Tick every few ms; set ``ticked`` once ``enough`` ticks happened after ``ticks`` was armed."""
    while True:
        await asyncio.sleep(0.002)
        if ticks:
            ticks[0] += 1
            if ticks[0] >= enough:
                ticked.set()


async def _with_ticker(coroutine, ticks: list, ticked: threading.Event):
    ticker = asyncio.ensure_future(_ticker(ticks, 5, ticked))
    try:
        return await coroutine
    finally:
        ticker.cancel()


# -- OpenAIChat.astream on the real server ----------------------------------------------------------


def test_the_loop_keeps_ticking_while_the_answer_streams(server):
    ticks, ticked, released_by_ticker = [], threading.Event(), []

    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("first ")])
        released_by_ticker.append(ticked.wait(timeout=WAIT))  # only a free loop can tick
        write_pieces(handler, [delta("second"), DONE])

    async def consume(client):
        chunks = []
        async for chunk in client.astream(MESSAGES):
            chunks.append(chunk)
            ticks.append(0)  # arm the ticker once the first chunk is in
        return chunks

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url, timeout=WAIT * 2)
    assert asyncio.run(_with_ticker(consume(client), ticks, ticked)) == ["first ", "second"]
    assert released_by_ticker == [True]


def test_a_stall_times_out_without_blocking_the_loop(server):
    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("before the stall")])
        handler.server.release.wait(timeout=WAIT)

    async def consume(client, ticks):
        chunks = client.astream(MESSAGES)
        assert await chunks.__anext__() == "before the stall"
        before = ticks[0]
        with pytest.raises(LLMTimeoutError) as caught:
            await chunks.__anext__()
        return caught.value, ticks[0] - before

    ticks = [0]
    server.respond = answer
    client = OpenAIChat("m", base_url=server.url, timeout=0.3)
    error, ticked_meanwhile = asyncio.run(_with_ticker(consume(client, ticks), ticks, threading.Event()))
    assert isinstance(error, TimeoutError)
    assert str(error) == f"POST {client.url}: no data from the server for 0.3 s (timeout)"
    assert ticked_meanwhile > 0  # the loop ran the ticker while the client waited for the server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_refused_connection_is_retried_then_names_the_url(transport, caplog):
    port = _free_port()
    client = OpenAIChat("m", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, retries=2, retry_wait=0.001)
    with caplog.at_level(logging.WARNING, logger="llmcompiler"):
        with pytest.raises(LLMConnectionError) as caught:
            read_answer(client, transport)
    assert str(caught.value).startswith(f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions: ")
    retries = [record for record in caplog.records if record.name == "llmcompiler.llm"]
    assert [record.levelno for record in retries] == [logging.WARNING] * 2
    assert "retry 1 of 2" in retries[0].getMessage() and "retry 2 of 2" in retries[1].getMessage()


@pytest.mark.parametrize("error, retry_after, attempt, expected", [
    (LLMHTTPError("busy", status=429), None, 0, 0.5),
    (LLMHTTPError("busy", status=503), None, 2, 2.0),
    (LLMHTTPError("busy", status=429), "3", 0, 3.0),
    (LLMHTTPError("busy", status=429), "0.1", 1, 1.0),
    (LLMHTTPError("busy", status=429), "3600", 0, 20.0),
    (LLMHTTPError("busy", status=503), "Wed, 21 Oct 2026 07:28:00 GMT", 0, 0.5),
    (LLMConnectionError("refused"), None, 1, 1.0),
    (LLMHTTPError("no", status=400), None, 0, None),
    (LLMHTTPError("no", status=401), "1", 0, None),
    (LLMTimeoutError("stalled"), None, 0, None),
    (LLMError("error event"), None, 0, None),
])
def test_which_failures_are_retried_and_after_how_long(error, retry_after, attempt, expected):
    from llmcompiler._chat_wire import retry_delay

    assert retry_delay(attempt, error, retry_after, 0.5) == expected


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_busy_server_is_retried_and_the_answer_streams(server, transport):
    def answer(handler):
        if len(handler.server.requests) == 1:
            start(handler, 503, "application/json", Retry_After="0")
            handler.wfile.write(json.dumps({"error": {"message": "overloaded"}}).encode())
        else:
            normal_answer(handler)

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url, retry_wait=0.001)
    assert read_answer(client, transport) == ["Hel", "lo"]
    assert len(server.requests) == 2


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_a_client_error_is_not_retried(server, transport):
    def answer(handler):
        start(handler, 400, "application/json")
        handler.wfile.write(json.dumps({"error": {"message": "bad model", "type": "invalid_request"}}).encode())

    server.respond = answer
    with pytest.raises(LLMHTTPError, match="HTTP 400 Bad Request: bad model$"):
        read_answer(OpenAIChat("m", base_url=server.url, retry_wait=0.001), transport)
    assert len(server.requests) == 1


@pytest.mark.parametrize("body, shown", [
    ({"error": {"message": "Rate limit reached for gpt-x in organization org-1 on tokens per min."}},
     "Rate limit reached for gpt-x in organization org-1 on tokens per min."),
    ({"error": "model 'llama9' not found"}, "model 'llama9' not found"),
    ({"object": "error", "message": "max_tokens is too large"}, "max_tokens is too large"),
    ({"detail": "Not Found"}, "Not Found"),
    ({"error": {"code": 7}}, '{"error": {"code": 7}}'),
])
def test_an_http_error_shows_the_servers_own_message(server, body, shown):
    def answer(handler):
        start(handler, 404, "application/json")
        handler.wfile.write(json.dumps(body).encode())

    server.respond = answer
    with pytest.raises(LLMHTTPError) as caught:
        read_answer(OpenAIChat("m", base_url=server.url), "sync")
    assert str(caught.value) == f"POST {server.url}/chat/completions: HTTP 404 Not Found: {shown}"
    assert caught.value.body == json.dumps(body)


def test_a_long_error_message_is_shown_whole_up_to_a_limit_and_scrubbed(server):
    message = "Invalid key " + KEY + ". " + "Details. " * 40  # 380 characters past the key

    def answer(handler):
        start(handler, 401, "application/json")
        handler.wfile.write(json.dumps({"error": {"message": message}}).encode())

    server.respond = answer
    with pytest.raises(LLMHTTPError) as caught:
        read_answer(OpenAIChat("m", base_url=server.url, api_key=KEY), "async")
    text = str(caught.value)
    assert KEY not in text and text.endswith(": Invalid key ***. " + "Details. " * 39 + "Details.")


@pytest.mark.parametrize("transport", ["sync", "async"])
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_connection_dropped_mid_answer_is_a_connection_error(server, transport, framing):
    first = delta("first ")

    def answer(handler):
        if framing == "chunked":
            handler.protocol_version = "HTTP/1.1"
            start(handler, Transfer_Encoding="chunked")
            write_pieces(handler, [b"%x\r\n%s\r\n" % (len(first), first), b"400\r\ndata: {"])
        else:
            start(handler, Content_Length=str(len(first) + 500))
            write_pieces(handler, [first])
        handler.close_connection = True  # and the server hangs up, the answer unfinished

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url)
    with pytest.raises(LLMConnectionError, match="response cut short"):
        read_answer(client, transport)


def test_an_error_event_after_text_raises_on_the_next_chunk(server):
    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("partial"), b'data: {"error": {"message": "model overloaded"}}\n\n'])

    async def consume(client):
        chunks = client.astream(MESSAGES)
        assert await chunks.__anext__() == "partial"
        with pytest.raises(LLMError, match="model overloaded"):
            await chunks.__anext__()

    server.respond = answer
    asyncio.run(consume(OpenAIChat("m", base_url=server.url)))


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_stopping_early_closes_the_connection(server, how):
    closed = threading.Event()

    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("first")])
        handler.connection.settimeout(WAIT)
        if handler.rfile.read(1) == b"":  # EOF: the client closed its end
            closed.set()

    async def consume(client):
        chunks = client.astream(MESSAGES)
        assert await chunks.__anext__() == "first"
        if how == "aclose":
            await chunks.aclose()
            return
        waiting = asyncio.ensure_future(chunks.__anext__())
        await asyncio.sleep(0.01)  # let it reach the read
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    server.respond = answer
    asyncio.run(consume(OpenAIChat("m", base_url=server.url)))
    assert closed.wait(timeout=WAIT)


def test_usage_is_recorded_by_astream(server):
    server.respond = normal_answer
    client = OpenAIChat("m", base_url=server.url)
    assert asyncio.run(acomplete(client, MESSAGES)) == "Hello"
    assert asyncio.run(client.acomplete(MESSAGES)) == "Hello"
    assert client.last_usage is not None and client.usage.total_tokens == 30


@pytest.fixture
def tls(tmp_path):
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client context that
    trusts exactly it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the TLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    return server_context, ssl.create_default_context(cafile=str(cert))


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_https_with_a_verified_certificate(tls, transport):
    server_context, client_context = tls
    with serving(server_context) as httpd:
        httpd.respond = normal_answer
        client = OpenAIChat("m", base_url=httpd.url, api_key=KEY, ssl_context=client_context)
        assert read_answer(client, transport) == ["Hel", "lo"]
        assert httpd.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("transport", ["sync", "async"])
def test_https_refuses_an_unknown_certificate(tls, transport):
    server_context, _ = tls
    with serving(server_context) as httpd:
        httpd.respond = normal_answer
        client = OpenAIChat("m", base_url=httpd.url, retries=0)
        with pytest.raises(LLMConnectionError, match="certificate verify failed"):
            read_answer(client, transport)


# -- ScriptedLLM.astream -----------------------------------------------------------------------------


def test_scripted_astream_replays_like_stream():
    llm = ScriptedLLM(["1. search('a')\n2. join()", ["x", "y"]])

    async def consume():
        return [chunk async for chunk in llm.astream(MESSAGES)], await llm.acomplete(MESSAGES)

    assert asyncio.run(consume()) == (["1. searc", "h('a')\n2", ". join()"], "xy")
    assert len(llm.calls) == 2 and llm.remaining == 0
    with pytest.raises(LLMError, match="no response left for call 3"):
        asyncio.run(acomplete(llm, MESSAGES))


def test_scripted_astream_delay_leaves_the_loop_free():
    llm = ScriptedLLM([["a", "b", "c"]], delay=0.01)
    ticks = [0]

    async def consume():
        seen = []
        async for chunk in llm.astream(MESSAGES):
            seen.append((chunk, ticks[0]))
        return seen

    seen = asyncio.run(_with_ticker(consume(), ticks, threading.Event()))
    assert [chunk for chunk, _ in seen] == ["a", "b", "c"]
    assert seen[-1][1] > seen[0][1]  # the ticker ran between chunks: the delay did not block the loop


# -- astream_of: a model with only stream() ----------------------------------------------------------

REQUEST_ID = contextvars.ContextVar("REQUEST_ID", default="none")


class ThreadModel:
    """A model with only ``stream``: it blocks between chunks until told to go on."""

    def __init__(self, chunks, go_on: threading.Event = None, fail_after: int = None):
        self.chunks, self.go_on, self.fail_after = chunks, go_on, fail_after
        self.closed = threading.Event()
        self.contexts = []

    def stream(self, messages):
        try:
            for number, chunk in enumerate(self.chunks):
                self.contexts.append(REQUEST_ID.get())
                if number and self.go_on is not None:
                    assert self.go_on.wait(timeout=WAIT), "the ticker never ticked: the loop was blocked"
                if self.fail_after == number:
                    raise LLMConnectionError("connection lost mid-answer")
                yield chunk
        finally:
            self.closed.set()


def test_a_stream_only_model_runs_on_a_thread_and_the_loop_stays_free():
    ticks, ticked = [], threading.Event()
    model = ThreadModel(["one ", "two"], go_on=ticked)

    async def consume():
        REQUEST_ID.set("req-7")
        chunks = []
        async for chunk in astream_of(model, MESSAGES):
            chunks.append(chunk)
            ticks.append(0)
        return chunks

    assert asyncio.run(_with_ticker(consume(), ticks, ticked)) == ["one ", "two"]
    assert model.contexts == ["req-7", "req-7"]  # the caller's contextvars reached the thread
    assert model.closed.wait(timeout=WAIT)


def test_a_stream_only_models_error_reaches_the_consumer():
    model = ThreadModel(["one ", "two"], fail_after=1)

    async def consume():
        chunks = []
        with pytest.raises(LLMConnectionError, match="connection lost mid-answer"):
            async for chunk in astream_of(model, MESSAGES):
                chunks.append(chunk)
        return chunks

    assert asyncio.run(consume()) == ["one "]
    assert model.closed.wait(timeout=WAIT)


def test_stopping_a_stream_only_model_early_closes_its_iterator():
    go_on = threading.Event()
    model = ThreadModel(["one ", "two", "three"], go_on=go_on)

    async def consume():
        chunks = astream_of(model, MESSAGES)
        assert await chunks.__anext__() == "one "
        await chunks.aclose()
        go_on.set()  # the thread may now finish its current chunk, and must then stop

    asyncio.run(consume())
    assert model.closed.wait(timeout=WAIT)
    assert model.contexts == ["none", "none"]  # it never went on to the third chunk
