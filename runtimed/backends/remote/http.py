"""The HTTP clients of the remote transports and one exchange through them.

Owns: building the per-service ``httpx.AsyncClient`` (long-lived streams) and
``h1.ConnectionPool`` (request/response calls), both connecting through the
service's resolver (``make_resolver``: when a host allowlist is set, a new
connection resolves the name once, checks every address with
``hosts.check_address`` and connects to the checked addresses; no resolution
per request, connections are pooled); sending one request through
either with our redirect rule (only same-origin redirects are followed, at
most 5, each target re-checked against the host allowlist; POST only on
307/308); reading a body, a JSON message or an SSE stream (``SSEReader``,
over ``runtimed.protocol.sse``) under a byte limit. What a failure means is
``faults``' (wire errors and error statuses become ``BackendFault`` there).
Must not: know MCP methods, sessions or eras, or word the fault for a wire
error or an error status (4xx, 5xx) itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import ssl
import typing
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from runtimed.backends.remote import h1 as _h1
from runtimed.backends.remote.faults import WIRE_ERRORS, fault_from_exception
from runtimed.backends.remote.hosts import check_address
from runtimed.errors import BackendFault, H1Error, InvalidOrigin
from runtimed.protocol.sse import DEFAULT_MAX_EVENT, SSEDecodeError, SSEDecoder, SSEEvent

AnyResponse = httpx.Response | _h1.H1Response

MAX_REDIRECTS = 5


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client shares: loading the CA bundle costs
    ~40 ms of CPU and ~1 MB per context, which 100 services would pay 100 times."""
    return httpx.create_ssl_context(trust_env=False)


def make_resolver(allowlists: Callable[[], tuple[list[str] | None, list[str] | None]], service: str = "") -> _h1.Resolver:
    """The connect-time resolver of one service: ``allowlists()`` gives the daemon's and the service's
    lists as they are now. With neither set it returns None (connect by name, as usual); else it
    resolves the name once and returns its addresses, each checked (``hosts.check_address``), or
    raises a ``connect`` fault naming the host and the refused address."""
    async def resolve(host: str, port: int) -> list[str] | None:
        daemon_hosts, service_hosts = allowlists()
        if daemon_hosts is None and service_hosts is None:
            return None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise BackendFault(f"cannot resolve host {host!r} ({e})", kind="connect", safe_to_retry=True) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise BackendFault(f"cannot resolve host {host!r} (no address)", kind="connect", safe_to_retry=True)
        try:
            for address in addresses:
                check_address(host, address, daemon_hosts, service_hosts, service)
        except InvalidOrigin as e:
            raise BackendFault(str(e), kind="connect") from None
        return addresses

    return resolve


class _ResolvingNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting to the addresses the service's resolver checked."""

    def __init__(self, resolve: _h1.Resolver) -> None:
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        error: Exception | None = None
        for target in addresses or [host]:
            try:
                return await self._inner.connect_tcp(target, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:
                error = e
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def make_client(connect_timeout_s: float, resolve: _h1.Resolver | None = None) -> httpx.AsyncClient:
    """One client per service: keep-alive, no automatic redirects (see ``send``), new connections
    through ``resolve`` when given."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
    transport: httpx.AsyncHTTPTransport | None = None
    if resolve is not None:
        transport = httpx.AsyncHTTPTransport(verify=_tls_context(), limits=limits, trust_env=False)
        # httpx offers no network-backend option; its transport is a thin shell over this pool.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_ResolvingNetwork(resolve),
        )
    return httpx.AsyncClient(
        verify=_tls_context(),
        follow_redirects=False,
        timeout=httpx.Timeout(connect=connect_timeout_s, read=None, write=connect_timeout_s * 2, pool=connect_timeout_s),
        limits=limits,
        trust_env=False,
        transport=transport,
    )


def make_pool(resolve: _h1.Resolver | None = None) -> _h1.ConnectionPool:
    """One per service, beside its httpx client: keep-alive, same limits and resolver as ``make_client``."""
    return _h1.ConnectionPool(_tls_context(), max_active=100, max_idle=20, idle_expiry_s=30, resolve=resolve)


def encode_json(body: Any) -> bytes:
    """A JSON request body, encoded exactly as httpx's ``json=`` did."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port); the port is None when it is the scheme's default."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port
    return (scheme, parts.hostname or "", None if port == _h1.DEFAULT_PORTS.get(scheme) else port)


def _redirect_target(method: str, status: int, url: str, location: str, first: str, what: str) -> str:
    """Where a redirect may be followed to, or a ``BackendFault`` saying why not."""
    target = urljoin(url, location)
    scheme, host, port = _origin(target)
    if (scheme, host, port) != _origin(first):
        raise BackendFault(
            f"{what}: the upstream redirected to {scheme}://{host}{':' + str(port) if port else ''}, another origin; "
            "not followed (use that URL as the service URL if it is the intended server)",
            kind="http",
            status=status,
        )
    if method != "GET" and status not in (307, 308):
        raise BackendFault(
            f"{what}: the upstream answered {status} (redirect that would drop the request body); "
            f"use {target} as the service URL",
            kind="http",
            status=status,
        )
    return target


def _is_redirect(status: int, headers: Any) -> bool:
    return status in (301, 302, 303, 307, 308) and "location" in headers


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    check_host: Callable[[str], None],
    what: str,
) -> httpx.Response:
    """Send with streaming on; follow only same-origin redirects.

    ``check_host(url)`` raises (``InvalidOrigin``) for a host not allowed; it
    is called before every connect. The caller must close the response.
    """
    first = str(request.url)
    for _ in range(MAX_REDIRECTS + 1):
        check_host(str(request.url))
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise fault_from_exception(e, what) from None
        if not _is_redirect(response.status_code, response.headers):
            return response
        await response.aclose()
        target = _redirect_target(request.method, response.status_code, str(request.url),
                                  response.headers["location"], first, what)
        request = client.build_request(
            request.method, target, headers=request.headers, content=request.content if request.method != "GET" else None,
            extensions=request.extensions,
        )
    raise BackendFault(f"{what}: too many redirects", kind="http")


async def send_h1(
    pool: _h1.ConnectionPool,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    check_host: Callable[[str], None],
    what: str,
    *,
    connect_timeout_s: float,
    read_timeout_s: float | None,
    write_timeout_s: float | None,
) -> _h1.H1Response:
    """``send`` for the lean client: same redirect rule, same host check, same faults.

    The caller must ``aclose()`` the response (it returns the connection to the pool
    only when the body was read to its end).
    """
    first = url
    fields = list(headers.items())
    for _ in range(MAX_REDIRECTS + 1):
        check_host(url)
        try:
            response = await pool.request(method, url, fields, body, connect_timeout_s=connect_timeout_s,
                                          read_timeout_s=read_timeout_s, write_timeout_s=write_timeout_s)
        except H1Error as e:
            raise fault_from_exception(e, what) from None
        if not _is_redirect(response.status_code, response.headers):
            return response
        await response.aclose()
        url = _redirect_target(method, response.status_code, url, response.headers["location"], first, what)
    raise BackendFault(f"{what}: too many redirects", kind="http")


async def read_limited(response: AnyResponse, limit: int | None, what: str) -> bytes:
    """The whole body, stopping (and closing) as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if limit is not None and size > limit:
                await response.aclose()
                raise BackendFault(
                    f"{what}: the response is larger than the limit of {limit} bytes (policy maxPayloadBytes); "
                    "stopped reading",
                    kind="payload",
                )
            chunks.append(chunk)
    except WIRE_ERRORS as e:
        raise fault_from_exception(e, what) from None
    return b"".join(chunks)


@dataclass
class SSEReader:
    """``runtimed.protocol.sse.SSEDecoder`` over a response, byte-limited, errors as faults.

    ``limit`` bounds the bytes read from this response (None: no bound);
    ``max_event`` bounds one event's size regardless. ``read`` may start at what
    earlier responses of the same answer read (a resumed stream shares the limit).
    While reading it keeps what resuming the stream needs: the last event id seen,
    the latest ``retry`` (ms), and ``dropped`` (the connection failed mid-stream,
    as opposed to a malformed stream or a limit).
    """

    response: AnyResponse
    limit: int | None
    what: str
    max_event: int = DEFAULT_MAX_EVENT
    read: int = 0
    last_event_id: str | None = None
    retry_ms: int | None = None
    dropped: bool = False

    async def events(self) -> AsyncIterator[SSEEvent]:
        decoder = SSEDecoder(self.max_event)
        try:
            async for chunk in self.response.aiter_bytes():
                self.read += len(chunk)
                if self.limit is not None and self.read > self.limit:
                    await self.response.aclose()
                    raise BackendFault(
                        f"{self.what}: the response stream passed the limit of {self.limit} bytes "
                        "(policy maxPayloadBytes); stopped reading",
                        kind="payload",
                    )
                try:
                    for ev in decoder.feed(chunk):
                        if ev.id is not None:
                            self.last_event_id = ev.id
                        if decoder.retry is not None:
                            self.retry_ms = decoder.retry
                        yield ev
                except SSEDecodeError as e:
                    raise BackendFault(f"{self.what}: {e}", kind="payload" if e.too_large else "protocol") from None
                if decoder.retry is not None:
                    self.retry_ms = decoder.retry
        except WIRE_ERRORS as e:
            self.dropped = True
            raise fault_from_exception(e, self.what) from None


def parse_json_message(raw: bytes | str, what: str) -> Any:
    """A JSON value, or a ``protocol`` fault saying what was wrong."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise BackendFault(f"{what}: the upstream sent invalid JSON ({e.__class__.__name__} near {preview!r})", kind="protocol") from None
