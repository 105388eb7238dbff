"""A raw-HTTP load generator for MCP Streamable HTTP endpoints, both eras.

Owns: building the exact request bytes for one MCP request in the session era
(``initialize`` first, then ``Mcp-Session-Id`` + ``MCP-Protocol-Version``) or
the stateless era 2026-07-28 (``params._meta`` envelope and the
``MCP-Protocol-Version`` / ``Mcp-Method`` / ``Mcp-Name`` headers); sending
them over persistent HTTP/1.1 keep-alive connections written on plain asyncio
streams (no SDK, no httpx in the timed loop); reading ``application/json`` and
``text/event-stream`` (chunked) answers; and the statistics (p50/p95/p99,
calls/s, errors). Must not: start servers or decide what is compared (that is
``bench/run.py``).

Why raw sockets: httpx costs a few hundred microseconds of client CPU per
request on this class of machine, which on 2 cores competes with the server
under test; ``bench/run.py`` measures and reports the difference.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

STATELESS = "2026-07-28"
SESSION = "2025-11-25"
META_PROTOCOL = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPS = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO = {"name": "bench-load", "version": "1.0"}
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class LoadError(Exception):
    pass


@dataclass
class Stats:
    label: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    first_error: str | None = None

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        n = len(lat)

        def pct(p: float) -> float | None:
            if not n:
                return None
            return round(lat[min(n - 1, int(p / 100.0 * n))], 4)

        return {
            "label": self.label, "concurrency": self.concurrency, "calls": n, "errors": self.errors,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_ms": round(statistics.fmean(lat), 4) if n else None,
            "calls_per_s": round(n / self.wall_s, 1) if self.wall_s > 0 else None,
            "first_error": self.first_error,
        }


class Conn:
    """One keep-alive HTTP/1.1 connection on asyncio streams."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        reader = self.reader
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
        if b"content-length" in headers:
            body = await reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append((await reader.readexactly(size + 2))[:-2])
            body = b"".join(parts)
        else:
            body = await reader.read()
            self.close()
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, headers, body


def decode_body(headers: dict[bytes, bytes], body: bytes) -> Any:
    """The JSON-RPC message of an answer (the last ``data:`` of an SSE body)."""
    if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
        msg = None
        for line in body.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data:
                    msg = json.loads(data)
        return msg
    return json.loads(body) if body else None


class Endpoint:
    """One MCP endpoint in one era: knows how to build request bytes for it."""

    def __init__(self, url: str, era: str, extra_headers: dict[str, str] | None = None) -> None:
        u = urlsplit(url)
        self.url, self.era = url, era
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.path = u.path or "/"
        self.extra = dict(extra_headers or {})
        self.session_id: str | None = None
        self._ids = itertools.count(1)

    def build(self, method: str, params: dict[str, Any] | None = None, notification: bool = False) -> bytes:
        params = dict(params or {})
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **self.extra}
        if self.era == STATELESS:
            params["_meta"] = {**(params.get("_meta") or {}), META_PROTOCOL: STATELESS,
                               META_CLIENT_INFO: CLIENT_INFO, META_CLIENT_CAPS: {}}
            headers["MCP-Protocol-Version"] = STATELESS
            headers["Mcp-Method"] = method
            key = NAME_BEARING.get(method)
            if key and isinstance(params.get(key), str):
                headers["Mcp-Name"] = params[key]
        elif method != "initialize":
            headers["MCP-Protocol-Version"] = SESSION
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if not notification:
            msg["id"] = next(self._ids)
        if params:
            msg["params"] = params
        body = json.dumps(msg, separators=(",", ":")).encode()
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode() + b"\r\n" + body

    async def prepare(self) -> None:
        """Session era: initialize and send notifications/initialized."""
        if self.era == STATELESS:
            return
        conn = Conn(self.host, self.port)
        try:
            status, headers, body = await conn.request(self.build("initialize", {
                "protocolVersion": SESSION, "capabilities": {}, "clientInfo": CLIENT_INFO}))
            if status != 200:
                raise LoadError(f"initialize on {self.url}: HTTP {status}: {body[:300]!r}")
            sid = headers.get(b"mcp-session-id")
            self.session_id = sid.decode() if sid else None
            status, _, body = await conn.request(self.build("notifications/initialized", None, notification=True))
            if status not in (200, 202, 204):
                raise LoadError(f"notifications/initialized on {self.url}: HTTP {status}: {body[:300]!r}")
        finally:
            conn.close()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One request on a fresh connection; returns the JSON-RPC result or raises."""
        conn = Conn(self.host, self.port)
        try:
            status, headers, body = await conn.request(self.build(method, params))
        finally:
            conn.close()
        msg = decode_body(headers, body)
        if status != 200 or not isinstance(msg, dict) or "result" not in msg:
            raise LoadError(f"{method} on {self.url}: HTTP {status}: {body[:300]!r}")
        return msg["result"]


def ok_tool_result(status: int, body: bytes) -> bool:
    return status == 200 and b'"result"' in body and b'"isError":true' not in body and b'"error":{' not in body


async def run_load(ep: Endpoint, method: str, params: dict[str, Any], concurrency: int, seconds: float,
                   max_calls: int, label: str, warmup_calls: int = 50) -> Stats:
    """``concurrency`` workers, one keep-alive connection each, for ``seconds`` or ``max_calls``."""
    stats = Stats(label, concurrency)
    conns = [Conn(ep.host, ep.port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    # Warm-up (not measured): every connection at once, a few calls each, at most ~0.3 s.
    warm_until = time.perf_counter() + 0.3

    async def warm(c: Conn) -> None:
        for _ in range(max(1, warmup_calls // concurrency)):
            try:
                await c.request(ep.build(method, params))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                c.close()
            if time.perf_counter() > warm_until:
                return

    await asyncio.gather(*(warm(c) for c in conns))
    remaining = [max_calls]
    stop_at = time.perf_counter() + seconds
    clock = time.perf_counter
    lat = stats.latencies_ms

    async def worker(conn: Conn) -> None:
        while remaining[0] > 0 and clock() < stop_at:
            remaining[0] -= 1
            raw = ep.build(method, params)
            t0 = clock()
            try:
                status, _, body = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                stats.errors += 1
                stats.first_error = stats.first_error or f"{type(e).__name__}: {e}"
                conn.close()
                continue
            dt = clock() - t0
            if ok_tool_result(status, body):
                lat.append(dt * 1000.0)
            else:
                stats.errors += 1
                stats.first_error = stats.first_error or f"HTTP {status}: {body[:200]!r}"

    t0 = clock()
    await asyncio.gather(*(worker(c) for c in conns))
    stats.wall_s = clock() - t0
    for c in conns:
        c.close()
    return stats


async def compare(targets: dict[str, tuple[Endpoint, str, dict[str, Any]]], concurrency: int, rounds: int,
                  seconds: float, max_calls: int) -> dict[str, Stats]:
    """Run every target ``rounds`` times, interleaved, and merge: noise hits all alike."""
    merged: dict[str, Stats] = {name: Stats(name, concurrency) for name in targets}
    for _ in range(rounds):
        for name, (ep, method, params) in targets.items():
            s = await run_load(ep, method, params, concurrency, seconds, max_calls // rounds, name)
            m = merged[name]
            m.latencies_ms += s.latencies_ms
            m.errors += s.errors
            m.wall_s += s.wall_s
            m.first_error = m.first_error or s.first_error
    return merged


async def httpx_load(ep: Endpoint, method: str, params: dict[str, Any], calls: int, label: str) -> Stats:
    """The same requests at concurrency 1 through httpx, to measure the client's own cost."""
    import httpx

    stats = Stats(label, 1)
    raw = ep.build(method, params)
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    headers.pop("Content-Length", None)
    headers.pop("Host", None)
    async with httpx.AsyncClient() as client:
        for _ in range(20):
            await client.post(ep.url, content=body, headers=headers)
        t0 = time.perf_counter()
        for _ in range(calls):
            s = time.perf_counter()
            r = await client.post(ep.url, content=body, headers=headers)
            if ok_tool_result(r.status_code, r.content):
                stats.latencies_ms.append((time.perf_counter() - s) * 1000)
            else:
                stats.errors += 1
        stats.wall_s = time.perf_counter() - t0
    return stats
