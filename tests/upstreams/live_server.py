"""A real MCP upstream (the official SDK's ``MCPServer``, both eras) whose interface changes
behind the gateway's back, and whose tools carry ``x-mcp-header`` parameters (SEP-2243).

Tools:
- ``route(region, query, shard=0)``: ``region`` is ``x-mcp-header: Region``, ``shard`` is
  ``x-mcp-header: Shard`` (an integer); answers ``region/shard:query``. The SDK server itself
  answers -32020 (HTTP 400) over 2026-07-28 when the ``Mcp-Param-*`` headers are missing or differ.
- ``add_quiet(name, header=False)``: adds a tool ``name`` WITHOUT announcing ``list_changed``;
  with ``header`` the new tool's ``zone`` argument is ``x-mcp-header: Zone``.
- ``notify_same()``: announces ``tools/list_changed`` although nothing changed.
- ``redescribe(tool, description, param="", notify=True)``: changes an existing tool's description
  (and with ``param``, adds an optional string argument of that name to its input schema), then,
  with ``notify``, announces ``tools/list_changed`` (a "rug pull", for the tool pinning tests).
- ``seen()``: ``{"params": the Mcp-Param-* headers of the last tools/call received, "lists":
  how many tools/list requests arrived}``.

Flags: ``--port``, ``--no-listen`` (no ``subscriptions/listen``: the 2026-07-28 capabilities say
``listChanged: false``), ``--ttl-ms N`` (``ttlMs`` on list results; default none, i.e. 0),
``--slow-list S`` (answer each ``tools/list`` S seconds late), ``--bad-tool`` (also list a tool
``bad`` whose ``x-mcp-header`` sits on a ``number`` property, which SEP-2243 forbids).

Test code only: never imported by the product.
"""

import argparse
import asyncio
import json
from typing import Annotated, Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context
from pydantic import Field

SEEN: dict[str, Any] = {"params": {}, "lists": 0}


def build(args: argparse.Namespace) -> MCPServer:
    hints = None
    if args.ttl_ms is not None:
        hint = CacheHint(ttl_ms=args.ttl_ms)
        hints = {m: hint for m in ("tools/list", "prompts/list", "resources/list", "resources/templates/list")}
    mcp = MCPServer(name="live", version="1.0.0", cache_hints=hints,  # type: ignore[arg-type]
                    subscriptions=False if args.no_listen else None)

    @mcp.tool(name="route", description="Run a query in a region (the region is mirrored into a header).")
    def route(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], query: str,
              shard: Annotated[int, Field(json_schema_extra={"x-mcp-header": "Shard"})] = 0) -> str:
        return f"{region}/{shard}:{query}"

    @mcp.tool(name="add_quiet", description="Add a tool named `name` without announcing list_changed.")
    def add_quiet(name: str, header: bool = False) -> str:
        if header:
            def zoned(zone: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Zone"})]) -> str:
                return f"{name} in {zone}"

            mcp.add_tool(zoned, name=name, description=f"added quietly: {name} (zone header)")
        else:
            def plain(text: str = "") -> str:
                return f"{name}: {text}"

            mcp.add_tool(plain, name=name, description=f"added quietly: {name}")
        return f"added {name}"

    @mcp.tool(name="notify_same", description="Announce tools/list_changed without changing anything.")
    async def notify_same(ctx: Context) -> str:
        try:
            await ctx.session.send_tool_list_changed()
        except Exception:  # stateless era: no standalone stream
            pass
        try:
            await ctx.notify_tools_changed()
        except Exception:
            pass
        return "notified"

    @mcp.tool(name="redescribe", description="Change a tool's description (and add an argument) behind the client's back.")
    async def redescribe(ctx: Context, tool: str, description: str, param: str = "", notify: bool = True) -> str:
        found = mcp._tool_manager._tools[tool]
        found.description = description
        if param:
            found.parameters.setdefault("properties", {})[param] = {"type": "string", "title": param.title()}
        if notify:
            for announce in (ctx.session.send_tool_list_changed, ctx.notify_tools_changed):
                try:
                    await announce()
                except Exception:  # the era without that channel
                    pass
        return f"redescribed {tool}"

    if args.bad_tool:
        @mcp.tool(name="bad", description="Its schema breaks SEP-2243 (x-mcp-header on a number).")
        def bad(ratio: float = 0.5) -> str:
            return f"ratio {ratio}"

        # The SDK refuses such a tool at registration; a server written otherwise may still list one.
        mcp._tool_manager._tools["bad"].parameters["properties"]["ratio"]["x-mcp-header"] = "Ratio"

    @mcp.tool(name="seen", description="The Mcp-Param headers of the last tools/call received, and the tools/list count.")
    def seen() -> str:
        return json.dumps(SEEN)

    return mcp


class Observe:
    """ASGI middleware: remember the Mcp-Param headers of each tools/call (but ``seen``'s), count
    ``tools/list`` requests, and delay them by ``--slow-list`` seconds."""

    def __init__(self, app: Any, slow_list: float) -> None:
        self.app = app
        self.slow_list = slow_list

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        method = data.get("method") if isinstance(data, dict) else None
        params = (data.get("params") or {}) if isinstance(data, dict) else {}
        if method == "tools/call" and params.get("name") != "seen":
            SEEN["params"] = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                              if k.lower().startswith(b"mcp-param-")}
        elif method == "tools/list":
            SEEN["lists"] += 1
            if self.slow_list:
                await asyncio.sleep(self.slow_list)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-listen", action="store_true")
    ap.add_argument("--ttl-ms", type=int, default=None)
    ap.add_argument("--slow-list", type=float, default=0.0)
    ap.add_argument("--bad-tool", action="store_true")
    args = ap.parse_args()
    app = Observe(build(args).streamable_http_app(host="127.0.0.1"), args.slow_list)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
