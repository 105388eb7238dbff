"""``runtimed.protocol.params``: the SEP-2243 codec and rules, checked against the spec's own
examples (2026-07-28 basic/transports/streamable-http, "Value Encoding") and against the
official SDK's implementation of the same rules (``mcp.shared.inbound``)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.shared.inbound import find_invalid_x_mcp_header, mcp_param_headers, validate_mcp_param_headers, x_mcp_header_map

from runtimed.protocol.params import check_param_headers, decode_value, encode_value, invalid_annotation, param_headers

SPEC_EXAMPLES = [
    ("us-west1", "us-west1"),
    ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
    (" padded ", "=?base64?IHBhZGRlZCA=?="),
    ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
    ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
]

SCHEMA = {"type": "object", "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "shard": {"type": "integer", "x-mcp-header": "Shard"},
    "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"},
    "opts": {"type": "object", "properties": {"tenant": {"type": "string", "x-mcp-header": "Tenant"}}},
    "query": {"type": "string"},
}}


@pytest.mark.parametrize(("value", "header"), SPEC_EXAMPLES)
def test_spec_encoding_examples(value: str, header: str) -> None:
    assert encode_value(value) == header
    assert decode_value(header) == value


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "number", "x-mcp-header": "A"}}},
    {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": ""}}},
    {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "Bad Name"}}},
    {"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "A"}, "b": {"type": "string", "x-mcp-header": "a"}}},
    {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "A"}}}},
    {"type": "object", "properties": {"a": {"anyOf": [{"type": "string", "x-mcp-header": "A"}]}}},
    {"type": "object", "x-mcp-header": "Root"},
])
def test_invalid_annotations_agree_with_the_sdk(schema: Any) -> None:
    assert invalid_annotation(schema) is not None
    assert find_invalid_x_mcp_header(schema) is not None


def test_headers_agree_with_the_sdk_client() -> None:
    args = {"region": "Zürich", "shard": 12, "dry": False, "opts": {"tenant": "acme"}, "query": "q"}
    assert invalid_annotation(SCHEMA) is None
    ours = param_headers(SCHEMA, args)
    assert ours == mcp_param_headers(x_mcp_header_map(SCHEMA), args)
    assert ours["Mcp-Param-Dry-Run"] == "false" and ours["Mcp-Param-Shard"] == "12"
    assert param_headers(SCHEMA, {"region": None, "query": "q"}) == {}  # null or absent: no header
    pairs = [(k.lower(), v) for k, v in ours.items()]
    assert check_param_headers(SCHEMA, args, pairs) is None
    assert validate_mcp_param_headers(SCHEMA, args, dict(pairs)) is None


@pytest.mark.parametrize(("headers", "problem"), [
    ([], "missing"),
    ([("mcp-param-region", "eu"), ("mcp-param-shard", "2")], "does not match"),
    ([("mcp-param-region", "eu"), ("mcp-param-shard", "1"), ("mcp-param-shard", "1")], "more than once"),
    ([("mcp-param-region", "eu"), ("mcp-param-shard", "1"), ("mcp-param-dry-run", "true")], "no value"),
    ([("mcp-param-region", "=?base64?%%?="), ("mcp-param-shard", "1")], "malformed"),
    ([("mcp-param-region", "e\x01u"), ("mcp-param-shard", "1")], "malformed"),
])
def test_server_side_mismatches(headers: list[tuple[str, str]], problem: str) -> None:
    why = check_param_headers(SCHEMA, {"region": "eu", "shard": 1}, headers)
    assert why is not None and problem in why, why


def test_integer_header_compared_as_a_number() -> None:
    assert check_param_headers(SCHEMA, {"shard": 42}, [("mcp-param-shard", "42.0")]) is None
    assert check_param_headers(SCHEMA, {"shard": 42}, [("mcp-param-shard", "42.5")]) is not None
