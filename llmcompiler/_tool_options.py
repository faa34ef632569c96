"""The checks of a tool's options (name, executor, timeout, retries ...): one rule and one message each.

Every check takes the tool's name (for the message) and the value given, and returns the value to
store or raises ToolDefinitionError naming the tool and the option. ``tools.Tool`` and ``config``
(the tool config file) both use these, so a file and a call report the same problem the same way.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from .errors import ToolDefinitionError

RESERVED_NAMES = frozenset({"join"})  # 'join()' ends a plan in the plan language
BUILTIN_EXECUTORS = ("thread", "process", "async")
DEFAULT_BACKOFF = 0.05
EXECUTOR_RULE = ("'thread', 'process', 'async', or the name (an identifier) of an executor given to "
                 "the Engine as Engine(executors={name: executor})")


def valid_name(name: Any, source: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ToolDefinitionError(f"tool name {name!r} (for {source!r}) is not a Python identifier; "
                                  "pass name='...' with letters, digits and underscores", tool=str(name))
    if name in RESERVED_NAMES:
        raise ToolDefinitionError(f"tool name {name!r} is reserved: 'join()' ends a plan; "
                                  "pass name='...' to register it under another name", tool=name)
    return name


def valid_description(name: str, description: Any) -> Optional[str]:
    if description is not None and not isinstance(description, str):
        raise ToolDefinitionError(f"tool {name!r}: description must be a str, got "
                                  f"{type(description).__name__}", tool=name)
    return description


def valid_executor(name: str, executor: Any) -> Optional[str]:
    """The executor as given (None: chosen from the callable, see ``executor_for``)."""
    if executor is None:
        return None
    if not isinstance(executor, str) or not executor.isidentifier():
        raise ToolDefinitionError(f"tool {name!r}: executor must be {EXECUTOR_RULE}, got {executor!r}",
                                  tool=name)
    return executor


def executor_for(name: str, executor: Optional[str], is_async: bool) -> str:
    """The executor a tool runs on, once it is known whether its callable is ``async def``.

    Not given: "async" for a coroutine function, else "thread". Raises ToolDefinitionError for
    "thread" with a coroutine function (the thread would only create the coroutine) and "async" with
    a plain function (it would block the engine's event loop).
    """
    if executor is None:
        return "async" if is_async else "thread"
    if executor == "thread" and is_async:
        raise ToolDefinitionError(f"tool {name!r} is an async def function: executor 'thread' would only "
                                  "create its coroutine, never run it; use executor='async' (or leave it "
                                  "out)", tool=name)
    if executor == "async" and not is_async:
        raise ToolDefinitionError(f"tool {name!r}: executor 'async' runs coroutine functions on the "
                                  "engine's event loop, and this one is not async def (it would block "
                                  "the loop); use executor='thread' (or leave it out)", tool=name)
    return executor


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def valid_timeout(name: str, timeout: Any) -> Optional[float]:
    if timeout is None:
        return None
    if not is_number(timeout) or not timeout > 0:
        raise ToolDefinitionError(f"tool {name!r}: timeout must be a number of seconds > 0 or None, "
                                  f"got {timeout!r}", tool=name)
    return float(timeout)


def valid_count(name: str, option: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an int >= {minimum}" + (" or None" if option == "max_concurrency" else "")
        raise ToolDefinitionError(f"tool {name!r}: {option} must be {allowed}, got {value!r}", tool=name)
    return value


def valid_backoff(name: str, backoff: Any) -> float:
    if backoff is None:
        return DEFAULT_BACKOFF
    if not is_number(backoff) or not backoff >= 0:
        raise ToolDefinitionError(f"tool {name!r}: backoff must be a number of seconds >= 0, "
                                  f"got {backoff!r}", tool=name)
    return float(backoff)


def valid_retry_on(name: str, retry_on: Any) -> Tuple[type, ...]:
    if retry_on is None:
        return (Exception,)
    kinds = tuple(retry_on) if isinstance(retry_on, (tuple, list, set, frozenset)) else (retry_on,)
    for kind in kinds:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ToolDefinitionError(f"tool {name!r}: retry_on must be exception classes, "
                                      f"got {kind!r}", tool=name)
    return kinds


def valid_cache(name: str, cache: Any) -> bool:
    if not isinstance(cache, bool):
        raise ToolDefinitionError(f"tool {name!r}: cache must be True or False, got {cache!r}", tool=name)
    return cache
