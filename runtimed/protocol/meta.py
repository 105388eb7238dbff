"""``_meta`` keys: the protocol's own (``io.modelcontextprotocol/...``) and the
gateway's (``io.runtimed/...``).

Owns the key strings and the list of stateless-era envelope keys. Must not:
read or write messages (builders live in ``jsonrpc``; the envelope logic in
the gateway and the backends).
"""

from __future__ import annotations

PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL = "io.modelcontextprotocol/logLevel"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
# The stateless era's per-request envelope (2026-07-28, basic/transports).
ENVELOPE_KEYS = (PROTOCOL_VERSION, CLIENT_INFO, CLIENT_CAPABILITIES, LOG_LEVEL)

# The gateway's own: which service a tool or prompt listed on ``/mcp`` comes from.
SERVICE = "io.runtimed/service"
# The gateway's own, on an ``isError`` tool result it makes: which policy answered and why.
RUNTIMED = "runtimed"
