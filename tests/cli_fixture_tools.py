"""Tools for test_cli.py, named by `--tools cli_fixture_tools` (module-level @tool functions)."""

import time

from llmcompiler.tools import tool


@tool
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@tool
def slow_echo(text: str, seconds: float = 0.2) -> str:
    """Return the text after a pause, as a network call would."""
    time.sleep(seconds)
    return text


@tool
def concat(first: str, second: str) -> str:
    """Join two texts with a space."""
    return f"{first} {second}"


@tool
def fail(message: str) -> str:
    """Always raise ValueError."""
    raise ValueError(message)


@tool(executor="process")
def square(x: int) -> int:
    """Square a number, in a worker process."""
    return x * x
