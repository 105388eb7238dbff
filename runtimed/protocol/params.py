"""``Mcp-Param-*`` headers (SEP-2243, 2026-07-28 streamable HTTP): tool arguments
mirrored into HTTP headers because the tool's input schema marks them with
``x-mcp-header``.

Owns, for both ends of a hop: the header-value codec (printable ASCII as-is,
anything else as ``=?base64?<utf-8 base64>?=``), the schema rules an
``x-mcp-header`` annotation must follow (``invalid_annotation``), building the
headers a ``tools/call`` must carry from a schema and its arguments
(``param_headers``, the client side) and checking the headers a request came
with against its body (``check_param_headers``, the server side). Must not:
read or write HTTP messages, or decide in which era the rules apply (the
gateway's transport and the backends' transports do).

Rules (spec: basic/transports/streamable-http, "Custom Headers from Tool
Parameters"): the annotation is a non-empty RFC 9110 token, on a property of
type ``string``, ``integer`` or ``boolean`` reachable from the schema root
through ``properties`` keys only, case-insensitively unique in the schema.
Values: strings as they are, integers in decimal, booleans ``true``/``false``;
a ``null`` or absent argument has no header.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any

from runtimed.protocol.headers import PARAM_PREFIX

ANNOTATION = "x-mcp-header"
PARAM_PREFIX_LC = PARAM_PREFIX.lower()
SENTINEL_START, SENTINEL_END = "=?base64?", "?="
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PLAIN = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")  # visible ASCII, inner spaces only
_TYPES = frozenset({"string", "integer", "boolean"})
MAX_SAFE_INTEGER = 2**53 - 1
_DECIMAL = re.compile(r"(-?[0-9]+)(?:\.0+)?")
# Schema keywords whose values are schemas: an annotation under any of them is not statically reachable.
_SUB_ONE = ("items", "contains", "additionalProperties", "propertyNames", "unevaluatedItems",
            "unevaluatedProperties", "not", "if", "then", "else", "contentSchema")
_SUB_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUB_MAP = ("patternProperties", "dependentSchemas", "$defs", "definitions")


def encode_value(value: str) -> str:
    """A header value: plain when it is visible ASCII without leading/trailing whitespace and not
    sentinel-shaped, else the base64 sentinel form."""
    if _PLAIN.fullmatch(value) and not (value.startswith(SENTINEL_START) and value.endswith(SENTINEL_END)):
        return value
    return SENTINEL_START + base64.b64encode(value.encode("utf-8")).decode("ascii") + SENTINEL_END


def decode_value(value: str) -> str | None:
    """The value a header carries (sentinel decoded), or None when it is malformed: invalid
    characters, bad base64, or not UTF-8."""
    if value.startswith(SENTINEL_START) and value.endswith(SENTINEL_END) and len(value) >= 11:
        payload = value[len(SENTINEL_START):-len(SENTINEL_END)]
        try:
            raw = base64.b64decode(payload, validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    if value and not _PLAIN.fullmatch(value):
        return None
    return value


def _positions(schema: Any) -> Iterator[tuple[tuple[str, ...] | None, dict[str, Any]]]:
    """Every sub-schema with its chain of ``properties`` keys from the root (None once off that chain)."""
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        props = node.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                stack.append((None if path is None else (*path, str(key)), sub))
        for kw in _SUB_ONE:
            if kw in node:
                stack.append((None, node[kw]))
        for kw in _SUB_LIST:
            if isinstance(node.get(kw), list):
                stack.extend((None, s) for s in node[kw])
        for kw in _SUB_MAP:
            if isinstance(node.get(kw), dict):
                stack.extend((None, s) for s in node[kw].values())


def invalid_annotation(schema: Any) -> str | None:
    """Why the ``x-mcp-header`` annotations of ``schema`` break the spec's rules, or None when they
    follow them (or there are none). A client must not list a tool with a broken annotation."""
    seen: dict[str, str] = {}
    for path, node in _positions(schema):
        if ANNOTATION not in node:
            continue
        if not path:
            return f"{ANNOTATION} is only allowed on a property reached through 'properties' keys from the root"
        where = ".".join(path)
        name = node[ANNOTATION]
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            return f"property {where!r}: {ANNOTATION} must be a non-empty HTTP token, not {name!r}"
        if node.get("type") not in _TYPES:
            return f"property {where!r}: {ANNOTATION} is only allowed on string, integer or boolean properties"
        if name.lower() in seen:
            return f"property {where!r}: {ANNOTATION} {name!r} repeats the one of property {seen[name.lower()]!r}"
        seen[name.lower()] = where
    return None


Annotation = tuple[tuple[str, ...], str, Any]  # property path, header name, declared type
# id(schema) -> (the schema, kept alive so its id is not reused; its annotations). Schemas come from
# cached interfaces and are read on every call: walk each once.
_MEMO: dict[int, tuple[Any, list[Annotation]]] = {}
_MEMO_MAX = 8192


def annotated(schema: Any) -> list[Annotation]:
    """(property path, header name, declared type) of each annotation; [] for a schema without any
    or with a broken one. Do not mutate a schema after passing it here (the answer is memoized)."""
    if not isinstance(schema, dict):
        return []
    hit = _MEMO.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    out: list[Annotation] = []
    if invalid_annotation(schema) is None:
        for path, node in _positions(schema):
            name = node.get(ANNOTATION)
            if path and isinstance(name, str):
                out.append((path, PARAM_PREFIX + name, node.get("type")))
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[id(schema)] = (schema, out)
    return out


def _value_at(arguments: Any, path: tuple[str, ...]) -> Any:
    node = arguments
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _render(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return str(int(value))
    if isinstance(value, str):
        return value
    return None


def param_headers(schema: Any, arguments: Any) -> dict[str, str]:
    """The ``Mcp-Param-<Name>`` headers a ``tools/call`` with ``arguments`` must carry (client side).
    An argument that is absent, ``null`` or not a scalar gets no header."""
    out: dict[str, str] = {}
    if not isinstance(arguments, Mapping):
        return out
    for path, header, _ in annotated(schema):
        rendered = _render(_value_at(arguments, path))
        if rendered is not None:
            out[header] = encode_value(rendered)
    return out


def _matches(declared: Any, value: Any, rendered: str, got: str) -> bool:
    if declared == "integer" and not isinstance(value, bool) and isinstance(value, int | float):
        m = _DECIMAL.fullmatch(got)  # compared as numbers, exactly: "42.0" matches 42
        return m is not None and float(value).is_integer() and int(m.group(1)) == int(value)
    return got == rendered


def check_param_headers(schema: Any, arguments: Any, headers: list[tuple[str, str]]) -> str | None:
    """Server side: why the request's ``Mcp-Param-*`` headers (``headers``: every header of the
    request as (lower-case name, value) pairs) disagree with its ``arguments``, or None when they
    agree. A header is needed exactly when its argument has a value; it must then carry that value
    (sentinel decoded; integers compared as numbers); a header given twice is a mismatch."""
    wanted = annotated(schema)
    if not wanted:
        return None
    got: dict[str, list[str]] = {}
    for name, value in headers:
        if name.startswith(PARAM_PREFIX_LC):
            got.setdefault(name, []).append(value)
    args = arguments if isinstance(arguments, Mapping) else {}
    for path, header, declared in wanted:
        values = got.get(header.lower())
        value = _value_at(args, path)
        argument = ".".join(path)
        if values is not None and len(values) > 1:
            return f"{header} header appears more than once"
        rendered = _render(value) if value is not None else None
        if rendered is None:
            if values:
                return f"{header} header is present but the {argument!r} argument has no value"
            continue
        if not values:
            return f"{header} header is missing (the {argument!r} argument is {value!r})"
        decoded = decode_value(values[0])
        if decoded is None:
            return f"{header} header value is malformed (invalid characters or base64)"
        if not _matches(declared, value, rendered, decoded):
            return f"{header} header value {decoded!r} does not match the {argument!r} argument {value!r}"
    return None
