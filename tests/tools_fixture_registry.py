"""A tool module exposing a ToolRegistry named 'registry', for ToolRegistry.from_module."""

from llmcompiler.tools import ToolRegistry, tool

registry = ToolRegistry()


@registry.tool
def ping() -> str:
    """Answer pong."""
    return "pong"


@tool
def ignored() -> None:
    """A module-level tool that the registry above hides."""
