"""The remote backend's lean HTTP/1.1 client (runtimed/backends/remote/h1.py) and its use in http.py.

Against a real asyncio server on loopback whose per-connection behaviour each test
chooses (keep-alive, closing an idle connection, chunked bodies, hanging), so the
pool's reuse, retry, cancellation and error mapping are observed from the server's side.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from runtimed.backends.base import BackendFault
from runtimed.backends.remote import h1 as _h1, http as _http

Handler = Callable[["Peer", dict[str, Any]], Awaitable[bool]]  # returns False to close the connection


class Peer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.served = False

    async def reply(self, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None,
                    chunked: bool = False, chunk: int = 7) -> None:
        head = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        out = ("\r\n".join(head) + "\r\n\r\n").encode()
        if chunked:
            parts = [body[i:i + chunk] for i in range(0, len(body), chunk)]
            out += b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
        else:
            out += body
        self.writer.write(out)
        await self.writer.drain()


class Server:
    """Counts connections and requests; ``handler`` answers each request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.closed_by_client = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        peer = Peer(reader, writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_client += 1
                    return
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                req = {"method": method, "target": target, "headers": headers, "body": body}
                self.requests.append(req)
                if not await self.handler(peer, req):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_client += 1
        except asyncio.CancelledError:  # the test is over
            pass
        finally:
            writer.close()


async def echo(peer: Peer, req: dict[str, Any]) -> bool:
    await peer.reply(200, req["body"], {"Content-Type": "application/json"})
    return True


async def post(pool: _h1.ConnectionPool, url: str, body: bytes = b"{}", *, read: float | None = 10.0,
               connect: float = 5.0, limit: int | None = None, check: Callable[[str], None] = lambda u: None) -> bytes:
    response = await _http.send_h1(pool, "POST", url, {"Content-Type": "application/json"}, body, check, "test call",
                                   connect_timeout_s=connect, read_timeout_s=read, write_timeout_s=read)
    try:
        return await _http.read_limited(response, limit, "test call")
    finally:
        await response.aclose()


async def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given():
    async with Server(echo) as srv:
        pool = _http.make_pool()
        try:
            for i in range(5):
                assert await post(pool, srv.url + "?x=1", json.dumps({"i": i}).encode()) == json.dumps({"i": i}).encode()
        finally:
            pool.close()
    assert srv.connections == 1 and len(srv.requests) == 5
    req = srv.requests[0]
    assert req["method"] == "POST" and req["target"] == "/mcp?x=1"
    assert req["headers"]["host"] == f"127.0.0.1:{srv.port}" and req["headers"]["content-type"] == "application/json"
    assert req["headers"]["accept-encoding"] == "identity"


async def test_chunked_body_and_the_limit_enforced_while_reading():
    body = json.dumps({"text": "x" * 2_000_000}).encode()  # far more than one read

    async def chunked(peer: Peer, req: dict[str, Any]) -> bool:
        await peer.reply(200, body, {"Content-Type": "application/json"}, chunked=True, chunk=50_000)
        return True

    async with Server(chunked) as srv:
        pool = _http.make_pool()
        try:
            assert await post(pool, srv.url) == body
            with pytest.raises(BackendFault) as ei:
                await post(pool, srv.url, limit=1000)
            assert ei.value.kind == "payload" and "maxPayloadBytes" in str(ei.value)
            assert await post(pool, srv.url) == body  # the half-read connection was closed, not reused
        finally:
            pool.close()
    assert srv.connections == 2


async def test_a_reused_connection_dead_before_any_answer_byte_is_retried_once_on_a_fresh_one():
    async def once_per_connection(peer: Peer, req: dict[str, Any]) -> bool:
        if peer.served:  # the keep-alive race, made deterministic: a reused connection dies unanswered
            return False
        peer.served = True
        await peer.reply(200, b"{}")
        return True

    async with Server(once_per_connection) as srv:
        pool = _http.make_pool()
        try:
            for _ in range(3):
                assert await post(pool, srv.url) == b"{}"
        finally:
            pool.close()
    # connection 1: call 1, call 2 dropped; connection 2: call 2 again, call 3 dropped; connection 3: call 3 again
    assert srv.connections == 3 and len(srv.requests) == 5


async def test_a_fresh_connection_closed_before_the_answer_is_not_retried():
    async def drop(peer: Peer, req: dict[str, Any]) -> bool:
        return False  # read the request, close without answering

    async with Server(drop) as srv:
        pool = _http.make_pool()
        try:
            with pytest.raises(BackendFault) as ei:
                await post(pool, srv.url)
        finally:
            pool.close()
    assert ei.value.kind == "protocol" and "closed or reset mid-response" in str(ei.value)
    assert len(srv.requests) == 1


async def test_cancelling_mid_body_closes_the_connection_and_it_is_not_reused():
    release = asyncio.Event()
    seen_eof = asyncio.Event()

    async def partial(peer: Peer, req: dict[str, Any]) -> bool:
        if req["body"] == b"hang":
            peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"par")
            await peer.writer.drain()
            if await peer.reader.read(1) == b"":
                seen_eof.set()
            return False
        await peer.reply(200, b"{}")
        return True

    async with Server(partial) as srv:
        pool = _http.make_pool()
        try:
            task = asyncio.ensure_future(post(pool, srv.url, b"hang"))
            while not srv.requests:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(seen_eof.wait(), 10)  # the upstream saw the connection close
            assert await post(pool, srv.url) == b"{}"
        finally:
            release.set()
            pool.close()
    assert srv.connections == 2


async def test_no_answer_within_the_read_timeout_is_a_timeout_fault():
    async def hang(peer: Peer, req: dict[str, Any]) -> bool:
        await asyncio.sleep(3600)
        return False

    async with Server(hang) as srv:
        pool = _http.make_pool()
        try:
            with pytest.raises(BackendFault) as ei:
                await post(pool, srv.url, read=0.2)
        finally:
            pool.close()
    assert ei.value.kind == "timeout" and "read timeout" in str(ei.value)


async def test_refused_connection_is_a_connect_fault_safe_to_retry():
    async with Server(echo) as srv:
        url = srv.url
    pool = _http.make_pool()
    try:
        with pytest.raises(BackendFault) as ei:
            await post(pool, url)
    finally:
        pool.close()
    assert ei.value.kind == "connect" and ei.value.safe_to_retry and "cannot connect" in str(ei.value)


async def test_the_pool_is_bounded_and_a_waiter_gives_up_at_the_connect_timeout():
    async with Server(echo) as srv:
        pool = _h1.ConnectionPool(max_active=1)
        try:
            held = await pool.request("POST", srv.url, [], b"{}", connect_timeout_s=5, read_timeout_s=5, write_timeout_s=5)
            with pytest.raises(BackendFault) as ei:
                await post(pool, srv.url, connect=0.1)
            assert ei.value.kind == "connect" and "timed out connecting" in str(ei.value)
            await held.aclose()  # the short body is already buffered: the connection goes back to the pool
            assert await post(pool, srv.url) == b"{}"
        finally:
            pool.close()
    assert srv.connections == 1


async def test_redirects_same_origin_followed_other_origin_refused_host_checked_each_hop():
    async def redirect(peer: Peer, req: dict[str, Any]) -> bool:
        if req["target"] == "/same":
            await peer.reply(307, b"", {"Location": "/mcp"})
        elif req["target"] == "/other":
            await peer.reply(307, b"", {"Location": f"http://localhost:{peer.writer.get_extra_info('sockname')[1]}/mcp"})
        elif req["target"] == "/see-other":
            await peer.reply(303, b"", {"Location": "/mcp"})
        else:
            await peer.reply(200, req["body"])
        return True

    checked: list[str] = []
    async with Server(redirect) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        pool = _http.make_pool()
        try:
            assert await post(pool, base + "/same", b'{"a":1}', check=checked.append) == b'{"a":1}'
            assert checked == [base + "/same", base + "/mcp"]
            with pytest.raises(BackendFault, match="another origin") as ei:
                await post(pool, base + "/other")
            assert ei.value.kind == "http" and ei.value.status == 307
            with pytest.raises(BackendFault, match="redirect that would drop the request body"):
                await post(pool, base + "/see-other")
        finally:
            pool.close()
    assert srv.connections == 1  # the empty redirect bodies did not cost a connection


async def test_sse_events_split_across_reads_are_parsed():
    events = b"event: message\r\ndata: {\"a\": 1}\r\n\r\n: comment\n\ndata: line1\ndata: line2\n\n"

    async def sse(peer: Peer, req: dict[str, Any]) -> bool:
        await peer.reply(200, events, {"Content-Type": "text/event-stream"}, chunked=True)  # 7-byte chunks
        return True

    async with Server(sse) as srv:
        pool = _http.make_pool()
        try:
            response = await _http.send_h1(pool, "POST", srv.url, {}, b"{}", lambda u: None, "sse",
                                           connect_timeout_s=5, read_timeout_s=5, write_timeout_s=5)
            try:
                got = [(e.event, e.data) async for e in _http.SSEReader(response, None, "sse").events()]
            finally:
                await response.aclose()
        finally:
            pool.close()
    assert got == [("message", '{"a": 1}'), ("message", "line1\nline2")]


async def test_a_compressed_answer_is_refused_clearly():
    async def gzip(peer: Peer, req: dict[str, Any]) -> bool:
        await peer.reply(200, b"\x1f\x8b...", {"Content-Encoding": "gzip"})
        return True

    async with Server(gzip) as srv:
        pool = _http.make_pool()
        try:
            with pytest.raises(BackendFault) as ei:
                await post(pool, srv.url)
        finally:
            pool.close()
    assert ei.value.kind == "protocol" and "content encoding 'gzip'" in str(ei.value)


async def test_a_header_value_with_a_line_break_is_refused_before_sending():
    async with Server(echo) as srv:
        pool = _http.make_pool()
        try:
            with pytest.raises(BackendFault) as ei:
                await _http.send_h1(pool, "POST", srv.url, {"X-Bad": "a\r\nInjected: 1"}, b"{}", lambda u: None, "bad",
                                    connect_timeout_s=5, read_timeout_s=5, write_timeout_s=5)
            assert ei.value.kind == "protocol" and "HTTP error" in str(ei.value)
            assert await post(pool, srv.url) == b"{}"
        finally:
            pool.close()
    assert srv.requests and all("injected" not in r["headers"] for r in srv.requests)


@pytest.mark.parametrize("bad", [
    {"X-Bad": "a\nInjected: 1"}, {"X-Bad": "nul\x00byte"}, {"X-Bad": "bell\x07"}, {"X-Bad": " secret1"},
    {"X-Bad": "caf\u00e9"}, {"Bad Name": "v"}, {"Host": "evil.example"}, {"Content-Length": "0"},
])
async def test_every_malformed_header_is_refused_before_sending_without_quoting_the_value(bad: dict[str, str]):
    async with Server(echo) as srv:
        pool = _http.make_pool()
        try:
            with pytest.raises(BackendFault) as ei:
                await _http.send_h1(pool, "POST", srv.url, bad, b"{}", lambda u: None, "bad",
                                    connect_timeout_s=5, read_timeout_s=5, write_timeout_s=5)
            assert ei.value.kind == "protocol" and "HTTP error" in str(ei.value)
            value = next(iter(bad.values()))
            assert value.strip() not in str(ei.value) or value == "v"  # a value may be a credential
            assert await post(pool, srv.url) == b"{}"  # the pool is unaffected
        finally:
            pool.close()
    assert len(srv.requests) == 1  # only the good request reached the server


def test_the_encoded_request_is_the_fixed_fields_then_the_callers_then_the_length():
    data = _h1.encode_request("POST", "/mcp?x=1", "127.0.0.1:9", [("Accept", "application/json"),
                                                                  ("Mcp-Name", "a b\tc")], b"{}")
    assert data == (b"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUser-Agent: " + _h1.USER_AGENT.encode()
                    + b"\r\nAccept-Encoding: identity\r\nAccept: application/json\r\nMcp-Name: a b\tc\r\n"
                    + b"Content-Length: 2\r\n\r\n{}")
    assert _h1.encode_request("GET", "/", "h", [], b"").endswith(b"identity\r\n\r\n")
    with pytest.raises(_h1.LocalProtocolError):
        _h1.encode_request("POST", "/a b", "h", [], b"")
