"""llmcompiler: LLMCompiler-style parallel function calling on the standard library alone.

A planner writes a numbered plan of tool calls (``3. math($1, $2)``); the engine runs each call as soon
as the calls it refers to have finished, on thread pools (I/O-bound tools) and process pools (CPU-bound
tools); a joiner answers or asks for a new plan.

    from llmcompiler import ToolRegistry, run_tasks

    tools = ToolRegistry()

    @tools.tool
    def search(query: str) -> str:
        "Search the web."
        ...

    result = run_tasks('1. search("Tokyo")\\n2. search("Paris")\\n', tools)
    result.observations  # {1: ..., 2: ...}

Importing the package does nothing but bind names: each public name loads its module on first use,
so ``import llmcompiler`` starts no thread or process and takes about a millisecond.
"""

from __future__ import annotations

import logging as _logging
from importlib import import_module
from typing import TYPE_CHECKING, Any, List

__version__ = "0.1.0"

# The package logs to "llmcompiler" and its children; silent unless the application configures logging.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

# Public name -> the module (relative to this package) that defines it.
_EXPORTS = {
    # plans
    "Task": "plan", "parse_plan": "plan", "PlanParser": "plan", "validate_tasks": "plan",
    # tools
    "Tool": "tools", "ToolRegistry": "tools", "tool": "tools", "as_registry": "tools",
    "load_config": "config", "RunContext": "context", "ToolConfigError": "errors",
    # running
    "Engine": "engine", "run_tasks": "engine", "Run": "scheduler", "RunResult": "results",
    "TaskFailure": "results", "Event": "results", "RunInterrupted": "results",
    "ObservationStore": "store", "LocalStore": "store", "ManagerStore": "store",
    "CallCache": "cache",
    # the compiler loop and language models
    "LLMCompiler": "compiler", "CompilerResult": "compiler",
    "LLM": "llm", "OpenAIChat": "llm", "ScriptedLLM": "llm", "Usage": "llm",
    "AsyncLLM": "llm", "astream_of": "llm",
    # errors
    "LLMCompilerError": "errors", "PlanError": "errors", "PlanSyntaxError": "errors",
    "DuplicateTaskError": "errors", "UnknownReferenceError": "errors", "CycleError": "errors",
    "ToolError": "errors", "ToolDefinitionError": "errors", "ToolCallError": "errors",
    "RunError": "errors", "RunClosedError": "errors", "RunTimeoutError": "errors",
    "TaskTimeoutError": "errors", "WorkerDiedError": "errors", "StoreError": "errors",
    "LLMError": "errors", "LLMConnectionError": "errors", "LLMHTTPError": "errors",
    "LLMTimeoutError": "errors", "JoinerOutputError": "errors",
    "ProcessStartError": "errors",
    "SubstitutionError": "errors", "RenderError": "errors", "WorkerReturnError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmcompiler' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .compiler import CompilerResult, LLMCompiler
    from .errors import (CycleError, DuplicateTaskError, JoinerOutputError, LLMCompilerError,
                         LLMConnectionError, LLMError, LLMHTTPError, LLMTimeoutError, PlanError,
                         PlanSyntaxError, RunClosedError, RunError, RunTimeoutError, StoreError,
                         TaskTimeoutError, ToolCallError, ToolDefinitionError, ToolError,
                         UnknownReferenceError, WorkerDiedError)
    from .errors import ProcessStartError, RenderError, SubstitutionError, WorkerReturnError
    from .cache import CallCache
    from .llm import LLM, OpenAIChat, ScriptedLLM, Usage
    from .plan import PlanParser, Task, parse_plan, validate_tasks
    from .engine import Engine, run_tasks
    from .results import Event, RunInterrupted, RunResult, TaskFailure
    from .scheduler import Run
    from .store import LocalStore, ManagerStore, ObservationStore
    from .tools import Tool, ToolRegistry, as_registry, tool
    from .config import load_config
    from .context import RunContext
    from .errors import ToolConfigError
    from .llm import AsyncLLM, astream_of
