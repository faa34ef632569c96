"""JSON schemas of annotations, in the subset chat-completion APIs accept for function parameters.

``json_schema(annotation)`` maps a Python annotation to a schema; ``parameters_schema`` builds the
``parameters`` object of a function-calling tool from a signature. The schemas use only ``type``
(object, array, string, number, integer, boolean, null), ``properties`` / ``required`` /
``additionalProperties``, ``items`` (always present on an array), ``minItems`` / ``maxItems``,
``enum`` (JSON values), ``anyOf``, ``description`` and ``default``; ``schema_check`` states and checks
those rules. ``{}`` (any JSON value) stands for what JSON cannot say (``Any``, an unannotated
parameter, a class it does not know).

How annotations map:

==============================================  ===============================================
``str``, ``bytes`` / ``int`` / ``float`` / ``bool``  string / integer / number / boolean
``None``                                        null
``list``, ``list[X]``, ``Sequence[X]``, ``set[X]``  array, ``items`` X (``{}`` when bare)
``tuple[X, ...]`` / ``tuple[A, B]``, NamedTuple   array of X / array of exactly 2, items A or B
``dict``, ``dict[str, X]``, ``Mapping[str, X]``   object, ``additionalProperties`` X
``Optional[X]``, ``X | None``, ``Union[A, B]``    ``anyOf``
``Literal["a", "b"]``, an ``Enum`` subclass       ``enum`` of the values (an Enum: its values when
                                                all are JSON, else its member names)
a dataclass, a ``TypedDict``                     object: ``properties``, ``required``, no others
``Annotated[X, "text"]``                        X, with the text as ``description``
==============================================  ===============================================

Pure: reads annotations and returns dicts; never raises for any annotation. Recursive classes (a
dataclass holding itself) become ``{"type": "object"}`` at the point they recur.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import types
import typing
from collections import abc
from typing import Any, Dict, FrozenSet, List, Tuple, Union

__all__ = ["json_schema", "parameters_schema"]

_NONE_TYPE = type(None)
_UNION_TYPES = (Union, getattr(types, "UnionType", Union))
_PRIMITIVE_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", bytes: "string"}
_JSON_SCALARS = (str, int, float, bool, _NONE_TYPE)
_NAMED_TYPES = {"str": {"type": "string"}, "bytes": {"type": "string"}, "int": {"type": "integer"},
                "float": {"type": "number"}, "bool": {"type": "boolean"}, "None": {"type": "null"},
                "list": {"type": "array", "items": {}}, "tuple": {"type": "array", "items": {}},
                "set": {"type": "array", "items": {}}, "dict": {"type": "object"}}

# Qualifiers that say nothing about the value's JSON form: the schema is that of what they wrap.
_QUALIFIERS = tuple(filter(None, (getattr(typing, name, None)
                                  for name in ("Required", "NotRequired", "ReadOnly", "Final", "ClassVar"))))

_Seen = FrozenSet[type]  # the classes being expanded above this point (to stop at recursion)


def json_schema(annotation: Any) -> Dict[str, Any]:
    """The JSON schema of one annotation (see the module docstring); ``{}`` when JSON cannot say it."""
    try:
        return _schema(annotation, frozenset())
    except Exception:  # an annotation object whose class checks misbehave: say "anything"
        return {}


def _schema(annotation: Any, seen: _Seen) -> Dict[str, Any]:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation is None or annotation is _NONE_TYPE:
        return {"type": "null"}
    if isinstance(annotation, str):  # an annotation that could not be resolved: its text
        return dict(_NAMED_TYPES.get(annotation.strip(), {}))
    if isinstance(annotation, typing.TypeVar):
        bound = annotation.__bound__
        return _schema(bound, seen) if bound is not None else {}
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _schema(supertype, seen)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in _UNION_TYPES:
        return _union_schema(args, seen)
    if origin is typing.Literal:
        return _enum_schema([_literal_value(arg) for arg in args])
    if origin in _QUALIFIERS and args:
        return _schema(args[0], seen)
    if origin is typing.Annotated:
        schema = _schema(args[0], seen)
        texts = [meta for meta in args[1:] if isinstance(meta, str)]
        return {**schema, "description": " ".join(texts)} if texts else schema
    kind = origin if isinstance(origin, type) else annotation
    if not isinstance(kind, type):
        return {}
    if origin is tuple and not args and annotation is not typing.Tuple:
        args = ((),)  # Tuple[()] / tuple[()]: get_args gives () as for a bare tuple
    return _class_schema(kind, args, seen)


def _union_schema(args: Tuple[Any, ...], seen: _Seen) -> Dict[str, Any]:
    """``anyOf`` the members' schemas, each once, ``null`` last; one that is "anything" makes the union
    anything."""
    members: List[Dict[str, Any]] = []
    keys = set()
    for arg in [arg for arg in args if arg is not _NONE_TYPE] + [_NONE_TYPE] * (_NONE_TYPE in args):
        schema = _schema(arg, seen)
        if not schema:
            return {}
        key = json.dumps(schema, sort_keys=True)
        if key not in keys:
            keys.add(key)
            members.append(schema)
    if {"type": "null"} in members and any(None in member.get("enum", ()) for member in members):
        members.remove({"type": "null"})  # Optional[Literal[..., None]]: 3.10 adds Optional to a None default
    return members[0] if len(members) == 1 else {"anyOf": members}


def _literal_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _enum_schema(values: List[Any]) -> Dict[str, Any]:
    """``enum`` of JSON scalars (with their ``type`` when they share one); ``{}`` when a value is not
    one (JSON cannot name it)."""
    if not values or any(type(value) not in _JSON_SCALARS for value in values):
        return {}
    unique: List[Any] = []
    for value in values:
        if not any(type(value) is type(other) and value == other for other in unique):
            unique.append(value)
    schema: Dict[str, Any] = {"enum": unique}
    kinds = {"null" if value is None else _PRIMITIVE_TYPES[type(value)] for value in unique}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    return schema


def _class_schema(kind: type, args: Tuple[Any, ...], seen: _Seen) -> Dict[str, Any]:
    if issubclass(kind, enum.Enum):
        values = [member.value for member in kind]
        if all(type(value) in _JSON_SCALARS for value in values):
            return _enum_schema(values)
        return _enum_schema([member.name for member in kind])
    for base, name in _PRIMITIVE_TYPES.items():  # bool before int: bool subclasses int
        if issubclass(kind, base):
            return {"type": name}
    if dataclasses.is_dataclass(kind) or typing.is_typeddict(kind):
        return _record_schema(kind, seen)
    if issubclass(kind, abc.Mapping):
        schema: Dict[str, Any] = {"type": "object"}
        value = _schema(args[1], seen) if len(args) == 2 else {}
        if value:
            schema["additionalProperties"] = value
        return schema
    if issubclass(kind, tuple):
        return _tuple_schema(kind, args, seen)
    if issubclass(kind, (abc.Collection, abc.Iterable)) and not issubclass(kind, abc.Iterator):
        return {"type": "array", "items": _schema(args[0], seen) if args else {}}
    return {}


def _tuple_schema(kind: type, args: Tuple[Any, ...], seen: _Seen) -> Dict[str, Any]:
    """An array; of a fixed length for ``tuple[A, B]`` and a NamedTuple (its items any of the element
    schemas: the subset has no per-position items)."""
    if not args and hasattr(kind, "_fields"):  # a NamedTuple: its fields by position
        hints = _record_hints(kind)
        args = tuple(hints.get(field, Any) for field in kind._fields)  # type: ignore[attr-defined]
        if not args:
            args = ((),)
    if not args:
        return {"type": "array", "items": {}}
    if len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _schema(args[0], seen)}
    if args == ((),):  # tuple[()]: the empty tuple
        return {"type": "array", "items": {}, "maxItems": 0}
    return {"type": "array", "items": _union_schema(args, seen), "minItems": len(args),
            "maxItems": len(args)}


def _record_hints(kind: type) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(kind, include_extras=True)
    except Exception:  # a name that cannot be resolved: the annotations as written
        return dict(getattr(kind, "__annotations__", {}))


def _record_schema(kind: type, seen: _Seen) -> Dict[str, Any]:
    """A dataclass's init fields, or a TypedDict's keys, as an object's properties."""
    if kind in seen:
        return {"type": "object"}
    seen = seen | {kind}
    hints = _record_hints(kind)
    if dataclasses.is_dataclass(kind):
        fields = [field for field in dataclasses.fields(kind) if field.init]
        names = [field.name for field in fields]
        required = [field.name for field in fields if field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    else:
        names = list(hints)
        required = [name for name in names if name in getattr(kind, "__required_keys__", names)]
    properties = {name: _schema(hints.get(name, Any), seen) for name in names}
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _json_default(value: Any) -> Tuple[bool, Any]:
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return False, None


def parameters_schema(signature: inspect.Signature, hints: Dict[str, Any],
                      docs: Dict[str, str]) -> Dict[str, Any]:
    """The JSON schema of the keyword form of a call: an object with one property per parameter
    (``description`` from ``docs``, ``default`` when JSON can say it). ``*args`` is left out;
    ``**kwargs`` turns ``additionalProperties`` on."""
    properties: Dict[str, Any] = {}
    required: List[str] = []
    extra = False
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.VAR_KEYWORD:
            extra = True
            continue
        prop = dict(json_schema(hints.get(param.name, param.annotation)))
        if param.name in docs:
            prop["description"] = docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            ok, value = _json_default(param.default)
            if ok:
                prop["default"] = value
        properties[param.name] = prop
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": extra}
