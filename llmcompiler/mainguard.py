"""Refuse to start worker processes from a script's unguarded top-level code.

With the ``spawn`` and ``forkserver`` start methods every new process imports the main script again
(as ``__mp_main__``) before it runs anything. Code at the script's top level that starts a run outside
``if __name__ == "__main__":`` then runs again in every worker, which tries to start processes of its own
and dies; every task fails with multiprocessing's bootstrapping text. ``check_main_guard`` spots this in
the parent, before any process starts: it finds the main module's ``<module>`` frame on the calling
thread's stack or the main thread's, and asks ``ast`` whether that line lies inside an ``if __name__ ==
"__main__":`` block of the script file. The script is parsed, never executed.
"""

from __future__ import annotations

import ast
import os
import sys
import threading
import tokenize
from types import FrameType
from typing import Dict, List, Optional, Tuple

from .errors import ProcessStartError

__all__ = ["check_main_guard"]

Span = Tuple[int, int]  # first and last line of a block, inclusive

_guards_cache: Dict[Tuple[str, float], List[Span]] = {}


def check_main_guard(start_method: str) -> None:
    """Raise ``ProcessStartError`` if starting a ``start_method`` process now would make it re-run the
    main script's unguarded top-level code; return quietly otherwise (``fork`` never re-runs it, nor
    does a main module without a file: ``-c``, the REPL, notebooks)."""
    if start_method == "fork":
        return
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if main is None or not (name or getattr(main, "__file__", None)):
        return  # multiprocessing re-imports the main module only when it has a name or a file
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return  # ``python -m package``: a package's __main__ is never re-imported in a worker
    frame = _main_module_frame(main.__dict__)
    if frame is None:
        return
    path, line = frame.f_code.co_filename, frame.f_lineno
    guards = _guarded_spans(path)
    if guards is None or any(first <= line <= last for first, last in guards):
        return
    raise ProcessStartError(
        f"{path}:{line}: this script starts worker processes from its top-level code, which every "
        "worker process runs again; put that code under 'if __name__ == \"__main__\":' or register "
        "the tool with executor=\"thread\"", path=path, line=line)


def _main_module_frame(main_globals: dict) -> Optional[FrameType]:
    """The frame running the main module's top-level code, on this thread's stack or the main
    thread's (a pool may be started from a worker thread while the main thread waits in the script)."""
    stacks = [sys._getframe(1)]
    main_thread = threading.main_thread()
    if threading.current_thread() is not main_thread and main_thread.ident is not None:
        stacks.append(sys._current_frames().get(main_thread.ident))
    for frame in stacks:
        while frame is not None:
            if frame.f_code.co_name == "<module>" and frame.f_globals is main_globals:
                return frame
            frame = frame.f_back
    return None


def _guarded_spans(path: str) -> Optional[List[Span]]:
    """The line spans of ``path`` that run only when it is the main module; None when the file cannot
    be read or parsed (nothing is refused on a guess)."""
    try:
        key = (path, os.stat(path).st_mtime)
    except OSError:
        return None
    if key not in _guards_cache:
        try:
            with tokenize.open(path) as source:
                tree = ast.parse(source.read(), path)
        except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
            return None
        _guards_cache[key] = [span for node in ast.walk(tree) if isinstance(node, ast.If)
                              for span in _main_only_spans(node)]
    return _guards_cache[key]


def _main_only_spans(node: ast.If) -> List[Span]:
    """The branch of ``if __name__ == "__main__":`` (or of ``!=``'s ``else``) that only a main module
    runs; none for any other ``if``."""
    test = node.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and len(test.comparators) == 1):
        return []
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    if not (names and texts):
        return []
    branch = {ast.Eq: node.body, ast.NotEq: node.orelse}.get(type(test.ops[0]), [])
    if not branch:
        return []
    return [(branch[0].lineno, branch[-1].end_lineno or branch[-1].lineno)]
