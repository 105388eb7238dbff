"""A fault-injecting MCP upstream for tests: raw Starlette + uvicorn, no SDK.

Speaks just enough of the session era (initialize, notifications, ping,
tools/list) to be started, then misbehaves on purpose per tool:

- ``ok``: a normal JSON answer.
- ``hang``: never answers (the connection stays open).
- ``http500``: HTTP 500 with a plain-text body.
- ``reset``: starts an SSE response, sends a progress event, then drops the
  connection mid-stream.
- ``badjson``: ``application/json`` whose body is not JSON.
- ``badframe``: an SSE response whose ``message`` event is not JSON-RPC.
- ``oversized``: a valid answer of ``--oversized-bytes`` (default 8 MiB),
  streamed in chunks.
- ``unauthorized``: HTTP 401.
- ``drip``: an SSE response that sends one comment byte every 0.2 s, forever.
- ``leak_error``, ``leak_500``, ``leak_result``, ``leak_log``: echo the request's
  ``Authorization`` header back (a careless server): in a JSON-RPC error (message
  and data), in an HTTP 500 carrying a JSON-RPC error, in an ``isError`` result,
  and in a log notification followed by a result.

Per path, every request: ``/500/mcp`` answers 500, ``/401/mcp`` answers 401,
``/403/mcp`` answers 403, ``/leakstart/mcp`` answers 500 with the request's
``Authorization`` header in its JSON-RPC error, ``/hang/mcp`` never answers, ``/badjson/mcp`` answers
invalid JSON, ``/hangping/mcp`` never answers ``ping``, ``/slowping/mcp`` answers it after 0.3 s, ``/redirect-same/mcp``
redirects (307) to ``/mcp``, ``/redirect-other/mcp`` to the same port on
``localhost`` (another origin). ``/mcp`` behaves per tool as above. ``server/discover`` is
answered like a pre-2026 server (400) unless ``--discover`` is given.

Test code only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

TOOLS = ["ok", "hang", "http500", "reset", "badjson", "badframe", "oversized", "unauthorized", "drip",
         "leak_error", "leak_500", "leak_result", "leak_log"]
ARGS: argparse.Namespace


def _tool(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"fault: {name}", "inputSchema": {"type": "object", "properties": {}}}


def _reply(id_: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)


async def mcp_endpoint(request: Request) -> Response:
    fault = request.path_params.get("fault")
    if fault == "500":
        return PlainTextResponse("internal error (injected)", status_code=500)
    if fault == "401":
        return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"www-authenticate": "Bearer"})
    if fault == "403":
        return JSONResponse({"error": "forbidden"}, status_code=403)
    seen = request.headers.get("authorization", "")
    if fault == "leakstart":
        return JSONResponse({"jsonrpc": "2.0", "id": None,
                             "error": {"code": -32000, "message": f"cannot start: credential {seen!r} is not valid here"}},
                            status_code=500)
    if fault == "hang":
        await _forever()
    if fault == "redirect-same":
        return Response(status_code=307, headers={"location": "/mcp"})
    if fault == "redirect-other":
        return Response(status_code=307, headers={"location": f"http://localhost:{request.url.port}/mcp"})
    if request.method == "GET":
        return PlainTextResponse("no GET stream here", status_code=405)
    if request.method == "DELETE":
        return Response(status_code=204)
    if fault == "badjson":
        return Response(b"{this is not json", media_type="application/json")
    try:
        msg = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}, status_code=400)
    method = msg.get("method")
    id_ = msg.get("id")
    if "id" not in msg:
        return Response(status_code=202)
    if method == "server/discover" and not ARGS.discover:
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Bad Request: Missing session ID"}}, status_code=400)
    if method == "initialize":
        result = {
            "protocolVersion": ARGS.protocol_version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "faulty", "version": "0.0.1"},
        }
        return JSONResponse(_reply(id_, result), headers={"mcp-session-id": uuid.uuid4().hex})
    if method == "server/discover":
        result = {
            "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "faulty", "version": "0.0.1"},
            "resultType": "complete",
        }
        return JSONResponse(_reply(id_, result))
    if method == "ping" and fault == "hangping":
        await _forever()
    if method == "ping" and fault == "slowping":
        await asyncio.sleep(0.3)
    if method == "ping":
        return JSONResponse(_reply(id_, {}))
    if method == "tools/list":
        return JSONResponse(_reply(id_, {"tools": [_tool(t) for t in TOOLS]}))
    if method != "tools/call":
        return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": f"Method not found: {method}"}})
    name = (msg.get("params") or {}).get("name")
    ok = _reply(id_, {"content": [{"type": "text", "text": "ok"}], "isError": False})
    if name == "ok":
        return JSONResponse(ok)
    if name == "hang":
        await _forever()
    if name == "leak_error":
        return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {
            "code": -32001, "message": f"token rejected: {seen}", "data": {"received": seen, "hint": [seen]}}})
    if name == "leak_500":
        return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32603, "message": f"crashed on {seen}"}},
                            status_code=500)
    if name == "leak_result":
        return JSONResponse(_reply(id_, {"content": [{"type": "text", "text": f"you sent {seen}"}], "isError": True}))
    if name == "leak_log":
        async def leak_log() -> AsyncIterator[bytes]:
            note = {"jsonrpc": "2.0", "method": "notifications/message",
                    "params": {"level": "info", "logger": seen, "data": {"header": seen}}}
            yield b"event: message\ndata: " + json.dumps(note).encode() + b"\n\n"
            done = _reply(id_, {"content": [{"type": "text", "text": "logged"}], "structuredContent": {"auth": seen}})
            yield b"event: message\ndata: " + json.dumps(done).encode() + b"\n\n"
        return StreamingResponse(leak_log(), media_type="text/event-stream")
    if name == "http500":
        return PlainTextResponse("internal error (injected)", status_code=500)
    if name == "unauthorized":
        return JSONResponse({"error": "invalid_token"}, status_code=401)
    if name == "badjson":
        return Response(b"{\"jsonrpc\": \"2.0\", \"id\": " + json.dumps(id_).encode() + b", \"result\": {oops", media_type="application/json")
    if name == "badframe":
        return Response(b"event: message\ndata: not json at all\n\n", media_type="text/event-stream")
    if name == "reset":
        async def reset() -> AsyncIterator[bytes]:
            note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "about to reset"}}
            yield b"event: message\ndata: " + json.dumps(note).encode() + b"\n\n"
            await asyncio.sleep(0.05)
            raise RuntimeError("injected reset mid-stream")
        return StreamingResponse(reset(), media_type="text/event-stream")
    if name == "drip":
        async def drip() -> AsyncIterator[bytes]:
            while True:
                yield b":"
                await asyncio.sleep(0.2)
        return StreamingResponse(drip(), media_type="text/event-stream")
    if name == "oversized":
        async def huge() -> AsyncIterator[bytes]:
            head = b"{\"jsonrpc\": \"2.0\", \"id\": " + json.dumps(id_).encode() + b", \"result\": {\"content\": [{\"type\": \"text\", \"text\": \""
            yield head
            left = ARGS.oversized_bytes
            chunk = b"x" * 65536
            while left > 0:
                yield chunk[: min(left, len(chunk))]
                left -= len(chunk)
            yield b"\"}]}}"
        return StreamingResponse(huge(), media_type="application/json")
    return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32602, "message": f"Unknown tool: {name}"}})


app = Starlette(
    routes=[
        Route("/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/{fault}/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"]),
    ]
)


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--discover", action="store_true", help="answer server/discover (stateless era)")
    ap.add_argument("--protocol-version", default="2025-11-25")
    ap.add_argument("--oversized-bytes", type=int, default=8 * 1024 * 1024)
    ARGS = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=ARGS.port, log_level="critical")


if __name__ == "__main__":
    main()
