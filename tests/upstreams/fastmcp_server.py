"""A real MCP upstream built with FastMCP (PyPI ``fastmcp`` 4.2.x), as its users write them.

Served over streamable HTTP at ``/mcp`` (default) or, with ``--sse``, over the legacy
HTTP+SSE transport (``GET /sse`` then POSTs to ``/messages/``). FastMCP's ``Context`` has no
``sample()``: the back-channel tools use the session API (``ctx.session``).

Tools: ``echo(text)``; ``sample(prompt)`` -> ``"model said: <text>"``; ``ask(question)`` ->
``"user answered: <answer>"`` (or ``"user <action>"``); ``roots()`` -> JSON list of root URIs.
Flags: ``--port``, ``--name``, ``--sse``. Test code only.
"""

import argparse
import json

import mcp_types as types
from fastmcp import Context, FastMCP


def build(name: str) -> FastMCP:
    mcp = FastMCP(name)

    @mcp.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

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

    return mcp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="fastmcp-upstream")
    ap.add_argument("--sse", action="store_true")
    args = ap.parse_args()
    build(args.name).run(transport="sse" if args.sse else "http", host="127.0.0.1", port=args.port,
                         show_banner=False, log_level="warning")


if __name__ == "__main__":
    main()
