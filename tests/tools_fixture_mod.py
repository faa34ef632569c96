"""Tools for test_tools.py, loaded by path, by ToolRegistry.from_module and in worker processes."""

from llmcompiler.tools import load_path, tool


def fetch(url: str, retries: int = 2) -> str:
    """Fetch a URL."""
    return f"fetched {url} ({retries})"


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


@tool(executor="process")
def square(x: int) -> int:
    """Square a number."""
    return x * x


class Outer:
    """Holds a tool one level down, for 'module:Outer.attr' paths."""

    @staticmethod
    def attr(x: int) -> int:
        return x + 1


NOT_CALLABLE = 42


def run_target(target, *args):
    """What a worker does with Tool.process_target(): load a path, or call the callable it was sent."""
    func = load_path(target) if isinstance(target, str) else target
    return func(*args)
