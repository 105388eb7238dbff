"""Protocol versions and eras: which versions the gateway speaks and how a
request is told apart.

Owns the supported version lists, version negotiation for ``initialize``, the
``_meta`` envelope keys of the stateless era, and ``era_of`` (which era an
HTTP request belongs to, from its ``MCP-Protocol-Version`` header and body).
Must not: hold sessions or answer requests.
"""

from __future__ import annotations

from typing import Any

SESSION_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
STATELESS_VERSIONS = ("2026-07-28",)
ALL_VERSIONS = SESSION_VERSIONS + STATELESS_VERSIONS
LATEST_SESSION = SESSION_VERSIONS[-1]
DEFAULT_HEADERLESS = "2025-03-26"  # the spec lets a server treat a missing header as 2025-03-26
BATCH_VERSIONS = ("2025-03-26",)  # JSON-RPC batches were removed in 2025-06-18

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
ENVELOPE_KEYS = (META_PROTOCOL_VERSION, META_CLIENT_INFO, META_CLIENT_CAPABILITIES, META_LOG_LEVEL)

SESSION = "session"
STATELESS = "stateless"


def negotiate(requested: Any) -> str:
    """The version to answer ``initialize`` with: the client's if supported, else the newest."""
    if isinstance(requested, str) and requested in SESSION_VERSIONS:
        return requested
    return LATEST_SESSION


def has_envelope(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    params = body.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and META_PROTOCOL_VERSION in meta


def era_of(header_version: str | None, body: Any) -> str:
    """Which era a POST belongs to.

    A stateless-era header, or a body carrying the ``_meta`` envelope without a
    session-era header, is stateless; everything else (initialize, session
    requests, batches) is the session era.
    """
    if header_version in STATELESS_VERSIONS:
        return STATELESS
    if header_version in SESSION_VERSIONS:
        return SESSION
    if isinstance(body, dict) and body.get("method") == "initialize":
        return SESSION
    if header_version is not None and header_version not in SESSION_VERSIONS:
        # An unknown version: stateless-shaped bodies get the stateless answer (-32022).
        return STATELESS if has_envelope(body) or (isinstance(body, dict) and body.get("method") == "server/discover") else SESSION
    return STATELESS if has_envelope(body) else SESSION
