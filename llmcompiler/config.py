"""Tools from a config file: ``load_config(path) -> ToolRegistry``, every problem reported at once.

A TOML file (read with ``tomllib``, Python 3.11+) or a JSON file (any version) lists the tools, each by
its ``"module:attr"`` path, with how to run it::

    # tools.toml
    [[tools]]
    path = "mypkg.search:web_search"   # required: the callable, or a @tool, at module level
    name = "search"                     # default: the attribute's name
    executor = "thread"                 # thread | process | async | a name given to Engine(executors=)
    timeout = 10.0                      # seconds
    retries = 2
    retry_on = ["TimeoutError", "mypkg.errors:RateLimited"]   # builtin names or class paths
    backoff = 0.1                       # seconds before the first retry (doubling after)
    max_concurrency = 4                 # calls at once, across every run of an engine
    description = "Search the web."     # default: the docstring's first paragraph
    cache = true                        # an identical call may be answered from an earlier one

    [[tools]]
    path = "mypkg.sim:simulate"
    executor = "process"

The JSON form is ``{"tools": [{"path": "mypkg.search:web_search", "timeout": 10}, ...]}``. Options
left out take the ``Tool`` defaults; when ``path`` names a ``@tool``, its own options are the defaults.

Loading imports every tool and checks it as a run would (its options, its signature and context
parameter, an ``async def`` on the right executor, its schema against ``schema_check``), and raises
one ``ToolConfigError`` listing every problem of every entry, not the first only. Paths are imported
as named: the file's directory is not put on ``sys.path``.
"""

from __future__ import annotations

import builtins
import difflib
import json
import os
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from . import _tool_options as options
from .errors import ToolConfigError, ToolDefinitionError
from .loading import load_object
from .schema_check import tool_schema_problems
from .tools import Tool, ToolRegistry

__all__ = ["load_config", "registry_from_config", "ConfigProblem", "ENTRY_KEYS"]

ENTRY_KEYS = ("path", "name", "executor", "timeout", "retries", "retry_on", "backoff", "max_concurrency",
              "description", "cache")
_TOP_KEYS = ("tools",)
_FORMATS = {".toml": "TOML", ".json": "JSON"}


class ConfigProblem(NamedTuple):
    """One problem of a tool config: ``entry`` is the 1-based position of the tool in the file's list
    (None for the file as a whole), ``tool`` its name when known, ``message`` what is wrong and what
    to do."""

    entry: Optional[int]
    tool: Optional[str]
    message: str

    def __str__(self) -> str:
        if self.entry is None:
            return self.message
        name = f" ({self.tool})" if self.tool else ""
        return f"entry {self.entry}{name}: {self.message}"


def load_config(path: str) -> ToolRegistry:
    """The registry of the tools a TOML (``.toml``) or JSON (``.json``) file lists (see the module
    docstring), each imported and checked.

    Raises ToolConfigError (a ToolDefinitionError) listing every problem found: the file unreadable
    or not valid TOML/JSON, unknown keys, bad options, paths that do not import, tools a run could
    not call.
    """
    data = _read(path)
    return registry_from_config(data, source=path)


def registry_from_config(data: Any, *, source: str = "<config>") -> ToolRegistry:
    """The registry of the tools in already-parsed config ``data`` (a dict with a ``tools`` list).

    Raises ToolConfigError naming ``source`` and listing every problem (see ``load_config``).
    """
    problems: List[ConfigProblem] = []
    entries = _entries(data, problems)
    registry = ToolRegistry()
    first_entry: Dict[str, int] = {}
    for number, entry in enumerate(entries, 1):
        built = _build_entry(number, entry, problems)
        if built is None:
            continue
        if built.name in first_entry:
            problems.append(ConfigProblem(number, built.name, f"the name {built.name!r} is already used by "
                                          f"entry {first_entry[built.name]}; give this one name = '...'"))
            continue
        first_entry[built.name] = number
        registry.register(built)
    if problems:
        raise _config_error(source, problems)
    return registry


# -- reading the file ------------------------------------------------------------------------------


def _read(path: str) -> Any:
    """The parsed file. Raises ToolConfigError with one problem when it cannot be read or parsed."""
    form = _FORMATS.get(os.path.splitext(path)[1].lower())
    if form is None:
        raise _config_error(path, [ConfigProblem(None, None, "expected a .toml or .json file (the "
                                                 "extension says which format it is)")])
    if form == "TOML" and sys.version_info < (3, 11):
        raise _config_error(path, [ConfigProblem(None, None, "reading TOML needs Python 3.11 or later "
                                                 "(tomllib); write the file as JSON ({\"tools\": [{\"path\": "
                                                 "...}]}) instead")])
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        problem = ConfigProblem(None, None, f"cannot read it: {exc.strerror or exc}")
        raise _config_error(path, [problem]) from None
    try:
        if form == "JSON":
            return json.loads(raw.decode("utf-8"))
        return _parse_toml(raw)
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        message = f"not valid {form}: {exc}"
    raise _config_error(path, [ConfigProblem(None, None, message)])


def _parse_toml(raw: bytes) -> Any:
    import tomllib  # Python 3.11+ (checked by the caller); imported only when a TOML file is read

    return tomllib.loads(raw.decode("utf-8"))


def _config_error(source: str, problems: List[ConfigProblem]) -> ToolConfigError:
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    lines = "\n".join(f"  {problem}" for problem in problems)
    return ToolConfigError(f"{source}: {count} in the tool config:\n{lines}", path=source, problems=problems)


def _entries(data: Any, problems: List[ConfigProblem]) -> List[Any]:
    """The ``tools`` list of the config (problems with the file's shape go to ``problems``)."""
    if not isinstance(data, dict):
        problems.append(ConfigProblem(None, None, f"the file must hold a table (an object) with a 'tools' "
                                      f"list, got {_kind(data)}"))
        return []
    for key in data:
        if key not in _TOP_KEYS:
            hint = _close(key, _TOP_KEYS) or "."
            problems.append(ConfigProblem(None, None, f"unknown top-level key {key!r}{hint} The file holds a "
                                          "'tools' list ([[tools]] in TOML)."))
    entries = data.get("tools")
    if not isinstance(entries, list) or not entries:
        got = "nothing" if entries is None else "[]" if entries == [] else _kind(entries)
        problems.append(ConfigProblem(None, None, f"expected a non-empty 'tools' list ([[tools]] tables in "
                                      f"TOML), got {got}"))
        return []
    return entries


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _close(word: str, choices: Tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- one entry ----------------------------------------------------------------------------------------


def _build_entry(number: int, entry: Any, problems: List[ConfigProblem]) -> Optional[Tool]:
    """The entry's Tool, imported and checked, or None after adding its problems to ``problems``."""
    if not isinstance(entry, dict):
        problems.append(ConfigProblem(number, None, f"expected a table with a 'path', got {_kind(entry)}"))
        return None
    label = entry.get("name") if isinstance(entry.get("name"), str) else None
    found: List[str] = []
    for key in entry:
        if key not in ENTRY_KEYS:
            hint = _close(key, ENTRY_KEYS) or "."
            found.append(f"unknown key {key!r}{hint} The keys are {', '.join(ENTRY_KEYS)}.")
    path = entry.get("path")
    if not isinstance(path, str):
        found.append("no 'path'; give the tool as path = 'module:attribute'" if path is None
                     else f"path must be a 'module:attribute' string, got {_kind(path)}")
    if label is None and isinstance(path, str):
        label = path.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    tool_options = _options(label or f"entry {number}", entry, found)
    built = None
    if not found:
        built = _checked_tool(path, tool_options, found)  # type: ignore[arg-type]
    problems.extend(ConfigProblem(number, label, message) for message in found)
    return built if not found else None


def _options(label: str, entry: Dict[str, Any], found: List[str]) -> Dict[str, Any]:
    """The Tool options of an entry; each bad one adds its own problem to ``found``."""
    checks = {
        "name": lambda value: options.valid_name(value, entry.get("path")),
        "description": lambda value: options.valid_description(label, value),
        "executor": lambda value: options.valid_executor(label, value),
        "timeout": lambda value: options.valid_timeout(label, value),
        "retries": lambda value: options.valid_count(label, "retries", value, minimum=0),
        "max_concurrency": lambda value: (None if value is None else
                                          options.valid_count(label, "max_concurrency", value, minimum=1)),
        "backoff": lambda value: options.valid_backoff(label, value),
        "cache": lambda value: options.valid_cache(label, value),
        "retry_on": lambda value: _retry_on(value),
    }
    chosen: Dict[str, Any] = {}
    for key, check in checks.items():
        if key not in entry:
            continue
        try:
            chosen[key] = check(entry[key])
        except ToolDefinitionError as exc:
            found.append(_without_prefix(str(exc), label))
    return chosen


def _without_prefix(message: str, label: str) -> str:
    """A Tool message without its ``tool 'x': `` opening (the entry's label already names the tool)."""
    prefix = f"tool {label!r}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _retry_on(value: Any) -> Tuple[type, ...]:
    """Exception classes from builtin names (``"TimeoutError"``) or class paths (``"pkg.mod:Error"`` or
    ``"pkg.mod.Error"``). Raises ToolDefinitionError naming every name that is not one."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ToolDefinitionError(f"retry_on must be a list of exception names such as ['TimeoutError', "
                                  f"'mypkg.errors:RateLimited'], got {value!r}")
    kinds, wrong = [], []
    for name in names:
        try:
            kinds.append(_exception_class(name))
        except ToolDefinitionError as exc:
            wrong.append(str(exc))
    if wrong:
        raise ToolDefinitionError("retry_on: " + "; ".join(wrong))
    return tuple(kinds)


def _exception_class(name: str) -> type:
    if ":" not in name and "." not in name:
        found = getattr(builtins, name, None)
        if not (isinstance(found, type) and issubclass(found, BaseException)):
            builtin_names = tuple(key for key, item in vars(builtins).items()
                                  if isinstance(item, type) and issubclass(item, BaseException))
            raise ToolDefinitionError(f"{name!r} is not a builtin exception (name another as 'module:Class')"
                                      + _close(name, builtin_names))
        return found
    path = name if ":" in name else ":".join(name.rsplit(".", 1))
    found = load_object(path)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ToolDefinitionError(f"{name!r} is a {type(found).__name__}, not an exception class")
    return found


def _checked_tool(path: str, given: Dict[str, Any], found: List[str]) -> Optional[Tool]:
    """The Tool at ``path`` with the options ``given``, imported and checked as a run would; None after
    adding its problems to ``found``."""
    try:
        target = load_object(path)
        defaults = target._options() if isinstance(target, Tool) else {}  # a @tool's own options
        built = Tool(path, **{**defaults, **given})
        built.func, built.executor, built.plan_signature  # noqa: B018 - each imports or checks, once
    except ToolDefinitionError as exc:
        name = given.get("name") or path.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        found.append(_without_prefix(str(exc), name))
        return None
    found.extend(f"its schema breaks the subset APIs accept: {problem}"
                 for problem in tool_schema_problems(built.schema()))
    return built
