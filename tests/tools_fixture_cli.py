"""Tools for test_cli_tools.py: named by `--tools tools_fixture_cli` and by path in config files."""

from llmcompiler.tools import tool


@tool
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@tool
def concat(first: str, second: str) -> str:
    """Join two texts with a space."""
    return f"{first} {second}"


@tool(executor="process", timeout=30, max_concurrency=2)
def square(x: int) -> int:
    """Square a number, in a worker process."""
    return x * x
