"""A stdio MCP server written with the official ``mcp`` SDK, for the stdio benchmark (scenario 8).

Owns one ``MCPServer`` with one tool, ``echo(text)``, served over stdio
(newline-delimited JSON-RPC on stdin/stdout). It is what a user typically
registers as a stdio service: an SDK server run as a child process. Must not:
do any work beyond echoing (the benchmark measures what sits around it), or
write anything but protocol messages to stdout.

    python bench/stdio_echo.py [--instance NAME]   # speaks MCP on stdin/stdout until stdin closes

``--instance`` is ignored: it only makes the command line differ, since the
daemon identifies a stdio service by its command, arguments and working
directory (the cold-start runs register several services of the same server).
"""

from __future__ import annotations

import argparse

from mcp.server import MCPServer

server = MCPServer("stdio-echo")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="stdio echo MCP server (SDK MCPServer)")
    ap.add_argument("--instance", default="", help="ignored; only makes the command line unique")
    ap.parse_args()
    server.run(transport="stdio")
