"""JSON-RPC 2.0 framing for the gateway: codes, errors, encoding.

Owns the error codes the gateway answers with, ``RpcError`` (an error that
becomes a JSON-RPC error object plus the HTTP status the transport uses), the
message builders and the fast JSON encoder (orjson when installed). Must not:
know about sessions, eras, services or HTTP routing.
"""

from __future__ import annotations

import json
from typing import Any

from runtimed.errors import RpcError

try:  # optional speed-up; never a requirement
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

from runtimed.protocol.meta import RUNTIMED as RUNTIMED_META
from runtimed.protocol.types import JSON

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (-32000 to -32099).
SERVER_ERROR = -32000  # generic: a server-to-client request left unanswered, the bridge's unreachable daemon
UNAUTHORIZED = -32001  # the request lacks a valid bearer token (answered by the access check on /mcp)
RESOURCE_NOT_FOUND = -32002
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022

# HTTP status per error code (the stateless-era transport table; session-era
# request errors are answered 200 with the error object unless noted).
STATELESS_HTTP_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}


def request(msg_id: Any, method: str, params: JSON | None = None) -> JSON:
    msg: JSON = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def response(msg_id: Any, result: JSON) -> JSON:
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def error_response(msg_id: Any, code: int, message: str, data: Any = None) -> JSON:
    err: JSON = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": err}


def notification(method: str, params: JSON | None = None) -> JSON:
    msg: JSON = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def tool_error(text: str, **meta: Any) -> JSON:
    """An ``isError`` ``tools/call`` result the agent can read and adapt to; ``meta`` goes
    under ``_meta.runtimed`` (which policy answered, the outcome, its facts)."""
    result: JSON = {"content": [{"type": "text", "text": text}], "isError": True}
    if meta:
        result["_meta"] = {RUNTIMED_META: meta}
    return result


class Encoded(list):  # type: ignore[type-arg]
    """A list that carries its own JSON encoding (e.g. a cached ``tools/list`` page).

    ``dumps`` of a response whose ``result`` holds one splices the bytes in as
    they are instead of encoding the items again; anything else sees a list."""

    __slots__ = ("json",)

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.json = _dumps(items)


def dumps(obj: Any) -> bytes:
    if type(obj) is dict:
        result = obj.get("result")
        if type(result) is dict and any(type(v) is Encoded for v in result.values()):
            return _dumps_spliced(obj)
    return _dumps(obj)


def _dumps_spliced(obj: JSON) -> bytes:
    def member(k: str, v: Any) -> bytes:
        return _dumps(k) + b":" + (v.json if type(v) is Encoded else _dumps(v))

    parts = []
    for k, v in obj.items():
        if k == "result":
            parts.append(_dumps(k) + b":{" + b",".join(member(rk, rv) for rk, rv in v.items()) + b"}")
        else:
            parts.append(member(k, v))
    return b"{" + b",".join(parts) + b"}"


def _dumps(obj: Any) -> bytes:
    if _orjson is not None:
        try:
            encoded: bytes = _orjson.dumps(obj)
            return encoded
        except TypeError:  # e.g. integers beyond 64 bits: fall back
            pass
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def loads(data: bytes) -> Any:
    """Parse a body; raises ``RpcError(PARSE_ERROR)`` with a readable reason."""
    try:
        if _orjson is not None:
            return _orjson.loads(data)
        return json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise RpcError(PARSE_ERROR, f"Parse error: the body is not valid JSON ({type(e).__name__})", http_status=400) from None


def is_request(msg: Any) -> bool:
    return isinstance(msg, dict) and "method" in msg and "id" in msg


def is_notification(msg: Any) -> bool:
    return isinstance(msg, dict) and "method" in msg and "id" not in msg


def is_response(msg: Any) -> bool:
    return isinstance(msg, dict) and "method" not in msg and "id" in msg and ("result" in msg or "error" in msg)


def check_envelope(msg: Any) -> None:
    """Raise ``INVALID_REQUEST`` unless ``msg`` is a well-formed request, notification or response."""
    if not isinstance(msg, dict):
        raise RpcError(INVALID_REQUEST, "Invalid request: a JSON-RPC message must be an object", http_status=400)
    if msg.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"', http_status=400)
    if "method" in msg:
        if not isinstance(msg["method"], str) or not msg["method"]:
            raise RpcError(INVALID_REQUEST, 'Invalid request: "method" must be a non-empty string', http_status=400)
        if "params" in msg and not isinstance(msg["params"], dict):
            raise RpcError(INVALID_REQUEST, 'Invalid request: "params" must be an object', http_status=400)
        if "id" in msg and (msg["id"] is None or isinstance(msg["id"], bool) or not isinstance(msg["id"], (str, int))):
            raise RpcError(INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer', http_status=400)
        return
    if "id" in msg and ("result" in msg or "error" in msg):
        return
    raise RpcError(INVALID_REQUEST, "Invalid request: neither a request, a notification nor a response", http_status=400)
