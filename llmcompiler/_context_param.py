"""The context parameter: a tool parameter annotated ``RunContext``, filled in by the engine, never by a plan.

``find_context_parameter(signature, hints)`` names it (or gives None). It is recognised by its resolved
annotation (``RunContext``, ``Optional[RunContext]``, ``RunContext | None``, ``Annotated[RunContext,
...]``) and, when the annotation could not be resolved (a name imported only under ``TYPE_CHECKING``),
by its text (``"RunContext"``, ``"llmcompiler.context.RunContext"``, ``"Optional[RunContext]"`` ...).

The engine passes it by keyword, so a plan may give positionally only the parameters before it:
``plan_signature`` is the signature a plan sees (the context parameter left out, the parameters after
it keyword-only), and ``passing_problem`` says why a call's arguments would set it.

Pure: reads signatures and returns values; raises only ``ValueError`` for a tool defined wrongly
(``tools`` wraps it into a ToolDefinitionError naming the tool).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Dict, List, Optional

from .context import RunContext

__all__ = ["find_context_parameter", "plan_signature", "passing_problem"]

_NONE_TYPE = type(None)
_UNION_TYPES = (typing.Union, getattr(types, "UnionType", typing.Union))
# The text of an annotation that names RunContext, possibly optional: "RunContext", "ctx.RunContext",
# "Optional[RunContext]", "typing.Optional[RunContext]", "RunContext | None", "Union[None, RunContext]".
_NAME = r"(?:[A-Za-z_]\w*\.)*RunContext"
_OPTIONAL_TEXT = re.compile(rf"(?:typing\.)?Optional\[({_NAME})\]|(?:typing\.)?Union\[(.+)\]")


def _names_run_context(annotation: Any) -> bool:
    """Whether an annotation (resolved or text) is RunContext or an Optional of it."""
    if annotation is RunContext:
        return True
    if isinstance(annotation, str):
        return _text_names_run_context(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _names_run_context(args[0])
    if origin in _UNION_TYPES:
        others = [arg for arg in args if arg is not _NONE_TYPE]
        return len(others) == 1 and _names_run_context(others[0])
    return False


def _text_names_run_context(text: str) -> bool:
    text = "".join(text.split()).replace("'", "").replace('"', "")  # 'Optional["RunContext"]' too
    if re.fullmatch(_NAME, text):
        return True
    match = _OPTIONAL_TEXT.fullmatch(text)
    if match and match.group(1):
        return True
    parts = match.group(2).split(",") if match else text.split("|")
    others = [part for part in parts if part not in ("None", "NoneType")]
    return len(parts) == 2 and len(others) == 1 and re.fullmatch(_NAME, others[0]) is not None


def find_context_parameter(signature: inspect.Signature, hints: Dict[str, Any]) -> Optional[str]:
    """The name of the parameter annotated RunContext, or None.

    Raises ValueError when two parameters are, or when it cannot be passed by keyword (positional-only,
    ``*args`` or ``**kwargs``), saying what to change.
    """
    found: List[str] = []
    for param in signature.parameters.values():
        if not _names_run_context(hints.get(param.name, param.annotation)):
            continue
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL, param.VAR_KEYWORD):
            kind = {param.POSITIONAL_ONLY: "positional-only", param.VAR_POSITIONAL: "*args",
                    param.VAR_KEYWORD: "**kwargs"}[param.kind]
            raise ValueError(f"parameter {param.name!r} is annotated RunContext but is {kind}; the engine "
                             "passes the context by keyword: make it an ordinary or keyword-only parameter")
        found.append(param.name)
    if len(found) > 1:
        raise ValueError(f"parameters {', '.join(map(repr, found))} are all annotated RunContext; "
                         "a tool takes at most one")
    return found[0] if found else None


def plan_signature(signature: inspect.Signature, context: Optional[str]) -> inspect.Signature:
    """The signature a plan calls: without the context parameter, whose later parameters become
    keyword-only (the engine passes the context by keyword, so they cannot be given by position)."""
    if context is None:
        return signature
    params: List[inspect.Parameter] = []
    after = False
    for param in signature.parameters.values():
        if param.name == context:
            after = param.kind is param.POSITIONAL_OR_KEYWORD
            continue
        if after and param.kind is param.VAR_POSITIONAL:
            continue  # nothing can reach it: a positional argument would fill the context first
        if after and param.kind is param.POSITIONAL_OR_KEYWORD:
            param = param.replace(kind=param.KEYWORD_ONLY)
        params.append(param)
    return signature.replace(parameters=params)


def passing_problem(signature: inspect.Signature, context: str, args: tuple,
                    kwargs: Dict[str, Any]) -> Optional[str]:
    """Why arguments ``args``/``kwargs`` would set the context parameter, or None when they do not."""
    rule = f"takes {context!r} from the run (it is annotated RunContext): a plan cannot pass it"
    if context in kwargs:
        return rule
    before = 0  # the positional parameters ahead of the context parameter
    for param in signature.parameters.values():
        if param.name == context:
            break
        before += param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)
    if signature.parameters[context].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and len(args) > before:
        return (f"{rule}, and positional argument {before + 1} would be it; "
                "give the arguments after it by keyword")
    return None
