"""A read-only revenue-operations connector shaped like the ones users put
behind the gateway.

``forecast(quarter, segment)`` starts an asynchronous job that runs for
``--job-seconds`` (default 5-30 s, drawn per job like the real thing; tests
pass a short fixed value) and reports progress every step; it is annotated
``readOnlyHint``. The upstream allows ``--max-jobs`` concurrent jobs
(default 2): one more is refused with a "too many concurrent jobs" error.
``update_opportunity`` writes (not read-only) and ``pipeline`` reads quickly.
``GET /stats`` (no auth) reports jobs started, finished, refused and the
highest number of jobs seen running at once.

Test code only: never imported by the product.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from typing import Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse

STATS: dict[str, Any] = {"started": 0, "finished": 0, "refused": 0, "running": 0, "max_running": 0,
                         "cancelled": 0, "updates": 0}


def build(args: argparse.Namespace) -> MCPServer:
    mcp = MCPServer(name="pol-revops", version="1.0.0", instructions="Revenue operations: pipeline and forecasts.")

    @mcp.tool(name="forecast", description="Forecast bookings for a quarter (runs a job of 5-30 s, with progress).",
              annotations=ToolAnnotations(readOnlyHint=True))
    async def forecast(quarter: str, ctx: Context, segment: str = "all") -> str:
        if STATS["running"] >= args.max_jobs:
            STATS["refused"] += 1
            raise ValueError(f"too many concurrent jobs: at most {args.max_jobs} forecasts may run at once")
        STATS["started"] += 1
        STATS["running"] += 1
        STATS["max_running"] = max(STATS["max_running"], STATS["running"])
        seconds = args.job_seconds if args.job_seconds is not None else random.uniform(5, 30)
        steps = args.steps
        try:
            for i in range(steps):
                await asyncio.sleep(seconds / steps)
                await ctx.report_progress(i + 1, steps, f"forecast {quarter}: step {i + 1} of {steps}")
        except asyncio.CancelledError:
            STATS["cancelled"] += 1
            raise
        finally:
            STATS["running"] -= 1
        STATS["finished"] += 1
        return json.dumps({"quarter": quarter, "segment": segment, "commit": 1_250_000, "bestCase": 1_610_000})

    @mcp.tool(name="pipeline", description="Open pipeline by stage.", annotations=ToolAnnotations(readOnlyHint=True))
    def pipeline(segment: str = "all") -> str:
        return json.dumps({"segment": segment, "stages": {"discovery": 41, "proposal": 17, "commit": 6}})

    @mcp.tool(name="update_opportunity", description="Change an opportunity's stage.",
              annotations=ToolAnnotations(readOnlyHint=False))
    def update_opportunity(opportunity_id: str, stage: str) -> str:
        STATS["updates"] += 1
        return f"{opportunity_id} -> {stage}"

    @mcp.custom_route("/stats", methods=["GET"])
    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(STATS)

    return mcp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--job-seconds", type=float, default=None, help="fixed job length (default: 5-30 s at random)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--max-jobs", type=int, default=2)
    args = ap.parse_args()
    uvicorn.run(build(args).streamable_http_app(host="127.0.0.1"), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
