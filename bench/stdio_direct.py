"""A raw stdio MCP client: the "direct" baseline of the stdio benchmark (scenario 8).

Owns spawning a stdio MCP server as a child (asyncio subprocess, pipes), the
handshake (``initialize`` then ``notifications/initialized``), sending
requests as newline-delimited JSON-RPC lines on its stdin and matching the
answer lines on its stdout by id (several requests in flight on one child are
multiplexed by id), the timing loop (``Stats`` from ``bench/load.py``, same
shape as the HTTP runs) and the cold start (spawn → ``initialize`` answered).
No SDK in the timed loop, like ``load.py``'s raw sockets. Must not: decide
what is compared (that is ``bench/run.py``), or leave a child running.

    python bench/stdio_direct.py [--calls 2000] [--concurrency 1]   # a quick look on its own
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import SESSION, Stats

SERVER = Path(__file__).resolve().parent / "stdio_echo.py"
CLIENT_INFO = {"name": "bench-stdio-direct", "version": "1.0"}
LINE_LIMIT = 1 << 20
# What the gateway asks a stdio server before it calls the service RUNNING (backends/introspection.py),
# for a server declaring tools, resources and prompts as the SDK's MCPServer does.
INTROSPECTION = ("tools/list", "resources/list", "resources/templates/list", "prompts/list")


def default_command() -> list[str]:
    return [sys.executable, str(SERVER)]


class StdioError(Exception):
    pass


class StdioClient:
    """One child process and its JSON-RPC lines. ``call`` writes a request and waits for the
    answer with the same id: on its own line reader while only one call is in flight (c=1),
    through a reader task that dispatches answers by id otherwise."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.proc: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def spawn(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True, limit=LINE_LIMIT)

    async def handshake(self) -> dict[str, Any]:
        """``initialize`` then ``notifications/initialized``; the initialize result."""
        msg = json.loads(await self.call_inline("initialize", {
            "protocolVersion": SESSION, "capabilities": {}, "clientInfo": CLIENT_INFO}))
        if "result" not in msg:
            raise StdioError(f"initialize: {msg}")
        self.write({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return msg["result"]

    async def start(self) -> float:
        """Spawn and initialize; seconds from spawn to the initialize answer."""
        t0 = time.perf_counter()
        await self.spawn()
        await self.handshake()
        return time.perf_counter() - t0

    def write(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def request_line(self, method: str, params: dict[str, Any] | None) -> tuple[int, bytes]:
        rid = next(self._ids)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        return rid, json.dumps(msg, separators=(",", ":")).encode() + b"\n"

    async def _readline(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise StdioError(f"the child closed its stdout (exit {self.proc.returncode})")
        return line

    async def call_inline(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        """One request, the answer read on this task (no other call may be in flight)."""
        assert self.proc is not None and self.proc.stdin is not None and self._reader is None
        rid, raw = self.request_line(method, params)
        self.proc.stdin.write(raw)
        want = b'"id":%d' % rid
        while True:
            line = await self._readline()
            if want in line and json.loads(line).get("id") == rid:  # skip notifications and the child's requests
                return line

    def start_reader(self) -> None:
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read_loop())

    async def stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, StdioError):
                await self._reader
            self._reader = None

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self._readline()
                rid = json.loads(line).get("id")
                fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
                if fut is not None and not fut.done():
                    fut.set_result(line)
        except StdioError as e:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(e)
            self._pending.clear()
            raise

    async def call_multiplexed(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        """One request among several in flight; the reader task hands the answer back by id."""
        assert self.proc is not None and self.proc.stdin is not None and self._reader is not None
        rid, raw = self.request_line(method, params)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.proc.stdin.write(raw)
        return await fut

    async def close(self) -> None:
        """Close stdin (the stdio shutdown), then SIGTERM, then SIGKILL, to the child's group."""
        await self.stop_reader()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        for sig in (None, 15, 9):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
                return
            except TimeoutError:
                continue


def ok_line(line: bytes) -> bool:
    return b'"result"' in line and b'"isError":true' not in line


async def run_stdio_load(client: StdioClient, method: str, params: dict[str, Any], concurrency: int, seconds: float,
                         max_calls: int, label: str, warmup_calls: int = 50) -> Stats:
    """``concurrency`` callers on one child for ``seconds`` or ``max_calls`` (``load.run_load``'s rules)."""
    stats = Stats(label, concurrency)
    inline = concurrency == 1
    if not inline:
        client.start_reader()
    call = client.call_inline if inline else client.call_multiplexed
    warm_until = time.perf_counter() + 0.3

    async def warm() -> None:
        for _ in range(max(1, warmup_calls // concurrency)):
            await call(method, params)
            if time.perf_counter() > warm_until:
                return

    await asyncio.gather(*(warm() for _ in range(concurrency)))
    remaining = [max_calls]
    clock = time.perf_counter
    stop_at = clock() + seconds
    lat = stats.latencies_ms

    async def worker() -> None:
        while remaining[0] > 0 and clock() < stop_at:
            remaining[0] -= 1
            t0 = clock()
            try:
                line = await call(method, params)
            except (StdioError, OSError, ValueError) as e:
                stats.errors += 1
                stats.first_error = stats.first_error or f"{type(e).__name__}: {e}"
                if isinstance(e, StdioError):
                    return
                continue
            dt = clock() - t0
            if ok_line(line):
                lat.append(dt * 1000.0)
            else:
                stats.errors += 1
                stats.first_error = stats.first_error or line[:200].decode(errors="replace")

    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.wall_s = clock() - t0
    if not inline:
        await client.stop_reader()
    return stats


async def cold_starts(command: list[str], runs: int) -> dict[str, Any]:
    """Spawn → initialize answered, and spawn → initialize + the gateway's introspection lists
    answered (what the daemon does before it calls a stdio service RUNNING), ``runs`` times."""
    init_ms: list[float] = []
    ready_ms: list[float] = []
    for _ in range(runs):
        client = StdioClient(command)
        try:
            t0 = time.perf_counter()
            await client.spawn()
            await client.handshake()
            init_ms.append((time.perf_counter() - t0) * 1000)
            for method in INTROSPECTION:
                await client.call_inline(method, {})
            ready_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            await client.close()
    return {"runs": runs, "initialize_ms": [round(x, 1) for x in init_ms],
            "initialize_ms_median": round(statistics.median(init_ms), 1),
            "introspected_ms": [round(x, 1) for x in ready_ms],
            "introspected_ms_median": round(statistics.median(ready_ms), 1)}


async def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(await cold_starts(default_command(), 3)))
    client = StdioClient(default_command())
    try:
        await client.start()
        st = await run_stdio_load(client, "tools/call", {"name": "echo", "arguments": {"text": "hello"}},
                                  a.concurrency, 60.0, a.calls, "direct (stdio child)")
        print(json.dumps(st.summary()))
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(_main())
