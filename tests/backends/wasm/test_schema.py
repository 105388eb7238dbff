"""The JSON-Schema subset enforced on WASM tool arguments and results."""

from __future__ import annotations

from runtimed.backends.wasm.schema import schema_problems, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["fast", "slow"]},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 2},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "opt": {"type": ["string", "null"]},
    },
    "required": ["mode"],
    "additionalProperties": {"type": "boolean"},
}


def test_valid() -> None:
    assert validate(SCHEMA, {"mode": "fast", "tags": ["a"], "code": "ABC", "ratio": 0.5, "id": "x",
                             "opt": None, "flag": True}) == []


def test_each_problem_reported() -> None:
    errors = validate(SCHEMA, {"mode": "medium", "tags": ["", "b", "c"], "code": "abc", "ratio": 1,
                               "id": 1.5, "opt": 3, "extra": "no"})
    assert errors == [
        "arguments.mode: must be one of 'fast', 'slow'",
        "arguments.tags: allows at most 2 items",
        "arguments.tags[0]: shorter than 1 characters",
        "arguments.code: does not match the pattern '^[A-Z]{3}$'",
        "arguments.ratio: 1 must be less than 1",
        "arguments.id: matches none of the allowed forms (anyOf)",
        "arguments.opt: must be a string or null, got integer",
        "arguments.extra: must be a boolean, got string",
    ]
    assert validate(SCHEMA, {}) == ["arguments: missing required property 'mode'"]


def test_booleans_are_not_numbers_and_integral_floats_are_integers() -> None:
    assert validate({"type": "integer"}, True) == ["arguments: must be an integer, got boolean"]
    assert validate({"type": "integer"}, 3.0) == []
    assert validate({"enum": [1]}, True) == ["arguments: must be one of 1"]


def test_schema_problems() -> None:
    assert schema_problems({"type": "object", "properties": {"a": {"type": "int"}}}, "inputSchema") == [
        "inputSchema.properties.a.type must be one of null, boolean, integer, number, string, array, object (or a list of them)"
    ]
    assert schema_problems({"type": "object", "required": "a", "minimum": "1"}, "s") == [
        "s.required must be a list of property names", "s.minimum must be a number"]
    assert schema_problems([], "s") == ["s must be a JSON object"]
