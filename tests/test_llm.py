"""Tests of llmcompiler.llm and openai_chat: the client against a real local HTTP server, and ScriptedLLM.

The server is in ``llm_server``. Tests of what the client accepts and raises run through both of its
transports (``transport`` is "sync" for ``stream``, "async" for ``astream``): they must agree exactly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback

import pytest

from llm_server import (DONE, KEY, MESSAGES, USAGE, read_answer, delta, event, no_openai_environment,  # noqa: F401
                        normal_answer, server, start, write_pieces)
from llmcompiler.errors import LLMConnectionError, LLMError, LLMHTTPError, LLMTimeoutError
from llmcompiler.llm import LLM, OpenAIChat, ScriptedLLM, Usage, complete


@pytest.fixture(params=["sync", "async"])
def transport(request):
    return request.param

# -- streaming -------------------------------------------------------------------------------------


def test_streams_chunks_and_records_usage(server):
    server.respond = normal_answer
    client = OpenAIChat("m", base_url=server.url, api_key=KEY)
    assert list(client.stream(MESSAGES)) == ["Hel", "lo"]
    assert client.last_usage == Usage(12, 3, 15)
    assert client.complete(MESSAGES) == "Hello"
    assert complete(client, MESSAGES) == "Hello"
    assert client.usage == Usage(36, 9, 45)


def test_server_that_ignores_usage_request(server, transport):
    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("no usage"), DONE])

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url)
    assert read_answer(client, transport) == ["no usage"]
    assert client.last_usage is None
    assert client.usage == Usage()


def test_events_split_across_reads(server, transport):
    stream = delta("caf\u00e9 \u65e5\u672c") + delta("second") + DONE
    cut_in_char = stream.index("\u65e5".encode()) + 1  # inside a 3-byte UTF-8 character
    cut_in_field = stream.index(b"data:", cut_in_char) + 2  # "da" | "ta: ..."
    cuts = [0, 3, cut_in_char, cut_in_field, cut_in_field + 9, len(stream) - 1, len(stream)]
    pieces = [stream[a:b] for a, b in zip(cuts, cuts[1:])]

    def answer(handler):
        start(handler)
        write_pieces(handler, pieces)

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url)
    assert read_answer(client, transport) == ["caf\u00e9 \u65e5\u672c", "second"]


def test_comments_keepalives_and_multiline_data(server, transport):
    def answer(handler):
        start(handler)
        write_pieces(
            handler,
            [
                b": keep-alive\n\n",
                b":ping\n",
                b'event: message\ndata: {"choices": [{"delta":\ndata: {"content": "two lines"}}]}\n\n',
                b": keep-alive\n\n",
                b"id: 7\nretry: 1000\n" + delta("!"),
                DONE,
            ],
        )

    server.respond = answer
    assert "".join(read_answer(OpenAIChat("m", base_url=server.url), transport)) == "two lines!"


def test_crlf_line_endings_even_split_between_cr_and_lf(server, transport):
    stream = delta("one", b"\r\n") + b": ping\r\n\r\n" + delta("two", b"\r\n") + b"data: [DONE]\r\n\r\n"
    cut = stream.index(b"\r\n") + 1

    def answer(handler):
        start(handler)
        write_pieces(handler, [stream[:cut], stream[cut:]])

    server.respond = answer
    assert read_answer(OpenAIChat("m", base_url=server.url), transport) == ["one", "two"]


def test_ends_cleanly_at_eof_without_done(server, transport):
    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("a"), b'data: {"choices": [{"delta": {"content": "b"}}]}'])

    server.respond = answer
    assert read_answer(OpenAIChat("m", base_url=server.url), transport) == ["a", "b"]


def test_chunked_transfer_encoding(server, transport):
    stream = delta("chunked ") + delta("reply") + DONE

    def answer(handler):
        handler.protocol_version = "HTTP/1.1"
        handler.close_connection = True
        start(handler, Transfer_Encoding="chunked")
        pieces = [stream[:10], stream[10:31], stream[31:]]
        write_pieces(handler, [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"])

    server.respond = answer
    assert read_answer(OpenAIChat("m", base_url=server.url), transport) == ["chunked ", "reply"]


def test_json_answer_from_a_server_that_does_not_stream(server, transport):
    def answer(handler):
        body = json.dumps({"choices": [{"message": {"content": "whole"}}], "usage": USAGE}).encode()
        start(handler, content_type="application/json", Content_Length=str(len(body)))
        handler.wfile.write(body)

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url)
    assert read_answer(client, transport) == ["whole"]
    assert client.last_usage == Usage(12, 3, 15)


def test_error_event_raises_llm_error_with_its_message(server):
    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("partial"), event({"error": {"message": "model overloaded"}})])

    server.respond = answer
    chunks = OpenAIChat("m", base_url=server.url).stream(MESSAGES)
    assert next(chunks) == "partial"
    with pytest.raises(LLMError, match="model overloaded"):
        next(chunks)


def test_invalid_json_event_raises_llm_error(server, transport):
    def answer(handler):
        start(handler)
        write_pieces(handler, [b"data: {not json\n\n"])

    server.respond = answer
    with pytest.raises(LLMError, match="expected a JSON object"):
        read_answer(OpenAIChat("m", base_url=server.url), transport)


def test_closing_the_iterator_early_closes_the_connection(server):
    closed = threading.Event()

    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("first")])
        handler.connection.settimeout(5)
        if handler.rfile.read(1) == b"":  # EOF: the client closed its end
            closed.set()

    server.respond = answer
    chunks = OpenAIChat("m", base_url=server.url).stream(MESSAGES)
    assert next(chunks) == "first"
    chunks.close()
    assert closed.wait(timeout=5)


# -- the request -----------------------------------------------------------------------------------


def test_request_body_and_headers(server, transport):
    server.respond = normal_answer
    client = OpenAIChat(
        "my-model",
        base_url=server.url + "/",
        api_key=KEY,
        temperature=0.5,
        max_tokens=64,
        stop=["Observation:"],
        extra_headers={"X-Trace": "t1"},
    )
    read_answer(client, transport)
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"] == {
        "model": "my-model",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "max_tokens": 64,
        "stop": ["Observation:"],
    }
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["x-trace"] == "t1"


def test_no_key_sends_no_authorization_and_unset_options_are_left_out(server):
    server.respond = normal_answer
    OpenAIChat("m", base_url=server.url, temperature=None).complete(MESSAGES)
    (request,) = server.requests
    assert "authorization" not in request["headers"]
    assert set(request["body"]) == {"model", "messages", "stream", "stream_options"}


def test_environment_variables_are_the_defaults(server, monkeypatch):
    server.respond = normal_answer
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    client = OpenAIChat()
    assert client.complete(MESSAGES) == "Hello"
    assert server.requests[0]["body"]["model"] == "env-model"
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert client.url == server.url + "/chat/completions"
    assert KEY not in repr(client)


def test_with_model_keeps_the_server_and_key_and_counts_its_own_usage(server):
    server.respond = normal_answer
    planner = OpenAIChat("big", base_url=server.url, api_key=KEY, timeout=7, retries=1)
    joiner = planner.with_model("small")
    assert joiner.complete(MESSAGES) == "Hello"
    assert server.requests[0]["body"]["model"] == "small"
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert (joiner.url, joiner.timeout, joiner.retries) == (planner.url, 7.0, 1)
    assert joiner.usage == Usage(12, 3, 15) and planner.usage == Usage() and planner.model == "big"
    assert KEY not in repr(joiner) and KEY not in repr(vars(joiner))


def test_defaults_without_environment():
    client = OpenAIChat()
    assert client.model == "gpt-4o-mini"
    assert client.url == "https://api.openai.com/v1/chat/completions"
    assert "api_key=None" in repr(client)


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "localhost:8000", "http://user:pw@example.com/v1"])
def test_bad_base_url(url):
    with pytest.raises(ValueError) as caught:
        OpenAIChat(base_url=url)
    assert "pw" not in str(caught.value)


def test_bad_messages_raise_type_error_at_call():
    client = OpenAIChat()
    with pytest.raises(TypeError):
        client.stream("hello")
    with pytest.raises(TypeError, match="message 0"):
        client.stream([{"role": "user"}])


# -- errors ----------------------------------------------------------------------------------------


def _shown(error: BaseException) -> str:
    """Everything a person could see of an error: str, repr, attributes and the chained traceback."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return text + repr(error) + repr(vars(error))


def test_401_keeps_status_and_body_and_never_shows_the_key(server, transport):
    def answer(handler):
        echo = handler.headers["Authorization"]  # a careless server showing the key back
        body = json.dumps({"error": {"message": "Incorrect API key", "echo": echo}})
        start(handler, 401, "application/json")
        handler.wfile.write(body.encode())

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url, api_key=KEY, extra_headers={"api-key": "AZURE-SECRET"})
    with pytest.raises(LLMHTTPError) as caught:
        read_answer(client, transport)
    error = caught.value
    assert error.status == 401
    assert "Incorrect API key" in error.body and "Bearer ***" in error.body
    assert str(error) == f"POST {server.url}/chat/completions: HTTP 401 Unauthorized: Incorrect API key"
    for secret in (KEY, "AZURE-SECRET"):
        assert secret not in _shown(error)
        assert secret not in repr(client) and secret not in repr(vars(client))


def test_500_is_an_http_error(server, transport):
    def answer(handler):
        start(handler, 500, "text/plain")
        handler.wfile.write(b"x" * 2000)

    server.respond = answer
    with pytest.raises(LLMHTTPError, match="HTTP 500") as caught:
        read_answer(OpenAIChat("m", base_url=server.url, retries=0), transport)
    assert caught.value.status == 500
    assert caught.value.body == "x" * 500


def test_stalled_stream_times_out(server):
    def answer(handler):
        start(handler)
        write_pieces(handler, [delta("before the stall")])
        handler.server.release.wait(timeout=5)

    server.respond = answer
    client = OpenAIChat("m", base_url=server.url, timeout=0.3)
    began = time.monotonic()
    chunks = client.stream(MESSAGES)
    assert next(chunks) == "before the stall"
    with pytest.raises(LLMTimeoutError) as caught:
        next(chunks)
    assert time.monotonic() - began < 3
    assert isinstance(caught.value, TimeoutError)
    assert client.url in str(caught.value) and "0.3 s" in str(caught.value)


def test_connection_refused_names_the_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAIChat("m", base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, retries=0)
    with pytest.raises(LLMConnectionError) as caught:
        client.complete(MESSAGES)
    assert isinstance(caught.value, ConnectionError)
    assert str(caught.value).startswith(f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions: ")
    assert KEY not in _shown(caught.value)


def test_import_is_cheap():
    """llm.py and openai_chat.py load neither http.client nor ssl nor json nor asyncio until used.

    (urllib.parse is left out: Python's startup already imports it.)
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/llmcompiler"
    code = (
        "import sys, types\n"
        f"package = types.ModuleType('llmcompiler'); package.__path__ = [{package!r}]\n"
        "sys.modules['llmcompiler'] = package\n"
        "import llmcompiler.llm, llmcompiler.openai_chat\n"
        "print(sorted(m for m in ('http.client', 'ssl', 'json', 'asyncio') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- ScriptedLLM -----------------------------------------------------------------------------------


def test_scripted_replays_in_order_and_records_calls():
    llm = ScriptedLLM(["first answer", "second"])
    first = [{"role": "user", "content": "one"}]
    assert llm.complete(first) == "first answer"
    first[0]["content"] = "changed later"
    assert complete(llm, [{"role": "user", "content": "two"}]) == "second"
    assert llm.calls == [[{"role": "user", "content": "one"}], [{"role": "user", "content": "two"}]]
    assert llm.remaining == 0


def test_scripted_chunking_of_str_and_list():
    llm = ScriptedLLM(["1. search('a')\n2. join()", ["1. sea", "rch('a')", "\n"], ("x",), ""])
    assert list(llm.stream(MESSAGES)) == ["1. searc", "h('a')\n2", ". join()"]
    assert list(llm.stream(MESSAGES)) == ["1. sea", "rch('a')", "\n"]
    assert list(llm.stream(MESSAGES)) == ["x"]
    assert list(llm.stream(MESSAGES)) == []
    assert list(ScriptedLLM(["abcde"], chunk_size=2).stream(MESSAGES)) == ["ab", "cd", "e"]


def test_scripted_delay_before_each_chunk():
    llm = ScriptedLLM([["a", "b", "c"]], delay=0.05)
    began = time.monotonic()
    assert llm.complete(MESSAGES) == "abc"
    assert time.monotonic() - began >= 0.15


def test_scripted_exhaustion():
    llm = ScriptedLLM(["only"])
    llm.complete(MESSAGES)
    with pytest.raises(LLMError, match="no response left for call 2"):
        llm.complete(MESSAGES)
    assert len(llm.calls) == 2


def test_scripted_takes_its_response_when_called():
    llm = ScriptedLLM(["one", "two"])
    first, second = llm.stream(MESSAGES), llm.stream(MESSAGES)
    assert "".join(second) == "two" and "".join(first) == "one"


def test_scripted_rejects_one_str():
    with pytest.raises(TypeError):
        ScriptedLLM("not a list")


def test_both_are_llms():
    assert isinstance(ScriptedLLM([]), LLM)
    assert isinstance(OpenAIChat(), LLM)
    assert not isinstance(object(), LLM)


def test_event_decoder_fed_one_byte_at_a_time():
    """Every split point at once: the decoder gets the stream byte by byte (no TCP timing involved)."""
    from llmcompiler._chat_wire import EventDecoder as _EventDecoder

    stream = (
        "\ufeff: comment\r\ndata: caf\u00e9\r\n\r\n"  # BOM, comment, CRLF
        "event: error\ndata: a\ndata:b\n\n"  # LF, multi-line data, no space after the colon
        "data: lone CR\r\rdata: [DONE]\n\n"  # CR endings
        "data: unterminated"
    ).encode("utf-8")
    decoder = _EventDecoder()
    events = [found for byte in range(len(stream)) for found in decoder.feed(stream[byte : byte + 1])]
    events += decoder.finish()
    assert events == [
        ("message", "caf\u00e9"),
        ("error", "a\nb"),
        ("message", "lone CR"),
        ("message", "[DONE]"),
        ("message", "unterminated"),
    ]
