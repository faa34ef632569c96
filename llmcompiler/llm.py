"""Language models: the ``LLM`` protocol, an OpenAI-compatible streaming client, and a scripted stand-in.

The rest of the package needs one thing from a model: ``stream(messages)``, an iterator of text chunks
as they arrive, so the plan parser can start tasks before the plan is finished. Two implementations:

* ``OpenAIChat`` talks to any server with an OpenAI-style ``POST {base_url}/chat/completions`` that
  streams server-sent events (OpenAI, vLLM, llama.cpp, Ollama, LM Studio, ...). It uses ``http.client``
  directly and reads the socket as data arrives.
* ``ScriptedLLM`` replays fixed answers, optionally slowly, for tests, demos and benchmarks.

Errors (all from ``.errors``): the server cannot be reached -> ``LLMConnectionError``; it answers with
an HTTP error -> ``LLMHTTPError``; it stalls for longer than the timeout -> ``LLMTimeoutError``; anything
else wrong with the answer (an ``error`` event, invalid JSON) -> ``LLMError``. Messages name the URL and
never contain the API key: every text taken from the server is scrubbed of it before it is shown.

Importing this module is cheap: ``http.client`` (which imports ``ssl``), ``json`` and ``urllib.parse``
are imported by the functions that need them.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

from .errors import LLMConnectionError, LLMError, LLMHTTPError, LLMTimeoutError

__all__ = ["Message", "Usage", "LLM", "complete", "OpenAIChat", "ScriptedLLM"]

Message = Mapping[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"

# How much of an error response's body is read, kept (LLMHTTPError.body) and shown in the message.
_ERROR_BODY_READ = 4096
_ERROR_BODY_KEPT = 500
_ERROR_BODY_SHOWN = 200
# Bytes asked of the socket per read; read1 returns as soon as any data is there.
_READ_SIZE = 65536
# Extra headers whose values are treated as secrets, like the API key.
_SECRET_HEADER = re.compile(r"authorization|key|token|secret|cookie", re.IGNORECASE)
# SSE line terminators: CRLF, LF or a lone CR.
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass
class Usage:
    """Token counts, as the server reports them. ``add`` sums another ``Usage`` into this one."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, other: "Usage") -> "Usage":
        """Add ``other``'s counts to this one, in place; returns ``self``."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        return self

    @classmethod
    def from_mapping(cls, usage: Mapping[str, Any]) -> "Usage":
        """A ``Usage`` from a server's ``usage`` object; missing or non-numeric counts are 0."""
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens"))
        total = _count(usage.get("total_tokens")) or prompt + completion
        return cls(prompt, completion, total)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


@runtime_checkable
class LLM(Protocol):
    """Anything that can stream a chat answer: ``stream(messages)`` yields text chunks as they arrive."""

    def stream(self, messages: Sequence[Message]) -> Iterator[str]: ...


def complete(llm: LLM, messages: Sequence[Message]) -> str:
    """The whole answer of ``llm`` to ``messages``: its streamed chunks joined. Raises what it raises."""
    return "".join(llm.stream(messages))


def _copy_messages(messages: Sequence[Message]) -> List[dict]:
    """``messages`` as a list of plain dicts. Raises TypeError unless each has str role and content."""
    if isinstance(messages, (str, bytes)) or isinstance(messages, Mapping):
        raise TypeError(f"messages must be a sequence of message mappings, got {type(messages).__name__}")
    copied = []
    for number, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"message {number} must be a mapping, got {type(message).__name__}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise TypeError(f"message {number} needs a str {key!r}, got {message.get(key)!r}")
        copied.append(dict(message))
    return copied


# -- server-sent events ------------------------------------------------------------------------------


class _EventDecoder:
    """Incremental server-sent-events decoder (the WHATWG rules, minus ``id`` and ``retry``).

    ``feed(bytes)`` returns the events completed by those bytes as ``(type, data)`` pairs; ``finish()``
    returns what is left at end of stream. Lines are split on bytes, before decoding, so a UTF-8
    character split across reads is decoded whole. Invariant: ``_buffer`` holds only the start of one
    line (no line break); ``_after_cr`` says the last line ended in a CR whose LF may still come.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._after_cr = False
        self._started = False
        self._event_type = ""
        self._data: List[str] = []

    def feed(self, chunk: bytes) -> List[Tuple[str, str]]:
        if not self._started and chunk:
            self._started = True
            chunk = chunk[3:] if chunk.startswith(b"\xef\xbb\xbf") else chunk
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across two reads
        self._after_cr = False
        if not chunk:
            return []
        self._buffer += chunk
        self._after_cr = self._buffer.endswith(b"\r")
        *lines, self._buffer = _LINE_BREAK.split(self._buffer)
        return [event for event in map(self._line, lines) if event is not None]

    def finish(self) -> List[Tuple[str, str]]:
        """Events left at end of stream: a last unterminated line and event are taken as complete."""
        events = [self._line(self._buffer)] if self._buffer else []
        self._buffer = b""
        events.append(self._line(b""))
        return [event for event in events if event is not None]

    def _line(self, raw: bytes) -> Optional[Tuple[str, str]]:
        line = raw.decode("utf-8", "replace")
        if not line:  # a blank line ends the event
            event = (self._event_type or "message", "\n".join(self._data)) if self._data else None
            self._event_type, self._data = "", []
            return event
        if line.startswith(":"):  # a comment, e.g. a keep-alive
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event_type = value
        return None


# -- the OpenAI-compatible client --------------------------------------------------------------------


class _Secret:
    """A string that does not show itself in repr() or str(); ``reveal()`` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class OpenAIChat:
    """A streaming client for an OpenAI-compatible ``/chat/completions`` endpoint.

    Defaults come from the environment: ``base_url`` from ``OPENAI_BASE_URL`` (else the OpenAI API),
    ``api_key`` from ``OPENAI_API_KEY`` (None sends no Authorization header, for local servers),
    ``model`` from ``OPENAI_MODEL`` (else ``gpt-4o-mini``). ``timeout`` (seconds) bounds connecting
    and every wait for data, not the whole answer. ``temperature``, ``max_tokens`` and ``stop`` are
    sent when not None. Raises ValueError for a base URL that is not http(s) or carries credentials.

    ``usage`` sums the token usage of every call whose server reported it (it is asked to, with
    ``stream_options.include_usage``); ``last_usage`` is that of the last call to finish, None if
    the server sent none. One client may serve several threads at once; each call has its own
    connection, and ``usage`` is updated under a lock.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        temperature: Optional[float] = 0.0,
        timeout: float = 60.0,
        max_tokens: Optional[int] = None,
        stop: Optional[Sequence[str]] = None,
        extra_headers: Optional[Mapping[str, str]] = None,
    ):
        from urllib.parse import urlsplit

        self.model = model or os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        parts = urlsplit(base_url)
        if "@" in parts.netloc:
            raise ValueError("base_url must not contain credentials; pass api_key instead")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.temperature = temperature
        self.timeout = float(timeout)
        self.max_tokens = max_tokens
        self.stop = [stop] if isinstance(stop, str) else list(stop or [])
        self.usage = Usage()
        self.last_usage: Optional[Usage] = None

        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = parts.path.rstrip("/") + "/chat/completions" + (f"?{parts.query}" if parts.query else "")
        self.url = f"{parts.scheme}://{parts.netloc}{self._path}"
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self._api_key = _Secret(api_key) if api_key else None
        self._extra_headers = {name: _Secret(value) for name, value in (extra_headers or {}).items()}
        self._secrets = [_Secret(secret) for secret in _secrets(api_key, self._extra_headers)]
        self._usage_lock = threading.Lock()  # guards self.usage and self.last_usage

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return (
            f"OpenAIChat(model={self.model!r}, base_url={self.base_url!r}, api_key={key}, "
            f"timeout={self.timeout!r})"
        )

    def complete(self, messages: Sequence[Message]) -> str:
        """The whole answer: ``stream(messages)`` joined. Raises what ``stream`` raises."""
        return "".join(self.stream(messages))

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Send ``messages``; return an iterator of the answer's text chunks as they arrive.

        The messages are checked (TypeError) and copied now; the request is sent on the first
        ``next()``, which is also where LLMConnectionError, LLMHTTPError, LLMTimeoutError and LLMError
        are raised. The connection is closed when the iterator ends or is closed early.
        """
        import json

        body = {"model": self.model, "messages": _copy_messages(messages), "stream": True}
        body["stream_options"] = {"include_usage": True}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stop:
            body["stop"] = self.stop
        return self._stream(json.dumps(body).encode("utf-8"))

    # The request, step by step. Each step turns socket and protocol failures into LLM errors.

    def _stream(self, body: bytes) -> Iterator[str]:
        import http.client

        connection = self._connection(http.client)
        response = None
        usage: List[Usage] = []  # the call's latest usage report (some servers repeat it per chunk)
        try:
            self._connect(connection)
            response = self._send(connection, body, http.client)
            self._check_status(response, http.client)
            content_type = response.getheader("Content-Type") or ""
            if content_type.startswith("application/json"):  # the server ignored "stream": true
                yield from self._whole_answer(response, usage, http.client)
                return
            decoder = _EventDecoder()
            for event_type, data in self._events(response, decoder, http.client):
                if data.strip() == "[DONE]":
                    return
                text = self._take_payload(event_type, data, usage)
                if text:
                    yield text
        finally:
            # A response that will close its connection owns the socket: close both.
            if response is not None:
                response.close()
            connection.close()
            self._record_usage(usage[-1] if usage else None)

    def _connection(self, http_client: Any) -> Any:
        if self._scheme == "https":
            import ssl

            return http_client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http_client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _connect(self, connection: Any) -> None:
        try:
            connection.connect()
        except TimeoutError as exc:
            message = f"cannot connect to {self.url}: timed out after {self.timeout:g} s"
            raise LLMTimeoutError(message) from exc
        except OSError as exc:
            raise LLMConnectionError(f"cannot connect to {self.url}: {_reason(exc)}") from exc

    def _send(self, connection: Any, body: bytes, http_client: Any) -> Any:
        """POST the body; return the response (its status and headers read, not its body)."""
        try:
            connection.request("POST", self._path, body=body, headers=self._headers())
            response = connection.getresponse()
        except TimeoutError as exc:
            raise self._stalled() from exc
        except OSError as exc:
            raise LLMConnectionError(f"POST {self.url}: connection failed: {_reason(exc)}") from exc
        except http_client.HTTPException as exc:
            raise LLMError(f"POST {self.url}: invalid HTTP response: {self._scrub(repr(exc))}") from None
        return response

    def _check_status(self, response: Any, http_client: Any) -> None:
        """Raise LLMHTTPError, with the start of the body, unless the status is 2xx."""
        if 200 <= response.status < 300:
            return
        body_text = self._scrub(_read_error_body(response, http_client))
        shown = " ".join(body_text[:_ERROR_BODY_SHOWN].split())
        message = f"POST {self.url}: HTTP {response.status} {self._scrub(response.reason or '')}".rstrip()
        raise LLMHTTPError(
            f"{message}: {shown}" if shown else message,
            status=response.status,
            body=body_text[:_ERROR_BODY_KEPT],
        )

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        headers.update({name: value.reveal() for name, value in self._extra_headers.items()})
        return headers

    def _events(self, response: Any, decoder: _EventDecoder, http_client: Any) -> Iterator[Tuple[str, str]]:
        """The events of the response body, decoded as the bytes arrive, until end of stream."""
        while True:
            chunk = self._read(response, http_client)
            if not chunk:
                yield from decoder.finish()
                return
            yield from decoder.feed(chunk)

    def _read(self, response: Any, http_client: Any, size: int = _READ_SIZE) -> bytes:
        try:
            return response.read1(size)
        except TimeoutError as exc:
            raise self._stalled() from exc
        except OSError as exc:
            raise LLMConnectionError(f"POST {self.url}: connection lost: {_reason(exc)}") from exc
        except http_client.HTTPException as exc:
            raise LLMConnectionError(f"POST {self.url}: response cut short: {type(exc).__name__}") from None

    def _stalled(self) -> LLMTimeoutError:
        return LLMTimeoutError(f"POST {self.url}: no data from the server for {self.timeout:g} s (timeout)")

    def _take_payload(self, event_type: str, data: str, usage: List[Usage]) -> str:
        """The text of one streamed event; records its usage. Raises LLMError for an error event."""
        if event_type == "error":  # "event: error" -- its data may be JSON or plain text
            try:
                error = self._decode(data)
            except LLMError:
                error = {"message": data}
            self._raise_for_error({"error": error.get("error") or error})
        payload = self._decode(data)
        self._raise_for_error(payload)
        if isinstance(payload.get("usage"), Mapping):
            usage.append(Usage.from_mapping(payload["usage"]))
        choice = _first_choice(payload)
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, Mapping) else None
        return content if isinstance(content, str) else ""

    def _whole_answer(self, response: Any, usage: List[Usage], http_client: Any) -> Iterator[str]:
        """The one chunk of a non-streamed JSON answer, for servers that ignore ``stream``."""
        chunks = []
        while True:
            chunk = self._read(response, http_client)
            if not chunk:
                break
            chunks.append(chunk)
        payload = self._decode(b"".join(chunks).decode("utf-8", "replace"))
        self._raise_for_error(payload)
        if isinstance(payload.get("usage"), Mapping):
            usage.append(Usage.from_mapping(payload["usage"]))
        message = _first_choice(payload).get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str) and content:
            yield content

    def _decode(self, data: str) -> dict:
        import json

        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            shown = self._scrub(" ".join(data[:_ERROR_BODY_SHOWN].split()))
            raise LLMError(f"POST {self.url}: expected a JSON object in the stream, got {shown!r}") from None
        return payload

    def _raise_for_error(self, payload: Mapping[str, Any]) -> None:
        error = payload.get("error")
        if error is None:
            return
        detail = error.get("message") if isinstance(error, Mapping) else None
        detail = detail if isinstance(detail, str) and detail else str(error)
        raise LLMError(f"POST {self.url}: the server reported an error: {self._scrub(detail)}")

    def _record_usage(self, usage: Optional[Usage]) -> None:
        with self._usage_lock:
            self.last_usage = usage
            if usage is not None:
                self.usage.add(usage)

    def _scrub(self, text: str) -> str:
        """``text`` with every secret (the API key, secret header values) replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret.reveal(), "***")
        return text


def _secrets(api_key: Optional[str], extra_headers: Mapping[str, _Secret]) -> List[str]:
    """The strings to scrub from error texts, longest first so a longer one is replaced whole."""
    secrets = {api_key} if api_key else set()
    for name, value in extra_headers.items():
        if _SECRET_HEADER.search(name):
            secrets.add(value.reveal())
            secrets.update(value.reveal().split())  # the token of "Bearer <token>"
    return sorted((secret for secret in secrets if secret), key=len, reverse=True)


def _first_choice(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return {}


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _read_error_body(response: Any, http_client: Any) -> str:
    """The start of an error response's body; best effort, since an error is being raised anyway."""
    data = b""
    try:
        while len(data) < _ERROR_BODY_READ:
            chunk = response.read1(_ERROR_BODY_READ - len(data))
            if not chunk:
                break
            data += chunk
    except (OSError, http_client.HTTPException):
        pass  # keep what arrived; the HTTP status is the error being reported
    return data.decode("utf-8", "replace")


# -- the scripted model ------------------------------------------------------------------------------


class ScriptedLLM:
    """Replays ``responses`` in order, one per ``stream()`` call, optionally slowly.

    A str response is streamed in pieces of ``chunk_size`` characters (8 by default: short enough to
    split plan lines mid-way, as a real model's tokens do); a list or tuple response is streamed
    exactly as its chunks are given. ``delay`` seconds pass (``time.sleep``) before each chunk.

    ``calls`` records the messages of every call, as copies. A call after the responses run out is
    recorded, and its iterator raises ``LLMError("ScriptedLLM has no response left for call N")``.
    Each ``stream()`` call takes its response at once, under a lock, so concurrent callers each get a
    different response; which one depends on who calls first, so give it one caller at a time when
    the order matters.
    """

    def __init__(
        self,
        responses: Sequence[Union[str, Sequence[str]]],
        *,
        delay: float = 0.0,
        chunk_size: int = 8,
    ):
        if isinstance(responses, str):
            raise TypeError("responses must be a sequence of responses, not one str")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size!r}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        self._responses: List[Union[str, Tuple[str, ...]]] = []
        for number, response in enumerate(responses):
            chunks = response if isinstance(response, str) else tuple(response)
            if not isinstance(chunks, str) and not all(isinstance(chunk, str) for chunk in chunks):
                raise TypeError(f"response {number} must be a str or a sequence of str")
            self._responses.append(chunks)
        self.delay = delay
        self.chunk_size = chunk_size
        self.calls: List[List[dict]] = []
        self._lock = threading.Lock()  # guards self.calls, whose length is the number of calls

    def __repr__(self) -> str:
        return f"ScriptedLLM({len(self._responses)} responses, {len(self.calls)} calls, delay={self.delay!r})"

    @property
    def remaining(self) -> int:
        """How many responses are left."""
        with self._lock:
            return max(0, len(self._responses) - len(self.calls))

    def complete(self, messages: Sequence[Message]) -> str:
        """The next response, whole. Raises LLMError when none is left."""
        return "".join(self.stream(messages))

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Record the call and return an iterator over the next response's chunks."""
        copied = _copy_messages(messages)
        with self._lock:
            self.calls.append(copied)
            number = len(self.calls)
        response = self._responses[number - 1] if number <= len(self._responses) else None
        return self._replay(number, response)

    def _replay(self, number: int, response: Union[str, Tuple[str, ...], None]) -> Iterator[str]:
        if response is None:
            raise LLMError(
                f"ScriptedLLM has no response left for call {number} (it has {len(self._responses)})"
            )
        if isinstance(response, str):
            size = self.chunk_size
            response = tuple(response[start : start + size] for start in range(0, len(response), size))
        for chunk in response:
            if self.delay:
                time.sleep(self.delay)
            yield chunk
