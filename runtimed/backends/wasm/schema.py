"""A small JSON-Schema validator for WASM tool arguments and results.

Owns: checking a JSON value against the subset of JSON Schema that ABI v1
documents (``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``minItems``/``maxItems``,
``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum``, ``anyOf``/``allOf``/``oneOf``), with
one readable message per problem. Other keywords are advertised to clients but
not enforced. Must not: know about wasm, tools or MCP.
"""

from __future__ import annotations

import math
import re
from typing import Any

_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_MAX_ERRORS = 20


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    actual = _type_name(value)
    if name == "integer":
        return actual == "integer" or (actual == "number" and math.isfinite(value) and float(value).is_integer())
    if name == "number":
        return actual in ("integer", "number")
    return actual == name


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(schema: Any, value: Any, where: str = "arguments") -> list[str]:
    """Every problem found (at most 20), as ``"<where>: <what>"`` lines; [] = valid."""
    errors: list[str] = []
    _check(schema, value, where, errors)
    return errors[:_MAX_ERRORS]


def _check(schema: Any, value: Any, where: str, errors: list[str]) -> None:
    if len(errors) >= _MAX_ERRORS or schema is True or not isinstance(schema, dict):
        if schema is False:
            errors.append(f"{where}: no value is allowed here")
        return
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, n) for n in names):
            want = " or ".join(names)
            errors.append(f"{where}: must be {_article(want)}{want}, got {_type_name(value)}")
            return
    if "enum" in schema and isinstance(schema["enum"], list) and not any(_same(value, option) for option in schema["enum"]):
        errors.append(f"{where}: must be one of {', '.join(_short(o) for o in schema['enum'])}")
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{where}: must be {_short(schema['const'])}")
    if _type_name(value) in ("integer", "number"):
        _check_number(schema, value, where, errors)
    elif isinstance(value, str):
        _check_string(schema, value, where, errors)
    elif isinstance(value, list):
        _check_array(schema, value, where, errors)
    elif isinstance(value, dict):
        _check_object(schema, value, where, errors)
    for sub in schema.get("allOf") or []:
        _check(sub, value, where, errors)
    if isinstance(schema.get("anyOf"), list) and not any(not validate(sub, value, where) for sub in schema["anyOf"]):
        errors.append(f"{where}: matches none of the allowed forms (anyOf)")
    if isinstance(schema.get("oneOf"), list):
        matches = sum(1 for sub in schema["oneOf"] if not validate(sub, value, where))
        if matches != 1:
            errors.append(f"{where}: must match exactly one allowed form (oneOf), matches {matches}")


def _article(word: str) -> str:
    return "an " if word[:1] in "aeiou" else "a "


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b) and _type_name(a) in (_type_name(b), "integer", "number")


def _check_number(schema: dict[str, Any], value: float, where: str, errors: list[str]) -> None:
    if isinstance(schema.get("minimum"), (int, float)) and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if isinstance(schema.get("maximum"), (int, float)) and value > schema["maximum"]:
        errors.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)) and value <= schema["exclusiveMinimum"]:
        errors.append(f"{where}: {value} must be greater than {schema['exclusiveMinimum']}")
    if isinstance(schema.get("exclusiveMaximum"), (int, float)) and value >= schema["exclusiveMaximum"]:
        errors.append(f"{where}: {value} must be less than {schema['exclusiveMaximum']}")


def _check_string(schema: dict[str, Any], value: str, where: str, errors: list[str]) -> None:
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        errors.append(f"{where}: shorter than {schema['minLength']} characters")
    if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
        errors.append(f"{where}: longer than {schema['maxLength']} characters")
    if isinstance(schema.get("pattern"), str):
        try:
            if not re.search(schema["pattern"], value):
                errors.append(f"{where}: does not match the pattern {schema['pattern']!r}")
        except re.error:
            pass  # a pattern Python cannot read is advertised, not enforced


def _check_array(schema: dict[str, Any], value: list[Any], where: str, errors: list[str]) -> None:
    if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
        errors.append(f"{where}: needs at least {schema['minItems']} items")
    if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
        errors.append(f"{where}: allows at most {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, (dict, bool)):
        for i, item in enumerate(value):
            _check(items, item, f"{where}[{i}]", errors)


def _check_object(schema: dict[str, Any], value: dict[str, Any], where: str, errors: list[str]) -> None:
    props = schema.get("properties")
    if not isinstance(props, dict):
        props = {}
    for name in schema.get("required") or []:
        if isinstance(name, str) and name not in value:
            errors.append(f"{where}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            _check(props[key], item, f"{where}.{key}", errors)
        elif extra is False:
            errors.append(f"{where}: unknown property {key!r}")
        elif isinstance(extra, dict):
            _check(extra, item, f"{where}.{key}", errors)


def schema_problems(schema: Any, where: str) -> list[str]:
    """Structural problems of a declared schema (the keywords this module enforces)."""
    if not isinstance(schema, dict):
        return [f"{where} must be a JSON object"]
    problems: list[str] = []
    t = schema.get("type")
    if t is not None:
        names = [t] if isinstance(t, str) else t
        if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
            problems.append(f"{where}.type must be one of {', '.join(_TYPES)} (or a list of them)")
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            problems.append(f"{where}.properties must be an object")
        else:
            for key, sub in props.items():
                problems += schema_problems(sub, f"{where}.properties.{key}") if not isinstance(sub, bool) else []
    req = schema.get("required")
    if req is not None and (not isinstance(req, list) or not all(isinstance(r, str) for r in req)):
        problems.append(f"{where}.required must be a list of property names")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], (int, float))):
            problems.append(f"{where}.{key} must be a number")
    if "enum" in schema and not isinstance(schema["enum"], list):
        problems.append(f"{where}.enum must be a list")
    return problems
