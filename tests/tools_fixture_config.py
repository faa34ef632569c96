"""Tools for test_config.py, named in config files by 'tools_fixture_config:...' paths."""

from llmcompiler.context import RunContext
from llmcompiler.tools import tool


class RateLimited(Exception):
    """An exception class to name in retry_on."""


def search(query: str, limit: int = 3) -> list[str]:
    """Search the web for a query."""
    return [f"{query} {number}" for number in range(limit)]


async def fetch(url: str) -> str:
    """Fetch a page."""
    return url


@tool(executor="process", retries=1)
def square(x: int) -> int:
    """Square a number."""
    return x * x


def with_context(text: str, ctx: RunContext) -> str:
    """Read the run's observations."""
    return text


def two_contexts(a: RunContext, b: RunContext) -> None:
    """Wrongly asks twice."""


NOT_A_CLASS = 7
