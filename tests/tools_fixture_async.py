"""Async and context-taking tools for test_tool_kinds.py, loaded by path and in worker processes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # never imported at run time: the annotations below stay text
    from llmcompiler.context import RunContext


async def fetch(url: str, delay: float = 0.0) -> str:
    """Fetch a URL, asynchronously."""
    await asyncio.sleep(delay)
    return f"fetched {url}"


class AsyncCallable:
    """An object whose __call__ is a coroutine function."""

    async def __call__(self, x: int) -> int:
        return x * 2


ASYNC_CALLABLE = AsyncCallable()


def summarise(text: str, ctx: RunContext) -> str:
    """Summarise, with the run's context (its annotation is text only)."""
    return f"{text} ({len(ctx.observations)} seen)"


def optional_context(query: str, *, limit: int = 3, ctx: Optional[RunContext] = None) -> str:
    """Keyword-only optional context, as text."""
    return query


def union_context(query: str, ctx: "RunContext | None" = None) -> str:
    """A union written the new way, as text."""
    return query
