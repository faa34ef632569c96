"""Loading objects by ``"module:attr"`` path: the one cache of what was loaded, per process.

A path names a module and a dotted attribute inside it: ``"mypkg.tools:search"`` or
``"mypkg.tools:Outer.search"``. ``load_object(path)`` imports the module (once per process, also when
many threads ask at the same time) and returns the attribute; ``split_path`` checks a path's form
without importing anything. ``path_candidate`` and ``resolve_loaded`` tell, without importing, whether
a callable can be found again by its own module and qualified name (how a worker process finds a tool).

Failures are not cached: a later call tries again (the module may have been fixed, or put on
``sys.path``). Importing this module imports nothing else of the package's.
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import ToolDefinitionError

__all__ = ["split_path", "load_object", "path_candidate", "resolve_loaded"]

_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
PATH_EXAMPLE = "expected 'module:attribute', e.g. 'mypkg.tools:search'"

# _loaded: path -> the object found there (the only cache of loaded tools in the package).
# _path_locks: one lock per path, so a path is imported once even when many threads ask at once;
# _locks_guard protects _path_locks only, and is never held while importing.
_loaded: Dict[str, Any] = {}
_path_locks: Dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


def is_dotted_name(text: Any) -> bool:
    """Whether ``text`` is a dotted Python name such as ``pkg.mod`` or ``Outer.attr``."""
    return isinstance(text, str) and _DOTTED.fullmatch(text) is not None


def split_path(path: Any) -> Tuple[str, str]:
    """``(module, qualname)`` of a ``"module:qualname"`` path, importing nothing.

    Raises ToolDefinitionError naming the path when it is not of that form.
    """
    if not isinstance(path, str) or path.count(":") != 1:
        raise ToolDefinitionError(f"tool path {path!r} must look like 'module:attribute', "
                                  "e.g. 'mypkg.tools:search'")
    module, qualname = path.split(":")
    for part, what in ((module, "module"), (qualname, "attribute")):
        if not is_dotted_name(part):
            raise ToolDefinitionError(f"tool path {path!r}: the {what} part {part!r} is not a dotted "
                                      f"Python name; {PATH_EXAMPLE}")
    return module, qualname


def load_object(path: str) -> Any:
    """The object named by ``"pkg.mod:attr"`` (or ``"pkg.mod:Outer.attr"``), imported once per process.

    Thread-safe. Raises ToolDefinitionError naming the path and the problem: malformed path, module
    not found, import failed, or attribute missing.
    """
    if isinstance(path, str) and path in _loaded:  # entries are only ever added
        return _loaded[path]
    module_name, qualname = split_path(path)
    with _locks_guard:
        lock = _path_locks.setdefault(path, threading.RLock())
    with lock:  # re-entrant: importing a module may load another path of the same module
        if path not in _loaded:
            _loaded[path] = _import_attribute(path, module_name, qualname)
        return _loaded[path]


def _import_attribute(path: str, module_name: str, qualname: str) -> Any:
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
    return target


def resolve_loaded(module_name: str, qualname: str) -> Any:
    """The object at ``module:qualname`` if the module is already imported (never imports), else None."""
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target


def path_candidate(func: Callable[..., Any]) -> Optional[Tuple[str, str]]:
    """``(module, qualname)`` that may name ``func`` at module level, judged by its names alone
    (None for a lambda, a nested function, or a callable without names)."""
    module, qualname = getattr(func, "__module__", None), getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module not in sys.modules:
        return None
    if "<locals>" in qualname or "<lambda>" in qualname or not is_dotted_name(qualname):
        return None
    return module, qualname
