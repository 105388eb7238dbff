"""The client side of tests that speak MCP to the daemon with the official SDK ``Client``:
the callbacks a client declares (sampling, elicitation, roots) with fixed answers the tests
check for, and calls bounded by a hang guard (a bound, not a timing assertion).

Owns those helpers only; the daemons and upstreams are ``daemon``, ``upstream`` and
``thirdparty``'s. Must not mock anything: the answers are what a real client would send.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

GUARD = 30.0  # hang guard for one awaited call (a bound, not a timing assertion)


def text_of(result: Any) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="forty-two"),
                                     model="test-model")


async def elicitation(ctx: Any, params: Any) -> types.ElicitResult:
    schema = getattr(params, "requested_schema", None) or {}
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    # server-everything asks for a form whose one required field is "name"; ours ask for "answer".
    content = {"name": "Ada Lovelace"} if "name" in props else {"answer": "blue"}
    return types.ElicitResult(action="accept", content=content)


def roots_of(*uris: str) -> Any:
    async def list_roots(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=u, name=u.rsplit("/", 1)[-1]) for u in uris])
    return list_roots


def client(url: str, mode: str, **kw: Any) -> Client:
    return Client(url, mode=mode, cache=None, **kw)


async def call(c: Client, tool: str, args: dict[str, Any] | None = None, **kw: Any) -> types.CallToolResult:
    return await asyncio.wait_for(c.call_tool(tool, args or {}, **kw), GUARD)


async def call_text(c: Client, tool: str, args: dict[str, Any] | None = None) -> str:
    """The tool's text; a tool error or a protocol error becomes text that says so (never a root URI)."""
    try:
        r = await call(c, tool, args)
    except MCPError as e:
        return f"<error {e.error.code}: {e.error.message}>"
    return ("<isError> " if r.is_error else "") + text_of(r)
