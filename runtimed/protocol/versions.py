"""Protocol versions and eras: which versions the gateway speaks and how a
request is told apart.

Owns the supported version lists (what the gateway serves, what the remote
backend offers an upstream), version negotiation for ``initialize``, and
``era_of`` (which era an HTTP request belongs to, from its
``MCP-Protocol-Version`` header and body). Adding a protocol version touches
this module. Must not: hold sessions or answer requests.
"""

from __future__ import annotations

from typing import Any

from runtimed.protocol import meta

SESSION_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
STATELESS_VERSIONS = ("2026-07-28",)
ALL_VERSIONS = SESSION_VERSIONS + STATELESS_VERSIONS
LATEST_SESSION = SESSION_VERSIONS[-1]
DEFAULT_HEADERLESS = "2025-03-26"  # the spec lets a server treat a missing header as 2025-03-26
BATCH_VERSIONS = ("2025-03-26",)  # JSON-RPC batches were removed in 2025-06-18

LATEST_STATELESS = STATELESS_VERSIONS[-1]
LEGACY_SSE_VERSION = "2024-11-05"  # the old HTTP+SSE transport
# What the remote backend offers an upstream in ``initialize``, newest first.
UPSTREAM_HANDSHAKE_VERSIONS = (*reversed(SESSION_VERSIONS), LEGACY_SSE_VERSION)

# The ``_meta`` keys, under the names the gateway has always imported them by.
META_PROTOCOL_VERSION = meta.PROTOCOL_VERSION
META_CLIENT_INFO = meta.CLIENT_INFO
META_CLIENT_CAPABILITIES = meta.CLIENT_CAPABILITIES
META_LOG_LEVEL = meta.LOG_LEVEL
META_SUBSCRIPTION_ID = meta.SUBSCRIPTION_ID
ENVELOPE_KEYS = meta.ENVELOPE_KEYS

SESSION = "session"
STATELESS = "stateless"


def is_stateless(version: str | None) -> bool:
    """Whether a negotiated version belongs to the stateless era (2026-07-28 and later)."""
    return version in STATELESS_VERSIONS


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
