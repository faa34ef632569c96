"""Tools: the ``Tool``, the registry, the ``@tool`` decorator, loading by path and argument checks.

A ``Tool`` is a callable plus how to run it (``executor``, ``timeout``, ``retries`` ...). It is given
either as a callable or as a ``"module:attr"`` path that is imported on first use, so a registry can name
tools that only a worker process needs to load. The scheduler asks a tool for ``process_target()``:
the path string when one resolves, else the callable itself (checked picklable when registered).

``ToolRegistry`` holds tools by name, in registration order. ``check(task)`` binds a task's arguments to
its tool's signature (``$N`` references are plain strings here, so they fit any parameter), and
``describe()`` / ``schemas()`` render the tools for a planner prompt or a function-calling API; how a
callable's signature, annotations and docstring become that text and JSON schema is the private module
``_signatures``.

Importing this module starts nothing: no threads, no logging, no imports of tool modules.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import pickle
import re
import sys
import threading
from collections import abc
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from ._signatures import docstring, param_docs, parameters_schema, render_signature, summary, type_hints
from .errors import ToolCallError, ToolDefinitionError
from .plan import Task

__all__ = ["Tool", "ToolRegistry", "tool", "as_registry", "load_path"]

RESERVED_NAMES = frozenset({"join"})  # 'join()' ends a plan in the plan language
EXECUTORS = ("thread", "process")
DEFAULT_BACKOFF = 0.05
_NO_PATH_HELP = ("a process tool is loaded in a worker process by its import path; lambdas, closures and "
                 "nested functions have none")
_PATH_ADVICE = "define it at module top level, or register it by 'module:attr' path"

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")

# -- loading by path ---------------------------------------------------------------------------------

# _loaded caches what load_path returned, per path. _path_locks holds one lock per path, so a path is
# imported once even when many threads ask at the same time; _locks_guard protects _path_locks only.
_loaded: Dict[str, Callable[..., Any]] = {}
_path_locks: Dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def _split_path(path: Any) -> Tuple[str, str]:
    """``(module, qualname)`` of a ``"module:qualname"`` path. Raises ToolDefinitionError if malformed."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise ToolDefinitionError(f"tool path {path!r} must look like 'module:attribute', "
                                  "e.g. 'mypkg.tools:search'")
    module, qualname = path.split(":")
    for part, what in ((module, "module"), (qualname, "attribute")):
        if not _DOTTED.fullmatch(part):
            raise ToolDefinitionError(f"tool path {path!r}: the {what} part {part!r} is not a dotted "
                                      "Python name; expected 'module:attribute', e.g. 'mypkg.tools:search'")
    return module, qualname


def load_path(path: str) -> Callable[..., Any]:
    """The callable named by ``"pkg.mod:attr"`` or ``"pkg.mod:Outer.attr"``, imported once per process.

    A ``Tool`` found there is unwrapped to its ``func``. Thread-safe. Raises ToolDefinitionError naming
    the path and the problem: malformed path, module not found, import failed, attribute missing, or
    not callable (failures are not cached: a later call tries again).
    """
    found = _loaded.get(path) if isinstance(path, str) else None
    if found is not None:
        return found
    module_name, qualname = _split_path(path)
    with _locks_guard:
        lock = _path_locks.setdefault(path, threading.RLock())
    with lock:
        if path not in _loaded:
            _loaded[path] = _import_callable(path, module_name, qualname)
        return _loaded[path]


def _import_callable(path: str, module_name: str, qualname: str) -> Callable[..., Any]:
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ToolDefinitionError(f"cannot load {path!r}: no module named {exc.name!r}; check the "
                                      "spelling and that the module is on sys.path") from exc
        raise ToolDefinitionError(f"cannot load {path!r}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ToolDefinitionError(f"cannot load {path!r}: importing {module_name!r} raised "
                                  f"{type(exc).__name__}: {exc}") from exc
    owner = module_name
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ToolDefinitionError(f"cannot load {path!r}: {owner!r} has no attribute {part!r}") from None
        owner = f"{owner}.{part}"
    if isinstance(target, Tool):
        target = target.func
    if not callable(target):
        raise ToolDefinitionError(f"cannot load {path!r}: {qualname} is a {type(target).__name__}, "
                                  "not a callable")
    return target


def _resolve_loaded(module_name: str, qualname: str) -> Any:
    """The object at module:qualname if the module is already imported (never imports), else None."""
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


def _path_candidate(func: Callable[..., Any]) -> Optional[Tuple[str, str]]:
    """``(module, qualname)`` that may name ``func`` at module level, judged by its names alone."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module not in sys.modules:
        return None
    if "<locals>" in qualname or "<lambda>" in qualname or not _DOTTED.fullmatch(qualname):
        return None
    return module, qualname


def _names(found: Any, func: Callable[..., Any]) -> bool:
    """Whether ``found`` (a module attribute) is ``func``, or a Tool around it."""
    if isinstance(found, Tool):
        found = found._func
    return found is func or (inspect.ismethod(found) and found == func)


# -- the Tool ----------------------------------------------------------------------------------------


class Tool:
    """One registered tool: a callable (or a ``"module:attr"`` path to one) and how to run it.

    Attributes (read-only by convention): ``name``, ``executor`` ("thread" or "process"), ``timeout``
    (seconds or None; the scheduler honours it), ``retries`` (>= 0), ``retry_on`` (exception types worth
    a retry), ``backoff`` (retry k waits ``backoff * 2**(k-1)`` seconds), ``max_concurrency`` (>= 1 or
    None). ``description`` is the given one or the docstring's first paragraph. Calling a Tool calls
    its function. Raises ToolDefinitionError, naming the tool and the option, for invalid options.
    """

    def __init__(self, func_or_path: Union[Callable[..., Any], str], *, name: Optional[str] = None,
                 description: Optional[str] = None, executor: str = "thread",
                 timeout: Optional[float] = None, retries: int = 0,
                 retry_on: Union[type, Iterable[type], None] = None, backoff: Optional[float] = None,
                 max_concurrency: Optional[int] = None):
        if isinstance(func_or_path, Tool):
            func_or_path = func_or_path._path_given or func_or_path._func
        self._path_given: Optional[str] = None
        self._func: Optional[Callable[..., Any]] = None
        self._signature: Optional[inspect.Signature] = None  # cached: check() runs once per task
        # Binding depends only on how many positional arguments there are and which keywords: the
        # shapes that bound once are remembered, so checking 10,000 similar tasks binds once.
        self._good_shapes: set = set()
        if isinstance(func_or_path, str):
            _split_path(func_or_path)
            self._path_given = func_or_path
            if name is None:
                name = func_or_path.rsplit(":", 1)[1].rsplit(".", 1)[-1]
        elif callable(func_or_path):
            self._func = func_or_path
            if name is None:
                name = _callable_name(func_or_path)
        else:
            raise ToolDefinitionError(f"a tool must be a callable or a 'module:attr' path, got "
                                      f"{type(func_or_path).__name__} {func_or_path!r}", tool=name)
        self.name = _valid_name(name, func_or_path)
        self._description = _valid_description(self.name, description)
        self.executor = _valid_executor(self.name, executor)
        self.timeout = _valid_timeout(self.name, timeout)
        self.retries = _valid_count(self.name, "retries", retries, minimum=0)
        self.max_concurrency = (None if max_concurrency is None
                                else _valid_count(self.name, "max_concurrency", max_concurrency, minimum=1))
        self.retry_on = _valid_retry_on(self.name, retry_on)
        self.backoff = _valid_backoff(self.name, backoff)
        if self._func is not None:
            functools.update_wrapper(self, self._func, updated=())
            if executor == "process":
                self._check_reachable()

    # -- what the tool is -------------------------------------------------------------------------

    @property
    def func(self) -> Callable[..., Any]:
        """The callable. A path tool imports it on first access (thread-safe, cached); raises
        ToolDefinitionError naming the tool when that fails."""
        func = self._func
        if func is None:
            try:
                func = load_path(self._path_given)  # type: ignore[arg-type]
            except ToolDefinitionError as exc:
                raise ToolDefinitionError(f"tool {self.name!r}: {exc}", tool=self.name) from exc
            self._func = func
        return func

    @property
    def path(self) -> Optional[str]:
        """The importable ``"module:qualname"`` of the callable, or None when it has none (a lambda, a
        closure, a partial, a callable instance, or a module attribute that names something else)."""
        if self._path_given is not None:
            return self._path_given
        candidate = _path_candidate(self._func)
        if candidate is None or not _names(_resolve_loaded(*candidate), self._func):
            return None
        return ":".join(candidate)

    @property
    def description(self) -> str:
        """The given description, else the docstring's first paragraph (whitespace-normalised)."""
        if self._description is not None:
            return self._description
        return summary(docstring(self.func))

    @property
    def signature(self) -> inspect.Signature:
        """The callable's signature; ``(*args, **kwargs)`` when it cannot be read (some builtins)."""
        if self._signature is None:
            func = self.func  # outside the try: a failed import (a TypeError too) must propagate
            try:
                self._signature = inspect.signature(func)
            except (TypeError, ValueError):
                self._signature = _ANY_ARGUMENTS
        return self._signature

    def process_target(self) -> Union[str, Callable[..., Any]]:
        """What a worker process receives: the path when one resolves, else the callable itself.

        Raises ToolDefinitionError if it is neither importable nor picklable (a process tool was
        checked when registered; this only fails if its module attribute was rebound since).
        """
        path = self.path
        if path is not None:
            return path
        _check_picklable(self.name, self._func)
        return self._func  # type: ignore[return-value]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    # -- arguments and rendering ------------------------------------------------------------------

    def bind(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        """``args``/``kwargs`` bound to the signature (values are not type-checked).

        Raises ToolCallError, e.g. ``search() missing a required argument: 'query'``.
        """
        return self._bind(tuple(args), dict(kwargs), task=None)

    def _check_shape(self, args: tuple, kwargs: dict, task: Optional[int]) -> None:
        """Raise ToolCallError unless arguments of this shape bind to the signature (cached)."""
        shape = (len(args), frozenset(kwargs))
        if shape not in self._good_shapes:
            self._bind(args, kwargs, task)
            self._good_shapes.add(shape)

    def _bind(self, args: tuple, kwargs: dict, task: Optional[int]) -> inspect.BoundArguments:
        prefix = "" if task is None else f"task {task}: "
        try:
            signature = self.signature
        except ToolDefinitionError as exc:
            raise ToolCallError(f"{prefix}tool {self.name!r} is unavailable: {exc.__cause__ or exc}",
                                tool=self.name, task=task) from exc
        try:
            _check_keywords(signature, kwargs)  # a misspelt keyword first: 'missing' would hide it
            return signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ToolCallError(f"{prefix}{self.name}() {exc}", tool=self.name, task=task) from None

    def describe(self) -> str:
        """One line for a planner prompt: ``search(query: str) -> str — Search the web.``"""
        head = self.name + render_signature(self.signature, type_hints(self.func, _tool_func))
        description = self.description
        return f"{head} — {description}" if description else head

    def schema(self) -> Dict[str, Any]:
        """The function-calling schema: ``{"type": "function", "function": {name, description,
        parameters}}`` with a JSON schema of the parameters built from the annotations."""
        return {"type": "function", "function": {
            "name": self.name,
            "description": self.description,
            "parameters": parameters_schema(self.signature, type_hints(self.func, _tool_func),
                                            param_docs(docstring(self.func))),
        }}

    # -- internals ----------------------------------------------------------------------------------

    def _options(self) -> Dict[str, Any]:
        return {"name": self.name, "description": self._description, "executor": self.executor,
                "timeout": self.timeout, "retries": self.retries, "retry_on": self.retry_on,
                "backoff": self.backoff, "max_concurrency": self.max_concurrency}

    def _check_reachable(self) -> None:
        """Refuse a process tool a worker could neither import nor unpickle."""
        candidate = _path_candidate(self._func)
        if candidate is not None:
            found = _resolve_loaded(*candidate)
            # None: the module attribute is not bound yet, as while @tool decorates a top-level function.
            if found is None or _names(found, self._func):
                return
        _check_picklable(self.name, self._func)

    def __reduce__(self) -> Tuple[Any, ...]:
        # A worker rebuilds the tool from its path when it has one (the path is loaded lazily there).
        return (_rebuild_tool, (self.path or self._func, self._options()))

    def __repr__(self) -> str:
        where = self._path_given or self.path or repr(self._func)
        return f"<Tool {self.name!r} ({self.executor}) {where}>"


def _check_keywords(signature: inspect.Signature, kwargs: Dict[str, Any]) -> None:
    """Raise TypeError for a keyword the signature does not take, suggesting a close one (our own
    wording, the same on every Python version)."""
    params = signature.parameters.values()
    if any(param.kind is param.VAR_KEYWORD for param in params):
        return
    names = [param.name for param in params
             if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)]
    positional = [param.name for param in params if param.kind is param.POSITIONAL_ONLY]
    for key in kwargs:
        if key in positional:
            raise TypeError(f"takes {key!r} by position only; pass it as a positional argument")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"got an unexpected keyword argument {key!r}{hint}")


def _tool_func(obj: Any) -> Any:
    """What a Tool stands for, so annotations are read through one (``type_hints``'s ``unwrap``)."""
    return obj.func if isinstance(obj, Tool) else obj


def _rebuild_tool(source: Union[str, Callable[..., Any]], options: Dict[str, Any]) -> Tool:
    return Tool(source, **options)


_ANY_ARGUMENTS = inspect.Signature([
    inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
])


def _check_picklable(name: str, func: Any) -> None:
    try:
        pickle.dumps(func)
    except Exception as exc:
        qualname = getattr(func, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname:
            kind = ("a lambda" if qualname.endswith("<lambda>")
                    else "a closure" if getattr(func, "__closure__", None) else "a nested function")
            why = f"{_NO_PATH_HELP}, and {qualname} is {kind}"
        else:
            why = f"it has no import path and cannot be pickled ({type(exc).__name__}: {exc})"
        raise ToolDefinitionError(f"tool {name!r} cannot run in a process: {why}; {_PATH_ADVICE}",
                                  tool=name) from exc


# -- option checks -------------------------------------------------------------------------------


def _callable_name(func: Callable[..., Any]) -> str:
    inner = func.func if isinstance(func, functools.partial) else func
    name = getattr(inner, "__name__", None)
    if not isinstance(name, str):
        raise ToolDefinitionError(f"cannot tell the name of tool {func!r}; pass name='...'")
    return name


def _valid_name(name: Any, source: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ToolDefinitionError(f"tool name {name!r} (for {source!r}) is not a Python identifier; "
                                  "pass name='...' with letters, digits and underscores", tool=str(name))
    if name in RESERVED_NAMES:
        raise ToolDefinitionError(f"tool name {name!r} is reserved: 'join()' ends a plan; "
                                  "pass name='...' to register it under another name", tool=name)
    return name


def _valid_description(name: str, description: Any) -> Optional[str]:
    if description is not None and not isinstance(description, str):
        raise ToolDefinitionError(f"tool {name!r}: description must be a str, got "
                                  f"{type(description).__name__}", tool=name)
    return description


def _valid_executor(name: str, executor: Any) -> str:
    if executor not in EXECUTORS:
        raise ToolDefinitionError(f"tool {name!r}: executor must be 'thread' or 'process', "
                                  f"got {executor!r}", tool=name)
    return executor


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_timeout(name: str, timeout: Any) -> Optional[float]:
    if timeout is None:
        return None
    if not _is_number(timeout) or not timeout > 0:
        raise ToolDefinitionError(f"tool {name!r}: timeout must be a number of seconds > 0 or None, "
                                  f"got {timeout!r}", tool=name)
    return float(timeout)


def _valid_count(name: str, option: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if option == "max_concurrency" else "")
        raise ToolDefinitionError(f"tool {name!r}: {option} must be {allowed}, got {value!r}", tool=name)
    return value


def _valid_backoff(name: str, backoff: Any) -> float:
    if backoff is None:
        return DEFAULT_BACKOFF
    if not _is_number(backoff) or not backoff >= 0:
        raise ToolDefinitionError(f"tool {name!r}: backoff must be a number of seconds >= 0, "
                                  f"got {backoff!r}", tool=name)
    return float(backoff)


def _valid_retry_on(name: str, retry_on: Any) -> Tuple[type, ...]:
    if retry_on is None:
        return (Exception,)
    kinds = tuple(retry_on) if isinstance(retry_on, (tuple, list, set, frozenset)) else (retry_on,)
    for kind in kinds:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ToolDefinitionError(f"tool {name!r}: retry_on must be exception classes, "
                                      f"got {kind!r}", tool=name)
    return kinds


# -- the registry --------------------------------------------------------------------------------


class _Default:
    """Stands for 'not given': the Tool's own option, or the standard default for a new tool."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Any = _Default()
_OPTION_NAMES = ("name", "description", "executor", "timeout", "retries", "retry_on", "backoff",
                 "max_concurrency")


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
                 description: Any = _DEFAULT) -> Tool:
        """Register a callable, a ``"module:attr"`` path or a Tool and return the registered Tool.

        Options not given keep the Tool's own (or the defaults: executor "thread", no timeout, no
        retries). A Tool registered without overrides is stored as is. Raises ToolDefinitionError for
        a bad option or a name already registered.
        """
        given = {key: value for key, value in zip(_OPTION_NAMES, (
            name, description, executor, timeout, retries, retry_on, backoff, max_concurrency))
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
        imported here. Raises ToolCallError with ``tool`` and ``task`` set, e.g.
        ``task 2: search() got an unexpected keyword argument 'q'``.
        """
        found = self._tools.get(task.tool)
        if found is None:
            raise ToolCallError(f"task {task.idx}: {self._unknown(task.tool)}", tool=task.tool, task=task.idx)
        found._check_shape(task.args, task.kwargs, task=task.idx)

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
         executor: str = "thread", timeout: Optional[float] = None, retries: int = 0,
         max_concurrency: Optional[int] = None, retry_on: Union[type, Iterable[type], None] = None,
         backoff: Optional[float] = None, description: Optional[str] = None) -> Any:
    """Decorator making a function a Tool: ``@tool`` or ``@tool(executor="process", retries=2)``.

    Returns the Tool, which still calls like the function and carries its ``__name__``, ``__doc__``,
    ``__module__``, ``__qualname__`` and ``__wrapped__``. It registers nowhere: pass it to a
    ``ToolRegistry`` (or ``ToolRegistry.from_module``). Raises ToolDefinitionError for bad options.
    """
    options = dict(name=name, executor=executor, timeout=timeout, retries=retries,
                   max_concurrency=max_concurrency, retry_on=retry_on, backoff=backoff,
                   description=description)
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
