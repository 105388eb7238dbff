"""HTTP header names of the MCP transports, as sent (canonical case) and as
read from an ASGI scope (lower-case bytes).

Owns the names only. Must not: validate values (the gateway's ``stateless``
module and the backends' transports do that).
"""

from __future__ import annotations

PROTOCOL_VERSION = "MCP-Protocol-Version"
SESSION_ID = "Mcp-Session-Id"
METHOD = "Mcp-Method"  # stateless era: the request's method
NAME = "Mcp-Name"  # stateless era: the tool/prompt name or resource URI
LAST_EVENT_ID = "Last-Event-ID"
PARAM_PREFIX = "Mcp-Param-"  # SEP-2243: arguments mirrored into headers
# Stateless era: which param of a request's method ``Mcp-Name`` carries.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

# Lower-case forms, for ASGI scopes and case-insensitive lookups.
PROTOCOL_VERSION_LC = PROTOCOL_VERSION.lower()
SESSION_ID_LC = SESSION_ID.lower()
METHOD_LC = METHOD.lower()
NAME_LC = NAME.lower()
LAST_EVENT_ID_LC = LAST_EVENT_ID.lower()
