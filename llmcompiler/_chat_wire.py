"""The wire format of OpenAI-compatible chat completions, apart from any socket.

``OpenAIChat`` has two transports (``http.client`` for ``stream``, asyncio streams for ``astream``);
both hand the bytes they read to the pieces here, so the two never differ in what they accept:

* ``EventDecoder``: incremental server-sent-events decoding.
* ``AnswerReader``: the body of a 2xx answer, streamed events or one JSON object -> text chunks, the
  usage report, and ``LLMError`` for an error the server reports inside the answer.
* ``http_error``: an error status -> ``LLMHTTPError``, showing the JSON body's ``error.message``.
* ``retry_delay``: which failures are worth another attempt, and after how long.
* The messages of transport failures (``connect_error``, ``stalled``, ``connection_lost``, ...).

Every text taken from the server passes through the caller's ``scrub`` (which removes the API key)
before it reaches an error. Imports ``json`` on first use only.
"""

from __future__ import annotations

import re
from typing import Any, Callable, List, Mapping, Optional, Tuple

from .errors import LLMConnectionError, LLMError, LLMHTTPError, LLMTimeoutError
from .llm import Usage

Scrub = Callable[[str], str]

# How much of an error response's body is read, kept (LLMHTTPError.body) and shown in the message.
ERROR_BODY_READ = 4096
ERROR_BODY_KEPT = 500
ERROR_BODY_SHOWN = 200
# Bytes asked of the socket per read; a read returns as soon as any data is there.
READ_SIZE = 65536
# Statuses worth another attempt: timeouts, rate limits and a server that is briefly unwell.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Retry waits: base * 2 ** attempt, or the server's Retry-After, never more than this.
MAX_RETRY_WAIT = 20.0
# SSE line terminators: CRLF, LF or a lone CR.
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


# -- server-sent events ------------------------------------------------------------------------------


class EventDecoder:
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
        """The events completed by ``chunk``, in order."""
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


# -- one answer --------------------------------------------------------------------------------------


class AnswerReader:
    """Turns the body of one 2xx answer into text chunks, as its bytes arrive.

    ``streamed`` is False when the server answered ``application/json`` (it ignored ``"stream":
    true``): the body is then one JSON object, read whole at ``finish()``. ``done`` turns True at the
    ``[DONE]`` event; ``usage`` is the latest usage report (some servers repeat it per chunk). ``feed``
    and ``finish`` raise ``LLMError`` for an error event or a payload that is not a JSON object.
    """

    def __init__(self, url: str, scrub: Scrub, *, streamed: bool = True):
        self._url = url
        self._scrub = scrub
        self._decoder: Optional[EventDecoder] = EventDecoder() if streamed else None
        self._whole: List[bytes] = []
        self.done = False
        self.usage: Optional[Usage] = None

    def feed(self, chunk: bytes) -> List[str]:
        """The text chunks completed by ``chunk`` (none once ``done``)."""
        if self._decoder is None:
            self._whole.append(chunk)
            return []
        return self._texts(self._decoder.feed(chunk))

    def finish(self) -> List[str]:
        """The text left at the end of the body."""
        if self._decoder is None:
            return self._whole_answer(b"".join(self._whole).decode("utf-8", "replace"))
        return self._texts(self._decoder.finish())

    def _texts(self, events: List[Tuple[str, str]]) -> List[str]:
        texts = []
        for event_type, data in events:
            if self.done:
                break
            if data.strip() == "[DONE]":
                self.done = True
                break
            text = self._payload_text(event_type, data)
            if text:
                texts.append(text)
        return texts

    def _payload_text(self, event_type: str, data: str) -> str:
        if event_type == "error":  # "event: error" -- its data may be JSON or plain text
            try:
                error = self._decode(data)
            except LLMError:
                error = {"message": data}
            self._raise_for_error({"error": error.get("error") or error})
        payload = self._decode(data)
        self._raise_for_error(payload)
        self._take_usage(payload)
        delta = _first_choice(payload).get("delta")
        content = delta.get("content") if isinstance(delta, Mapping) else None
        return content if isinstance(content, str) else ""

    def _whole_answer(self, body: str) -> List[str]:
        payload = self._decode(body)
        self._raise_for_error(payload)
        self._take_usage(payload)
        message = _first_choice(payload).get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        return [content] if isinstance(content, str) and content else []

    def _take_usage(self, payload: Mapping[str, Any]) -> None:
        if isinstance(payload.get("usage"), Mapping):
            self.usage = Usage.from_mapping(payload["usage"])

    def _decode(self, data: str) -> dict:
        import json

        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            shown = self._scrub(" ".join(data[:ERROR_BODY_SHOWN].split()))
            raise LLMError(f"POST {self._url}: expected a JSON object in the stream, got {shown!r}") from None
        return payload

    def _raise_for_error(self, payload: Mapping[str, Any]) -> None:
        error = payload.get("error")
        if error is None:
            return
        detail = error.get("message") if isinstance(error, Mapping) else None
        detail = detail if isinstance(detail, str) and detail else str(error)
        raise LLMError(f"POST {self._url}: the server reported an error: {self._scrub(detail)}")


def _first_choice(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return {}


# -- errors ------------------------------------------------------------------------------------------


def http_error(url: str, status: int, reason: str, body: bytes, scrub: Scrub) -> LLMHTTPError:
    """The error for a non-2xx answer. Its message shows the server's own error message when the body
    is JSON with one (``{"error": {"message": ...}}``, ``{"error": "..."}``, ``{"message": ...}``,
    ``{"detail": "..."}``), else the start of the body; ``body`` keeps the body's start, scrubbed."""
    body_text = scrub(body.decode("utf-8", "replace"))
    detail = _error_message(body_text)
    if detail is not None:
        shown = " ".join(detail.split())
        shown = shown if len(shown) <= ERROR_BODY_KEPT else shown[:ERROR_BODY_KEPT] + "..."
    else:
        shown = " ".join(body_text[:ERROR_BODY_SHOWN].split())
    message = f"POST {url}: HTTP {status} {scrub(reason or '')}".rstrip()
    return LLMHTTPError(f"{message}: {shown}" if shown else message, status=status,
                        body=body_text[:ERROR_BODY_KEPT])


def _error_message(body_text: str) -> Optional[str]:
    """The server's error message inside a JSON error body, or None when there is none."""
    import json

    try:
        payload = json.loads(body_text)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    candidates = [error.get("message") if isinstance(error, Mapping) else error,
                  payload.get("message"), payload.get("detail")]
    return next((found for found in candidates if isinstance(found, str) and found.strip()), None)


def retry_delay(attempt: int, error: LLMError, retry_after: Optional[str], base: float) -> Optional[float]:
    """Seconds to wait before attempt ``attempt + 1`` after ``error``, or None when it is not worth
    retrying: only a refused or failed connection and the statuses in ``RETRY_STATUSES`` are.

    The wait is ``base * 2 ** attempt``, or the server's ``Retry-After`` seconds when longer, capped
    at ``MAX_RETRY_WAIT``."""
    if isinstance(error, LLMHTTPError):
        if error.status not in RETRY_STATUSES:
            return None
    elif not isinstance(error, LLMConnectionError):
        return None
    wait = base * 2 ** attempt
    try:
        wait = max(wait, float(retry_after)) if retry_after else wait
    except ValueError:
        pass  # an HTTP date: keep the exponential wait
    return min(wait, MAX_RETRY_WAIT)


def reason(exc: OSError) -> str:
    """The human part of an OS error."""
    return exc.strerror or str(exc) or type(exc).__name__


def connect_error(url: str, exc: OSError, timeout: float) -> LLMError:
    """The error for a connection that could not be made (``exc`` is what the socket raised)."""
    if isinstance(exc, TimeoutError):
        return LLMTimeoutError(f"cannot connect to {url}: timed out after {timeout:g} s")
    return LLMConnectionError(f"cannot connect to {url}: {reason(exc)}")


def stalled(url: str, timeout: float) -> LLMTimeoutError:
    """The error for a server that sent nothing for ``timeout`` seconds."""
    return LLMTimeoutError(f"POST {url}: no data from the server for {timeout:g} s (timeout)")


def send_failed(url: str, exc: OSError) -> LLMConnectionError:
    """The error for a connection that broke while the request was sent."""
    return LLMConnectionError(f"POST {url}: connection failed: {reason(exc)}")


def connection_lost(url: str, exc: OSError) -> LLMConnectionError:
    """The error for a connection that broke while the answer was read."""
    return LLMConnectionError(f"POST {url}: connection lost: {reason(exc)}")


def cut_short(url: str, what: str) -> LLMConnectionError:
    """The error for an answer that ended before its framing said it would."""
    return LLMConnectionError(f"POST {url}: response cut short: {what}")


def invalid_response(url: str, what: str) -> LLMError:
    """The error for an answer that is not HTTP."""
    return LLMError(f"POST {url}: invalid HTTP response: {what}")
