"""``OpenAIChat``: a streaming client for any OpenAI-compatible ``POST {base_url}/chat/completions``.

Works with OpenAI, vLLM, llama.cpp, Ollama, LM Studio and the like, on the standard library alone.
``stream(messages)`` reads the socket through ``http.client`` as data arrives; ``astream(messages)``
does the same on asyncio streams (``_async_http``), for asyncio programs. Both hand the bytes to the
same decoding (``_chat_wire``), so they yield the same chunks and raise the same errors:

* the server cannot be reached -> ``LLMConnectionError``; it answers with an HTTP error ->
  ``LLMHTTPError`` (its message shows the JSON body's ``error.message`` when there is one); it stalls
  for longer than ``timeout`` -> ``LLMTimeoutError``; anything else wrong with the answer (an
  ``error`` event, invalid JSON) -> ``LLMError``.
* A refused connection and the statuses 408, 429, 500, 502, 503 and 504 are retried, ``retries``
  times, before any text was yielded (waits ``retry_wait * 2 ** attempt`` seconds, or the server's
  ``Retry-After``), each retry logged at WARNING on the ``llmcompiler`` logger.
* Messages name the URL and never contain the API key: every text taken from the server is scrubbed
  of it (and of secret header values) before it reaches an error or a log record, and neither
  ``repr`` nor ``vars`` of a client shows it.

Importing this module is cheap: ``http.client``, ``ssl``, ``json`` and ``asyncio`` are imported by
the calls that need them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Any, AsyncIterator, Iterator, List, Mapping, NamedTuple, Optional, Sequence

from . import _chat_wire as wire
from .errors import LLMError
from .llm import ChatModel, Message, Usage, copy_messages

__all__ = ["OpenAIChat", "DEFAULT_BASE_URL", "DEFAULT_MODEL"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"

_log = logging.getLogger("llmcompiler.llm")
# Extra headers whose values are treated as secrets, like the API key.
_SECRET_HEADER = re.compile(r"authorization|key|token|secret|cookie", re.IGNORECASE)


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


class _Opened(NamedTuple):
    """One attempt at a request: the connection, and its 2xx response or the error that ended it."""

    connection: Any
    response: Any
    error: Optional[LLMError] = None
    retry_after: Optional[str] = None


class OpenAIChat(ChatModel):
    """A streaming client for an OpenAI-compatible ``/chat/completions`` endpoint.

    Defaults come from the environment: ``base_url`` from ``OPENAI_BASE_URL`` (else the OpenAI API),
    ``api_key`` from ``OPENAI_API_KEY`` (None sends no Authorization header, for local servers),
    ``model`` from ``OPENAI_MODEL`` (else ``gpt-4o-mini``). ``timeout`` (seconds) bounds connecting
    and every wait for data, not the whole answer. ``temperature``, ``max_tokens`` and ``stop`` are
    sent when not None. ``retries`` and ``retry_wait`` are described in the module docstring;
    ``ssl_context`` replaces the default one for https (e.g. a private CA). Raises ValueError for a
    base URL that is not http(s) or carries credentials, or a bad timeout or retry count.

    ``usage`` sums the token usage of every call whose server reported it (it is asked to, with
    ``stream_options.include_usage``); ``last_usage`` is that of the last call to finish, None if
    the server sent none. One client may serve several threads and event loops at once; each call
    has its own connection, and ``usage`` is updated under a lock.
    """

    def __init__(self, model: Optional[str] = None, *, base_url: Optional[str] = None,
                 api_key: Optional[str] = None, temperature: Optional[float] = 0.0, timeout: float = 60.0,
                 max_tokens: Optional[int] = None, stop: Optional[Sequence[str]] = None,
                 extra_headers: Optional[Mapping[str, str]] = None, retries: int = 2,
                 retry_wait: float = 0.5, ssl_context: Any = None):
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
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0 or not retry_wait >= 0:
            raise ValueError(f"retries must be an int >= 0 and retry_wait >= 0, got {retries!r}, {retry_wait!r}")
        self.base_url = base_url.rstrip("/")
        self.temperature = temperature
        self.timeout = float(timeout)
        self.max_tokens = max_tokens
        self.stop = [stop] if isinstance(stop, str) else list(stop or [])
        self.retries = retries
        self.retry_wait = float(retry_wait)
        self.usage = Usage()
        self.last_usage: Optional[Usage] = None

        self._scheme, self._host, self._netloc = parts.scheme, parts.hostname, parts.netloc
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl_context = ssl_context
        self._path = parts.path.rstrip("/") + "/chat/completions" + (f"?{parts.query}" if parts.query else "")
        self.url = f"{parts.scheme}://{parts.netloc}{self._path}"
        api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self._api_key = _Secret(api_key) if api_key else None
        self._extra_headers = {name: _Secret(value) for name, value in (extra_headers or {}).items()}
        self._secrets = [_Secret(secret) for secret in _secrets(api_key, self._extra_headers)]
        self._usage_lock = threading.Lock()  # guards self.usage and self.last_usage

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return (f"OpenAIChat(model={self.model!r}, base_url={self.base_url!r}, api_key={key}, "
                f"timeout={self.timeout!r})")

    def with_model(self, model: str) -> "OpenAIChat":
        """A client for another model on the same server, with the same key and options (its own
        usage counts): e.g. a cheaper joiner beside a strong planner."""
        twin = object.__new__(OpenAIChat)
        twin.__dict__.update(self.__dict__)
        twin.model = model
        twin.usage, twin.last_usage, twin._usage_lock = Usage(), None, threading.Lock()
        return twin

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Send ``messages``; return an iterator of the answer's text chunks as they arrive.

        The messages are checked (TypeError) and copied now; the request is sent on the first
        ``next()``, which is also where LLMConnectionError, LLMHTTPError, LLMTimeoutError and LLMError
        are raised. The connection is closed when the iterator ends or is closed early.
        """
        return self._stream(self._body(messages))

    def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """``stream`` for asyncio: an async iterator of the answer's text chunks, on asyncio streams.

        Checks the messages now (TypeError); raises the errors ``stream`` raises, from the first
        ``__anext__``. Never blocks the event loop; cancelling the consuming task (or ``aclose()``)
        closes the connection at once.
        """
        return self._astream(self._body(messages))

    # -- the request ---------------------------------------------------------------------------------

    def _body(self, messages: Sequence[Message]) -> bytes:
        import json

        body: dict = {"model": self.model, "messages": copy_messages(messages), "stream": True,
                      "stream_options": {"include_usage": True}}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stop:
            body["stop"] = self.stop
        return json.dumps(body).encode("utf-8")

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        headers.update({name: value.reveal() for name, value in self._extra_headers.items()})
        return headers

    def _context(self) -> Any:
        if self._scheme != "https":
            return None
        if self._ssl_context is None:
            import ssl

            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _retry_wait(self, attempt: int, error: LLMError, retry_after: Optional[str]) -> Optional[float]:
        """Seconds to wait before retrying after ``error`` (logged at WARNING), or None: raise it."""
        wait = wire.retry_delay(attempt, error, retry_after, self.retry_wait) if attempt < self.retries else None
        if wait is not None:
            _log.warning("%s: %s; retry %d of %d in %.2f s", self.model, error, attempt + 1, self.retries, wait)
        return wait

    # -- the http.client transport ----------------------------------------------------------------

    def _stream(self, body: bytes) -> Iterator[str]:
        import http.client

        opened: Optional[_Opened] = None
        reader: Optional[wire.AnswerReader] = None
        try:
            for attempt in range(self.retries + 1):
                opened = self._open(body, http.client)
                if opened.error is None:
                    break
                wait = self._retry_wait(attempt, opened.error, opened.retry_after)
                if wait is None:
                    raise opened.error
                time.sleep(wait)
            response = opened.response
            streamed = not (response.getheader("Content-Type") or "").startswith("application/json")
            reader = wire.AnswerReader(self.url, self._scrub, streamed=streamed)
            while not reader.done:
                chunk = self._read(response, http.client)
                if not chunk and response.length:  # http.client takes an early end as the end
                    raise wire.cut_short(self.url, f"{response.length} bytes of the body never came")
                yield from reader.feed(chunk) if chunk else reader.finish()
                if not chunk:
                    break
        finally:
            # A response that will close its connection owns the socket: close both.
            if opened is not None and opened.response is not None:
                opened.response.close()
            if opened is not None:
                opened.connection.close()
            self._record_usage(reader.usage if reader is not None else None)

    def _open(self, body: bytes, http_client: Any) -> "_Opened":
        """Connect and POST: the connection and its response with a 2xx status read, or the error
        (its cause set, the connection closed) and the server's Retry-After."""
        if self._scheme == "https":
            connection = http_client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                     context=self._context())
        else:
            connection = http_client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        error: Optional[LLMError] = None
        try:
            connection.connect()
        except OSError as exc:
            error = wire.connect_error(self.url, exc, self.timeout)
            error.__cause__ = exc
        try:
            if error is None:
                connection.request("POST", self._path, body=body, headers=self._headers())
                response = connection.getresponse()
        except TimeoutError as exc:
            error = wire.stalled(self.url, self.timeout)
            error.__cause__ = exc
        except OSError as exc:
            error = wire.send_failed(self.url, exc)
            error.__cause__ = exc
        except http_client.HTTPException as exc:
            error = wire.invalid_response(self.url, self._scrub(repr(exc)))
        if error is not None:
            connection.close()
            return _Opened(connection, None, error)
        if 200 <= response.status < 300:
            return _Opened(connection, response)
        error = wire.http_error(self.url, response.status, response.reason or "",
                                _read_error_body(response, http_client), self._scrub)
        response.close()
        connection.close()
        return _Opened(connection, None, error, response.getheader("Retry-After"))

    def _read(self, response: Any, http_client: Any) -> bytes:
        try:
            return response.read1(wire.READ_SIZE)
        except TimeoutError as exc:
            raise wire.stalled(self.url, self.timeout) from exc
        except OSError as exc:
            raise wire.connection_lost(self.url, exc) from exc
        except http_client.HTTPException as exc:
            raise wire.cut_short(self.url, type(exc).__name__) from None

    # -- the asyncio transport --------------------------------------------------------------------

    async def _astream(self, body: bytes) -> AsyncIterator[str]:
        import asyncio

        from ._async_http import AsyncConnection

        connection = None
        reader: Optional[wire.AnswerReader] = None
        try:
            for attempt in range(self.retries + 1):
                connection = AsyncConnection(self.url, self._host, self._port, self._netloc,
                                             self._context(), self.timeout)
                response, error, retry_after = await self._aopen(connection, body)
                if error is None:
                    break
                connection.close()
                wait = self._retry_wait(attempt, error, retry_after)
                if wait is None:
                    raise error
                await asyncio.sleep(wait)
            streamed = not response.getheader("Content-Type").startswith("application/json")
            reader = wire.AnswerReader(self.url, self._scrub, streamed=streamed)
            while not reader.done:
                chunk = await response.read1()
                for text in reader.feed(chunk) if chunk else reader.finish():
                    yield text
                if not chunk:
                    break
        finally:
            if connection is not None:
                connection.close()
            self._record_usage(reader.usage if reader is not None else None)

    async def _aopen(self, connection: Any, body: bytes) -> tuple:
        """Connect and POST: ``(response, None, None)`` for a 2xx answer, else ``(None, error,
        Retry-After)``."""
        try:
            await connection.open()
            response = await connection.post(self._path, self._headers(), body)
        except LLMError as error:
            return None, error, None
        if 200 <= response.status < 300:
            return response, None, None
        data = b""
        try:
            while len(data) < wire.ERROR_BODY_READ:
                chunk = await response.read1(wire.ERROR_BODY_READ - len(data))
                if not chunk:
                    break
                data += chunk
        except LLMError:
            pass  # keep what arrived; the HTTP status is the error being reported
        error = wire.http_error(self.url, response.status, response.reason, data, self._scrub)
        return None, error, response.getheader("retry-after") or None

    # -- bookkeeping ------------------------------------------------------------------------------

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


def _read_error_body(response: Any, http_client: Any) -> bytes:
    """The start of an error response's body; best effort, since an error is being raised anyway."""
    data = b""
    try:
        while len(data) < wire.ERROR_BODY_READ:
            chunk = response.read1(wire.ERROR_BODY_READ - len(data))
            if not chunk:
                break
            data += chunk
    except (OSError, http_client.HTTPException):
        pass  # keep what arrived; the HTTP status is the error being reported
    return data
