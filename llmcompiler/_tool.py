"""The ``Tool``: a callable (or a ``"module:attr"`` path to one) and how to run it. Public as ``tools.Tool``.

A Tool given as a path imports nothing until its callable is needed (``func``, ``check``, ``describe``),
so a registry can name tools that only a worker process needs to load. The scheduler asks a tool for
``process_target()``: the path string when one resolves, else the callable itself (checked picklable
when registered), wrapped in ``AsyncCall`` for an ``async def`` tool so the worker runs it to the end.

What a plan sees of the callable is its ``plan_signature``: the signature without the context
parameter (annotated ``RunContext``, filled in by the engine), which ``describe()``, ``schema()`` and
argument checks all use.
"""

from __future__ import annotations

import functools
import inspect
import pickle
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

from . import _tool_options as options
from ._context_param import find_context_parameter, passing_problem, plan_signature
from ._signatures import check_keywords, docstring, param_docs, render_signature, summary, type_hints
from .errors import ToolCallError, ToolDefinitionError
from .loading import load_object, path_candidate, resolve_loaded, split_path
from .schemas import parameters_schema

__all__ = ["Tool", "AsyncCall", "load_path", "is_coroutine_callable"]

_NO_PATH_HELP = ("a process tool is loaded in a worker process by its import path; lambdas, closures and "
                 "nested functions have none")
_PATH_ADVICE = "define it at module top level, or register it by 'module:attr' path"



def load_path(path: str) -> Callable[..., Any]:
    """The callable named by ``"pkg.mod:attr"`` or ``"pkg.mod:Outer.attr"``, imported once per process.

    A ``Tool`` found there is unwrapped to its ``func``. Thread-safe (the import is cached by
    ``loading.load_object``). Raises ToolDefinitionError naming the path and the problem: malformed
    path, module not found, import failed, attribute missing, or not callable (failures are not cached:
    a later call tries again).
    """
    target = load_object(path)
    if isinstance(target, Tool):
        return target.func
    if not callable(target):
        raise ToolDefinitionError(f"cannot load {path!r}: {path.split(':')[1]} is a {type(target).__name__}, "
                                  "not a callable")
    return target


def is_coroutine_callable(func: Any) -> bool:
    """Whether calling ``func`` gives a coroutine: an ``async def`` function or method, a
    ``functools.partial`` of one, or an object whose ``__call__`` is ``async def``."""
    while isinstance(func, functools.partial):
        func = func.func
    if isinstance(func, Tool):
        return func.is_async
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(type(func), "__call__", None)
    return not inspect.isroutine(func) and not isinstance(func, type) and inspect.iscoroutinefunction(call)


class AsyncCall:
    """What a worker process runs for an ``async def`` tool: the coroutine, to the end, on its own loop.

    ``target`` is a ``"module:attr"`` path (loaded in the worker) or a picklable coroutine function.
    Calling it returns what the coroutine returns (``asyncio.run``).
    """

    def __init__(self, target: Union[str, Callable[..., Any]]):
        self.target = target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio  # only in the worker that needs it: importing tools stays light

        func = load_path(self.target) if isinstance(self.target, str) else self.target
        return asyncio.run(func(*args, **kwargs))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (AsyncCall, (self.target,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncCall) and other.target == self.target

    def __hash__(self) -> int:
        return hash(("AsyncCall", repr(self.target)))

    def __repr__(self) -> str:
        return f"AsyncCall({self.target!r})"


class Tool:
    """One registered tool: a callable (or a ``"module:attr"`` path to one) and how to run it.

    Attributes (read-only by convention): ``name``; ``executor``: "thread", "process", "async" (the
    engine's event loop, the default for an ``async def``), or the name of an executor given to the
    engine (``Engine(executors={"cluster": ...})``; the engine checks the name); ``timeout`` (seconds or
    None); ``retries`` (>= 0); ``retry_on`` (exception types worth a retry); ``backoff`` (retry k waits
    ``backoff * 2**(k-1)`` seconds); ``max_concurrency`` (>= 1 or None, across all runs of an engine);
    ``cache`` (an identical call may be answered from an earlier observation; never the default).
    ``description`` is the given one or the docstring's first paragraph. Calling a Tool calls its
    function. Raises ToolDefinitionError, naming the tool and the option, for invalid options.

    A path that names a ``@tool`` gives its callable only: the options are the ones given here (a
    path is not imported when registered). ``config.load_config``, which imports every path, takes
    such a tool's own options as the defaults of its entry.
    """

    def __init__(self, func_or_path: Union[Callable[..., Any], str], *, name: Optional[str] = None,
                 description: Optional[str] = None, executor: Optional[str] = None,
                 timeout: Optional[float] = None, retries: int = 0,
                 retry_on: Union[type, Iterable[type], None] = None, backoff: Optional[float] = None,
                 max_concurrency: Optional[int] = None, cache: bool = False):
        if isinstance(func_or_path, Tool):
            func_or_path = func_or_path._path_given or func_or_path._func
        # The lazily computed attributes below (_func, _signature, _context, _plan_signature,
        # _executor) are set without a lock: each computation gives the same value, so two threads
        # racing on first use only compute it twice.
        self._path_given: Optional[str] = None
        self._func: Optional[Callable[..., Any]] = None
        self._signature: Optional[inspect.Signature] = None  # cached: check() runs once per task
        self._context: Optional[str] = None  # the context parameter's name (None: it has none) ...
        self._context_known = False  # ... once computed
        self._plan_signature: Optional[inspect.Signature] = None
        # Binding depends only on how many positional arguments there are and which keywords: the
        # shapes that bound once are remembered, so checking 10,000 similar tasks binds once.
        self._good_shapes: set = set()
        if isinstance(func_or_path, str):
            split_path(func_or_path)
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
        self.name = options.valid_name(name, func_or_path)
        self._description = options.valid_description(self.name, description)
        self._executor_given = options.valid_executor(self.name, executor)
        self._executor: Optional[str] = None  # known once the callable is (see the executor property)
        self.timeout = options.valid_timeout(self.name, timeout)
        self.retries = options.valid_count(self.name, "retries", retries, minimum=0)
        self.max_concurrency = (None if max_concurrency is None else
                                options.valid_count(self.name, "max_concurrency", max_concurrency, minimum=1))
        self.retry_on = options.valid_retry_on(self.name, retry_on)
        self.backoff = options.valid_backoff(self.name, backoff)
        self.cache = options.valid_cache(self.name, cache)
        if self._func is not None:
            functools.update_wrapper(self, self._func, updated=())
            self._executor = options.executor_for(self.name, self._executor_given, self.is_async)
            self.context_parameter  # noqa: B018 - a misplaced RunContext is refused when registered
            if self._executor == "process":
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
    def is_async(self) -> bool:
        """Whether the callable is a coroutine function (see ``is_coroutine_callable``). A path tool
        imports its callable to tell."""
        return is_coroutine_callable(self.func)

    @property
    def executor(self) -> str:
        """Where the tool runs. Not given: "async" for an ``async def``, else "thread" (a path tool
        given neither "process" nor another executor's name imports its callable to tell). Raises
        ToolDefinitionError for "thread" with an ``async def`` or "async" without one."""
        if self._executor is None:
            given = self._executor_given
            known = given is not None and given not in ("thread", "async")
            self._executor = given if known else options.executor_for(self.name, given, self.is_async)
        return self._executor

    @property
    def path(self) -> Optional[str]:
        """The importable ``"module:qualname"`` of the callable, or None when it has none (a lambda, a
        closure, a partial, a callable instance, or a module attribute that names something else)."""
        if self._path_given is not None:
            return self._path_given
        candidate = path_candidate(self._func)  # type: ignore[arg-type]
        if candidate is None or not _names(resolve_loaded(*candidate), self._func):
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

    @property
    def context_parameter(self) -> Optional[str]:
        """The name of the parameter annotated ``RunContext`` (the engine fills it in by keyword when
        the task starts), or None. Raises ToolDefinitionError if two parameters are, or if it cannot
        be passed by keyword."""
        if not self._context_known:
            try:
                self._context = find_context_parameter(self.signature, self._hints())
            except ValueError as exc:
                raise ToolDefinitionError(f"tool {self.name!r}: {exc}", tool=self.name) from exc
            self._context_known = True
        return self._context

    @property
    def plan_signature(self) -> inspect.Signature:
        """The signature a plan calls: ``signature`` without the context parameter (and the
        parameters after it keyword-only). ``check``, ``describe`` and ``schema`` use it."""
        if self._plan_signature is None:
            self._plan_signature = plan_signature(self.signature, self.context_parameter)
        return self._plan_signature

    def process_target(self) -> Union[str, Callable[..., Any]]:
        """What a worker process receives: the path when one resolves, else the callable itself; for
        an ``async def`` tool, an ``AsyncCall`` of either (it runs the coroutine with ``asyncio.run``).

        Raises ToolDefinitionError if it is neither importable nor picklable (a process tool was
        checked when registered; this only fails if its module attribute was rebound since).
        """
        target: Union[str, Callable[..., Any], None] = self.path
        if target is None:
            _check_picklable(self.name, self._func)
            target = self._func
        return AsyncCall(target) if self.is_async else target  # type: ignore[arg-type]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    # -- arguments and rendering ------------------------------------------------------------------

    def bind(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        """``args``/``kwargs`` bound to ``plan_signature`` (values are not type-checked).

        Raises ToolCallError, e.g. ``search() missing a required argument: 'query'``.
        """
        return self._bind(tuple(args), dict(kwargs), task=None)

    def check_arguments(self, args: tuple, kwargs: Dict[str, Any], task: Optional[int] = None) -> None:
        """Raise ToolCallError unless a call with these arguments fits ``plan_signature`` (the
        shapes that fitted are remembered, so checking many similar calls binds once)."""
        shape = (len(args), frozenset(kwargs))
        if shape not in self._good_shapes:
            self._bind(args, kwargs, task)
            self._good_shapes.add(shape)

    def _bind(self, args: tuple, kwargs: dict, task: Optional[int]) -> inspect.BoundArguments:
        prefix = "" if task is None else f"task {task}: "
        try:
            signature, context = self.plan_signature, self.context_parameter
            self.executor  # noqa: B018 - an async def registered on "thread" is refused here
        except ToolDefinitionError as exc:
            raise ToolCallError(f"{prefix}tool {self.name!r} is unavailable: {exc.__cause__ or exc}",
                                tool=self.name, task=task) from exc
        problem = None if context is None else passing_problem(self.signature, context, args, kwargs)
        if problem is not None:
            raise ToolCallError(f"{prefix}{self.name}() {problem}", tool=self.name, task=task)
        try:
            check_keywords(signature, kwargs)  # a misspelt keyword first: 'missing' would hide it
            return signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ToolCallError(f"{prefix}{self.name}() {exc}", tool=self.name, task=task) from None

    def _hints(self) -> Dict[str, Any]:
        return type_hints(self.func, _tool_func)

    def call_text(self) -> str:
        """The call a plan writes, with readable annotations: ``search(query: str) -> str``."""
        return self.name + render_signature(self.plan_signature, self._hints())

    def describe(self) -> str:
        """One line for a planner prompt: ``search(query: str) -> str — Search the web.``"""
        head = self.call_text()
        description = self.description
        return f"{head} — {description}" if description else head

    def schema(self) -> Dict[str, Any]:
        """The function-calling schema: ``{"type": "function", "function": {name, description,
        parameters}}`` with a JSON schema of the plan's parameters built from the annotations."""
        return {"type": "function", "function": {
            "name": self.name,
            "description": self.description,
            "parameters": parameters_schema(self.plan_signature, self._hints(),
                                            param_docs(docstring(self.func))),
        }}

    # -- internals ----------------------------------------------------------------------------------

    def _options(self) -> Dict[str, Any]:
        return {"name": self.name, "description": self._description, "executor": self._executor_given,
                "timeout": self.timeout, "retries": self.retries, "retry_on": self.retry_on,
                "backoff": self.backoff, "max_concurrency": self.max_concurrency, "cache": self.cache}

    def _check_reachable(self) -> None:
        """Refuse a process tool a worker could neither import nor unpickle."""
        candidate = path_candidate(self._func)  # type: ignore[arg-type]
        if candidate is not None:
            found = resolve_loaded(*candidate)
            # None: the module attribute is not bound yet, as while @tool decorates a top-level function.
            if found is None or _names(found, self._func):
                return
        _check_picklable(self.name, self._func)

    def __reduce__(self) -> Tuple[Any, ...]:
        # A worker rebuilds the tool from its path when it has one (the path is loaded lazily there).
        return (_rebuild_tool, (self.path or self._func, self._options()))

    def __repr__(self) -> str:
        where = self._path_given or self.path or repr(self._func)
        executor = self._executor or self._executor_given or "executor not known yet"
        return f"<Tool {self.name!r} ({executor}) {where}>"


def _names(found: Any, func: Any) -> bool:
    """Whether ``found`` (a module attribute) is ``func``, or a Tool around it."""
    if isinstance(found, Tool):
        found = found._func
    return found is func or (inspect.ismethod(found) and found == func)


def _tool_func(obj: Any) -> Any:
    """What a Tool stands for, so annotations are read through one (``type_hints``'s ``unwrap``)."""
    return obj.func if isinstance(obj, Tool) else obj


def _rebuild_tool(source: Union[str, Callable[..., Any]], tool_options: Dict[str, Any]) -> Tool:
    return Tool(source, **tool_options)


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


def _callable_name(func: Callable[..., Any]) -> str:
    inner = func.func if isinstance(func, functools.partial) else func
    name = getattr(inner, "__name__", None)
    if not isinstance(name, str):
        raise ToolDefinitionError(f"cannot tell the name of tool {func!r}; pass name='...'")
    return name
