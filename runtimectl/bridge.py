"""The stdio bridge behind ``runtimectl gateway serve --stdio``.

For clients that only speak stdio: newline-delimited JSON-RPC on stdin is
relayed to the daemon's ``/mcp`` over Streamable HTTP, and everything the
daemon sends (responses, notifications, server-to-client requests) is written
to stdout, one message per line. Many requests are in flight at once; the
session id and protocol version from ``initialize`` are carried on every later
request; stateless-era messages (``_meta`` protocol version) get their headers
from the message itself. When the daemon is unreachable, requests get
JSON-RPC error responses, never a crash. Header names, ``_meta`` keys, error
codes and the SSE decoder come from ``runtimed.protocol``.

Owns only the relaying (the command itself is ``runtimectl.commands.gateway``).
Must not interpret MCP beyond the headers it needs, must write nothing but
protocol messages on stdout (logs go to stderr), and must not import typer or
``runtimectl.cli``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx

from runtimed.protocol import headers as mcp_headers, jsonrpc, meta as mcp_meta
from runtimed.protocol.sse import SSEDecoder
from runtimed.protocol.types import JSON


def _log(msg: str) -> None:
    print(f"runtimectl bridge: {msg}", file=sys.stderr, flush=True)


class Bridge:
    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        # The token rides on every request as a client default header (POST, the GET stream, DELETE).
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), limits=httpx.Limits(max_connections=64),
                                      headers={"Authorization": f"Bearer {token}"} if token else None)
        self._out_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._get_stream: asyncio.Task[Any] | None = None
        # Set while no initialize is in flight: later lines wait for its session id.
        self._initialized = asyncio.Event()
        self._initialized.set()

    # -- output ----------------------------------------------------------
    async def write(self, message: JSON) -> None:
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        async with self._out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    async def error(self, msg_id: Any, code: int, message: str) -> None:
        if msg_id is None:
            return
        await self.write(jsonrpc.error_response(msg_id, code, message))

    # -- headers ---------------------------------------------------------
    def headers_for(self, message: JSON) -> dict[str, str]:
        h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        raw_params = message.get("params")
        params: JSON = raw_params if isinstance(raw_params, dict) else {}
        raw_meta = params.get("_meta")
        meta: JSON = raw_meta if isinstance(raw_meta, dict) else {}
        # A bare ``protocolVersion`` in ``_meta`` is accepted too (early drafts of the envelope).
        stateless_version = meta.get("protocolVersion") or meta.get(mcp_meta.PROTOCOL_VERSION)
        method = message.get("method")
        if stateless_version and method != "initialize":
            h[mcp_headers.PROTOCOL_VERSION] = str(stateless_version)
            if method:
                h[mcp_headers.METHOD] = method
                if method in ("tools/call", "prompts/get") and "name" in params:
                    h[mcp_headers.NAME] = str(params["name"])
                elif method == "resources/read" and "uri" in params:
                    h[mcp_headers.NAME] = str(params["uri"])
            return h
        if method == "server/discover":
            return h
        if self.session_id:
            h[mcp_headers.SESSION_ID] = self.session_id
        if self.protocol_version and method != "initialize":
            h[mcp_headers.PROTOCOL_VERSION] = self.protocol_version
        return h

    def _session_headers(self) -> dict[str, str]:
        """Session id and negotiated version, for the GET stream and the closing DELETE."""
        h = {mcp_headers.SESSION_ID: self.session_id or ""}
        if self.protocol_version:
            h[mcp_headers.PROTOCOL_VERSION] = self.protocol_version
        return h

    # -- relaying --------------------------------------------------------
    async def handle_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError as e:
            await self.write(jsonrpc.error_response(None, jsonrpc.PARSE_ERROR, f"parse error: {e}"))
            return
        if not isinstance(message, dict):
            await self.write(jsonrpc.error_response(None, jsonrpc.INVALID_REQUEST, "a message must be a JSON object"))
            return
        if message.get("method") == "initialize":
            self._initialized.clear()  # lines read after it wait until its answer (the session id) is in
        task = asyncio.create_task(self.forward(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def forward(self, message: JSON) -> None:
        msg_id = message.get("id")
        is_request = "method" in message and msg_id is not None
        initialize = message.get("method") == "initialize"
        if not initialize:
            await self._initialized.wait()
        try:
            async with self.http.stream("POST", self.endpoint, json=message, headers=self.headers_for(message)) as r:
                if message.get("method") == "initialize" and r.status_code == 200:
                    self.session_id = r.headers.get(mcp_headers.SESSION_ID_LC) or self.session_id
                if r.status_code == 202:
                    return
                ctype = r.headers.get("content-type", "")
                if r.status_code >= 400 and "json" not in ctype:
                    text = (await r.aread()).decode(errors="replace")[:500]
                    await self.error(msg_id, jsonrpc.SERVER_ERROR, f"daemon answered HTTP {r.status_code}: {text}")
                    return
                if "text/event-stream" in ctype:
                    await self._relay_sse(r)
                else:
                    body = await r.aread()
                    try:
                        reply = json.loads(body)
                    except ValueError:
                        await self.error(msg_id, jsonrpc.SERVER_ERROR, f"daemon answered HTTP {r.status_code} with non-JSON")
                        return
                    for m in reply if isinstance(reply, list) else [reply]:
                        if is_request and r.status_code >= 400 and isinstance(m, dict) and "error" in m \
                                and m.get("id") is None:
                            # The daemon's access check (401/403) answers before reading the request, so with
                            # id null: the client waits for its own id, so the error gets it.
                            m = {**m, "id": msg_id}
                        elif not is_request and isinstance(m, dict) and "error" in m and m.get("id") is None:
                            # A notification gets no answer (JSON-RPC): the refusal is said on stderr.
                            _log(f"the daemon refused {message.get('method')}: {(m.get('error') or {}).get('message')}")
                            continue
                        await self._seen(m)
                        await self.write(m)
        except httpx.ConnectError:
            if is_request:
                await self.error(msg_id, jsonrpc.SERVER_ERROR, f"runtimed is not reachable at {self.endpoint} (is it running?)")
            else:
                _log(f"dropped a message: runtimed is not reachable at {self.endpoint}")
        except httpx.HTTPError as e:
            if is_request:
                await self.error(msg_id, jsonrpc.SERVER_ERROR, f"lost the connection to runtimed: {type(e).__name__}")
        finally:
            if initialize:
                self._initialized.set()

    async def _seen(self, message: JSON) -> None:
        result = message.get("result") if isinstance(message, dict) else None
        if isinstance(result, dict) and "protocolVersion" in result and "capabilities" in result and self.protocol_version is None:
            self.protocol_version = result["protocolVersion"]
            if self.session_id and self._get_stream is None:
                self._get_stream = asyncio.create_task(self._listen())

    async def _relay_sse(self, r: httpx.Response) -> None:
        decoder = SSEDecoder()
        async for line in r.aiter_lines():
            event = decoder.feed_line(line)
            if event is None or not event.data:
                continue
            try:
                msg = json.loads(event.data)
            except ValueError:
                _log("skipped a malformed SSE event from the daemon")
            else:
                await self._seen(msg)
                await self.write(msg)

    async def _listen(self) -> None:
        """The session-era GET stream: server-initiated messages (list_changed...)."""
        headers = {"Accept": "text/event-stream", **self._session_headers()}
        try:
            async with self.http.stream("GET", self.endpoint, headers=headers) as r:
                if r.status_code != 200:
                    return
                await self._relay_sse(r)
        except httpx.HTTPError:
            return

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        if self._get_stream:
            self._get_stream.cancel()
        if self.session_id:
            try:
                await self.http.delete(self.endpoint, headers=self._session_headers(), timeout=2)
            except httpx.HTTPError:
                pass
        await self.http.aclose()


async def run_bridge(endpoint: str, token: str | None) -> None:
    bridge = Bridge(endpoint, token)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            await bridge.handle_line(line.decode("utf-8", errors="replace"))
    finally:
        await bridge.close()
