"""Just enough HTTP/1.1 on asyncio streams for one streamed POST: ``AsyncConnection``.

The standard library has no asyncio HTTP client, so ``OpenAIChat.astream`` uses this one: it opens a
connection (TLS for https, with the caller's ``ssl.SSLContext``), sends one request with
``Connection: close``, reads the status line and headers, and then reads the body as it arrives,
framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the connection.

Every wait (connecting, sending, each read) is bounded by ``timeout``. Failures become the same
``LLMError``s the ``http.client`` transport raises (their messages come from ``_chat_wire``). One
connection serves one request; ``close()`` is idempotent and never waits.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Mapping, Optional

from . import _chat_wire as wire

_MAX_HEADERS = 100


class AsyncResponse:
    """The status and headers of an answer, and ``read1()`` for its body. Header names are lower case."""

    def __init__(self, connection: "AsyncConnection", status: int, reason: str, headers: Dict[str, str]):
        self._connection = connection
        self.status = status
        self.reason = reason
        self.headers = headers
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        self._left: Optional[int] = int(length) if length.strip().isdigit() and not self._chunked else None
        self._chunk_left = 0  # bytes of the current chunk still to read (chunked framing)
        self._first_chunk = True
        self._ended = False

    def getheader(self, name: str, default: str = "") -> str:
        """The value of header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    async def read1(self, size: int = wire.READ_SIZE) -> bytes:
        """The next bytes of the body as soon as any arrive (at most ``size``); b"" at its end."""
        if self._ended:
            return b""
        if self._chunked:
            return await self._read_chunked(size)
        if self._left is not None:
            if self._left == 0:
                self._ended = True
                return b""
            data = await self._connection.read(min(size, self._left))
            if not data:
                raise wire.cut_short(self._connection.url, f"{self._left} bytes of the body never came")
            self._left -= len(data)
            return data
        data = await self._connection.read(size)
        self._ended = not data
        return data

    async def _read_chunked(self, size: int) -> bytes:
        if self._chunk_left == 0:
            if not self._first_chunk:
                await self._connection.line()  # the CRLF that ends the previous chunk
            self._first_chunk = False
            line = await self._connection.line()
            try:
                self._chunk_left = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise wire.invalid_response(self._connection.url, "a chunk size that is not hex") from None
            if self._chunk_left == 0:
                while (await self._connection.line()).strip():
                    pass  # trailers, up to the blank line
                self._ended = True
                return b""
        data = await self._connection.read(min(size, self._chunk_left))
        if not data:
            raise wire.cut_short(self._connection.url, "the connection closed inside a chunk")
        self._chunk_left -= len(data)
        return data


class AsyncConnection:
    """One connection for one request to ``host:port`` (``url`` names it in errors)."""

    def __init__(self, url: str, host: str, port: int, host_header: str, ssl_context: Any, timeout: float):
        self.url = url
        self._host, self._port, self._host_header = host, port, host_header
        self._ssl = ssl_context
        self._timeout = timeout
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None

    async def open(self) -> None:
        """Connect. Raises ``LLMConnectionError`` (refused, unreachable) or ``LLMTimeoutError``."""
        connecting = asyncio.open_connection(self._host, self._port, ssl=self._ssl,
                                             server_hostname=self._host if self._ssl else None)
        try:
            self._reader, self._writer = await asyncio.wait_for(connecting, self._timeout)
        except asyncio.TimeoutError as exc:
            raise wire.connect_error(self.url, TimeoutError(), self._timeout) from exc
        except OSError as exc:
            raise wire.connect_error(self.url, exc, self._timeout) from exc

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> AsyncResponse:
        """Send the request; return the answer with its status and headers read, not its body."""
        assert self._writer is not None, "open() first"
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host_header}", f"Content-Length: {len(body)}",
                 "Connection: close"] + [f"{name}: {value}" for name, value in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            await asyncio.wait_for(self._writer.drain(), self._timeout)
        except asyncio.TimeoutError as exc:
            raise wire.stalled(self.url, self._timeout) from exc
        except OSError as exc:
            raise wire.send_failed(self.url, exc) from exc
        while True:
            status, reason = await self._status_line()
            headers_read = await self._headers()
            if not 100 <= status < 200:  # 1xx answers are interim: the real one follows
                return AsyncResponse(self, status, reason, headers_read)

    async def _status_line(self) -> "tuple[int, str]":
        line = (await self.line()).decode("latin-1").rstrip("\r\n")
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise wire.invalid_response(self.url, f"status line {line[:80]!r}")
        return int(code), reason.strip()

    async def _headers(self) -> Dict[str, str]:
        headers: Dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            line = (await self.line()).decode("latin-1").strip()
            if not line:
                return headers
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        raise wire.invalid_response(self.url, f"more than {_MAX_HEADERS} headers")

    async def line(self) -> bytes:
        """One line of the head or of chunked framing, with its line break."""
        assert self._reader is not None, "open() first"
        try:
            line = await asyncio.wait_for(self._reader.readline(), self._timeout)
        except asyncio.TimeoutError as exc:
            raise wire.stalled(self.url, self._timeout) from exc
        except ValueError:  # longer than the reader's limit (64 KiB)
            raise wire.invalid_response(self.url, "a header or chunk line over 64 KiB") from None
        except OSError as exc:
            raise wire.connection_lost(self.url, exc) from exc
        if not line.endswith(b"\n"):
            raise wire.cut_short(self.url, "the connection closed inside the head or a chunk line")
        return line

    async def read(self, size: int) -> bytes:
        """Up to ``size`` bytes as soon as any arrive; b"" when the server closed the connection."""
        assert self._reader is not None, "open() first"
        try:
            return await asyncio.wait_for(self._reader.read(size), self._timeout)
        except asyncio.TimeoutError as exc:
            raise wire.stalled(self.url, self._timeout) from exc
        except OSError as exc:
            raise wire.connection_lost(self.url, exc) from exc

    def close(self) -> None:
        """Close the connection (no wait for the peer). Idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
