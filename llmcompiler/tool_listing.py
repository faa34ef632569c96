"""What a registry serves, for a person or a program: ``python -m llmcompiler tools`` prints this.

``tool_record(tool)`` is one tool as plain data (name, call signature, executor, limits, description,
function-calling schema); ``listing(registry)`` the text the ``tools`` command prints: per tool its
call, its description and one line of how it runs.
"""

from __future__ import annotations

from typing import Any, Dict, List

from .tools import Tool, ToolRegistry

__all__ = ["tool_record", "listing", "limits_text"]


def _class_name(kind: type) -> str:
    module = getattr(kind, "__module__", "builtins")
    return kind.__qualname__ if module == "builtins" else f"{module}:{kind.__qualname__}"


def tool_record(tool: Tool) -> Dict[str, Any]:
    """One tool as JSON-ready data: ``name``, ``path`` (``"module:attr"``, or None for a lambda, a
    closure, a partial ...), ``signature`` (the call a plan writes), ``executor``,
    ``timeout``, ``retries``, ``retry_on`` (class names), ``backoff``, ``max_concurrency``, ``cache``,
    ``context_parameter``, ``description`` and ``schema``. Raises ToolDefinitionError when a path tool
    cannot be imported."""
    return {
        "name": tool.name, "path": tool.path, "signature": tool.call_text(), "executor": tool.executor,
        "timeout": tool.timeout, "retries": tool.retries,
        "retry_on": [_class_name(kind) for kind in tool.retry_on], "backoff": tool.backoff,
        "max_concurrency": tool.max_concurrency, "cache": tool.cache,
        "context_parameter": tool.context_parameter, "description": tool.description,
        "schema": tool.schema(),
    }


def limits_text(tool: Tool) -> str:
    """How a tool runs, in one line: ``thread · timeout 10 s · 2 retries on TimeoutError (backoff
    0.05 s) · at most 4 at once · cached``."""
    parts = [tool.executor, "no timeout" if tool.timeout is None else f"timeout {tool.timeout:g} s"]
    if tool.retries:
        kinds = ", ".join(_class_name(kind) for kind in tool.retry_on)
        plural = "retry" if tool.retries == 1 else "retries"
        parts.append(f"{tool.retries} {plural} on {kinds} (backoff {tool.backoff:g} s)")
    else:
        parts.append("no retries")
    parts.append("no concurrency limit" if tool.max_concurrency is None
                 else f"at most {tool.max_concurrency} at once")
    parts.append("cached" if tool.cache else "not cached")
    if tool.context_parameter is not None:
        parts.append(f"given the run's context as {tool.context_parameter!r}")
    return " · ".join(parts)


def listing(registry: ToolRegistry, source: str = "") -> List[str]:
    """The lines the ``tools`` command prints: a heading, then per tool its call, description and
    limits. Raises ToolDefinitionError when a path tool cannot be imported."""
    count = "1 tool" if len(registry) == 1 else f"{len(registry)} tools"
    lines = [f"{count}{f' from {source}' if source else ''}:"]
    for tool in registry:
        lines += ["", tool.call_text()]
        if tool.description:
            lines.append(f"    {tool.description}")
        lines.append(f"    {limits_text(tool)}")
    return lines
