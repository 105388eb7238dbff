"""A real MCP upstream served over stdio (newline-delimited JSON-RPC on stdin/stdout), written
with the official SDK's ``MCPServer`` (``run(transport="stdio")``), as the gateway's stdio
services run it: ``python tests/upstreams/stdio_server.py [flags]``.

The SDK's stdio transport points fd 1 at stderr while it serves (stray prints miss the wire)
and writes the wire through a private duplicate; this script keeps its own duplicate of the
wire (``WIRE``) for the misbehaviour that must reach the client's stdout.

Tools (the back-channel ones use the session API, ``ctx.session``, as third parties write them;
they work over the session era, which is what a stdio client negotiates with ``initialize``):
- ``echo(text)`` -> ``text``;
- ``environment()`` -> this process's whole environment as a JSON object;
- ``cwd()`` -> the working directory; ``pid()`` -> the process id (decimal text);
- ``slow(seconds, steps=4)`` -> ``"slept <seconds>"``, a progress notification each step;
- ``ask_sampling(prompt)`` -> the text of the client's ``sampling/createMessage`` answer;
- ``ask_elicitation(message)`` -> JSON ``{"action": ..., "content": ...}`` of ``elicitation/create``;
- ``roots()`` -> JSON list of the client's root URIs (``roots/list``);
- ``log(message)`` -> ``"logged"`` after an info ``notifications/message`` carrying ``message``;
- ``noisy()`` -> ``"noisy"`` after writing two non-JSON lines (``NOISE_LINES``) on the wire;
- ``endless()`` -> never answers: from then on the wire carries one line without end;
- ``crash()`` -> the process exits at once with status 7 (``os._exit``).
Resource ``stdio://info`` (JSON ``{"server": <name>, "pid": ...}``); prompt ``greet(name)``.

Flags:
- ``--name`` (serverInfo name, default ``stdio-upstream``);
- ``--session-only``: play a pre-2026 server (as the TypeScript reference servers are): no
  ``server/discover`` handler (-32601 Method not found), so a probing client falls back to
  ``initialize``; without it the SDK client's ``mode="auto"`` settles on 2026-07-28, where the
  back-channel tools fail ("no back-channel for server-initiated requests");
- ``--exit-at-once``: writes ``EXIT_LINE`` to stderr and exits with status 3 before reading anything;
- ``--noise``: writes ``NOISE_LINES`` on stdout before serving (``noisy()`` does it between messages);
- ``--ignore-sigterm``: SIGTERM is ignored and stdin EOF is too (it goes on running after the
  client closes its stdin, writing ``EOF_LINE`` to stderr): only SIGKILL ends it;
- ``--endless-line``: writes an endless line (no newline, ever) on stdout from the start and never
  serves (``endless()`` does the same in the middle of a session);
- ``--stderr-chatter``: writes ``chatter <n>`` to stderr every 100 ms.

Test code only: never imported by the product.
"""

import argparse
import os
import sys
import threading
import time
import warnings

EXIT_LINE = "fatal: missing configuration FOO"
EXIT_STATUS = 3
CRASH_STATUS = 7
NOISE_LINES = ("Server starting...", "not json: listening on stdio")
EOF_LINE = "stdin closed; staying alive"

WIRE: int = 1  # a duplicate of fd 1 taken before the SDK diverts fd 1 to stderr


def write_wire(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(WIRE, view):]


def start_endless_line() -> threading.Event:
    """Write ``x`` on the wire forever without a newline (until the pipe breaks); the event is
    set once the first chunk went out."""
    started = threading.Event()

    def run() -> None:
        chunk = b"x" * 65536
        try:
            while True:
                write_wire(chunk)
                started.set()
        except OSError:  # the reader closed the pipe
            started.set()

    threading.Thread(target=run, name="endless-line", daemon=True).start()
    return started


def start_stderr_chatter() -> None:
    def run() -> None:
        n = 0
        while True:
            n += 1
            try:
                os.write(2, f"chatter {n}\n".encode())
            except OSError:
                return
            time.sleep(0.1)

    threading.Thread(target=run, name="stderr-chatter", daemon=True).start()


def build(name: str):  # -> MCPServer (imported late: --exit-at-once exits before the SDK loads)
    import json

    import anyio
    import mcp_types as types
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context

    # The session-era features these tools use (sampling, logging) are deprecated as of 2026-07-28:
    # keep those warnings off stderr, which the tests read.
    warnings.filterwarnings("ignore", message=".*deprecated as of 2026-07-28")
    mcp = MCPServer(name=name, version="1.0.0", instructions=f"stdio test upstream {name}")

    @mcp.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="This process's whole environment, as a JSON object.")
    def environment() -> str:
        return json.dumps(dict(os.environ), sort_keys=True)

    @mcp.tool(description="This process's working directory.")
    def cwd() -> str:
        return os.getcwd()

    @mcp.tool(description="This process's id.")
    def pid() -> str:
        return str(os.getpid())

    @mcp.tool(description="Sleep for `seconds`, reporting progress each step.")
    async def slow(seconds: float, ctx: Context, steps: int = 4) -> str:
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1} of {steps}")
            await anyio.sleep(seconds / steps)
        return f"slept {seconds}"

    @mcp.tool(description="Ask the client's model (sampling/createMessage); returns its text.")
    async def ask_sampling(prompt: str, ctx: Context) -> str:
        reply = await ctx.session.create_message(
            [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=50,
            related_request_id=ctx.request_id,
        )
        return str(getattr(reply.content, "text", reply.content))

    @mcp.tool(description="Ask the user (elicitation/create); returns the action and content as JSON.")
    async def ask_elicitation(message: str, ctx: Context) -> str:
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
        got = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        return json.dumps({"action": got.action, "content": got.content})

    @mcp.tool(description="List the client's roots (roots/list); returns their URIs as JSON.")
    async def roots(ctx: Context) -> str:
        listed = await ctx.session.list_roots()
        return json.dumps([str(r.uri) for r in listed.roots])

    @mcp.tool(description="Send an info log message (notifications/message), then return.")
    async def log(message: str, ctx: Context) -> str:
        await ctx.info(message)
        return "logged"

    @mcp.tool(description="Write non-JSON lines on stdout, then return.")
    def noisy() -> str:
        write_wire("".join(line + "\n" for line in NOISE_LINES).encode())
        return "noisy"

    @mcp.tool(description="Never answer: write one endless line (no newline) on stdout.")
    async def endless() -> str:
        started = start_endless_line()
        await anyio.to_thread.run_sync(started.wait)
        await anyio.sleep_forever()
        return "unreachable"

    @mcp.tool(description="Exit the process at once with status 7.")
    def crash() -> str:
        os._exit(CRASH_STATUS)

    @mcp.resource("stdio://info", name="info", description="Who serves this.", mime_type="application/json")
    def info() -> str:
        return json.dumps({"server": name, "pid": os.getpid()})

    @mcp.prompt(description="Greet someone.")
    def greet(name: str) -> str:
        return f"Please greet {name}."

    return mcp


class WithoutDiscover:
    """The server's read stream less ``server/discover`` requests, each answered -32601 Method not
    found on the write stream, as a pre-2026 server answers. (Removing the SDK's handler is not
    enough: the SDK's era is chosen by the first request, and the probe's modern ``_meta`` would
    choose 2026-07-28 for the whole connection.)"""

    def __init__(self, inner, write) -> None:
        self.inner = inner
        self.write = write

    @property
    def last_context(self):
        return getattr(self.inner, "last_context", None)

    async def receive(self):
        import mcp_types as types
        from mcp.shared.message import SessionMessage

        while True:
            item = await self.inner.receive()
            msg = getattr(item, "message", None)
            if isinstance(msg, types.JSONRPCRequest) and msg.method == "server/discover":
                error = types.ErrorData(code=types.METHOD_NOT_FOUND, message="Method not found")
                await self.write.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=msg.id, error=error)))
                continue
            return item

    def __aiter__(self):
        return self

    async def __anext__(self):
        import anyio

        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


async def serve(mcp, session_only: bool) -> None:
    """``MCPServer.run_stdio_async``, with the ``--session-only`` filter when asked."""
    from mcp.server.stdio import stdio_server

    low = mcp._lowlevel_server  # test upstream: reaching in is fine here
    async with stdio_server() as (read, write):
        await low.run(WithoutDiscover(read, write) if session_only else read, write, low.create_initialization_options())


def main() -> None:
    global WIRE
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="stdio-upstream")
    ap.add_argument("--session-only", action="store_true")
    ap.add_argument("--exit-at-once", action="store_true")
    ap.add_argument("--noise", action="store_true")
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--endless-line", action="store_true")
    ap.add_argument("--stderr-chatter", action="store_true")
    args = ap.parse_args()

    if args.exit_at_once:
        sys.stderr.write(EXIT_LINE + "\n")
        sys.stderr.flush()
        sys.exit(EXIT_STATUS)
    if args.ignore_sigterm:
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.stderr_chatter:
        start_stderr_chatter()
    WIRE = os.dup(1)
    if args.noise:
        write_wire("".join(line + "\n" for line in NOISE_LINES).encode())
    if args.endless_line:  # never serves: the first line never ends
        chunk = b"x" * 65536
        try:
            while True:
                write_wire(chunk)
        except OSError:
            sys.exit(0)

    import anyio

    anyio.run(serve, build(args.name), args.session_only)

    if args.ignore_sigterm:
        sys.stderr.write(EOF_LINE + "\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
