"""An analytics connector shaped like the ones users put behind the gateway.

One action-routed tool ``insights`` (``action``: ``summary``, ``top_pages``,
``funnel``), plus ``annotate`` (writes a note on a chart), ``delete_dashboard``
(destructive) and ``export_raw`` (heavy). Every request to ``/mcp`` needs
``Authorization: Bearer <token>`` (``--token``, default from
``POL_ANALYTICS_TOKEN``); without it: HTTP 401. Tools can be toggled off in
the connector itself (``--disable NAME``, repeatable) the way a SaaS admin
console turns features off. ``GET /stats`` (no auth) tells tests what reached
the upstream: calls per tool and action, and how many requests lacked the token.

Test code only: never imported by the product.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Literal

import uvicorn
from mcp.server import MCPServer
from mcp_types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse

STATS: dict[str, Any] = {"calls": {}, "unauthorized": 0, "authorized": 0}

PAGES = [{"path": "/pricing", "views": 1840}, {"path": "/docs", "views": 1310}, {"path": "/blog/launch", "views": 990}]


def _count(key: str) -> None:
    STATS["calls"][key] = STATS["calls"].get(key, 0) + 1


def build(args: argparse.Namespace) -> MCPServer:
    mcp = MCPServer(name="pol-analytics", version="1.0.0", instructions="Product analytics for one site.")
    disabled = set(args.disable or [])
    ro = ToolAnnotations(readOnlyHint=True, idempotentHint=True)

    def tool(name: str, description: str, annotations: ToolAnnotations) -> Any:
        def deco(fn: Any) -> Any:
            if name not in disabled:
                mcp.add_tool(fn, name=name, description=description, annotations=annotations)
            return fn
        return deco

    @tool("insights", "Site analytics. action=summary|top_pages|funnel; days=1..90.", ro)
    def insights(action: Literal["summary", "top_pages", "funnel"], days: int = 7, limit: int = 3) -> str:
        _count(f"insights:{action}")
        if action == "summary":
            return json.dumps({"days": days, "visitors": 412 * days, "sessions": 530 * days, "bounceRate": 0.41})
        if action == "top_pages":
            return json.dumps({"days": days, "pages": PAGES[:limit]})
        return json.dumps({"days": days, "steps": [{"step": "visit", "n": 1000}, {"step": "signup", "n": 120},
                                                   {"step": "paid", "n": 9}]})

    @tool("annotate", "Add a note to the traffic chart at a date.", ToolAnnotations(readOnlyHint=False))
    def annotate(date: str, note: str) -> str:
        _count("annotate")
        return f"annotated {date}: {note}"

    @tool("delete_dashboard", "Delete a dashboard.", ToolAnnotations(readOnlyHint=False, destructiveHint=True))
    def delete_dashboard(dashboard_id: str) -> str:
        _count("delete_dashboard")
        return f"deleted {dashboard_id}"

    @tool("export_raw", "Export raw events (heavy).", ToolAnnotations(readOnlyHint=True))
    def export_raw(days: int = 1) -> str:
        _count("export_raw")
        return json.dumps([{"event": "pageview", "n": i} for i in range(days * 10)])

    @mcp.custom_route("/stats", methods=["GET"])
    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(STATS)

    return mcp


class BearerOnly:
    """ASGI middleware: ``/mcp`` needs the bearer token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if headers.get("authorization") != f"Bearer {self.token}":
                STATS["unauthorized"] += 1
                body = b'{"error":"invalid_token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b'Bearer error="invalid_token"'),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            STATS["authorized"] += 1
        await self.app(scope, receive, send)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", default=os.environ.get("POL_ANALYTICS_TOKEN", "analytics-test-token-0123"))
    ap.add_argument("--disable", action="append", help="turn a tool off in the connector itself")
    args = ap.parse_args()
    app = BearerOnly(build(args).streamable_http_app(host="127.0.0.1"), args.token)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
