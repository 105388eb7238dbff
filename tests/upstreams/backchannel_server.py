"""A real MCP upstream written as third parties write them: the official SDK's ``MCPServer``
with tools that use the SESSION API back-channel (not the SDK's era-neutral ``Resolve``).

Serves both protocol eras on one app at ``/mcp`` (the SDK routes by the
``MCP-Protocol-Version`` header). Over 2025-11-25 the back-channel tools work; over
2026-07-28 the SDK answers them with "no back-channel for server-initiated requests" (that
is the SDK's behaviour, direct or not).

Tools:
- ``echo(text)``; ``slow(seconds, steps)`` (progress each step); ``log(text)`` (an info log message);
- ``sample(prompt)``: ``ctx.session.create_message`` -> ``"model said: <text>"``;
- ``ask(question)``: ``ctx.session.elicit_form`` -> ``"user answered: <answer>"`` (or ``"user <action>"``);
- ``roots()``: ``ctx.session.list_roots`` -> JSON list of root URIs;
- ``regional(region, text)``: ``region`` carries ``x-mcp-header: Region`` (SEP-2243); over
  2026-07-28 the SDK answers -32020 when the ``Mcp-Param-Region`` header is missing;
  returns ``"<region>: <text>"``;
- ``add_tool_quietly(name)``: adds a tool ``name`` (returns ``"<name>: <text>"``) WITHOUT any
  list_changed notification;
- ``notify_unchanged()``: sends tools list_changed although the list did not change;
- ``log_level()``: the log level this request was given: over the session era the level the
  connection's last ``logging/setLevel`` set (``null`` when none), over 2026-07-28 the
  ``io.modelcontextprotocol/logLevel`` of the request's ``_meta``; JSON
  ``{"era": <protocol version>, "level": ...}``;
- ``whoami()``: JSON ``{"protocolVersion": ..., "session": <has a session id>}``.

Flags: ``--port``, ``--name`` (serverInfo name), ``--session-only`` (play a pre-2026 server:
``server/discover`` and 2026-07-28 requests get HTTP 400 "Missing session ID").

Test code only: never imported by the product.
"""

import argparse
import json
from typing import Annotated, Any

import mcp_types as types
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
# logging/setLevel per connection (the SDK keeps none itself): id(connection) -> level
LEVELS: dict[int, str] = {}


def _connection_key(session: Any) -> int:
    return id(session._connection)  # test upstream: reaching in is fine here


def _meta_value(meta: Any, key: str) -> Any:
    if meta is None:
        return None
    if isinstance(meta, dict):
        return meta.get(key)
    extra = getattr(meta, "model_extra", None) or {}
    if key in extra:
        return extra[key]
    try:
        return meta.model_dump(by_alias=True).get(key)
    except Exception:
        return None


def build(args: argparse.Namespace) -> MCPServer:
    mcp = MCPServer(name=args.name, version="1.0.0")

    @mcp.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Sleep for `seconds`, reporting progress each step.")
    async def slow(seconds: float, ctx: Context, steps: int = 4) -> str:
        import asyncio

        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1} of {steps}")
            await asyncio.sleep(seconds / steps)
        return f"slept {seconds}"

    @mcp.tool(description="Send an info log message, then return.")
    async def log(text: str, ctx: Context) -> str:
        await ctx.info(text)
        return "logged"

    @mcp.tool(description="Ask the client's model through ctx.session.create_message.")
    async def sample(prompt: str, ctx: Context) -> str:
        reply = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=50,
            related_request_id=ctx.request_id,
        )
        return f"model said: {getattr(reply.content, 'text', reply.content)}"

    @mcp.tool(description="Ask the user through ctx.session.elicit_form.")
    async def ask(question: str, ctx: Context) -> str:
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
        got = await ctx.session.elicit_form(question, schema, related_request_id=ctx.request_id)
        if got.action != "accept":
            return f"user {got.action}"
        return f"user answered: {(got.content or {}).get('answer')}"

    @mcp.tool(description="List the client's roots through ctx.session.list_roots.")
    async def roots(ctx: Context) -> str:
        listed = await ctx.session.list_roots()
        return json.dumps([str(r.uri) for r in listed.roots])

    @mcp.tool(description="A tool whose `region` argument is mirrored into the Mcp-Param-Region header.")
    def regional(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str) -> str:
        return f"{region}: {text}"

    @mcp.tool(description="Add a tool named `name` without sending any list_changed notification.")
    def add_tool_quietly(name: str) -> str:
        def extra(text: str = "") -> str:
            return f"{name}: {text}"

        mcp.add_tool(extra, name=name, description=f"added quietly: {name}")
        return f"added {name}"

    @mcp.tool(description="Send tools/list_changed although nothing changed.")
    async def notify_unchanged(ctx: Context) -> str:
        try:
            await ctx.session.send_tool_list_changed()  # session era: the standalone GET stream
        except Exception:
            pass
        try:
            await ctx.notify_tools_changed()  # 2026-07-28: subscriptions/listen streams
        except Exception:
            pass
        return "notified"

    @mcp.tool(description="The log level this request was given (setLevel per connection, or _meta).")
    def log_level(ctx: Context) -> str:
        version = ctx.protocol_version
        if version == "2026-07-28":
            level = _meta_value(ctx.request_context.meta, LOG_LEVEL_KEY)
        else:
            level = LEVELS.get(_connection_key(ctx.session))
        return json.dumps({"era": version, "level": level})

    @mcp.tool(description="The protocol version of this request and whether it came in a session.")
    def whoami(ctx: Context) -> str:
        sid = getattr(ctx.session._connection, "session_id", None)
        return json.dumps({"protocolVersion": ctx.protocol_version, "session": bool(sid)})

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        LEVELS[_connection_key(ctx.session)] = params.level
        return types.EmptyResult()

    mcp._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    return mcp


class SessionOnly:
    """ASGI middleware: answer like a pre-2026 server (no server/discover, no stateless requests)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        chunks = []
        more = True
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
        if method == "server/discover" or headers.get("mcp-protocol-version") == "2026-07-28":
            out = json.dumps({"jsonrpc": "2.0", "id": None,
                              "error": {"code": -32600, "message": "Bad Request: Missing session ID"}}).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
            await send({"type": "http.response.body", "body": out})
            return None
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
    ap.add_argument("--name", default="backchannel")
    ap.add_argument("--session-only", action="store_true")
    args = ap.parse_args()
    app: Any = build(args).streamable_http_app(host="127.0.0.1")
    if args.session_only:
        app = SessionOnly(app)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
