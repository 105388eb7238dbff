"""An analytics export API shaped like the ones users put behind the gateway.

``export_metrics(metric, days)`` returns daily rows for the last 1-3 days only
(``days`` beyond 3 is an error: the API keeps three days). The upstream itself
allows ``--daily-limit`` calls a day (default 10); past that it answers with a
quota error, the way the real API would, so tests can prove the gateway never
let an 11th call through. ``GET /stats`` (no auth) reports the calls that
reached the upstream and how many it had to refuse.

Test code only: never imported by the product.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

import uvicorn
from mcp.server import MCPServer
from mcp_types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse

STATS: dict[str, Any] = {"calls": 0, "refused_over_quota": 0, "arguments": []}


def build(args: argparse.Namespace) -> MCPServer:
    mcp = MCPServer(name="pol-export", version="1.0.0", instructions="Daily metric exports (10 calls a day).")

    @mcp.tool(name="export_metrics", description="Daily values of a metric for the last 1-3 days.",
              annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True))
    def export_metrics(metric: str, days: int = 1) -> str:
        if STATS["calls"] >= args.daily_limit:
            STATS["refused_over_quota"] += 1
            raise ValueError(f"quota exceeded: {args.daily_limit} exports per day")
        STATS["calls"] += 1
        STATS["arguments"].append({"metric": metric, "days": days})
        if not 1 <= days <= 3:
            raise ValueError("days must be 1, 2 or 3: exports cover the last three days only")
        today = dt.date(2026, 11, 20)
        rows = [{"date": (today - dt.timedelta(days=i)).isoformat(), "metric": metric, "value": 100 + 7 * i + len(metric)}
                for i in range(days)]
        return json.dumps({"metric": metric, "rows": rows})

    @mcp.custom_route("/stats", methods=["GET"])
    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(STATS)

    return mcp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--daily-limit", type=int, default=10)
    args = ap.parse_args()
    uvicorn.run(build(args).streamable_http_app(host="127.0.0.1"), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
