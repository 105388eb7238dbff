"""A lean HTTP/1.1 client for the remote backend's request/response hot path.

Owns: keep-alive connections to upstream origins (a bounded pool per service:
idle connections reused newest first, broken or expired ones dropped, a
connection returned only once its response was read to the end), encoding one
request's bytes directly (request line and header fields checked against the
same HTTP/1.1 grammar ``h11`` applies: no CR, LF, NUL or other whitespace
inside a value) and sending them over asyncio streams (TLS with the caller's
context), reading the response head and its body incrementally with ``h11``
(Content-Length or chunked), connecting to the addresses the caller's ``Resolver`` returns
for a new connection (by name when there is none or it returns None; TLS still verifies the
name), the connect timeout and per-read timeouts, closing the connection
when a response is abandoned mid-way (a cancelled task included), one retry on
a fresh connection when a reused one turns out dead before any response byte
(the keep-alive race), and the ``H1Error`` classes that say what failed.
Must not: follow redirects, check hosts, know MCP, or map errors to user
messages (``http`` and ``faults`` do all of that).

Cost: ~0.1 ms of CPU per request where ``httpx.AsyncClient`` costs ~0.85 ms
(measured, docs/benchmarks.md); httpx stays for long-lived GET/listen streams.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import h11

from runtimed import __version__
from runtimed.errors import (
    ConnectError,
    ConnectTimeout,
    H1Error,
    LocalProtocolError,
    ProtocolError,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)

USER_AGENT = f"mcp-runtimed/{__version__}"
READ_SIZE = 64 * 1024
MAX_HEAD_BYTES = 100 * 1024  # the largest response head accepted (httpcore's limit)
DEFAULT_PORTS = {"http": 80, "https": 443}


# -- errors (mapped to BackendFault by faults.fault_from_exception) ---------------
class _Stale(Exception):
    """A reused connection failed before any response byte: safe to retry once."""

    def __init__(self, error: H1Error) -> None:
        self.error = error


# -- URLs --------------------------------------------------------------------------
Origin = tuple[str, str, int]
# (host, port) -> the addresses to connect to, in order, or None to connect by name. Called only
# when a new connection is opened; whatever it raises propagates unchanged.
Resolver = Callable[[str, int], Awaitable[list[str] | None]]


@functools.lru_cache(maxsize=256)
def split_url(url: str) -> tuple[Origin, str, str]:
    """((scheme, host, port), Host header value, request target)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS.get(scheme, 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS.get(scheme) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, host, port), host_header, target


# -- encoding a request ------------------------------------------------------------
# The grammar h11 validates an outgoing request against (RFC 9110/9112, h11._abnf): a token for the
# method and field names, visible ASCII for the target, and a field value made of visible
# characters with single inner runs of SP/HTAB (so no CR, LF, NUL, other controls, nor leading or
# trailing whitespace). Values must be ASCII (as with httpx); a bad one is refused before any byte is sent.
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_TARGET = re.compile(r"[\x21-\x7e]+")
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?")
_FRAMING = frozenset({"host", "content-length", "transfer-encoding"})  # set here, never by the caller
_known_names: set[str] = set()  # field names already checked (a handful, fixed by the callers)
_EOM = h11.EndOfMessage()


def _check_value(name: str, value: str) -> None:
    if not (value.isascii() and _FIELD_VALUE.fullmatch(value)):
        # The value itself is not quoted: it may be a credential.
        raise LocalProtocolError(f"illegal value in header {name!r} (not ASCII, or a line break, NUL or other "
                                 "control character, or leading/trailing whitespace)")


def _check_name(name: str) -> None:
    if name in _known_names:
        return
    if not _TOKEN.fullmatch(name):
        raise LocalProtocolError(f"illegal header name {name!r}")
    if name.lower() in _FRAMING:
        raise LocalProtocolError(f"header {name!r} is set by the client itself")
    if len(_known_names) < 1024:
        _known_names.add(name)


@functools.lru_cache(maxsize=256)
def _request_prefix(method: str, target: str, host_header: str) -> bytes:
    """The request line and the fixed fields, checked once per (method, target, host)."""
    if not _TOKEN.fullmatch(method):
        raise LocalProtocolError(f"illegal method {method!r}")
    if not _TARGET.fullmatch(target):
        raise LocalProtocolError("illegal characters in the request target")
    _check_value("Host", host_header)
    return (f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept-Encoding: identity\r\n").encode("ascii")


@functools.lru_cache(maxsize=256)
def _h11_request(method: str, target: str, host_header: str) -> h11.Request:
    """What the connection's ``h11`` state machine is told was sent (the bytes are ours): the same
    method and target, and an empty body so the request is complete after ``EndOfMessage``.
    Response parsing depends on the method and on ``Connection``/``Expect``, neither of which we send."""
    return h11.Request(method=method, target=target, headers=[("Host", host_header), ("Content-Length", "0")])


def encode_request(method: str, target: str, host_header: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request, or ``LocalProtocolError`` when a part breaks the grammar."""
    parts = [_request_prefix(method, target, host_header).decode("ascii")]
    for name, value in headers:
        _check_name(name)
        _check_value(name, value)
        parts.append(f"{name}: {value}\r\n")
    if body or method in ("POST", "PUT", "PATCH"):
        parts.append(f"Content-Length: {len(body)}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("ascii") + body


# -- one connection ----------------------------------------------------------------
class _Conn:
    __slots__ = ("closed", "h11", "idle_since", "origin", "reader", "received", "writer")

    def __init__(self, origin: Origin, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.idle_since = 0.0
        self.received = 0  # response bytes of the current request
        self.closed = False

    def usable(self, now: float, expiry_s: float) -> bool:
        return (
            not self.closed
            and now - self.idle_since < expiry_s
            and not self.writer.transport.is_closing()
            and not self.reader.at_eof()
            and self.h11.our_state is h11.IDLE
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.transport.close()

    async def send(self, data: bytes, timeout_s: float | None) -> None:
        try:
            self.writer.write(data)
            if self.writer.transport.get_write_buffer_size():
                async with asyncio.timeout(timeout_s):
                    await self.writer.drain()
        except TimeoutError:
            raise WriteTimeout("timed out sending the request") from None
        except OSError as e:
            raise _Stale(WriteError(_os_text(e))) from None

    async def receive(self, timeout_s: float | None) -> None:
        """Feed the next bytes (or EOF) from the socket into h11."""
        try:
            async with asyncio.timeout(timeout_s):
                data = await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise ReadTimeout("no data within the read timeout") from None
        except OSError as e:
            err = ReadError(_os_text(e))
            raise (_Stale(err) if self.received == 0 else err) from None
        if not data and self.received == 0:
            raise _Stale(ProtocolError("Server disconnected without sending a response."))
        self.received += len(data)
        self.h11.receive_data(data)

    def next_event(self) -> Any:
        try:
            return self.h11.next_event()
        except h11.RemoteProtocolError as e:
            raise ProtocolError(str(e) or "invalid HTTP/1.1 from the upstream") from None


def _os_text(e: OSError) -> str:
    return str(e).strip() or type(e).__name__


# -- a response --------------------------------------------------------------------
class H1Response:
    """A response whose body is read on demand; ``aclose()`` must be called.

    ``headers`` has lower-case names; repeated fields are joined with ", ".
    The body is iterated with ``async for chunk in response.aiter_bytes()``.
    """

    def __init__(self, pool: ConnectionPool, conn: _Conn, status_code: int, headers: dict[str, str],
                 read_timeout_s: float | None) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self.status_code = status_code
        self.headers = headers
        self._read_timeout_s = read_timeout_s
        self._done = False

    def aiter_bytes(self) -> H1Response:
        return self

    def __aiter__(self) -> H1Response:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None or self._done:
            raise StopAsyncIteration
        try:
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    try:
                        await conn.receive(self._read_timeout_s)
                    except _Stale as s:  # EOF or reset after the head: a mid-response failure
                        raise s.error from None
                    continue
                if type(ev) is h11.Data:
                    if ev.data:
                        return bytes(ev.data)
                    continue
                if type(ev) is h11.EndOfMessage:
                    self._done = True
                    raise StopAsyncIteration
                raise ProtocolError(f"unexpected {type(ev).__name__} in the response body")
        except H1Error:
            self._release(reuse=False)
            raise

    async def aclose(self) -> None:
        """Return the connection if the response was read to its end, else close it."""
        conn = self._conn
        if conn is None:
            return
        if not self._done:
            # A short body may already be buffered (an error page, a redirect): finish it without I/O.
            try:
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA or ev is h11.PAUSED:
                        break
                    if type(ev) is h11.EndOfMessage:
                        self._done = True
                        break
                    if type(ev) is not h11.Data:
                        break
            except H1Error:
                pass
        self._release(reuse=self._done)

    def _release(self, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn, reuse)


# -- the pool ----------------------------------------------------------------------
class ConnectionPool:
    """Keep-alive HTTP/1.1 connections of one service.

    ``max_active`` bounds concurrent requests (a request beyond it waits for a
    slot up to the connect timeout); at most ``max_idle`` idle connections are
    kept, each for at most ``idle_expiry_s``.
    """

    def __init__(self, tls: ssl.SSLContext | None = None, *, max_active: int = 100, max_idle: int = 20,
                 idle_expiry_s: float = 30.0, resolve: Resolver | None = None) -> None:
        self._tls = tls
        self._resolve = resolve
        self._max_idle = max_idle
        self._idle_expiry_s = idle_expiry_s
        self._slots = asyncio.Semaphore(max_active)
        self._idle: dict[Origin, list[_Conn]] = {}
        self._open: set[_Conn] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        connect_timeout_s: float | None,
        read_timeout_s: float | None,
        write_timeout_s: float | None,
    ) -> H1Response:
        """Send one request; return once the response head has arrived."""
        if self._closed:
            raise ConnectError("the client is closed")
        origin, host_header, target = split_url(url)
        data = encode_request(method, target, host_header, headers, body)
        sent = _h11_request(method, target, host_header)
        if self._slots.locked():
            try:
                async with asyncio.timeout(connect_timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise ConnectTimeout("no free connection within the connect timeout") from None
        else:
            await self._slots.acquire()
        try:
            conn, reused = self._take_idle(origin), True
            if conn is None:
                conn, reused = await self._connect(origin, connect_timeout_s), False
            try:
                return await self._exchange(conn, data, sent, read_timeout_s, write_timeout_s)
            except _Stale as s:
                self._discard(conn)
                if not reused:
                    raise s.error from None
            # The keep-alive race: the upstream closed an idle connection as we reused it. Once, afresh.
            conn = await self._connect(origin, connect_timeout_s)
            try:
                return await self._exchange(conn, data, sent, read_timeout_s, write_timeout_s)
            except _Stale as s:
                self._discard(conn)
                raise s.error from None
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(self, conn: _Conn, data: bytes, sent: h11.Request, read_timeout_s: float | None,
                        write_timeout_s: float | None) -> H1Response:
        try:
            conn.received = 0
            try:
                conn.h11.send(sent)
                conn.h11.send(_EOM)
            except h11.LocalProtocolError as e:
                raise LocalProtocolError(str(e) or "invalid request") from None
            await conn.send(data, write_timeout_s)
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    await conn.receive(read_timeout_s)
                    continue
                if type(ev) is h11.Response:
                    break
                if type(ev) is h11.InformationalResponse:
                    continue
                raise ProtocolError(f"unexpected {type(ev).__name__} instead of a response")
        except H1Error:
            self._discard(conn)
            raise
        except BaseException:  # _Stale (the caller discards) or cancellation
            if not conn.closed:
                self._discard(conn)
            raise
        headers: dict[str, str] = {}
        for name, value in ev.headers:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            self._discard(conn)
            raise ProtocolError(f"the upstream used content encoding {encoding!r} although the request asked for identity")
        return H1Response(self, conn, ev.status_code, headers, read_timeout_s)

    def _take_idle(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable(now, self._idle_expiry_s):
                return conn
            self._discard(conn)
        return None

    async def _connect(self, origin: Origin, timeout_s: float | None) -> _Conn:
        scheme, host, port = origin
        tls = self._tls if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout_s):
                targets = (await self._resolve(host, port) if self._resolve is not None else None) or [host]
                error: OSError | None = None
                for target in targets:
                    try:
                        reader, writer = await asyncio.open_connection(
                            target, port, ssl=tls, server_hostname=host if tls is not None else None, limit=READ_SIZE
                        )
                        break
                    except OSError as e:
                        error = e
                else:
                    assert error is not None
                    raise error
        except TimeoutError:
            raise ConnectTimeout("timed out connecting") from None
        except OSError as e:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise ConnectError(_os_text(e)) from None
        conn = _Conn(origin, reader, writer)
        if self._closed:
            conn.close()
            raise ConnectError("the client is closed")
        self._open.add(conn)
        return conn

    def _release(self, conn: _Conn, reuse: bool) -> None:
        self._slots.release()
        if reuse and not self._closed and not conn.closed and conn.h11.our_state is h11.DONE \
                and conn.h11.their_state is h11.DONE:
            try:
                conn.h11.start_next_cycle()
            except h11.LocalProtocolError:
                self._discard(conn)
                return
            idle = self._idle.setdefault(conn.origin, [])
            if len(idle) < self._max_idle:
                conn.idle_since = time.monotonic()
                idle.append(conn)
                return
        self._discard(conn)

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        self._open.discard(conn)

    def close(self) -> None:
        """Close every connection, idle or in use; later requests fail with ``ConnectError``."""
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
