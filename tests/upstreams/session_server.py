"""A session-era MCP upstream that behaves like real servers around sessions and streams:
raw Starlette + uvicorn, no SDK.

- Sessions live in memory. A request whose ``Mcp-Session-Id`` is unknown or missing (other than
  ``initialize``) is answered like the TypeScript reference server (``server-everything``):
  HTTP 400 with JSON-RPC -32000 "Bad Request: No valid session ID provided" (``--stale 404``: the
  spec's 404 instead). A restart on the same port (``Upstream.restart``) forgets every session.
- ``--forgetful``: every session is forgotten right after its handshake (a server that keeps losing it).
- ``--ping ok|error|missing``: ping answered normally, with -32603, or with -32601 (no ping).
- Tools: ``echo`` (``text``); ``stats`` (JSON: handshakes, executions per tool, resumptions);
  ``bad400`` (HTTP 400 with -32602 about its arguments: a 400 that is not about the session);
  ``resumable`` (``drop``: "reset" or "close", ``drops``: how many times): answers over SSE with a
  priming event (an id, ``retry: 30``, empty data), a log notification with an id, then drops the
  connection ("reset": closed mid-body; "close": the response ends cleanly without the answer, the
  2025-11-25 polling pattern); a GET with ``Last-Event-ID`` replays what followed, after dropping
  ``drops - 1`` more times; ``noids``: the same events without ids, then a reset (not resumable).
- GET without ``Last-Event-ID``: 405 (no standalone stream).
- The old HTTP+SSE transport at ``/sse`` (``endpoint`` event, POSTs to ``/messages?sessionId=...``),
  tools ``echo``, ``stats`` and ``forget`` (the server forgets this SSE session, its stream staying
  open); a POST for an unknown session is answered like the TypeScript SDK's SSE servers: HTTP 400
  "No transport found for sessionId".

Run: ``python tests/upstreams/session_server.py --port P [--stale 400|404] [--forgetful] [--ping ...]``.
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

ARGS: argparse.Namespace
SESSIONS: set[str] = set()
STATS: dict[str, Any] = {"initialize": 0, "executed": {}, "resumes": 0}
STREAMS: dict[str, dict[str, Any]] = {}  # stream id -> {"events": [(n, message)], "drops_left": int, "drop": str}
TOOLS = ["echo", "stats", "bad400", "resumable", "noids"]


def _reply(id_: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def _text(id_: Any, text: str) -> dict[str, Any]:
    return _reply(id_, {"content": [{"type": "text", "text": text}], "isError": False})


def _frame(message: dict[str, Any] | None, event_id: str | None = None, retry: int | None = None) -> bytes:
    out = b""
    if event_id is not None:
        out += f"id: {event_id}\n".encode()
    if retry is not None:
        out += f"retry: {retry}\n".encode()
    if message is None:
        return out + b"data:\n\n"
    return out + b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


def _no_session(id_: Any) -> Response:
    if ARGS.stale == "404":
        return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32001, "message": "Session not found"}},
                            status_code=404)
    # What @modelcontextprotocol/server-everything (streamableHttp) answers, id included.
    return JSONResponse({"jsonrpc": "2.0", "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"},
                         "id": id_}, status_code=400)


async def _dropped(frames: list[bytes], drop: str) -> AsyncIterator[bytes]:
    for f in frames:
        yield f
    await asyncio.sleep(0.05)
    if drop == "reset":
        raise RuntimeError("injected: the connection drops mid-stream")


def _resumable(id_: Any, args: dict[str, Any], with_ids: bool) -> Response:
    sid = uuid.uuid4().hex[:8]
    note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "before the drop"}}
    result = _text(id_, "resumed answer")
    drop = str(args.get("drop", "reset")) if with_ids else "reset"
    if not with_ids:
        return StreamingResponse(_dropped([_frame(note)], drop), media_type="text/event-stream")
    STREAMS[sid] = {"events": [(1, note), (2, result)], "drops_left": int(args.get("drops", 1)) - 1, "drop": drop}
    frames = [_frame(None, f"{sid}:0", retry=30), _frame(note, f"{sid}:1")]
    return StreamingResponse(_dropped(frames, drop), media_type="text/event-stream")


async def _resume(request: Request, last: str) -> Response:
    sid, _, n = last.partition(":")
    stream = STREAMS.get(sid)
    if stream is None or not n.isdigit():
        return PlainTextResponse(f"unknown event id {last}", status_code=404)
    STATS["resumes"] += 1
    if stream["drops_left"] > 0:
        stream["drops_left"] -= 1
        return StreamingResponse(_dropped([_frame(None, last, retry=30)], stream["drop"]), media_type="text/event-stream")
    frames = [_frame(m, f"{sid}:{i}") for i, m in stream["events"] if i > int(n)]
    return StreamingResponse(iter(frames), media_type="text/event-stream")


async def mcp_endpoint(request: Request) -> Response:
    session = request.headers.get("mcp-session-id")
    if request.method == "GET":
        if session not in SESSIONS:
            return PlainTextResponse("Invalid or missing session ID", status_code=400)
        last = request.headers.get("last-event-id")
        if not last:
            return PlainTextResponse("no GET stream here", status_code=405)
        return await _resume(request, last)
    if request.method == "DELETE":
        SESSIONS.discard(session or "")
        return Response(status_code=200)
    try:
        msg = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}, status_code=400)
    method, id_ = msg.get("method"), msg.get("id")
    if method == "initialize" and not session:
        STATS["initialize"] += 1
        new = uuid.uuid4().hex
        SESSIONS.add(new)
        result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}, "logging": {}},
                  "serverInfo": {"name": "session-server", "version": "0.0.1"}}
        return JSONResponse(_reply(id_, result), headers={"mcp-session-id": new})
    if session not in SESSIONS:
        return _no_session(id_)
    if "id" not in msg:
        if method == "notifications/initialized" and ARGS.forgetful:
            SESSIONS.discard(session or "")
        return Response(status_code=202)
    if method == "ping":
        if ARGS.ping == "error":
            return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32603, "message": "ping is broken here"}})
        if ARGS.ping == "missing":
            return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": "Method not found"}})
        return JSONResponse(_reply(id_, {}))
    if method == "tools/list":
        tools = [{"name": t, "inputSchema": {"type": "object"}} for t in TOOLS]
        return JSONResponse(_reply(id_, {"tools": tools}))
    if method != "tools/call":
        return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": f"Method not found: {method}"}})
    params = msg.get("params") or {}
    name, args = params.get("name"), params.get("arguments") or {}
    executed = STATS["executed"]
    executed[name] = executed.get(name, 0) + 1
    if name == "echo":
        return JSONResponse(_text(id_, str(args.get("text", ""))))
    if name == "stats":
        return JSONResponse(_text(id_, json.dumps(STATS)))
    if name == "bad400":
        return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32602, "message": "Invalid params: count must be a number"}},
                            status_code=400)
    if name in ("resumable", "noids"):
        return _resumable(id_, args, with_ids=name == "resumable")
    return JSONResponse({"jsonrpc": "2.0", "id": id_, "error": {"code": -32602, "message": f"Unknown tool: {name}"}})


LEGACY: dict[str, asyncio.Queue[dict[str, Any]]] = {}


async def legacy_stream(request: Request) -> Response:
    sid = uuid.uuid4().hex
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    LEGACY[sid] = queue

    async def events() -> AsyncIterator[bytes]:
        yield f"event: endpoint\ndata: /messages?sessionId={sid}\n\n".encode()
        while True:
            yield _frame(await queue.get())

    return StreamingResponse(events(), media_type="text/event-stream")


async def legacy_post(request: Request) -> Response:
    sid = request.query_params.get("sessionId", "")
    queue = LEGACY.get(sid)
    if queue is None:
        return PlainTextResponse("No transport found for sessionId", status_code=400)
    msg = json.loads(await request.body())
    method, id_ = msg.get("method"), msg.get("id")
    if "id" not in msg or "method" not in msg:
        return Response("Accepted", status_code=202)
    if method == "initialize":
        STATS["initialize"] += 1
        out = _reply(id_, {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                           "serverInfo": {"name": "session-server-sse", "version": "0.0.1"}})
    elif method == "ping":
        out = _reply(id_, {})
    elif method == "tools/list":
        out = _reply(id_, {"tools": [{"name": t, "inputSchema": {"type": "object"}} for t in ("echo", "stats", "forget")]})
    elif method == "tools/call":
        params = msg.get("params") or {}
        name = params.get("name")
        STATS["executed"][name] = STATS["executed"].get(name, 0) + 1
        if name == "forget":
            LEGACY.pop(sid, None)
        text = json.dumps(STATS) if name == "stats" else str((params.get("arguments") or {}).get("text", "forgotten"))
        out = _text(id_, text)
    else:
        out = {"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": f"Method not found: {method}"}}
    await queue.put(out)
    return Response("Accepted", status_code=202)


app = Starlette(routes=[
    Route("/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"]),
    Route("/sse", legacy_stream, methods=["GET"]),
    Route("/messages", legacy_post, methods=["POST"]),
])


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--stale", choices=["400", "404"], default="400")
    ap.add_argument("--forgetful", action="store_true")
    ap.add_argument("--ping", choices=["ok", "error", "missing"], default="ok")
    ARGS = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=ARGS.port, log_level="critical")


if __name__ == "__main__":
    main()
