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


@tool
def nap(seconds: float) -> float:
    """Say so on stdout, then sleep: a call a test can interrupt once it has begun."""
    print(f"nap started for {seconds} s", flush=True)
    time.sleep(seconds)
    return seconds


@tool
def nap_after(text: str, seconds: float) -> float:
    """``nap`` once ``text`` (an earlier task's observation) is in: the test knows that task is done."""
    print(f"nap started after {text!r} for {seconds} s", flush=True)
    time.sleep(seconds)
    return seconds


class BadStr:
    """A value whose str() and repr() both raise."""

    def __str__(self) -> str:
        raise KeyError("no text for you")

    __repr__ = __str__


@tool
def awkward(kind: str) -> object:
    """Return a value that is hard to print: "int" (5,000 digits), "text" (100 MB) or "bad" (str raises)."""
    if kind == "int":
        return 7 ** 6000
    if kind == "text":
        return "x" * 100_000_000
    return BadStr()
