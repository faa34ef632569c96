"""How a tool's callable reads to a planner: docstrings, annotations, signatures, keyword checks.

``docstring`` and ``summary`` give a callable's docstring and its first paragraph; ``param_docs`` the
parameter descriptions of a Google-style ``Args:`` section. ``type_hints`` resolves the annotations of
calling a function, a class, a partial or a callable instance (keeping, per name, what cannot be
resolved). ``render_signature`` writes a signature with readable annotations (``(query: str, k: int | None
= None) -> str``) and ``check_keywords`` refuses a keyword a signature does not take. The JSON
schemas of annotations are the module ``schemas``.

Everything here is pure: it reads callables and returns text or dicts. ``_tool`` is the only user; this
module imports nothing from the package (a wrapper such as ``Tool`` is seen through the ``unwrap``
callable ``type_hints`` is given).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import types
import typing
from typing import Any, Callable, Dict, List, Union

__all__ = ["docstring", "summary", "param_docs", "type_hints", "render_signature", "check_keywords"]

_SECTION = re.compile(r"(Args|Arguments|Parameters|Returns?|Raises|Yields?|Examples?|Notes?)\s*:\s*")
_ARG_LINE = re.compile(r"\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)")


def docstring(func: Any) -> str:
    if isinstance(func, functools.partial):
        func = func.func
    return inspect.getdoc(func) or ""


def summary(doc: str) -> str:
    """The first paragraph, stopping at a section header such as ``Args:``."""
    lines: List[str] = []
    for line in doc.strip().splitlines():
        if not line.strip() or _SECTION.fullmatch(line.strip()):
            break
        lines.append(line)
    return " ".join(" ".join(lines).split())


def param_docs(doc: str) -> Dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section: ``{name: text}``."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:")), None)
    if start is None:
        return {}
    docs: Dict[str, str] = {}
    current, indent = None, None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        width = len(line) - len(line.lstrip())
        indent = width if indent is None else indent
        if width == 0 or width < indent:
            break
        match = _ARG_LINE.fullmatch(line.strip())
        if width == indent and match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current is not None:
            docs[current] += " " + line.strip()
    return {name: " ".join(text.split()) for name, text in docs.items()}


def _same(func: Any) -> Any:
    return func


def _hint_target(func: Any, unwrap: Callable[[Any], Any]) -> Any:
    """The object whose annotations describe calling ``func``."""
    if isinstance(func, functools.partial):
        return _hint_target(func.func, unwrap)
    inner = unwrap(func)
    if inner is not func:
        return _hint_target(inner, unwrap)
    if isinstance(func, type):
        return func.__init__
    if inspect.isroutine(func):
        return func
    return type(func).__call__  # a callable instance


def type_hints(func: Any, unwrap: Callable[[Any], Any] = _same) -> Dict[str, Any]:
    """Resolved annotations; per name, the raw annotation when the whole set cannot be resolved.

    ``unwrap(obj)`` is the callable a wrapper object stands for, or ``obj`` itself when it is none: the
    annotations of a wrapper (also one inside a partial) are those of what it wraps.
    """
    target = _hint_target(func, unwrap)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # a name only imported under TYPE_CHECKING, a typo, ...: keep what we can
        raw = getattr(target, "__annotations__", None)
        namespace = dict(getattr(inspect.unwrap(target), "__globals__", {}))
        hints = {name: _eval_annotation(value, namespace)
                 for name, value in (raw.items() if isinstance(raw, dict) else ())}
    if isinstance(func, type):
        hints.pop("return", None)  # __init__ returns None; calling the class does not
    return hints


def _eval_annotation(value: Any, namespace: Dict[str, Any]) -> Any:
    """One annotation resolved by ``typing.get_type_hints`` (the tool author's own code, never plan
    text), or left as written when it cannot be."""
    if not isinstance(value, str):
        return value

    def holder() -> None:
        """Carries the one annotation to resolve."""

    holder.__annotations__ = {"value": value}
    try:
        return typing.get_type_hints(holder, globalns=namespace, include_extras=True)["value"]
    except Exception:  # an unknown name: keep the text
        return value


_NONE_TYPE = type(None)
_UNION_TYPES = (Union, getattr(types, "UnionType", Union))

def _type_name(annotation: Any) -> str:
    """A readable rendering: ``str``, ``list[str]``, ``int | None``, ``Literal['a', 'b']``."""
    if isinstance(annotation, str):
        return annotation
    if annotation is None or annotation is _NONE_TYPE:
        return "None"
    if annotation is Any:
        return "Any"
    if annotation is Ellipsis:
        return "..."
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNION_TYPES:
        return " | ".join(_type_name(arg) for arg in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if isinstance(annotation, list):  # the parameter list of Callable[[int], str]
        return f"[{', '.join(_type_name(arg) for arg in annotation)}]"
    if origin is not None:
        base = getattr(origin, "__name__", None) or _type_name(origin)
        return f"{base}[{', '.join(_type_name(arg) for arg in args)}]" if args else base
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


class _Text(str):
    """A string whose repr is itself, so ``str(Signature)`` prints it as an annotation, unquoted."""

    def __repr__(self) -> str:
        return str(self)


def render_signature(signature: inspect.Signature, hints: Dict[str, Any]) -> str:
    params = [param.replace(annotation=_Text(_type_name(hints.get(param.name, param.annotation))))
              if hints.get(param.name, param.annotation) is not param.empty else param
              for param in signature.parameters.values()]
    returns = hints.get("return", signature.return_annotation)
    returns = signature.empty if returns is signature.empty else _Text(_type_name(returns))
    return str(signature.replace(parameters=params, return_annotation=returns))


def check_keywords(signature: inspect.Signature, kwargs: Dict[str, Any]) -> None:
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
