"""A real MCP upstream on the old HTTP+SSE transport (protocol 2024-11-05 style).

Built with the official SDK's ``MCPServer.sse_app()``: ``GET /sse`` opens the
event stream and first sends an ``endpoint`` event; the client POSTs JSON-RPC
messages to that endpoint (``/messages/?session_id=...``) and every response
arrives on the SSE stream. Tools: ``echo``, ``add``, ``slow`` (progress) and
``stats``. Flag ``--port``. Test code only.
"""

import argparse
import asyncio
import json

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations

STATS = {"cancelled_tools": 0}


def build(name: str) -> MCPServer:
    mcp = MCPServer(name=name, version="0.9.0")

    @mcp.tool(description="Echo the text back.", annotations=ToolAnnotations(readOnlyHint=True))
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @mcp.tool(description="Sleep, reporting progress each step.")
    async def slow(seconds: float, ctx: Context, steps: int = 4) -> str:
        try:
            for i in range(steps):
                await ctx.report_progress(i + 1, steps, f"step {i + 1}")
                await asyncio.sleep(seconds / steps)
        except asyncio.CancelledError:
            STATS["cancelled_tools"] += 1
            raise
        return f"slept {seconds}"

    @mcp.tool(description="What this upstream has seen.")
    def stats() -> str:
        return json.dumps(STATS)

    @mcp.resource("test://legacy", name="legacy")
    def legacy() -> str:
        return "legacy resource"

    return mcp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="legacy-sse")
    args = ap.parse_args()
    app = build(args.name).sse_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
