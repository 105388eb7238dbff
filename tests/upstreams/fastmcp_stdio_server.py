"""A real MCP upstream built with FastMCP (PyPI ``fastmcp`` 4.2.x) and served over stdio, as its
users run them (``mcp.run()``: stdio is FastMCP's default transport):
``python tests/upstreams/fastmcp_stdio_server.py [--name NAME] [--banner]``.

Tools: those of ``fastmcp_server.build`` (``echo(text)``; ``sample(prompt)`` ->
``"model said: <text>"`` through ``ctx.session.create_message``; ``ask(question)``; ``roots()``),
plus ``slow(seconds, steps=4)`` -> ``"slept <seconds>"`` with ``ctx.report_progress`` each step
and ``pid()`` -> the process id.

``--banner`` keeps FastMCP's startup banner (a box drawn on stderr); without it stderr is quiet.
Test code only.
"""

import argparse
import asyncio
import os
import sys
import warnings
from pathlib import Path

from fastmcp import Context

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastmcp_server import build  # a sibling script, not a package module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="fastmcp-stdio-upstream")
    ap.add_argument("--banner", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*deprecated as of 2026-07-28")  # sampling: off stderr
    mcp = build(args.name)

    @mcp.tool(description="Sleep for `seconds`, reporting progress each step.")
    async def slow(seconds: float, ctx: Context, steps: int = 4) -> str:
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1} of {steps}")
            await asyncio.sleep(seconds / steps)
        return f"slept {seconds}"

    @mcp.tool(description="This process's id.")
    def pid() -> str:
        return str(os.getpid())

    mcp.run(transport="stdio", show_banner=args.banner)


if __name__ == "__main__":
    main()
