"""A real MCP upstream for tests, written with the official SDK's ``MCPServer``.

Serves both protocol eras on one app at ``/mcp`` (the SDK routes by the
``MCP-Protocol-Version`` header): the session era (initialize, Mcp-Session-Id,
GET stream) and the stateless era (server/discover, ``_meta`` envelope,
subscriptions/listen, input-required results).

Offers: tools ``echo``, ``add``, ``slow`` (progress each step), ``sample``
(sampling), ``ask`` (elicitation), ``roots`` (roots/list), ``log`` (a log
message), ``add_tool`` (adds a tool and announces list_changed), ``stats``
(what this upstream has seen: handshakes, cancellations, auth headers);
static resources ``test://static-text`` and ``test://info``, a template
``test://items/{item_id}``, a prompt ``greet(name, style)`` and completions.

Flags: ``--port``, ``--name`` (serverInfo name), ``--tools-prefix`` (so two
instances differ), ``--many-tools N`` (extra tools ``bulk_000``..), ``--long-names``,
``--page-size N`` (paginate list results with nextCursor), ``--session-only``
(answer ``server/discover`` like a pre-2026 server: 400 without a session),
``--stateless-only`` (answer ``initialize`` and session-era requests like a
2026-07-28-only server: 400, -32022 with the supported versions),
``--require-header 'Name: value'`` (401 without it; repeatable).

Test code only: never imported by the product.
"""



import argparse
import asyncio
import json
from typing import Annotated, Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Elicit, ListRoots, Resolve, Sample
from mcp_types import (
    Completion,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    SamplingMessage,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel

STATS: dict[str, Any] = {
    "initialize": 0,
    "discover": 0,
    "cancelled_tools": 0,
    "cancel_notifications": 0,
    "methods": {},
    "authorization": [],
    "headers": {},
}


def build(args: argparse.Namespace) -> MCPServer:
    p = args.tools_prefix
    mcp = MCPServer(name=args.name, version="1.0.0", instructions=f"test upstream {args.name}")

    @mcp.tool(name=f"{p}echo", description="Echo the text back.", annotations=ToolAnnotations(readOnlyHint=True))
    def echo(text: str) -> str:
        return text

    @mcp.tool(name=f"{p}add", description="Add two integers.", annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True))
    def add(a: int, b: int) -> int:
        return a + b

    @mcp.tool(name=f"{p}slow", description="Sleep for `seconds`, reporting progress each step.")
    async def slow(seconds: float, ctx: Context, steps: int = 4) -> str:
        try:
            for i in range(steps):
                await ctx.report_progress(i + 1, steps, f"step {i + 1} of {steps}")
                await asyncio.sleep(seconds / steps)
        except asyncio.CancelledError:
            STATS["cancelled_tools"] += 1
            raise
        return f"slept {seconds}"

    async def _sample(prompt: str) -> Sample:
        return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=50)

    @mcp.tool(name=f"{p}sample", description="Ask the client's model (sampling/createMessage).")
    async def sample(prompt: str, reply: Annotated[Any, Resolve(_sample)]) -> str:
        content = reply.content
        text = getattr(content, "text", None) or str(content)
        return f"model said: {text}"

    class Answer(BaseModel):
        answer: str

    async def _ask(question: str) -> Elicit[Answer]:
        return Elicit(question, Answer)

    @mcp.tool(name=f"{p}ask", description="Ask the user a question (elicitation/create).")
    async def ask(question: str, answer: Annotated[Answer, Resolve(_ask)]) -> str:
        return f"user answered: {answer.answer}"

    async def _roots() -> ListRoots:
        return ListRoots()

    @mcp.tool(name=f"{p}roots", description="List the client's roots (roots/list).")
    async def roots(listed: Annotated[Any, Resolve(_roots)]) -> str:
        return json.dumps([str(r.uri) for r in listed.roots])

    @mcp.tool(name=f"{p}log", description="Send a log message, then return.")
    async def log(text: str, ctx: Context) -> str:
        await ctx.info(text)
        return "logged"

    @mcp.tool(name=f"{p}big", description="Return a text of `size` bytes.")
    def big(size: int) -> str:
        return "x" * size

    @mcp.tool(name=f"{p}fail", description="A tool that fails (isError result).")
    def fail(message: str = "boom") -> str:
        raise ValueError(message)

    @mcp.tool(name=f"{p}add_tool", description="Add a tool named `name` and announce tools list_changed.")
    async def add_tool(name: str, ctx: Context) -> str:
        def extra(text: str = "") -> str:
            return f"{name}: {text}"

        mcp.add_tool(extra, name=name, description=f"added at runtime: {name}")
        try:
            await ctx.session.send_tool_list_changed()
        except Exception:  # stateless era: no standalone stream
            pass
        try:
            await ctx.notify_tools_changed()
        except Exception:
            pass
        return f"added {name}"

    @mcp.tool(name=f"{p}stats", description="What this upstream has seen.", annotations=ToolAnnotations(readOnlyHint=True))
    def stats() -> str:
        return json.dumps(STATS)

    for i in range(args.many_tools):
        name = f"{p}bulk_{i:03d}"
        if args.long_names:
            name = (name + "_" + "x" * 120)[:128]

        def bulk(i: int = i) -> str:
            return f"bulk {i}"

        mcp.add_tool(bulk, name=name, description=f"bulk tool {i}")

    @mcp.resource("test://static-text", name="static-text", description="A static text.", mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://info", name="info", mime_type="application/json")
    def info() -> str:
        return json.dumps({"server": args.name})

    @mcp.resource("test://items/{item_id}", name="item", description="One item by id.")
    def item(item_id: str) -> str:
        return f"item {item_id}"

    @mcp.prompt(name=f"{p}greet", description="Greet someone.")
    def greet(name: str, style: str = "friendly") -> str:
        return f"Please greet {name} in a {style} way."

    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        options = ["friendly", "formal", "pirate"] if argument.name == "style" else ["alice", "bob"]
        return Completion(values=[o for o in options if o.startswith(argument.value or "")])

    if args.page_size:
        _paginate(mcp, args.page_size)
    return mcp


def _paginate(mcp: MCPServer, size: int) -> None:
    """Replace the list handlers with ones that return pages of ``size``."""

    def page(items: list[Any], cursor: str | None) -> tuple[list[Any], str | None]:
        start = int(cursor or 0)
        nxt = start + size
        return items[start:nxt], (str(nxt) if nxt < len(items) else None)

    async def tools(ctx: Any, params: PaginatedRequestParams) -> ListToolsResult:
        items, nxt = page(await mcp.list_tools(), params.cursor)
        return ListToolsResult(tools=items, next_cursor=nxt)

    async def resources(ctx: Any, params: PaginatedRequestParams) -> ListResourcesResult:
        items, nxt = page(await mcp.list_resources(), params.cursor)
        return ListResourcesResult(resources=items, next_cursor=nxt)

    async def templates(ctx: Any, params: PaginatedRequestParams) -> ListResourceTemplatesResult:
        items, nxt = page(await mcp.list_resource_templates(), params.cursor)
        return ListResourceTemplatesResult(resource_templates=items, next_cursor=nxt)

    async def prompts(ctx: Any, params: PaginatedRequestParams) -> ListPromptsResult:
        items, nxt = page(await mcp.list_prompts(), params.cursor)
        return ListPromptsResult(prompts=items, next_cursor=nxt)

    low = mcp._lowlevel_server  # test upstream: reaching in is fine here
    low.add_request_handler("tools/list", PaginatedRequestParams, tools)
    low.add_request_handler("resources/list", PaginatedRequestParams, resources)
    low.add_request_handler("resources/templates/list", PaginatedRequestParams, templates)
    low.add_request_handler("prompts/list", PaginatedRequestParams, prompts)


class Observe:
    """ASGI middleware: count methods, check required headers, play a pre-2026 server."""

    def __init__(self, app: Any, args: argparse.Namespace) -> None:
        self.app = app
        self.required = []
        for h in args.require_header or []:
            name, _, value = h.partition(":")
            self.required.append((name.strip().lower(), value.strip()))
        self.session_only = args.session_only
        self.stateless_only = getattr(args, "stateless_only", False)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if "authorization" in headers:
            STATS["authorization"].append(headers["authorization"])
        for name in ("x-api-key", "x-team-token"):
            if name in headers:
                STATS["headers"][name] = headers[name]
        for name, value in self.required:
            if headers.get(name) != value:
                return await _send_json(send, 401, {"error": "unauthorized"})
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
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
        if method:
            STATS["methods"][method] = STATS["methods"].get(method, 0) + 1
            if method == "initialize":
                STATS["initialize"] += 1
            elif method == "server/discover":
                STATS["discover"] += 1
            elif method == "notifications/cancelled":
                STATS["cancel_notifications"] += 1
        if self.session_only and (method == "server/discover" or headers.get("mcp-protocol-version") == "2026-07-28"):
            return await _send_json(
                send, 400, {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Bad Request: Missing session ID"}}
            )
        if self.stateless_only and (method == "initialize" or headers.get("mcp-protocol-version", "2026-07-28") != "2026-07-28"):
            return await _send_json(send, 400, {"jsonrpc": "2.0", "id": data.get("id") if isinstance(data, dict) else None,
                                                "error": {"code": -32022, "message": "Unsupported protocol version",
                                                          "data": {"supported": ["2026-07-28"]}}})
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _send_json(send: Any, status: int, obj: Any) -> None:
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="echo")
    ap.add_argument("--tools-prefix", default="")
    ap.add_argument("--many-tools", type=int, default=0)
    ap.add_argument("--long-names", action="store_true")
    ap.add_argument("--page-size", type=int, default=0)
    ap.add_argument("--session-only", action="store_true")
    ap.add_argument("--stateless-only", action="store_true")
    ap.add_argument("--require-header", action="append")
    args = ap.parse_args()
    mcp = build(args)
    app = Observe(mcp.streamable_http_app(host="127.0.0.1"), args)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
