"""The stateless era (2026-07-28): per-request envelope, header checks, and
signed ``requestState`` for input-required round trips.

Owns: validating ``params._meta`` (protocol version, client capabilities,
client info), the ``Mcp-Method`` / ``Mcp-Name`` header rules (``HEADER_MISMATCH``), the
unsupported-version answer (``UNSUPPORTED_PROTOCOL_VERSION`` with the supported list), the
``input_required`` result shape, and ``StateSigner`` (HMAC-SHA256 over the
gateway's routing data plus the backend's opaque state, with an expiry).
Must not: route calls or hold any per-client state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from runtimed.errors import RpcError
from runtimed.protocol import headers as h
from runtimed.protocol.jsonrpc import HEADER_MISMATCH, INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION
from runtimed.protocol.meta import (
    CLIENT_CAPABILITIES as META_CLIENT_CAPABILITIES,
    CLIENT_INFO as META_CLIENT_INFO,
    PROTOCOL_VERSION as META_PROTOCOL_VERSION,
)
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import ALL_VERSIONS, STATELESS_VERSIONS

NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
STATE_TTL_S = 3600.0


@dataclass
class Envelope:
    protocol_version: str
    client_info: JSON
    client_capabilities: JSON


def unsupported(requested: Any) -> RpcError:
    return RpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        f"Unsupported protocol version {requested!r}; supported: {', '.join(ALL_VERSIONS)}",
        data={"supported": list(ALL_VERSIONS), "requested": requested if isinstance(requested, str) else str(requested)},
        http_status=400,
    )


def decode_header_value(value: str | None) -> str | None:
    """Undo the ``=?base64?...?=`` sentinel used for non-ASCII header values."""
    if value is None or not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    try:
        return base64.b64decode(value[9:-2], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def check_request(body: JSON, headers: dict[str, str], duplicated: str | None) -> Envelope:
    """Validate one stateless-era request; raise ``RpcError`` with the spec's code."""
    if duplicated:
        raise RpcError(HEADER_MISMATCH, f"Header mismatch: {duplicated} appears more than once", http_status=400)
    raw_params = body.get("params")
    params: JSON = raw_params if isinstance(raw_params, dict) else {}
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise RpcError(INVALID_PARAMS, f"Invalid params: params._meta must be an object carrying {META_PROTOCOL_VERSION!r} "
                       f"and {META_CLIENT_CAPABILITIES!r}", http_status=400)
    missing = [k for k in (META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES) if k not in meta]
    if missing:
        raise RpcError(INVALID_PARAMS, f"Invalid params: params._meta is missing {', '.join(missing)}", http_status=400)
    version = meta[META_PROTOCOL_VERSION]
    header = headers.get(h.PROTOCOL_VERSION_LC)
    if header is None or header != version:
        raise RpcError(HEADER_MISMATCH, f"Header mismatch: {h.PROTOCOL_VERSION} header {header!r} does not match "
                       f"_meta protocol version {version!r}", http_status=400)
    method = body.get("method")
    if headers.get(h.METHOD_LC) != method:
        raise RpcError(HEADER_MISMATCH, f"Header mismatch: {h.METHOD} header {headers.get(h.METHOD_LC)!r} does not "
                       f"match the body's method {method!r}", http_status=400)
    key = NAME_BEARING.get(method) if isinstance(method, str) else None
    if key is not None:
        value = params.get(key)
        if value is not None and decode_header_value(headers.get(h.NAME_LC)) != value:
            raise RpcError(HEADER_MISMATCH, f"Header mismatch: {h.NAME} header does not match params.{key}", http_status=400)
    if not isinstance(version, str):
        raise RpcError(INVALID_PARAMS, "Invalid params: the protocol version must be a string", http_status=400)
    if version not in STATELESS_VERSIONS:
        raise unsupported(version)
    info = meta.get(META_CLIENT_INFO)
    caps = meta.get(META_CLIENT_CAPABILITIES)
    return Envelope(version, info if isinstance(info, dict) else {}, caps if isinstance(caps, dict) else {})


def input_required(requests: JSON, request_state: str) -> JSON:
    result: JSON = {"resultType": "input_required", "requestState": request_state}
    if requests:
        result["inputRequests"] = requests
    return result


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4))


class StateSigner:
    """Signs and verifies the gateway's wrapped ``requestState``.

    ``keys`` is the store's ``signing_keys()``: (current key id, key id -> key). A token names the id
    of the key that signed it (``k`` in its body), so every replica verifies what any signed and a
    rotated-out key still verifies while it is listed.
    """

    def __init__(self, keys: tuple[str, dict[str, bytes]]) -> None:
        self.kid, self.keys = keys
        self.key = self.keys[self.kid]

    def sign(self, payload: JSON) -> str:
        payload = {**payload, "exp": int(time.time() + STATE_TTL_S), "k": self.kid}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        mac = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        return f"rs1.{body}.{mac}"

    def verify(self, token: Any) -> JSON:
        """The payload, or ``RpcError(INVALID_PARAMS)`` if forged, altered or expired."""
        if not isinstance(token, str) or token.count(".") != 2 or not token.startswith("rs1."):
            raise RpcError(INVALID_PARAMS, "Invalid params: requestState was not issued by this gateway", http_status=400)
        _, body, mac = token.split(".")
        try:
            claimed = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            claimed = None
        kid = claimed.get("k") if isinstance(claimed, dict) else None
        key = self.keys.get(kid, self.key) if isinstance(kid, str) else self.key
        want = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want, mac):
            raise RpcError(INVALID_PARAMS, "Invalid params: requestState signature does not verify", http_status=400)
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            raise RpcError(INVALID_PARAMS, "Invalid params: requestState is malformed", http_status=400) from None
        if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
            raise RpcError(INVALID_PARAMS, "Invalid params: requestState has expired; call again without it", http_status=400)
        return payload
