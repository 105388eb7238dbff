"""A minimal, fast, stateless Streamable-HTTP echo MCP server for the benchmarks.

Owns one bare ASGI app (no framework, no SDK) that answers ``initialize``,
``server/discover``, ``ping``, ``tools/list`` and ``tools/call`` with a single
``application/json`` reply, in both protocol eras, so that in a benchmark the
cost of whatever sits in front of it dominates. Must not: keep per-client
state (no sessions; ``initialize`` assigns no ``Mcp-Session-Id``), stream, or
do any work beyond decoding the request and encoding the answer.

Endpoints: ``/mcp`` serves one tool, ``echo``; with ``--services N`` the paths
``/s0/mcp`` ... ``/s{N-1}/mcp`` each serve ``--tools T`` tools (``t0`` ...),
so one process can stand in for N distinct upstream services. With ``--connectors`` the paths
``/c/<service>/mcp`` serve the generated connector-shaped catalog of ``bench/connectors.py`` (100
services named after products, 50 tools each, with real descriptions and parameters).

    python bench/upstream_echo.py --port 8765 [--services 100 --tools 50] [--connectors]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

SESSION_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
STATELESS_VERSION = "2026-07-28"
META_PROTOCOL = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO = {"name": "bench-echo", "version": "1.0"}
CAPABILITIES = {"tools": {}}
JSON_HEADERS = [(b"content-type", b"application/json")]
ECHO_TOOL = {
    "name": "echo",
    "description": "Returns its text argument.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "annotations": {"readOnlyHint": True},
}


def tool_set(count: int) -> list[dict[str, Any]]:
    return [{
        "name": f"t{i}",
        "description": f"Benchmark tool number {i}; echoes its arguments.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
    } for i in range(count)]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class EchoApp:
    def __init__(self, services: int = 0, tools: int = 50, connectors: bool = False) -> None:
        self.tools: dict[str, list[dict[str, Any]]] = {"/mcp": [ECHO_TOOL]}
        many = tool_set(tools)
        for i in range(services):
            self.tools[f"/s{i}/mcp"] = many
        if connectors:
            from connectors import connector_catalog

            for name, listed in connector_catalog().items():
                self.tools[f"/c/{name}/mcp"] = listed
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        tools = self.tools.get(scope["path"])
        if tools is None:
            return await _reply(send, 404, b'{"error":"not found"}')
        if scope["method"] != "POST":
            return await _reply(send, 405, b"", [(b"allow", b"POST")])
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        try:
            req = json.loads(b"".join(chunks))
        except ValueError:
            return await _reply(send, 400, _dumps({"jsonrpc": "2.0", "id": None,
                                                   "error": {"code": -32700, "message": "Parse error"}}))
        if not isinstance(req, dict) or "method" not in req:
            return await _reply(send, 400, _dumps({"jsonrpc": "2.0", "id": None,
                                                   "error": {"code": -32600, "message": "Invalid request"}}))
        if "id" not in req:  # a notification
            return await _reply(send, 202, b"")
        method, params = req["method"], req.get("params") or {}
        meta = params.get("_meta") if isinstance(params, dict) else None
        stateless = isinstance(meta, dict) and META_PROTOCOL in meta
        result = self.answer(method, params, tools, stateless)
        if result is None:
            body = {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": f"Method not found: {method}"}}
            return await _reply(send, 404 if stateless else 200, _dumps(body))
        if stateless:
            result["resultType"] = "complete"
        await _reply(send, 200, _dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}))

    def answer(self, method: str, params: dict[str, Any], tools: list[dict[str, Any]], stateless: bool) -> Any:
        if method == "tools/call":
            self.calls += 1
            args = params.get("arguments") or {}
            text = args.get("text") if isinstance(args.get("text"), str) else json.dumps(args)
            return {"content": [{"type": "text", "text": text}], "isError": False}
        if method == "tools/list":
            return {"tools": tools}
        if method == "ping":
            return {}
        if method == "initialize" and not stateless:
            asked = params.get("protocolVersion")
            version = asked if asked in SESSION_VERSIONS else SESSION_VERSIONS[0]
            return {"protocolVersion": version, "capabilities": CAPABILITIES, "serverInfo": SERVER_INFO}
        if method == "server/discover":
            return {"supportedVersions": [STATELESS_VERSION, *SESSION_VERSIONS], "capabilities": CAPABILITIES,
                    "_meta": {"io.modelcontextprotocol/serverInfo": SERVER_INFO}}
        return None


async def _reply(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers += JSON_HEADERS
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--services", type=int, default=0, help="also serve /s0/mcp ... /s{N-1}/mcp")
    ap.add_argument("--tools", type=int, default=50, help="tools per /sN/mcp path")
    ap.add_argument("--connectors", action="store_true", help="also serve bench/connectors.py's catalog at /c/NAME/mcp")
    a = ap.parse_args(argv)
    uvicorn.run(EchoApp(a.services, a.tools, a.connectors), host="127.0.0.1", port=a.port, log_level="warning",
                access_log=False, server_header=False, date_header=False, lifespan="on")


if __name__ == "__main__":
    main()
