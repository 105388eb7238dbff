"""The old HTTP+SSE transport (protocol 2024-11-05) to one upstream (a
``connection.RemoteConnection``).

Owns: the long-lived GET event stream, the ``endpoint`` event (which must
stay on the service's origin), POSTing JSON-RPC messages to that endpoint,
matching answers arriving on the stream to waiting calls, relaying progress
and log messages to the call they belong to, answering server-to-client
requests, and re-connecting (with a new handshake) when the stream or the
session is lost (a POST answered 404, or 400 saying the session is unknown:
the refused request is sent once more on the new session). What an error status means is ``faults``'. Must not:
enforce policies, retry faults, or log secrets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from runtimed.backends.base import BackendHost, CallContext
from runtimed.backends.messages import (
    answer_server_request,
    handle_unsolicited_notification,
    is_notification,
    is_request,
    is_response,
    notification_message,
    relay_call_notification,
    result_of,
    says_session_lost,
    spawn_guarded,
    swap_progress_token,
)
from runtimed.backends.remote import http as _http
from runtimed.backends.remote.connection import ConnectionConfig, RemoteConnection
from runtimed.backends.remote.faults import fault_from_exception, status_fault
from runtimed.errors import BackendFault
from runtimed.protocol import jsonrpc
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import UPSTREAM_HANDSHAKE_VERSIONS as HANDSHAKE_VERSIONS

log = logging.getLogger("runtimed.backends.remote")


class _SessionGone(BackendFault):
    """The endpoint no longer knows our SSE session (the POST was refused before it ran)."""


@dataclass
class _Pending:
    ctx: CallContext
    own_token: str | None
    future: asyncio.Future[JSON] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class LegacySseConnection(RemoteConnection):
    """One service's upstream session over HTTP+SSE."""

    def __init__(self, config: ConnectionConfig, client: httpx.AsyncClient, host: BackendHost) -> None:
        super().__init__(config, client, host)
        self.reconnects = 0
        self.endpoint: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._endpoint_ready: asyncio.Future[str] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        async with self._lock:
            if self.era is None:
                await self._connect()

    async def _connect(self) -> None:
        self._teardown_stream()
        loop = asyncio.get_running_loop()
        self._endpoint_ready = loop.create_future()
        self._reader = asyncio.ensure_future(self._read_stream(self._endpoint_ready))
        try:
            async with asyncio.timeout(max(self.connect_timeout_s, 10.0)):
                self.endpoint = await asyncio.shield(self._endpoint_ready)
        except TimeoutError:
            self._teardown_stream()
            raise BackendFault(f"{self.url}: the SSE stream sent no endpoint event in time", kind="timeout") from None
        except BaseException:
            self._teardown_stream()
            raise
        result = await self._exchange(
            "initialize",
            {"protocolVersion": HANDSHAKE_VERSIONS[0], "capabilities": self.client_capabilities, "clientInfo": self.client_info},
            CallContext(),
        )
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_VERSIONS:
            self._teardown_stream()
            raise BackendFault(f"the upstream chose protocol version {version!r}, which this gateway does not speak", kind="protocol")
        self.protocol_version = version
        self.capabilities = dict(result.get("capabilities") or {})
        self.server_info = dict(result.get("serverInfo") or {})
        self.instructions = result.get("instructions")
        self.era = "session"
        self.handshakes += 1
        await self._post(notification_message("notifications/initialized", None), "sending notifications/initialized")

    def _teardown_stream(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self.era = None
        self.endpoint = None

    async def close(self) -> None:
        self._closed = True
        self._teardown_stream()
        for t in list(self._tasks):
            t.cancel()
        self._fail_pending(BackendFault("the service is stopping", kind="connect"))

    # -- the event stream --------------------------------------------------
    async def _read_stream(self, endpoint_ready: asyncio.Future[str]) -> None:
        what = f"the SSE stream of {self.url}"
        error: BackendFault | None = None
        try:
            headers = {"Accept": "text/event-stream", **self.auth_headers()}
            req = self.client.build_request(
                "GET", self.url, headers=headers,
                timeout=httpx.Timeout(connect=self.connect_timeout_s, read=None, write=5.0, pool=self.connect_timeout_s),
            )
            response = await _http.send(self.client, req, self.check_host, what)
            try:
                if response.status_code >= 400:
                    raise status_fault(response.status_code, what)
                ctype = response.headers.get("content-type", "")
                if not ctype.startswith("text/event-stream"):
                    raise BackendFault(f"{what}: expected text/event-stream, got {ctype or '(none)'!r}", kind="protocol")
                reader = _http.SSEReader(response, None, what)
                async for ev in reader.events():
                    if ev.event == "endpoint":
                        endpoint = str(response.request.url.join(ev.data.strip()))
                        self._check_endpoint(endpoint)
                        if not endpoint_ready.done():
                            endpoint_ready.set_result(endpoint)
                    elif ev.event == "message" and ev.data:
                        await self._on_message(ev.data, what)
                error = BackendFault(f"{what}: the upstream closed its event stream", kind="connect")
            finally:
                await response.aclose()
        except asyncio.CancelledError:
            raise
        except BackendFault as e:
            error = e
        except Exception as e:
            error = fault_from_exception(e, what)
        finally:
            if error is not None:
                if not endpoint_ready.done():
                    endpoint_ready.set_exception(error)
                self.era = None  # the next call connects and handshakes again
                self._fail_pending(error)

    def _check_endpoint(self, endpoint: str) -> None:
        a, b = httpx.URL(self.url), httpx.URL(endpoint)
        if (a.scheme, a.host, a.port) != (b.scheme, b.host, b.port):
            raise BackendFault(
                f"the upstream's SSE endpoint event points to another origin ({b.scheme}://{b.host}); refused",
                kind="protocol",
            )
        self.check_host(endpoint)

    async def _on_message(self, data: str, what: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            self.host.log("warning", f"{what}: the upstream sent an event that is not JSON; ignored")
            return
        for m in msg if isinstance(msg, list) else [msg]:
            if not isinstance(m, dict):
                continue
            if is_response(m):
                pending = self._pending.get(m.get("id"))  # type: ignore[arg-type]
                if pending is None:
                    continue
                limit = pending.ctx.max_response_bytes
                if limit is not None and len(data.encode()) > limit:
                    fault = BackendFault(
                        f"the response is larger than the limit of {limit} bytes (policy maxPayloadBytes)", kind="payload"
                    )
                    if not pending.future.done():
                        pending.future.set_exception(fault)
                elif not pending.future.done():
                    pending.future.set_result(m)
            elif is_notification(m):
                call = self._call_for(m)
                if call is not None:
                    await relay_call_notification(m, call.ctx, call.own_token, self.host)
                else:
                    handle_unsolicited_notification(m.get("method", ""), m.get("params") or {}, self.host)
            elif is_request(m):
                self._spawn_answer(m)

    def _call_for(self, msg: JSON) -> _Pending | None:
        """The call a notification belongs to: by progress token, else the only call in flight."""
        params = msg.get("params") or {}
        token = params.get("progressToken")
        if token is not None:
            for p in self._pending.values():
                if p.own_token == token:
                    return p
            return None
        if msg.get("method") == "notifications/message" and len(self._pending) == 1:
            return next(iter(self._pending.values()))
        return None

    def _spawn_answer(self, msg: JSON) -> None:
        ctx = next(iter(self._pending.values())).ctx if len(self._pending) == 1 else None

        async def answer() -> None:
            reply = await answer_server_request(msg, ctx, self.host)
            await self._post(reply, "answering the upstream's request")

        spawn_guarded(self._tasks, answer(), "answering a server request")

    def _fail_pending(self, error: BackendFault) -> None:
        for p in list(self._pending.values()):
            if not p.future.done():
                p.future.set_exception(error)

    # -- calls -------------------------------------------------------------
    async def request(self, method: str, params: JSON | None, ctx: CallContext) -> JSON:
        if self.era is None:
            async with self._lock:
                if self.era is None:
                    self.reconnects += 1 if self.handshakes else 0
                    await self._connect()
        try:
            return await self._exchange(method, dict(params or {}), ctx)
        except _SessionGone:
            pass  # refused before it ran: safe to send again
        async with self._lock:  # the upstream forgot our session: connect again, once
            if self.era is None:
                self.reconnects += 1
                await self._connect()
        try:
            return await self._exchange(method, dict(params or {}), ctx)
        except _SessionGone as e:
            raise BackendFault(f"{e}; again right after reconnecting, not retried further", kind="connect",
                               status=e.status) from None

    async def notify(self, method: str, params: JSON | None) -> None:
        if self.era == "session":
            await self._post(notification_message(method, params), f"sending {method}")

    async def ping(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self.request("ping", {}, CallContext())

    async def _exchange(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        what = f"{method} to {self.url}"
        rid = next(self._ids)
        meta = dict(params.get("_meta") or {})
        own_token = swap_progress_token(meta, ctx, rid)
        if meta:
            params["_meta"] = meta
        else:
            params.pop("_meta", None)
        pending = _Pending(ctx, own_token)
        self._pending[rid] = pending
        try:
            await self._post(jsonrpc.request(rid, method, params), what)
            loop = asyncio.get_running_loop()
            wait_s = (ctx.deadline - loop.time() + 1.0) if ctx.deadline is not None else self.default_timeout_s
            try:
                async with asyncio.timeout(max(0.05, wait_s)):
                    msg = await pending.future
            except TimeoutError:
                raise BackendFault(f"{what}: no answer within {wait_s:.1f} s", kind="timeout") from None
            return result_of(msg, what)
        except asyncio.CancelledError:
            self._spawn_post(notification_message(
                "notifications/cancelled", {"requestId": rid, "reason": "cancelled by the gateway (client cancel or timeout)"}
            ))
            raise
        finally:
            self._pending.pop(rid, None)

    async def _post(self, message: JSON, what: str) -> None:
        """POST one message to the endpoint. A 404, or a 400 saying the session is unknown (the
        TypeScript SDK's "No transport found for sessionId"), is ``_SessionGone``: reconnect on the next call."""
        if not self.endpoint:
            raise BackendFault(f"{what}: not connected to the upstream's SSE stream", kind="connect", safe_to_retry=True)
        req = self.client.build_request(
            "POST", self.endpoint, json=message,
            headers={"Content-Type": "application/json", **self.auth_headers()},
            timeout=httpx.Timeout(self.connect_timeout_s * 2),
        )
        response = await _http.send(self.client, req, self.check_host, what)
        try:
            status = response.status_code
            text = ""
            if status == 400:
                try:
                    text = (await _http.read_limited(response, 4096, what)).decode("utf-8", "replace").strip()[:200]
                except BackendFault:
                    text = ""
                try:  # a JSON-RPC error body: its message
                    text = str(json.loads(text)["error"]["message"])[:200]
                except (ValueError, KeyError, TypeError):
                    pass
            if status == 404 or (status == 400 and says_session_lost(text)):
                self.era = None  # session gone: reconnect on the next call
                raise _SessionGone(f"{what}: the upstream no longer knows this SSE session (HTTP {status}"
                                   f"{': ' + text if text else ''})", kind="connect", status=status, safe_to_retry=True)
            if status >= 400:
                raise status_fault(status, what)
        finally:
            await response.aclose()

    def _spawn_post(self, message: JSON) -> None:
        spawn_guarded(self._tasks, self._post(message, "sending a cancellation"), "post", timeout=5.0)

    def describe(self) -> JSON:
        return {
            "transport": "sse",
            "era": self.era,
            "protocolVersion": self.protocol_version,
            "handshakes": self.handshakes,
            "reconnects": self.reconnects,
            "sessionIdPresent": bool(self.endpoint),
        }
