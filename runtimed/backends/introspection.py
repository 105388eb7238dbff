"""Reading a session-holding upstream's whole interface: shared by the remote and
stdio backends.

Owns ``read_interface``: every page of every list the upstream's capabilities
offer (tools, resources, resource templates, prompts), their ``ttlMs`` (the
interface is fresh as long as its shortest-lived page), the checks on the
pages (a list that is missing, a repeated cursor, too many pages) and leaving
out tools whose ``x-mcp-header`` annotations are invalid (SEP-2243: a client
must, and the gateway serves them to HTTP clients). Must not: know a
transport (it is handed the request function) or cache anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from runtimed.backends.base import CallContext, Interface
from runtimed.errors import BackendFault
from runtimed.protocol.params import invalid_annotation
from runtimed.protocol.types import JSON

LISTS = (
    # (capability, method, result key, Interface attribute)
    ("tools", "tools/list", "tools", "tools"),
    ("resources", "resources/list", "resources", "resources"),
    ("resources", "resources/templates/list", "resourceTemplates", "resource_templates"),
    ("prompts", "prompts/list", "prompts", "prompts"),
)
MAX_PAGES = 1000

Request = Callable[[str, JSON, CallContext], Awaitable[JSON]]


async def read_interface(request: Request, capabilities: JSON, server_info: JSON, instructions: str | None, *,
                         timeout_s: float, max_response_bytes: int, log: Callable[[str, str], None]) -> Interface:
    """The full interface, each page asked with ``request(method, params, ctx)`` within
    ``timeout_s`` and ``max_response_bytes``; raises ``BackendFault`` for a malformed list."""
    iface = Interface(capabilities=dict(capabilities), server_info=dict(server_info), instructions=instructions)
    ttls: list[int] = []
    for cap, method, key, attr in LISTS:
        if cap not in capabilities:
            continue
        setattr(iface, attr, await _all_pages(request, method, key, ttls, timeout_s, max_response_bytes))
    # Fresh as long as the shortest-lived page; a result without ttlMs is stale at once (2026-07-28 caching).
    iface.ttl_ms = min(ttls, default=0)
    iface.tools = _valid_tools(iface.tools, log)
    return iface


def _valid_tools(tools: list[JSON], log: Callable[[str, str], None]) -> list[JSON]:
    """SEP-2243: a client over streamable HTTP must leave out a tool whose ``x-mcp-header``
    annotations break the rules (and should say so); the other tools stay usable."""
    kept = []
    for tool in tools:
        why = invalid_annotation(tool.get("inputSchema"))
        if why is None:
            kept.append(tool)
        else:
            log("warning", f"tool {tool.get('name')!r} left out: invalid x-mcp-header ({why})")
    return kept


async def _all_pages(request: Request, method: str, key: str, ttls: list[int], timeout_s: float,
                     max_response_bytes: int) -> list[JSON]:
    items: list[JSON] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        params: JSON = {"cursor": cursor} if cursor is not None else {}
        ctx = CallContext(deadline=asyncio.get_running_loop().time() + timeout_s, max_response_bytes=max_response_bytes)
        result = await request(method, params, ctx)
        page = result.get(key)
        if not isinstance(page, list):
            raise BackendFault(f"{method}: the upstream's result has no {key!r} list", kind="protocol")
        items.extend(i for i in page if isinstance(i, dict))
        ttl = result.get("ttlMs")
        ttls.append(ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 0 else 0)
        cursor = result.get("nextCursor")
        if not cursor:
            return items
        if cursor in seen:
            raise BackendFault(f"{method}: the upstream repeated the page cursor {cursor!r}", kind="protocol")
        seen.add(cursor)
    raise BackendFault(f"{method}: more than {MAX_PAGES} pages", kind="protocol")
