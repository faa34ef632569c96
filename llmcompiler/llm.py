"""Language models: the ``LLM`` contract, token ``Usage``, and ``ScriptedLLM``, a scripted stand-in.

The rest of the package needs one thing from a model: ``stream(messages)``, an iterator of text chunks
as they arrive, so the plan parser can start tasks before the plan is finished. A model may also offer
``astream(messages)``, an async iterator of the same chunks, for asyncio programs; ``astream_of``
gives every model one (running ``stream`` on a thread of its own for a model without it), and
``complete``/``acomplete`` join a whole answer.

Implementations:

* ``OpenAIChat`` (module ``openai_chat``, re-exported here): any OpenAI-compatible
  ``/chat/completions`` server, streamed, on the standard library.
* ``ScriptedLLM``: replays fixed answers, optionally slowly, for tests, demos and benchmarks.

Importing this module is cheap: no network, ``json``, ``ssl`` or ``asyncio`` module is loaded until a
call needs it (``OpenAIChat`` loads its module on first use).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, AsyncIterator, Iterator, List, Mapping, NamedTuple, Optional, Protocol,
                    Sequence, Tuple, Union, runtime_checkable)

from .errors import LLMError

if TYPE_CHECKING:  # pragma: no cover
    from .openai_chat import OpenAIChat

__all__ = ["Message", "Usage", "LLM", "AsyncLLM", "ChatModel", "complete", "acomplete", "astream_of",
           "model_name", "copy_messages", "OpenAIChat", "ScriptedLLM"]

Message = Mapping[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""


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


@runtime_checkable
class AsyncLLM(Protocol):
    """A model that streams for asyncio too: ``astream(messages)`` is an async iterator of text chunks.
    It must not block the event loop; cancelling the consumer must stop the answer."""

    def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]: ...


def complete(llm: LLM, messages: Sequence[Message]) -> str:
    """The whole answer of ``llm`` to ``messages``: its streamed chunks joined. Raises what it raises."""
    return "".join(llm.stream(messages))


async def acomplete(llm: LLM, messages: Sequence[Message]) -> str:
    """``complete`` for asyncio: the chunks of ``astream_of(llm, messages)`` joined."""
    return "".join([chunk async for chunk in astream_of(llm, messages)])


def astream_of(llm: LLM, messages: Sequence[Message]) -> AsyncIterator[str]:
    """An async iterator of ``llm``'s answer to ``messages``: its own ``astream`` when it has one, else
    its ``stream`` run on a thread of its own (started on the first ``__anext__``, in a copy of the
    caller's ``contextvars``), whose chunks are handed to the event loop as they come.

    Stopping early (``aclose()``, or cancelling the consumer) closes the model's iterator as soon as
    its current chunk arrives; the loop is never blocked waiting for it. Raises what the model raises.
    """
    astream = getattr(llm, "astream", None)
    if callable(astream):
        return astream(messages)
    return _stream_on_thread(llm, messages)


class _Handoff(NamedTuple):
    """What the streaming thread hands the event loop: a chunk, the model's error, or the end."""

    chunk: str = ""
    error: Optional[BaseException] = None
    end: bool = False


async def _stream_on_thread(llm: LLM, messages: Sequence[Message]) -> AsyncIterator[str]:
    import asyncio
    import contextvars

    loop = asyncio.get_running_loop()
    handoffs: "asyncio.Queue[_Handoff]" = asyncio.Queue()
    stop = threading.Event()  # set by the consumer when it stops listening

    def hand(item: _Handoff) -> None:
        try:
            loop.call_soon_threadsafe(handoffs.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody listens any more
            stop.set()

    def pump() -> None:
        try:
            chunks = iter(llm.stream(messages))
            try:
                for chunk in chunks:
                    if stop.is_set():
                        return
                    hand(_Handoff(chunk))
            finally:
                getattr(chunks, "close", lambda: None)()
        except Exception as error:  # the model's error, raised on the consumer's side
            hand(_Handoff(error=error))
        else:
            hand(_Handoff(end=True))

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(pump,), name="llmcompiler-stream", daemon=True).start()
    try:
        while True:
            item = await handoffs.get()
            if item.error is not None:
                raise item.error
            if item.end:
                return
            yield item.chunk
    finally:
        stop.set()


def model_name(llm: Any) -> str:
    """The name ``llm`` is reported under: its ``model`` attribute when that is a non-empty str, else
    its class name."""
    name = getattr(llm, "model", None)
    return name if isinstance(name, str) and name else type(llm).__name__


def copy_messages(messages: Sequence[Message]) -> List[dict]:
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


class ChatModel:
    """The shared base of the package's models: ``complete`` and ``acomplete`` as methods (the module
    functions of the same names, applied to ``self``). Subclasses define ``stream`` (and ``astream``)."""

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def complete(self, messages: Sequence[Message]) -> str:
        """The whole answer: ``complete(self, messages)``."""
        return complete(self, messages)

    async def acomplete(self, messages: Sequence[Message]) -> str:
        """The whole answer, for asyncio: ``acomplete(self, messages)``."""
        return await acomplete(self, messages)


def __getattr__(name: str) -> Any:
    if name in ("OpenAIChat", "DEFAULT_BASE_URL", "DEFAULT_MODEL"):  # loaded on first use
        from . import openai_chat

        return getattr(openai_chat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the scripted model ------------------------------------------------------------------------------

_Response = Union[str, Tuple[str, ...]]


class ScriptedLLM(ChatModel):
    """Replays ``responses`` in order, one per ``stream()`` or ``astream()`` call, optionally slowly.

    A str response is streamed in pieces of ``chunk_size`` characters (8 by default: short enough to
    split plan lines mid-way, as a real model's tokens do); a list or tuple response is streamed
    exactly as its chunks are given. ``delay`` seconds pass before each chunk (``time.sleep`` in
    ``stream``, ``asyncio.sleep`` in ``astream``, which never blocks the event loop).

    ``calls`` records the messages of every call, as copies. A call after the responses run out is
    recorded, and its iterator raises ``LLMError("ScriptedLLM has no response left for call N")``.
    Each call takes its response at once, under a lock, so concurrent callers each get a different
    response; which one depends on who calls first, so give it one caller at a time when the order
    matters.
    """

    def __init__(self, responses: Sequence[Union[str, Sequence[str]]], *, delay: float = 0.0,
                 chunk_size: int = 8):
        if isinstance(responses, str):
            raise TypeError("responses must be a sequence of responses, not one str")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size!r}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        self._responses: List[_Response] = []
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

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Record the call and return an iterator over the next response's chunks."""
        return self._replay(*self._take(messages))

    def astream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Record the call and return an async iterator over the next response's chunks."""
        return self._areplay(*self._take(messages))

    def _take(self, messages: Sequence[Message]) -> Tuple[int, Optional[_Response]]:
        copied = copy_messages(messages)
        with self._lock:
            self.calls.append(copied)
            number = len(self.calls)
        return number, self._responses[number - 1] if number <= len(self._responses) else None

    def _chunks(self, number: int, response: Optional[_Response]) -> Tuple[str, ...]:
        if response is None:
            raise LLMError(f"ScriptedLLM has no response left for call {number} (it has "
                           f"{len(self._responses)})")
        if isinstance(response, str):
            size = self.chunk_size
            return tuple(response[start:start + size] for start in range(0, len(response), size))
        return response

    def _replay(self, number: int, response: Optional[_Response]) -> Iterator[str]:
        for chunk in self._chunks(number, response):
            if self.delay:
                time.sleep(self.delay)
            yield chunk

    async def _areplay(self, number: int, response: Optional[_Response]) -> AsyncIterator[str]:
        import asyncio

        for chunk in self._chunks(number, response):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield chunk
