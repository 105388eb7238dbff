"""A real MCP upstream with a resource that changes, for the gateway's subscription tests.

Written with the official SDK's ``MCPServer``; serves both eras at ``/mcp``. Offers the
resource ``test://watched`` (its text is a counter), ``resources/subscribe`` and
``resources/unsubscribe`` (session era; the SDK serves ``subscriptions/listen`` with
``resourceSubscriptions`` in the 2026-07-28 era), and a tool ``touch`` that bumps the
counter and announces ``notifications/resources/updated`` in whichever era it is called
(session era: only when a session subscribed). Flags: ``--port``, ``--session-only``
(answer like a pre-2026 server, as echo_server does).

Test code only: never imported by the product.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import mcp_types
import uvicorn
from echo_server import Observe  # same directory: the scripts run as files
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import EmptyResult

URI = "test://watched"
STATE: dict[str, Any] = {"version": 0, "subscribed": set(), "calls": {}}


def build() -> MCPServer:
    mcp = MCPServer(name="watch", version="1.0.0")

    @mcp.resource(URI, name="watched", description="A counter that `touch` bumps.", mime_type="text/plain")
    def watched() -> str:
        return f"version {STATE['version']}"

    @mcp.tool(description="Bump the watched resource and announce notifications/resources/updated.")
    async def touch(ctx: Context) -> str:
        STATE["version"] += 1
        try:
            await ctx.notify_resource_updated(URI)  # subscriptions/listen streams (2026-07-28)
        except Exception:
            pass
        if URI in STATE["subscribed"]:
            try:
                await ctx.session.send_resource_updated(URI)  # session era, after resources/subscribe
            except Exception:
                pass
        return f"version {STATE['version']}"

    @mcp.tool(description="What this upstream has seen: subscribe/unsubscribe calls and current subscriptions.")
    def watch_stats() -> str:
        return json.dumps({"subscribed": sorted(STATE["subscribed"]), "calls": STATE["calls"]})

    async def subscribe(ctx: Any, params: Any) -> EmptyResult:
        STATE["subscribed"].add(str(params.uri))
        STATE["calls"]["subscribe"] = STATE["calls"].get("subscribe", 0) + 1
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: Any) -> EmptyResult:
        STATE["subscribed"].discard(str(params.uri))
        STATE["calls"]["unsubscribe"] = STATE["calls"].get("unsubscribe", 0) + 1
        return EmptyResult()

    low = mcp._lowlevel_server  # test upstream: MCPServer has no decorator for these
    low.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, unsubscribe)
    return mcp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--session-only", action="store_true")
    args = ap.parse_args()
    args.require_header = []
    app = Observe(build().streamable_http_app(host="127.0.0.1"), args)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
