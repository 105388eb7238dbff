"""The remote MCP backend: a service that is an MCP server reached over HTTP.

Owns: the ``RemoteBackend`` and which upstream session serves a call. The
service's shared session (a ``connection.RemoteConnection``, in the newest
era the upstream speaks) serves the gateway's own work (probes,
introspection, shared resource subscriptions) and stateless-era clients (each
request carries its client's ``_meta``). A session-era client gets an
upstream session of its own (``sessions.ClientSessions``, opened on its first
call, closed when its downstream session ends) in the session era whenever
the upstream speaks it, so its capabilities, roots, log level and
server-to-client traffic are never shared; a stateless-only upstream serves it
on the shared session. Requests go over a keep-alive pool of the lean
HTTP/1.1 client in ``h1``; the long-lived GET and listen streams over one
``httpx.AsyncClient``. Also: the choice of transport for a manifest (and, as
the spec's backwards-compatibility rule asks, falling back to HTTP+SSE at
start when a Streamable HTTP handshake is answered with a 4xx and the URL
serves the old transport's event stream: ``transportInUse``), the registration-time origin check
``prepare_remote_origin`` (host allowlist, not the daemon itself, authRef shape; the addresses a
name resolves to are checked at connect time by the resolver it gives its
clients, ``http.make_resolver``), health probes (a
ping answered with an error is DEGRADED, except method-not-found: a server
without ping is alive; a lost session is re-initialized as for calls),
introspection (``introspection.read_interface``) and the
``describe()`` facts. The wire work lives behind ``RemoteConnection``, in
``streamable`` (both eras) and ``sse`` (HTTP+SSE); credentials in
``secrets``; the host rule in ``hosts``. It keeps the last credential values
it sent, for its ``secret_mask()`` (what the upstream echoes is masked by
``masking.MaskedBackend``). Must not: use a connection beyond
``RemoteConnection``, enforce call policies, retry, or put a secret value in
a log line, an event, an exception or ``describe()``.

Redirects: only same-origin redirects are followed (see ``http.send``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import httpx

from runtimed import __version__
from runtimed.auth.upstream import UpstreamAuth
from runtimed.backends.base import Backend, BackendHost, CallContext, Health, Interface, ProbeResult
from runtimed.backends.introspection import read_interface
from runtimed.backends.messages import error_text
from runtimed.backends.parking import ParkedCalls
from runtimed.backends.remote import http as _http
from runtimed.backends.remote.connection import ConnectionConfig, RemoteConnection
from runtimed.backends.remote.hosts import check_url_host
from runtimed.backends.remote.secrets import check_auth_ref, credential_values, resolve_auth_headers
from runtimed.backends.remote.selfloop import check_not_daemon
from runtimed.backends.remote.sse import LegacySseConnection
from runtimed.backends.remote.streamable import StreamableHttpConnection
from runtimed.backends.secrets import NO_SECRETS, SecretMask
from runtimed.backends.sessions import ClientHost, ClientSessions, close_quietly
from runtimed.config.manifest import RemoteMcpOrigin, ServiceManifest
from runtimed.errors import BackendError, BackendFault, BackendStartError, InvalidOrigin, SecretError, UpstreamError
from runtimed.protocol.jsonrpc import METHOD_NOT_FOUND
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import is_stateless

CLIENT_INFO = {"name": "mcp-runtimed", "version": __version__}
SECRETS_KEPT = 8  # the last distinct credential values sent (a rotated one may still be echoed)
# The requests a 2026-07-28 server may answer with an input-required result (basic/patterns/mrtr).
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})


def prepare_remote_origin(manifest: ServiceManifest, settings: Any) -> ServiceManifest:
    """Registration-time checks (and at every start): the URL's host is allowed; the URL is not this
    daemon itself (``selfloop``); the authRef is well-formed."""
    origin = manifest.spec.origin
    if not isinstance(origin, RemoteMcpOrigin):
        raise InvalidOrigin("not a remote_mcp origin")
    check_url_host(origin.url, getattr(settings, "remote_allowed_hosts", None), origin.allowedHosts, manifest.name)
    check_not_daemon(origin.url, settings, manifest.name)
    if origin.authRef:
        try:
            check_auth_ref(origin.authRef)
        except SecretError as e:
            raise InvalidOrigin(f"service {manifest.name!r}: {e}") from None
    return manifest


class RemoteBackend(Backend):
    """One remote MCP service. ``force_era`` ("session"/"stateless") is for tests and diagnostics."""

    def __init__(self, manifest: ServiceManifest, host: BackendHost, *, force_era: str | None = None) -> None:
        super().__init__(manifest, host)
        self.force_era = force_era
        self._client: httpx.AsyncClient | None = None
        self._conn: RemoteConnection | None = None
        self._clients: ClientSessions[RemoteConnection] | None = None
        self._parked = ParkedCalls()
        # False once the upstream refused a session-era handshake (a stateless-only server):
        # session-era clients are then served on the shared session.
        self._sessions_offered = True
        self._last_error: str | None = None
        self._sent_secrets: dict[str, None] = {}  # the credential values sent upstream, oldest first
        self._mask = NO_SECRETS
        # The transport the connections use: the manifest's, or "sse" once a start found the URL speaks it.
        self._transport: str = self.origin.transport
        # New connections resolve the host once and check its addresses (DNS rebinding), against the lists as they are then.
        self._resolve = _http.make_resolver(
            lambda: (self.host.settings.remote_allowed_hosts, self.origin.allowedHosts), manifest.name)
        # authRef "oauth": the service's sign-in (``auth.upstream``), and the header it last made fresh.
        self._oauth: UpstreamAuth | None = host.upstream_auth() if self.origin.authRef == "oauth" else None
        self._oauth_headers: dict[str, str] = {}

    # -- settings ----------------------------------------------------------
    @property
    def origin(self) -> RemoteMcpOrigin:
        origin = self.manifest.spec.origin
        assert isinstance(origin, RemoteMcpOrigin)
        return origin

    def _connect_timeout_s(self) -> float:
        ms = self.manifest.spec.policy.connectTimeoutMs or self.host.settings.policy.connectTimeoutMs
        return ms / 1000.0

    def _default_timeout_s(self) -> float:
        ms = self.manifest.spec.policy.timeoutMs or self.host.settings.policy.timeoutMs
        return ms / 1000.0

    def _check_host(self, url: str) -> None:
        """Before every connect: the host must still be allowed (SSRF)."""
        try:
            check_url_host(url, self.host.settings.remote_allowed_hosts, self.origin.allowedHosts, self.manifest.name)
        except InvalidOrigin as e:
            raise BackendFault(str(e), kind="connect") from None

    def _auth_headers(self) -> dict[str, str]:
        """Resolved at every request: a rotated secret is picked up without a restart. An OAuth
        service's header is the one ``_fresh`` made before the request."""
        if self._oauth is not None:
            return self._oauth_headers
        try:
            headers = resolve_auth_headers(self.origin.authRef, self.host.state_dir)
        except SecretError as e:
            raise BackendFault(str(e), kind="unauthorized") from None
        self._remember(headers)
        return headers

    def _remember(self, headers: dict[str, str]) -> None:
        """Keep the credential values about to be sent, for ``secret_mask`` (never shown)."""
        fresh = credential_values(headers) - self._sent_secrets.keys()
        if not fresh:
            return
        for value in fresh:
            self._sent_secrets[value] = None
        while len(self._sent_secrets) > SECRETS_KEPT:
            del self._sent_secrets[next(iter(self._sent_secrets))]
        self._mask = SecretMask(self._sent_secrets)

    def secret_mask(self) -> SecretMask:
        return self._mask

    async def _fresh(self) -> None:
        """An OAuth service: make its token fresh before a request (refreshed ahead of expiry, or got
        with client credentials). ``SignInRequired`` when there is none to be had."""
        if self._oauth is not None:
            headers = await self._oauth.ensure()
            if headers is not self._oauth_headers:
                self._remember(headers)
                self._oauth_headers = headers

    async def _renewed(self, fault: BackendFault) -> bool:
        """The upstream refused an OAuth service's token: True when a renewed one is worth one more
        try; ``SignInRequired`` when the sign-in is gone."""
        if self._oauth is None or fault.kind != "unauthorized" or fault.status not in (401, 403):
            return False
        if not await self._oauth.refused(self._oauth_headers):
            return False
        self._oauth_headers = {}
        await self._fresh()
        return True

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        origin = self.origin
        try:
            check_url_host(origin.url, self.host.settings.remote_allowed_hosts, origin.allowedHosts, self.manifest.name)
            self._remember(resolve_auth_headers(origin.authRef, self.host.state_dir))
        except (InvalidOrigin, SecretError) as e:
            raise BackendStartError(str(e)) from None
        await self._fresh()  # an OAuth service without a sign-in waits for one (SignInRequired)
        await self._close_conn()
        self._client = _http.make_client(self._connect_timeout_s(), self._resolve)
        self._transport = origin.transport
        self._conn = conn = self._connection(self._config(), self._client, self.host)
        self._clients = ClientSessions(self._open_client_session, close_quietly)
        self._sessions_offered = True
        try:
            async with asyncio.timeout(self._connect_timeout_s() + self._default_timeout_s()):
                try:
                    await conn.open()
                except BackendFault as e:
                    if await self._renewed(e):
                        await conn.open()
                    else:
                        conn = await self._sse_instead(e)
        except TimeoutError:
            await self._close_conn()
            raise BackendStartError(f"{origin.url}: the upstream did not complete the MCP handshake in time") from None
        except BackendError as e:
            await self._close_conn()
            self._last_error = str(e)
            # Chained so the supervisor can tell a refused credential (UNAUTHORIZED) from the rest.
            raise BackendStartError(f"cannot start {self.manifest.name!r}: {error_text(e)}") from e
        self.host.log("info", f"connected to {origin.url} ({conn.era} era, protocol {conn.protocol_version})")

    async def _sse_instead(self, refused: BackendFault) -> RemoteConnection:
        """The Streamable HTTP handshake was refused with ``refused``: when that was a 4xx (an HTTP+SSE
        server's endpoint answers a POST with 405 or 404) and a GET of the URL opens the old
        transport's event stream, the service speaks HTTP+SSE: its connection from now on. Else
        ``refused`` is raised as it was (the URL is not an MCP endpoint of either transport)."""
        status = refused.status or 0
        if self.origin.transport != "streamable_http" or refused.kind != "http" or not 400 <= status < 500 \
                or status in (401, 403, 408, 429) or self._client is None:
            raise refused
        sse = LegacySseConnection(self._config(), self._client, self.host)
        try:
            await sse.open()
        except BackendError as e:
            await close_quietly(sse)
            self.host.log("info", f"not an HTTP+SSE endpoint either: {error_text(e)}")
            raise refused from None
        old, self._conn, self._transport = self._conn, sse, "sse"
        if old is not None:
            await close_quietly(old)
        self.host.log("info", f"{self.origin.url} answered the Streamable HTTP handshake with HTTP {status} and "
                              "speaks the older HTTP+SSE transport: using it (its manifest says streamable_http; "
                              f"runtimectl set {self.manifest.name} --transport sse skips the first try)")
        return sse

    def _config(self) -> ConnectionConfig:
        return ConnectionConfig(
            url=self.origin.url, auth_headers=self._auth_headers, check_host=self._check_host, client_info=CLIENT_INFO,
            default_timeout_s=self._default_timeout_s(), connect_timeout_s=self._connect_timeout_s(),
            force_era=self.force_era, resolve=self._resolve,
        )

    def _connection(self, config: ConnectionConfig, client: httpx.AsyncClient, host: BackendHost) -> RemoteConnection:
        """The transport in use: HTTP+SSE (asked for, or found at start), or Streamable HTTP (the default)."""
        if self._transport == "sse":
            return LegacySseConnection(config, client, host)
        return StreamableHttpConnection(config, client, host)

    async def stop(self) -> None:
        self._parked.close()
        await self._close_conn()

    async def _close_conn(self) -> None:
        conn, client, clients = self._conn, self._client, self._clients
        self._conn, self._client, self._clients = None, None, None
        try:
            if clients is not None:
                await asyncio.wait_for(clients.close_all(), timeout=3.0)
        except BaseException:
            pass
        try:
            if conn is not None:
                await asyncio.wait_for(conn.close(), timeout=3.0)
        except BaseException:
            pass
        try:
            if client is not None:
                await client.aclose()
        except BaseException:
            pass

    def _require_conn(self) -> RemoteConnection:
        if self._conn is None:
            raise BackendFault(f"service {self.manifest.name!r} is not started", kind="connect", safe_to_retry=True)
        return self._conn

    # -- health ------------------------------------------------------------
    async def probe(self) -> ProbeResult:
        hc = self.manifest.spec.healthCheck
        timeout_s = (hc.timeoutMs or self.host.settings.probe_timeout_ms) / 1000.0
        started = time.monotonic()
        try:
            conn = self._require_conn()
            async with asyncio.timeout(timeout_s):
                await self._fresh()
                if conn.era is None:
                    await conn.open()
                try:
                    await conn.ping(timeout_s)
                except BackendFault as e:
                    if not await self._renewed(e):
                        raise
                    await conn.ping(timeout_s)
        except TimeoutError:
            return ProbeResult(Health.TIMEOUT, f"no answer within {timeout_s * 1000:.0f} ms")
        except BackendFault as e:
            if e.kind == "unauthorized":
                return ProbeResult(Health.UNAUTHORIZED, str(e))
            if e.kind == "timeout":
                return ProbeResult(Health.TIMEOUT, str(e))
            return ProbeResult(Health.UNREACHABLE, str(e))
        except UpstreamError as e:
            latency = (time.monotonic() - started) * 1000
            if e.code == METHOD_NOT_FOUND:  # a server without ping is alive
                return ProbeResult(Health.HEALTHY, "alive (the upstream does not implement ping)", latency)
            # It answered, so it is reachable, but an upstream refusing ping is likely refusing calls too.
            return ProbeResult(Health.DEGRADED, f"ping answered with error {e.code}: {e.message}", latency)
        except Exception as e:  # must not raise
            return ProbeResult(Health.UNREACHABLE, f"probe failed: {type(e).__name__}")
        latency = (time.monotonic() - started) * 1000
        return ProbeResult(Health.HEALTHY, f"{'server/discover' if conn.era == 'stateless' else 'ping'} ok", latency)

    # -- interface ---------------------------------------------------------
    async def introspect(self) -> Interface:
        conn = self._require_conn()
        await self._fresh()
        if conn.era is None:
            await conn.open()
        return await read_interface(
            conn.request, conn.capabilities, conn.server_info, conn.instructions, timeout_s=self._default_timeout_s(),
            max_response_bytes=self.manifest.spec.policy.maxPayloadBytes or self.host.settings.policy.maxPayloadBytes,
            log=self.host.log)

    # -- calls -------------------------------------------------------------
    async def call(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        if self._oauth is None:
            return await self._call(method, params, ctx)
        await self._fresh()
        try:
            return await self._call(method, params, ctx)
        except BackendFault as e:
            if not await self._renewed(e):  # a 401/403 means the call was refused before it ran
                raise
        return await self._call(method, params, ctx)

    async def _call(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        conn = self._require_conn()
        if ctx.client_id is not None and self._sessions_offered and self._clients is not None:
            conn = await self._client_session(ctx.client_id, ctx)
        elif (method in INPUT_REQUIRED_METHODS and is_stateless(ctx.protocol_version) and conn.era == "session"
              and (ctx.request_state is None or self._parked.owns(ctx.request_state))):
            # A stateless-era client over a session-era upstream: what the upstream asks mid-call
            # comes back to the client as an input-required result (``parking``).
            shared = conn
            upstream = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
            return await self._parked.call(ctx, params, lambda inner: shared.request(method, upstream, inner))
        return await conn.request(method, params, ctx)

    async def _client_session(self, client_id: str, ctx: CallContext) -> RemoteConnection:
        """The client's own session-era upstream session (opened on first use), or the shared one
        when the upstream turns out to speak only the stateless era."""
        assert self._clients is not None
        try:
            return await self._clients.get(client_id, ctx)
        except (BackendFault, UpstreamError) as e:
            shared = self._require_conn()
            refused = isinstance(e, UpstreamError) or e.kind in ("protocol", "http")
            if refused and shared.era == "stateless":
                self._sessions_offered = False
                self.host.log("info", "the upstream speaks only the stateless era: session-era clients share "
                                      f"the service's session ({error_text(e)})")
                return shared
            raise

    async def _open_client_session(self, client_id: str, ctx: CallContext) -> RemoteConnection:
        assert self._client is not None
        config = replace(self._config(), force_era="session", client_info=ctx.client_info or CLIENT_INFO,
                         client_capabilities=dict(ctx.client_capabilities or {}))
        conn = self._connection(config, self._client, ClientHost(self.host, client_id))
        try:
            await conn.open()
        except BaseException:
            await close_quietly(conn)
            raise
        return conn

    async def release_client(self, client_id: str) -> None:
        if self._clients is not None:
            await self._clients.release(client_id)

    async def notify(self, method: str, params: JSON, client_id: str | None = None) -> None:
        conn = self._clients.peek(client_id) if client_id is not None and self._clients is not None else None
        if conn is None:
            if client_id is not None and self._sessions_offered:
                return  # the client has no upstream session yet: it will declare itself when it opens one
            conn = self._conn
        if conn is None:
            return
        try:
            await conn.notify(method, params)
        except BackendError as e:
            self.host.log("warning", f"forwarding {method} failed: {error_text(e)}")

    def describe(self) -> JSON:
        origin = self.origin
        out: JSON = {
            "url": origin.url,
            "transport": origin.transport,
            "transportInUse": self._transport,  # "sse" for a streamable_http service found speaking HTTP+SSE
            "authRef": origin.authRef,  # a reference, never the value
            "oauth": origin.oauth.model_dump(mode="json", exclude_none=True) if origin.oauth else None,  # no secret
            "allowedHosts": origin.allowedHosts,
            "redirects": "same-origin only",
        }
        if self._conn is not None:
            out.update(self._conn.describe())
        else:
            out.update({"era": None, "handshakes": 0, "sessionIdPresent": False})
        out["clientSessions"] = self._clients.describe() if self._clients is not None else {"open": 0, "opened": 0}
        out["parkedCalls"] = len(self._parked)  # stateless-era calls waiting for their client's input
        return out
