"""FastMCP's proxy in front of one Streamable-HTTP upstream, for the comparison.

Owns only starting ``fastmcp.server.create_proxy(upstream_url)`` on a
loopback port with FastMCP's own HTTP transport (served at ``/mcp``). Must
not: tune FastMCP beyond turning its banner and logging down (the comparison
is with FastMCP as a user runs it).

    python bench/fastmcp_proxy.py --port P --upstream http://127.0.0.1:U/mcp
"""

from __future__ import annotations

import argparse
import logging


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    a = ap.parse_args()
    from fastmcp.server import create_proxy

    logging.getLogger("fastmcp").setLevel(logging.WARNING)
    proxy = create_proxy(a.upstream, name="bench-fastmcp-proxy")
    proxy.run(transport="http", host="127.0.0.1", port=a.port, show_banner=False, log_level="warning")


if __name__ == "__main__":
    main()
