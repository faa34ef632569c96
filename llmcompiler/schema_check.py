"""The JSON Schema subset chat-completion APIs accept for function parameters, as a checker.

``schema_problems(schema)`` lists what breaks the rules below (an empty list: none);
``tool_schema_problems(tool_schema)`` checks a whole ``{"type": "function", "function": {...}}``
entry. Every schema ``ToolRegistry.schemas()`` gives keeps these rules (the tests check each one), so
a registry's schemas can be sent as the ``tools`` of a request as they are.

The rules:

* A schema is an object. Its keywords are among ``type``, ``description``, ``title``, ``default``,
  ``enum``, ``anyOf``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``
  and ``maxItems``; anything else (``$ref``, ``prefixItems``, ``oneOf``, ``format`` ...) is refused.
* ``type`` is one of object, array, string, number, integer, boolean, null (a single name: type lists
  are written as ``anyOf``). A schema without ``type`` or ``anyOf`` accepts any JSON value.
* An array has ``items``, itself a schema; ``minItems`` / ``maxItems`` are ints >= 0, min <= max.
* An object's ``properties`` map names to schemas, ``required`` lists names among them, once each,
  and ``additionalProperties`` is a bool or a schema. These keywords appear only on objects, ``items``
  and its bounds only on arrays.
* ``enum`` is a non-empty list of distinct JSON scalars (string, number, boolean, null), of the
  schema's ``type`` when it has one; ``anyOf`` a non-empty list of schemas.
* ``default`` is a JSON value; ``description`` and ``title`` are strings.
* A function's ``parameters`` is an object schema, its name 1 to 64 of ``[A-Za-z0-9_-]``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List

__all__ = ["schema_problems", "tool_schema_problems", "JSON_TYPES", "KEYWORDS"]

JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
KEYWORDS = frozenset({"type", "description", "title", "default", "enum", "anyOf", "properties",
                      "required", "additionalProperties", "items", "minItems", "maxItems"})
_OBJECT_ONLY = ("properties", "required", "additionalProperties")
_ARRAY_ONLY = ("items", "minItems", "maxItems")
_SCALAR_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def schema_problems(schema: Any, where: str = "$") -> List[str]:
    """Every way ``schema`` breaks the subset's rules, each as ``"<where>: <what is wrong>"`` (``where``
    is a path such as ``$.properties.tags.items``); an empty list when it keeps them all."""
    if not isinstance(schema, dict):
        return [f"{where}: a schema must be an object, got {type(schema).__name__}"]
    problems = [f"{where}: keyword {key!r} is not in the subset chat-completion APIs accept"
                for key in schema if key not in KEYWORDS]
    kind = schema.get("type")
    if "type" in schema and (not isinstance(kind, str) or kind not in JSON_TYPES):
        problems.append(f"{where}: type must be one of {', '.join(sorted(JSON_TYPES))} (a single name; "
                        f"write several as anyOf), got {kind!r}")
    for key in _OBJECT_ONLY:
        if key in schema and kind != "object":
            problems.append(f"{where}: {key!r} belongs to an object schema, and this one's type is {kind!r}")
    for key in _ARRAY_ONLY:
        if key in schema and kind != "array":
            problems.append(f"{where}: {key!r} belongs to an array schema, and this one's type is {kind!r}")
    if kind == "array":
        problems += _array_problems(schema, where)
    if kind == "object":
        problems += _object_problems(schema, where)
    if "enum" in schema:
        problems += _enum_problems(schema["enum"], kind, where)
    if "anyOf" in schema:
        options = schema["anyOf"]
        if not isinstance(options, list) or not options:
            problems.append(f"{where}.anyOf: must be a non-empty list of schemas")
        else:
            for number, option in enumerate(options):
                problems += schema_problems(option, f"{where}.anyOf[{number}]")
    for key in ("description", "title"):
        if key in schema and not isinstance(schema[key], str):
            problems.append(f"{where}.{key}: must be a string, got {type(schema[key]).__name__}")
    if "default" in schema and not _is_json(schema["default"]):
        problems.append(f"{where}.default: {schema['default']!r} is not a JSON value")
    return problems


def _array_problems(schema: Dict[str, Any], where: str) -> List[str]:
    if "items" not in schema:
        problems = [f"{where}: an array schema needs 'items' (APIs refuse one without)"]
    else:
        problems = schema_problems(schema["items"], f"{where}.items")
    bounds = {key: schema[key] for key in ("minItems", "maxItems") if key in schema}
    for key, value in bounds.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"{where}.{key}: must be an int >= 0, got {value!r}")
    if len(bounds) == 2 and not problems and bounds["minItems"] > bounds["maxItems"]:
        problems.append(f"{where}: minItems {bounds['minItems']} is above maxItems {bounds['maxItems']}")
    return problems


def _object_problems(schema: Dict[str, Any], where: str) -> List[str]:
    problems: List[str] = []
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        problems.append(f"{where}.properties: must map names to schemas, got {type(properties).__name__}")
        properties = {}
    for name, prop in properties.items():
        problems += schema_problems(prop, f"{where}.properties.{name}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        problems.append(f"{where}.required: must be a list of property names, got {required!r}")
    else:
        for name in required:
            if name not in properties:
                problems.append(f"{where}.required: {name!r} is not one of the properties")
        if len(set(required)) != len(required):
            problems.append(f"{where}.required: names a property twice")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        problems += schema_problems(extra, f"{where}.additionalProperties")
    return problems


def _enum_problems(values: Any, kind: Any, where: str) -> List[str]:
    if not isinstance(values, list) or not values:
        return [f"{where}.enum: must be a non-empty list of values"]
    problems = []
    seen: List[Any] = []
    for value in values:
        scalar = _SCALAR_TYPES.get(type(value))
        if scalar is None:
            problems.append(f"{where}.enum: {value!r} is not a JSON string, number, boolean or null")
            continue
        fits = scalar == kind or (kind == "number" and scalar == "integer")
        if kind is not None and not fits:
            problems.append(f"{where}.enum: {value!r} is not of the schema's type {kind!r}")
        if any(type(value) is type(other) and value == other for other in seen):
            problems.append(f"{where}.enum: {value!r} is listed twice")
        seen.append(value)
    return problems


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def tool_schema_problems(tool_schema: Any) -> List[str]:
    """Every problem of one function-calling entry ``{"type": "function", "function": {"name",
    "description", "parameters"}}``, as ``schema_problems`` words them; an empty list when none."""
    if not isinstance(tool_schema, dict) or tool_schema.get("type") != "function":
        return ["$: a tool schema is {'type': 'function', 'function': {...}}"]
    function = tool_schema.get("function")
    if not isinstance(function, dict):
        return ["$.function: must be an object with name, description and parameters"]
    problems = []
    name = function.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
        problems.append(f"$.function.name: must be 1 to 64 letters, digits, '_' or '-', got {name!r}")
    if not isinstance(function.get("description", ""), str):
        problems.append("$.function.description: must be a string")
    parameters = function.get("parameters")
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        problems.append("$.function.parameters: must be an object schema ({'type': 'object', ...})")
    else:
        problems += schema_problems(parameters, "$.function.parameters")
    return problems
