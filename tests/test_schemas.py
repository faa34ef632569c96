"""Tests for schemas.py (annotations -> JSON schemas) and schema_check.py (the subset APIs accept)."""

import os
import sys
from typing import Annotated, Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:  # the fixture modules are imported by name
    sys.path.insert(0, TESTS_DIR)

from llmcompiler.examples import example_registry  # noqa: E402
from llmcompiler.schema_check import schema_problems, tool_schema_problems  # noqa: E402
from llmcompiler.schemas import json_schema  # noqa: E402
from llmcompiler.tools import Tool, ToolRegistry  # noqa: E402

import tools_fixture_schemas as kinds  # noqa: E402

ANY_ARRAY = {"type": "array", "items": {}}


def properties_of(func) -> Dict[str, Any]:
    return Tool(func).schema()["function"]["parameters"]["properties"]


# -- annotations to schemas ---------------------------------------------------------------------------


def test_containers_always_give_items():
    assert properties_of(kinds.containers) == {
        "a": ANY_ARRAY, "b": ANY_ARRAY,
        "c": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
              "minItems": 2, "maxItems": 2},
        "d": {"type": "array", "items": {"type": "integer"}},
        "e": {"type": "array", "items": {"type": "string"}},
        "f": {"type": "object", "additionalProperties": {"type": "integer"}},
        "g": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "h": {"type": "array", "items": {"type": "string"}},
        "i": {"type": "array", "items": {"type": "integer"}},
        "j": {"type": "array", "items": {"type": "array", "items": {"type": "integer"},
                                         "minItems": 2, "maxItems": 2}},
        "k": {"type": "array", "items": {"type": "string"}},
        "m": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
        "n": {"type": "object"},
        "o": {"type": "array", "items": {}, "maxItems": 0},
        "p": ANY_ARRAY,
    }


def test_enums_and_literals():
    assert properties_of(kinds.choices) == {
        "color": {"enum": ["red", "green"], "type": "string"},
        "level": {"enum": [1, 2], "type": "integer"},
        "shape": {"enum": ["SQUARE", "LINE"], "type": "string"},
        "mode": {"enum": ["fast", "slow"], "type": "string", "default": "fast"},
        "code": {"enum": [1, 2, 3], "type": "integer", "default": 1},
        "mixed": {"enum": ["a", 1, None], "default": None},
        "by_enum": {"enum": ["red"], "type": "string", "default": "red"},
    }


def test_unions_and_new_types():
    int_or_str = [{"type": "integer"}, {"type": "string"}]
    assert properties_of(kinds.unions) == {
        "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "b": {"anyOf": int_or_str},
        "c": {"anyOf": int_or_str + [{"type": "null"}]},
        "d": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "default": None},
        "e": {"anyOf": [{"type": "integer"}, {"type": "number"}], "default": 1},
        "f": {"default": None},
        "user": {"type": "integer", "default": 1},
    }


def test_records_are_objects_with_properties_and_required():
    point = {"type": "object", "properties": {
        "x": {"type": "number"}, "y": {"type": "number"},
        "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["x"], "additionalProperties": False}
    movie = {"type": "object", "properties": {
        "title": {"type": "string"}, "year": {"type": "integer"},
        "rating": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
        "required": ["title", "year", "rating"], "additionalProperties": False}
    found = properties_of(kinds.records)
    assert found["point"] == point
    assert found["node"] == {"type": "object", "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"type": "object"}}},  # the recursion stops here
        "required": ["name"], "additionalProperties": False}
    assert found["movie"] == movie
    assert found["partial"] == {"type": "object", "properties": {
        "title": {"type": "string"}, "cast": {"type": "array", "items": movie}},
        "required": [], "additionalProperties": False}
    assert found["pair"] == {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                             "minItems": 2, "maxItems": 2}
    assert found["points"] == {"type": "array", "items": point}
    assert found["by_name"] == {"type": "object", "additionalProperties": movie}
    assert found["maybe"] == {"anyOf": [point, {"type": "null"}], "default": None}


def test_annotated_text_becomes_the_description():
    schema = Tool(kinds.described).schema()["function"]["parameters"]
    assert schema["properties"] == {
        "query": {"type": "string", "description": "What to look for."},
        "limit": {"type": "integer", "description": "How many.", "default": 5},
        "raw": {"type": "string"},  # b"" is no JSON default
    }
    assert schema["additionalProperties"] is True


@pytest.mark.parametrize("annotation, expected", [
    (list, ANY_ARRAY), (List[Any], ANY_ARRAY), (Tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
    (Optional[Tuple[int, int]], {"anyOf": [{"type": "array", "items": {"type": "integer"}, "minItems": 2,
                                            "maxItems": 2}, {"type": "null"}]}),
    ("list", ANY_ARRAY), ("tuple", ANY_ARRAY), ("Decimal", {}), (object, {}), (Any, {}),
])
def test_single_annotations(annotation, expected):
    assert json_schema(annotation) == expected


# -- every schema the registry produces keeps the rules ------------------------------------------------


def every_registry():
    import cli_fixture_tools
    import test_tool_kinds
    import test_tools
    import tools_fixture_annotated
    import tools_fixture_async

    yield "examples", example_registry()
    yield "schemas", ToolRegistry([kinds.containers, kinds.choices, kinds.unions, kinds.records,
                                   kinds.described])
    yield "annotated", ToolRegistry([tools_fixture_annotated.search, tools_fixture_annotated.price])
    yield "cli", ToolRegistry.from_module("cli_fixture_tools")
    yield "mod", ToolRegistry.from_module("tools_fixture_mod")
    yield "async", ToolRegistry([tools_fixture_async.fetch, tools_fixture_async.summarise,
                                 tools_fixture_async.optional_context, tools_fixture_async.union_context])
    yield "test_tools", ToolRegistry([test_tools.search, test_tools.math, test_tools.only_positional,
                                      test_tools.top_level, test_tools.Adder])
    yield "context", ToolRegistry([test_tool_kinds.with_context, test_tool_kinds.optional_ctx,
                                   test_tool_kinds.annotated_ctx, test_tool_kinds.keyword_ctx])
    assert cli_fixture_tools  # imported for from_module above


@pytest.mark.parametrize("label, registry", list(every_registry()), ids=lambda value: str(value)[:20])
def test_every_schema_keeps_the_subset(label, registry):
    schemas = registry.schemas()
    assert len(schemas) == len(registry) > 0
    for schema in schemas:
        assert tool_schema_problems(schema) == [], schema["function"]["name"]


# -- the checker finds what APIs refuse --------------------------------------------------------------------


@pytest.mark.parametrize("schema, expected", [
    ({"type": "array"}, "$: an array schema needs 'items' (APIs refuse one without)"),
    ({"type": "object", "properties": {"tags": {"type": "array"}}},
     "$.properties.tags: an array schema needs 'items' (APIs refuse one without)"),
    ({"type": "array", "items": {"type": "array"}}, "$.items: an array schema needs 'items'"),
    ({"type": "list"}, "$: type must be one of array, boolean, integer, null, number, object, string"),
    ({"type": ["string", "null"]}, "$: type must be one of array, boolean, integer, null, number, object, "
                                   "string (a single name; write several as anyOf), got ['string', 'null']"),
    ({"type": "string", "format": "date"}, "$: keyword 'format' is not in the subset"),
    ({"type": "array", "prefixItems": [{}], "items": {}}, "$: keyword 'prefixItems' is not in the subset"),
    ({"$ref": "#/defs/x"}, "$: keyword '$ref' is not in the subset"),
    ({"enum": [{"a": 1}]}, "$.enum: {'a': 1} is not a JSON string, number, boolean or null"),
    ({"enum": []}, "$.enum: must be a non-empty list of values"),
    ({"type": "string", "enum": ["a", 1]}, "$.enum: 1 is not of the schema's type 'string'"),
    ({"enum": ["a", "a"]}, "$.enum: 'a' is listed twice"),
    ({"type": "object", "properties": {}, "required": ["q"]}, "$.required: 'q' is not one of the properties"),
    ({"type": "string", "properties": {}}, "$: 'properties' belongs to an object schema"),
    ({"type": "string", "items": {}}, "$: 'items' belongs to an array schema"),
    ({"type": "number", "default": float("nan")}, "$.default: nan is not a JSON value"),
    ({"type": "array", "items": {}, "minItems": 3, "maxItems": 2}, "$: minItems 3 is above maxItems 2"),
    ({"type": "array", "items": {}, "minItems": -1}, "$.minItems: must be an int >= 0, got -1"),
    ({"anyOf": []}, "$.anyOf: must be a non-empty list of schemas"),
    ({"anyOf": [{"type": "array"}]}, "$.anyOf[0]: an array schema needs 'items'"),
    ({"type": "object", "additionalProperties": {"type": "tuple"}}, "$.additionalProperties: type must be"),
    ({"description": 3}, "$.description: must be a string, got int"),
    ("string", "$: a schema must be an object, got str"),
])
def test_schema_problems_name_the_place_and_the_rule(schema, expected):
    problems = schema_problems(schema)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_several_problems_are_all_reported():
    problems = schema_problems({"type": "object", "properties": {
        "a": {"type": "array"}, "b": {"type": "set"}, "c": {"enum": [[1]]}}, "required": ["d"]})
    assert [problem.split(":")[0] for problem in problems] == [
        "$.properties.a", "$.properties.b", "$.properties.c.enum", "$.required"]


def test_schemas_the_subset_allows():
    for schema in ({}, {"type": "null"}, {"type": "number", "enum": [1, 2.5]}, {"enum": ["a", 1, None, True]},
                   {"type": "object", "additionalProperties": True},
                   {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "description": "d"}):
        assert schema_problems(schema) == [], schema


@pytest.mark.parametrize("tool_schema, expected", [
    ({"type": "function", "function": {"name": "a b", "parameters": {"type": "object"}}},
     ["$.function.name: must be 1 to 64 letters, digits, '_' or '-', got 'a b'"]),
    ({"type": "function", "function": {"name": "f", "parameters": {"type": "array", "items": {}}}},
     ["$.function.parameters: must be an object schema ({'type': 'object', ...})"]),
    ({"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"type": "array"}}}}}, ["$.function.parameters.properties.x: an array schema needs 'items' "
                                      "(APIs refuse one without)"]),
    ({"function": {}}, ["$: a tool schema is {'type': 'function', 'function': {...}}"]),
])
def test_tool_schema_problems(tool_schema, expected):
    assert tool_schema_problems(tool_schema) == expected


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.NotRequired is new in Python 3.11")
def test_not_required_keys_of_a_typed_dict():
    assert properties_of(kinds.reviewed)["review"] == {
        "type": "object", "properties": {"text": {"type": "string"}, "stars": {"type": "integer"}},
        "required": ["text"], "additionalProperties": False}


# -- random nested annotations: every schema keeps the subset ------------------------------------------


def random_annotation(rng, depth):
    """A random annotation built from every kind schemas() maps, nested up to ``depth``."""
    leaves = [int, str, float, bool, bytes, type(None), Any, list, tuple, dict, kinds.Color, kinds.Level,
              kinds.Shape, kinds.Point, kinds.Node, kinds.Movie, kinds.PartialMovie, kinds.Pair,
              kinds.UserId, object, "Decimal", "list"]
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(leaves)
    inner = [random_annotation(rng, depth - 1) for _ in range(rng.randint(1, 3))]
    shape = rng.randrange(9)
    if shape == 0:
        return List[inner[0]]
    if shape == 1:
        return Tuple[tuple(inner)]
    if shape == 2:
        return Tuple[inner[0], ...]
    if shape == 3:
        return Dict[str, inner[0]]
    if shape == 4:
        return Optional[inner[0]]
    if shape == 5:
        return Union[tuple(inner)] if len(inner) > 1 else Union[inner[0], None]
    if shape == 6:
        return Literal[tuple(rng.sample(["a", "b", 1, 2, True, None, 2.5], rng.randint(1, 4)))]
    if shape == 7:
        return Annotated[inner[0], "text"]
    return Sequence[inner[0]]


def test_random_nested_annotations_give_schemas_of_the_subset():
    import random

    rng = random.Random(20240601)
    for _ in range(2000):
        annotation = random_annotation(rng, 4)
        schema = json_schema(annotation)
        assert schema_problems(schema) == [], annotation
