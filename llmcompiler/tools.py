"""Tools: the registry, the ``@tool`` decorator, and the names a program imports (``Tool``, ``load_path``).

A ``Tool`` (module ``_tool``) is a callable plus how to run it (``executor``, ``timeout``, ``retries``,
``cache`` ...), given either as a callable or as a ``"module:attr"`` path imported on first use
(module ``loading``, the one cache of loaded tools).

``ToolRegistry`` holds tools by name, in registration order. ``check(task)`` binds a task's arguments to
its tool's plan signature (``$N`` references are plain strings here, so they fit any parameter; a
parameter annotated ``RunContext`` is the engine's to fill, never the plan's), and ``describe()`` /
``schemas()`` render the tools for a planner prompt or a function-calling API; how a callable's
signature, annotations and docstring become that text and JSON schema is the private module
``_signatures``. Tools listed in a TOML or JSON file are loaded by ``config.load_config``.

Importing this module starts nothing: no threads, no logging, no imports of tool modules.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections import abc
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Union

from ._tool import AsyncCall, Tool, load_path
from .errors import ToolCallError, ToolDefinitionError
from .plan import Task

__all__ = ["Tool", "ToolRegistry", "tool", "as_registry", "load_path", "AsyncCall"]


# -- the registry --------------------------------------------------------------------------------


class _Default:
    """Stands for 'not given': the Tool's own option, or the standard default for a new tool."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Any = _Default()
_OPTION_NAMES = ("name", "description", "executor", "timeout", "retries", "retry_on", "backoff",
                 "max_concurrency", "cache")


class ToolRegistry:
    """Tools by name, in registration order. Registration is thread-safe; reads need no lock."""

    def __init__(self, tools: Union[Iterable[Union[Tool, Callable[..., Any], str]],
                                    Mapping[str, Union[Tool, Callable[..., Any], str]]] = ()):
        self._tools: Dict[str, Tool] = {}
        self._lock = threading.Lock()
        if isinstance(tools, Mapping):
            for name, item in tools.items():
                self.register(item, name=name)
        else:
            for item in tools:
                self.register(item)

    def register(self, func_or_path: Union[Tool, Callable[..., Any], str], *, name: Any = _DEFAULT,
                 executor: Any = _DEFAULT, timeout: Any = _DEFAULT, retries: Any = _DEFAULT,
                 max_concurrency: Any = _DEFAULT, retry_on: Any = _DEFAULT, backoff: Any = _DEFAULT,
                 description: Any = _DEFAULT, cache: Any = _DEFAULT) -> Tool:
        """Register a callable, a ``"module:attr"`` path or a Tool and return the registered Tool.

        Options not given keep the Tool's own (or the defaults: executor "thread", or "async" for an
        ``async def``; no timeout, no retries, no cache). A Tool registered without overrides is
        stored as is. Raises ToolDefinitionError for a bad option or a name already registered.
        """
        given = {key: value for key, value in zip(_OPTION_NAMES, (
            name, description, executor, timeout, retries, retry_on, backoff, max_concurrency, cache))
            if value is not _DEFAULT}
        if isinstance(func_or_path, Tool):
            current = func_or_path._options()
            new = (func_or_path if all(current[key] == value for key, value in given.items())
                   else Tool(func_or_path, **{**current, **given}))
        else:
            new = Tool(func_or_path, **given)
        with self._lock:
            if new.name in self._tools:
                raise ToolDefinitionError(f"tool {new.name!r} is already registered; pass name='...' "
                                          "to register this one under another name", tool=new.name)
            self._tools[new.name] = new
        return new

    def tool(self, func: Optional[Callable[..., Any]] = None, /, **options: Any) -> Any:
        """Decorator registering here: ``@registry.tool`` or ``@registry.tool(executor="process")``.

        Returns the registered Tool (which still calls like the function). Raises
        ToolDefinitionError for an unknown option or any error ``register`` raises.
        """
        unknown = sorted(set(options) - set(_OPTION_NAMES))
        if unknown:
            raise ToolDefinitionError(f"unknown tool option(s) {', '.join(unknown)}; "
                                      f"expected some of {', '.join(_OPTION_NAMES)}")
        if func is None:
            return lambda decorated: self.register(decorated, **options)
        return self.register(func, **options)

    def check(self, task: Task) -> None:
        """Check that ``task`` names a known tool and that its arguments bind to the signature.

        ``$N`` references are strings standing for values, so they fit any parameter. A path tool is
        imported here. The context parameter (annotated ``RunContext``) is left out: a task that
        passes it, by keyword or by position, is refused. Raises ToolCallError with ``tool`` and
        ``task`` set, e.g. ``task 2: search() got an unexpected keyword argument 'q'``.
        """
        found = self._tools.get(task.tool)
        if found is None:
            raise ToolCallError(f"task {task.idx}: {self._unknown(task.tool)}", tool=task.tool, task=task.idx)
        found.check_arguments(task.args, task.kwargs, task=task.idx)

    def _unknown(self, name: str) -> str:
        known = ", ".join(sorted(self._tools)) or "none (the registry is empty)"
        message = f"unknown tool {name!r}; known tools: {known}"
        close = difflib.get_close_matches(name, list(self._tools), n=1)
        return f"{message}; did you mean {close[0]!r}?" if close else message

    def describe(self) -> str:
        """The numbered tool list for a planner prompt, one ``Tool.describe()`` line per tool."""
        return "\n".join(f"{number}. {item.describe()}" for number, item in enumerate(self, 1))

    def schemas(self) -> List[Dict[str, Any]]:
        """``Tool.schema()`` of each tool, in registration order."""
        return [item.schema() for item in self]

    def executor_names(self) -> List[str]:
        """The executors the tools run on ("thread", "process", "async" or names given to the engine),
        each once, in registration order: what an engine must provide. A path tool may be imported
        to tell (see ``Tool.executor``); raises ToolDefinitionError if that fails."""
        return list(dict.fromkeys(item.executor for item in self))

    def __getitem__(self, name: str) -> Tool:
        """The tool called ``name``. Raises ToolCallError (a TypeError, not a KeyError) listing the
        known tools; use ``get`` or ``in`` to test."""
        found = self._tools.get(name)
        if found is None:
            raise ToolCallError(self._unknown(name), tool=name)
        return found

    def get(self, name: str, default: Any = None) -> Any:
        """The tool called ``name``, or ``default``."""
        return self._tools.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> List[str]:
        """Tool names in registration order."""
        return list(self._tools)

    def __repr__(self) -> str:
        return f"<ToolRegistry {self.names()}>"

    @classmethod
    def from_module(cls, module_name: str) -> "ToolRegistry":
        """The tools of a module, for a CLI: its ``registry`` or ``tools`` attribute if that is a
        ToolRegistry, else a registry of every module-level Tool (from ``@tool``), in definition order.

        Raises ToolDefinitionError if the module cannot be imported or defines no tools.
        """
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ToolDefinitionError(f"cannot import tool module {module_name!r}: "
                                      f"{type(exc).__name__}: {exc}") from exc
        for attribute in ("registry", "tools"):
            found = getattr(module, attribute, None)
            if isinstance(found, ToolRegistry):
                return found
        found_tools = list({id(value): value for value in vars(module).values()
                            if isinstance(value, Tool)}.values())
        if not found_tools:
            raise ToolDefinitionError(f"module {module_name!r} defines no tools: give it a ToolRegistry "
                                      "named 'registry' or 'tools', or decorate its functions with @tool")
        return cls(found_tools)


def tool(func: Optional[Callable[..., Any]] = None, /, *, name: Optional[str] = None,
         executor: Optional[str] = None, timeout: Optional[float] = None, retries: int = 0,
         max_concurrency: Optional[int] = None, retry_on: Union[type, Iterable[type], None] = None,
         backoff: Optional[float] = None, description: Optional[str] = None, cache: bool = False) -> Any:
    """Decorator making a function a Tool: ``@tool`` or ``@tool(executor="process", retries=2, cache=True)``.

    Returns the Tool, which still calls like the function and carries its ``__name__``, ``__doc__``,
    ``__module__``, ``__qualname__`` and ``__wrapped__``. It registers nowhere: pass it to a
    ``ToolRegistry`` (or ``ToolRegistry.from_module``). Raises ToolDefinitionError for bad options.
    """
    options = dict(name=name, executor=executor, timeout=timeout, retries=retries,
                   max_concurrency=max_concurrency, retry_on=retry_on, backoff=backoff,
                   description=description, cache=cache)
    if func is None:
        return lambda decorated: Tool(decorated, **options)
    return Tool(func, **options)


def as_registry(tools: Union[ToolRegistry, Mapping[str, Any], Iterable[Any]]) -> ToolRegistry:
    """``tools`` itself if it is a ToolRegistry, else a new one from a ``{name: callable | Tool |
    "module:attr"}`` dict or an iterable of tools and callables. Raises ToolDefinitionError."""
    if isinstance(tools, ToolRegistry):
        return tools
    if isinstance(tools, (str, bytes)) or not isinstance(tools, (Mapping, abc.Iterable)):
        raise ToolDefinitionError(f"expected a ToolRegistry, a dict of name -> callable or a list of "
                                  f"tools, got {type(tools).__name__}; for a module of tools use "
                                  "ToolRegistry.from_module(name)")
    return ToolRegistry(tools)
