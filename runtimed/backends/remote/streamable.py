"""The streamable HTTP transport to one upstream, in both protocol eras
(a ``connection.RemoteConnection``).

Owns, for one service: the era decision (probe ``server/discover`` at
2026-07-28, fall back to ``initialize`` + ``notifications/initialized`` at
the newest handshake version the upstream accepts), the one upstream session
every call reuses (re-initialized once, and the refused request sent again,
when the upstream no longer knows it: HTTP 404, or a 400 whose error says the
session is invalid, unknown or missing, as real servers answer), POSTing
requests and reading JSON or SSE answers under the call's byte limit
(resuming a dropped SSE answer with ``Last-Event-ID`` in the session era when
its events carry ids; never re-sending it), cancellation
(``notifications/cancelled`` in the session era, closing the response stream
in the stateless era), the stateless era's
input-required rounds, and the background stream for unsolicited messages
(the GET stream in the session era, ``subscriptions/listen`` in the stateless
era), and the ``Mcp-Param-*`` headers of a ``tools/call`` (from
``CallContext.input_schema``, both eras). Versions, ``_meta`` keys, header
names, the header codec and codes are ``runtimed.protocol``'s; what an error status means is ``faults``'. Must not:
enforce policies, retry faults, or log secret values.

Requests with an answer (and the notifications/replies we POST) go through the
lean keep-alive client of ``h1`` (the gateway's hot path); the long-lived
background streams and the session DELETE go through the service's httpx client.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from runtimed.backends.base import BackendHost, CallContext
from runtimed.backends.messages import (
    CLIENT_CAPABILITIES,
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
from runtimed.backends.remote import h1 as _h1, http as _http
from runtimed.backends.remote.connection import ConnectionConfig, RemoteConnection
from runtimed.backends.remote.faults import status_fault
from runtimed.errors import BackendFault, InputRequired, RelayUnavailable, UpstreamError
from runtimed.protocol import jsonrpc
from runtimed.protocol.headers import (
    LAST_EVENT_ID as LAST_EVENT_ID_HEADER,
    METHOD as METHOD_HEADER,
    NAME as NAME_HEADER,
    NAME_BEARING,
    PROTOCOL_VERSION as VERSION_HEADER,
    SESSION_ID as SESSION_HEADER,
    SESSION_ID_LC as SESSION_HEADER_LC,
)
from runtimed.protocol.jsonrpc import INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION
from runtimed.protocol.meta import (
    CLIENT_CAPABILITIES as META_CLIENT_CAPS,
    CLIENT_INFO as META_CLIENT_INFO,
    PROTOCOL_VERSION as META_PROTOCOL,
    SERVER_INFO as META_SERVER_INFO,
)
from runtimed.protocol.params import param_headers
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import LATEST_STATELESS, UPSTREAM_HANDSHAKE_VERSIONS as HANDSHAKE_VERSIONS

log = logging.getLogger("runtimed.backends.remote")

INPUT_REQUIRED_MAX_ROUNDS = 10
# Resuming a dropped SSE answer (session era): resumptions in a row without a new event before giving
# up, the wait when the stream sent no ``retry`` field, and the most a ``retry`` field makes us wait.
RESUME_ATTEMPTS = 3
RESUME_DELAY_S = 0.1
RESUME_DELAY_CAP_S = 5.0


class SessionLost(Exception):
    """The upstream no longer knows the session a request carried: HTTP 404, or a 400 whose error
    says the session is invalid, unknown or missing (``messages.says_session_lost``). The request
    was refused before it ran, so it is safe to send again on a new session."""


class _StreamEnded(Exception):
    """An SSE answer ended (cleanly) before the answer arrived."""


def encode_header_value(value: str) -> str:
    """The spec's header encoding: printable ASCII as-is, else ``=?base64?...?=``."""
    if value.isascii() and value.isprintable() and value == value.strip() and not value.startswith("=?base64?"):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode("ascii") + "?="


class StreamableHttpConnection(RemoteConnection):
    """One service's upstream session over streamable HTTP."""

    def __init__(self, config: ConnectionConfig, client: httpx.AsyncClient, host: BackendHost) -> None:
        super().__init__(config, client, host)
        self.pool = _http.make_pool(config.resolve)  # the service's connect-time address check
        self.force_era = config.force_era
        self.session_id: str | None = None
        self.reinitializations = 0
        self.background: str | None = None  # what unsolicited stream is open
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._bg_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._resource_subs: set[str] = set()  # stateless era: URIs asked for on subscriptions/listen
        self._listen_acked = asyncio.Event()  # set when the current listen stream is acknowledged
        self._bg_settled = asyncio.Event()  # set once the background stream is open, refused or failing

    # -- lifecycle ---------------------------------------------------------
    async def open(self) -> None:
        async with self._lock:
            if self.era is None:
                await self._handshake()

    async def _handshake(self) -> None:
        if self.force_era != "session":
            discovered = await self._try_discover()
            if discovered is not None:
                self._adopt(discovered)
                return
            if self.force_era == "stateless":
                raise BackendFault("the upstream does not answer server/discover (stateless era)", kind="protocol")
        await self._initialize()

    async def _try_discover(self) -> JSON | None:
        """The discover result, or None when the upstream is not stateless-era."""
        try:
            result = await self._discover()
        except UpstreamError as e:
            if e.code == UNSUPPORTED_PROTOCOL_VERSION:
                supported = (e.data or {}).get("supported") if isinstance(e.data, dict) else None
                if isinstance(supported, list) and not any(v in HANDSHAKE_VERSIONS for v in supported):
                    raise BackendFault(
                        f"the upstream supports only protocol versions {', '.join(map(str, supported))}; "
                        f"this gateway speaks {LATEST_STATELESS} and {', '.join(HANDSHAKE_VERSIONS)}",
                        kind="protocol",
                    ) from None
            return None
        except BackendFault as f:
            if f.kind in ("connect", "unauthorized", "timeout", "payload"):
                raise
            return None  # 4xx without JSON-RPC, bad framing...: not stateless-era evidence
        versions = result.get("supportedVersions")
        if not isinstance(versions, list) or LATEST_STATELESS not in versions:
            return None
        return result

    async def _discover(self) -> JSON:
        return await self._exchange(
            "server/discover", {}, CallContext(), era="stateless", timeout_s=max(self.connect_timeout_s, 10.0)
        )

    def _adopt(self, result: JSON) -> None:
        self.era = "stateless"
        self.protocol_version = LATEST_STATELESS
        self.session_id = None
        self.capabilities = dict(result.get("capabilities") or {})
        info = (result.get("_meta") or {}).get(META_SERVER_INFO)
        self.server_info = dict(info) if isinstance(info, dict) else {}
        self.instructions = result.get("instructions")
        self.handshakes += 1
        self._start_background()

    async def _initialize(self) -> None:
        self.session_id = None
        params = {
            "protocolVersion": HANDSHAKE_VERSIONS[0],
            "capabilities": self.client_capabilities,
            "clientInfo": self.client_info,
        }
        result = await self._exchange(
            "initialize", params, CallContext(), era="handshake", timeout_s=max(self.connect_timeout_s, 10.0)
        )
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_VERSIONS:
            raise BackendFault(
                f"the upstream chose protocol version {version!r}, which this gateway does not speak "
                f"({', '.join(HANDSHAKE_VERSIONS)})",
                kind="protocol",
            )
        self.era = "session"
        self.protocol_version = version
        self.capabilities = dict(result.get("capabilities") or {})
        self.server_info = dict(result.get("serverInfo") or {})
        self.instructions = result.get("instructions")
        self.handshakes += 1
        await self._post_notification("notifications/initialized", None)
        self._start_background()
        # Servers send requests not tied to a call (roots/list right after initialization, say) on
        # the GET stream, and drop them while none is open: the session is ready once it is.
        if self._bg_task is not None:
            try:
                await asyncio.wait_for(self._bg_settled.wait(), max(self.connect_timeout_s, 1.0))
            except TimeoutError:
                pass

    async def _reinitialize(self, lost_session: str | None, why: str = "HTTP 404") -> None:
        async with self._lock:
            if self.session_id != lost_session:  # another call already did it
                return
            self.host.log("warning", f"upstream session not found ({why}); initializing a new session")
            self.reinitializations += 1
            self._stop_background()
            await self._initialize()

    async def close(self) -> None:
        self._closed = True
        self.pool.close()
        self._stop_background()
        for t in list(self._tasks):
            t.cancel()
        if self.era == "session" and self.session_id:
            try:
                req = self.client.build_request("DELETE", self.url, headers=self._headers(None, None), timeout=2.0)
                response = await _http.send(self.client, req, self.check_host, "closing the upstream session")
                await response.aclose()
            except Exception:
                pass
        self.session_id = None
        self.era = None

    # -- calls -------------------------------------------------------------
    async def request(self, method: str, params: JSON | None, ctx: CallContext) -> JSON:
        if self.era is None:
            await self.open()
        params = dict(params or {})
        if self.era == "stateless" and method in ("resources/subscribe", "resources/unsubscribe"):
            return await self._listen_subscription(method, params)
        if self.era == "stateless" and ctx.request_state is not None and "requestState" not in params:
            params["requestState"] = ctx.request_state
        result = await self._request_with_session_retry(method, params, ctx)
        rounds = 0
        while self.era == "stateless" and result.get("resultType") == "input_required":
            rounds += 1
            if rounds > INPUT_REQUIRED_MAX_ROUNDS:
                raise BackendFault(
                    f"the upstream asked for client input more than {INPUT_REQUIRED_MAX_ROUNDS} times", kind="protocol"
                )
            params = await self._fulfil_input(params, result, ctx)
            result = await self._request_with_session_retry(method, params, ctx)
        return result

    async def _listen_subscription(self, method: str, params: JSON) -> JSON:
        """Stateless era: resources/subscribe and unsubscribe no longer exist upstream; the URI set
        rides on ``subscriptions/listen`` (``resourceSubscriptions``), reopened when it changes.
        A subscribe returns once the upstream acknowledged the new stream (it has subscribed by
        then), or after the connect timeout (best effort: the stream keeps retrying)."""
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise UpstreamError(INVALID_PARAMS, f"Invalid params: {method} needs a string 'uri'")
        before = set(self._resource_subs)
        if method == "resources/subscribe":
            self._resource_subs.add(uri)
        else:
            self._resource_subs.discard(uri)
        if self._resource_subs != before:
            self._start_background()
            if method == "resources/subscribe" and self._bg_task is not None:
                try:
                    await asyncio.wait_for(self._listen_acked.wait(), max(self.connect_timeout_s, 5.0))
                except TimeoutError:
                    self.host.log("warning", f"subscriptions/listen was not acknowledged in time; updates of {uri!r} "
                                             "may be missed until it is")
        return {}

    async def _fulfil_input(self, params: JSON, result: JSON, ctx: CallContext) -> JSON:
        requests = result.get("inputRequests") or {}
        state = result.get("requestState")
        responses: JSON = {}
        if requests:
            try:
                for key, req in requests.items():
                    responses[key] = await ctx.relay.request(req.get("method", ""), req.get("params") or {})
            except RelayUnavailable:
                raise InputRequired(requests, state or "") from None
        else:
            await asyncio.sleep(0.05)
        out = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
        if responses:
            out["inputResponses"] = responses
        if state is not None:
            out["requestState"] = state
        return out

    async def _request_with_session_retry(self, method: str, params: JSON, ctx: CallContext,
                                          timeout_s: float | None = None) -> JSON:
        """One request; when the upstream no longer knows our session (it refused the request before
        running it), initialize a new session once and send the request again."""
        sid = self.session_id
        try:
            return await self._exchange(method, params, ctx, timeout_s=timeout_s)
        except SessionLost as e:
            await self._reinitialize(sid, str(e))
        try:
            return await self._exchange(method, params, ctx, timeout_s=timeout_s)
        except SessionLost as e:
            raise BackendFault(
                f"{method} to {self.url}: the upstream lost the session again ({e}) right after a new one was "
                "initialized; not retried further", kind="protocol"
            ) from None

    async def notify(self, method: str, params: JSON | None) -> None:
        if self.era != "session":
            return  # the stateless era has no client-to-server notifications over HTTP
        await self._post_notification(method, params)

    async def ping(self, timeout_s: float) -> None:
        if self.era == "stateless":
            await self._exchange("server/discover", {}, CallContext(), era="stateless", timeout_s=timeout_s)
        else:
            await self._request_with_session_retry("ping", {}, CallContext(), timeout_s)

    # -- the wire ----------------------------------------------------------
    def _headers(self, method: str | None, params: JSON | None, era: str | None = None) -> dict[str, str]:
        era = era or self.era
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        headers.update(self.auth_headers())
        if era == "stateless":
            headers[VERSION_HEADER] = LATEST_STATELESS
            if method:
                headers[METHOD_HEADER] = method
                key = NAME_BEARING.get(method)
                value = (params or {}).get(key) if key else None
                if isinstance(value, str):
                    headers[NAME_HEADER] = encode_header_value(value)
        elif era == "session":
            if self.protocol_version:
                headers[VERSION_HEADER] = self.protocol_version
            if self.session_id:
                headers[SESSION_HEADER] = self.session_id
        return headers

    def _timeout(self, ctx: CallContext, timeout_s: float | None) -> float:
        """The read (and write) timeout of one request: the call's deadline plus a second, or the default."""
        if timeout_s is None:
            if ctx.deadline is None:
                return max(0.05, self.default_timeout_s)
            timeout_s = ctx.deadline - asyncio.get_running_loop().time() + 1.0
        return max(0.05, timeout_s)

    async def _exchange(
        self, method: str, params: JSON, ctx: CallContext, *, era: str | None = None, timeout_s: float | None = None
    ) -> JSON:
        """One request and its answer. ``era="handshake"`` is the bare initialize."""
        era = era or self.era
        what = f"{method} to {self.url}"
        rid = next(self._ids)
        params = dict(params)
        meta = dict(params.get("_meta") or {})
        own_token = swap_progress_token(meta, ctx, rid, enabled=era != "handshake")
        if era == "stateless":
            meta[META_PROTOCOL] = LATEST_STATELESS
            # The downstream client's info and capabilities, not the gateway's: the stateless era has
            # no session to hold them, so each request speaks for its own client (none: the gateway).
            meta[META_CLIENT_INFO] = ctx.client_info or self.client_info
            # The downstream client's capabilities, not the gateway's: the upstream must only ask
            # for input (or refuse with MISSING_CLIENT_CAPABILITY) according to what the real client can do.
            meta[META_CLIENT_CAPS] = dict(ctx.client_capabilities or {})
        if meta:
            params["_meta"] = meta
        else:
            params.pop("_meta", None)
        body = jsonrpc.request(rid, method, params)
        sent_session = self.session_id if era == "session" else None
        headers = self._headers(method, params, era)
        if method == "tools/call" and ctx.input_schema is not None:
            # SEP-2243: mirror the arguments the tool's schema marks with x-mcp-header (sent in both
            # eras: a session-era server ignores them, an intermediary in front of it may route on them).
            headers.update(param_headers(ctx.input_schema, params.get("arguments")))
        read_timeout_s = self._timeout(ctx, timeout_s)
        response: _h1.H1Response | None = None
        try:
            response = await _http.send_h1(
                self.pool, "POST", self.url, headers, _http.encode_json(body), self.check_host, what,
                connect_timeout_s=self.connect_timeout_s, read_timeout_s=read_timeout_s, write_timeout_s=read_timeout_s,
            )
            await self._check_status(response, what, sent_session)
            if era == "handshake":
                sid = response.headers.get(SESSION_HEADER_LC)
                self.session_id = sid or None
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == "application/json":
                raw = await _http.read_limited(response, ctx.max_response_bytes, what)
                msg = _http.parse_json_message(raw, what)
                return result_of(self._pick_reply(msg, rid, what), what)
            if ctype == "text/event-stream":
                return await self._read_sse_answer(response, rid, ctx, own_token, what)
            raise BackendFault(
                f"{what}: the upstream answered with content type {ctype or '(none)'!r}, "
                "expected application/json or text/event-stream",
                kind="protocol",
            )
        except asyncio.CancelledError:
            if era == "session":
                self._spawn(self._post_notification(
                    "notifications/cancelled", {"requestId": rid, "reason": "cancelled by the gateway (client cancel or timeout)"}
                ))
            raise
        finally:
            if response is not None:
                await response.aclose()

    def _pick_reply(self, msg: Any, rid: int, what: str) -> Any:
        if isinstance(msg, list):  # a batch: find ours
            for m in msg:
                if isinstance(m, dict) and m.get("id") == rid and is_response(m):
                    return m
            raise BackendFault(f"{what}: the upstream's batch reply does not answer request {rid}", kind="protocol")
        if isinstance(msg, dict) and is_response(msg) and msg.get("id") not in (rid, None):
            raise BackendFault(f"{what}: the upstream answered request {msg.get('id')!r}, not {rid}", kind="protocol")
        return msg

    async def _check_status(self, response: _h1.H1Response, what: str, sent_session: str | None) -> None:
        status = response.status_code
        if 200 <= status < 300:
            if status == 202:
                raise BackendFault(f"{what}: the upstream accepted the request (202) but sent no answer", kind="protocol")
            return
        if status in (401, 403):
            raise status_fault(status, what)
        if status == 404 and sent_session:
            raise SessionLost("HTTP 404")
        # A JSON-RPC error in a 4xx body is the upstream's answer, not a fault.
        detail = ""
        ctype = response.headers.get("content-type", "").lower()
        if ctype.startswith("application/json"):
            try:
                raw = await _http.read_limited(response, 64 * 1024, what)
                msg = _http.parse_json_message(raw, what)
            except BackendFault:
                msg = None
            if isinstance(msg, dict) and isinstance(msg.get("error"), dict):
                text = str(msg["error"].get("message", ""))[:200]
                if status == 400 and sent_session and says_session_lost(text):
                    raise SessionLost(f"HTTP 400: {text}")  # real servers' 404 (TypeScript SDK: -32000)
                if 400 <= status < 500:
                    result_of(msg, what)  # raises UpstreamError
                detail = f": {text}"
        elif status == 400 and sent_session and ctype.startswith("text/plain"):
            try:
                text = (await _http.read_limited(response, 4096, what)).decode("utf-8", "replace").strip()[:200]
            except BackendFault:
                text = ""
            if says_session_lost(text):
                raise SessionLost(f"HTTP 400: {text}")
            detail = f": {text}" if text else ""
        raise status_fault(status, what, detail, name_5xx=True)

    async def _read_sse_answer(
        self, response: _h1.H1Response, rid: int, ctx: CallContext, own_token: str | None, what: str
    ) -> JSON:
        """The answer on an SSE stream. Session era (2025-11-25 resumability): when the stream drops
        before the answer (the connection fails, or the response ends without it, as a polling server
        does) and its events carried ids, resume it with a GET carrying ``Last-Event-ID``, waiting the
        stream's ``retry`` (at most ``RESUME_DELAY_CAP_S``), giving up after ``RESUME_ATTEMPTS``
        resumptions in a row that bring no new event. The request is never sent again (it may have
        run); without ids a drop is a fault, as before."""
        reader = _http.SSEReader(response, ctx.max_response_bytes, what)
        resumed: _h1.H1Response | None = None
        fruitless = 0  # resumptions in a row that brought no new event
        try:
            while True:
                before = reader.last_event_id
                try:
                    return await self._answer_on(reader, rid, ctx, own_token, what)
                except _StreamEnded:
                    drop = BackendFault(f"{what}: the upstream closed the response stream without answering",
                                        kind="protocol")
                except BackendFault as f:
                    if not reader.dropped or f.kind != "protocol":
                        raise
                    drop = f
                last = reader.last_event_id
                if self.era != "session" or not last or not (last.isascii() and last.isprintable()) \
                        or last != last.strip():
                    raise drop
                while True:
                    fruitless = fruitless + 1 if last == before else 0
                    before = last
                    if fruitless >= RESUME_ATTEMPTS:
                        raise BackendFault(
                            f"{drop}; resuming it after event {last!r} failed {fruitless} times in a row; "
                            "the request is not sent again (it may have run)", kind="protocol") from None
                    delay_s = RESUME_DELAY_S if reader.retry_ms is None else reader.retry_ms / 1000.0
                    await asyncio.sleep(min(delay_s, RESUME_DELAY_CAP_S))
                    if resumed is not None:
                        await resumed.aclose()
                        resumed = None
                    try:
                        resumed = await self._resume_stream(last, ctx, what)
                        break
                    except BackendFault as f:
                        if f.kind != "connect":
                            raise
                        drop = f  # not reachable right now: try the same position again
                reader = _http.SSEReader(resumed, reader.limit, what, read=reader.read, last_event_id=last,
                                         retry_ms=reader.retry_ms)
        finally:
            if resumed is not None:
                await resumed.aclose()

    async def _resume_stream(self, last_event_id: str, ctx: CallContext, what: str) -> _h1.H1Response:
        """GET the dropped stream from after ``last_event_id``; a fault unless it is an SSE stream."""
        headers = self._headers(None, None)
        headers["Accept"] = "text/event-stream"
        headers.pop("Content-Type", None)
        headers[LAST_EVENT_ID_HEADER] = last_event_id
        read_timeout_s = self._timeout(ctx, None)
        response = await _http.send_h1(
            self.pool, "GET", self.url, headers, b"", self.check_host, f"resuming {what}",
            connect_timeout_s=self.connect_timeout_s, read_timeout_s=read_timeout_s, write_timeout_s=read_timeout_s,
        )
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code == 200 and ctype == "text/event-stream":
            return response
        await response.aclose()
        raise BackendFault(
            f"{what}: the response stream dropped and the upstream did not resume it from event {last_event_id!r} "
            f"(GET with Last-Event-ID answered HTTP {response.status_code}"
            f"{'' if response.status_code != 200 else ', ' + (ctype or 'no content type')}); "
            "the request is not sent again (it may have run)",
            kind="protocol", status=response.status_code,
        )

    async def _answer_on(
        self, reader: _http.SSEReader, rid: int, ctx: CallContext, own_token: str | None, what: str
    ) -> JSON:
        """Handle one stream's events until our answer (returned); ``_StreamEnded`` if it ends first."""
        async for ev in reader.events():
            if ev.event != "message" or not ev.data:
                continue
            msg = _http.parse_json_message(ev.data, what)
            for m in msg if isinstance(msg, list) else [msg]:
                if not isinstance(m, dict):
                    raise BackendFault(f"{what}: an SSE message is not a JSON-RPC object", kind="protocol")
                if is_response(m):
                    if m.get("id") == rid:
                        return result_of(m, what)
                    continue
                if is_request(m):
                    reply = await answer_server_request(m, ctx, self.host)
                    await self._post_reply(reply)
                elif is_notification(m):
                    await relay_call_notification(m, ctx, own_token, self.host)
                else:
                    raise BackendFault(f"{what}: an SSE message is not a valid JSON-RPC message", kind="protocol")
        raise _StreamEnded()

    async def _post_reply(self, reply: JSON) -> None:
        await self._post_message(reply, "answering the upstream's request")

    async def _post_notification(self, method: str, params: JSON | None) -> None:
        await self._post_message(notification_message(method, params), f"sending {method}")

    async def _post_message(self, message: JSON, what: str) -> None:
        """POST a notification or response; the upstream answers 202."""
        timeout_s = self.connect_timeout_s * 2
        response = await _http.send_h1(
            self.pool, "POST", self.url, self._headers(message.get("method"), message.get("params")),
            _http.encode_json(message), self.check_host, what,
            connect_timeout_s=timeout_s, read_timeout_s=timeout_s, write_timeout_s=timeout_s,
        )
        try:
            if response.status_code >= 400:
                raise status_fault(response.status_code, what, hint=False)
        finally:
            await response.aclose()

    # -- background stream -------------------------------------------------
    def _spawn(self, coro: Awaitable[Any]) -> None:
        spawn_guarded(self._tasks, coro, "background send", timeout=max(self.connect_timeout_s * 2, 5.0))

    def _start_background(self) -> None:
        if self._closed:
            return
        self._stop_background()
        self._bg_settled = asyncio.Event()
        if self.era == "session":
            self._bg_task = asyncio.ensure_future(self._get_stream_loop())
        elif self.era == "stateless":
            self._listen_acked = asyncio.Event()
            flags = {
                "toolsListChanged": bool((self.capabilities.get("tools") or {}).get("listChanged")),
                "promptsListChanged": bool((self.capabilities.get("prompts") or {}).get("listChanged")),
                "resourcesListChanged": bool((self.capabilities.get("resources") or {}).get("listChanged")),
            }
            wanted: JSON = {k: v for k, v in flags.items() if v}
            if self._resource_subs:
                wanted["resourceSubscriptions"] = sorted(self._resource_subs)
            if wanted:
                self._bg_task = asyncio.ensure_future(self._listen_loop(wanted))

    def _stop_background(self) -> None:
        if self._bg_task is not None:
            self._bg_task.cancel()
            self._bg_task = None
        self.background = None

    def _stream_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout_s, read=None, write=5.0, pool=self.connect_timeout_s)

    async def _get_stream_loop(self) -> None:
        """Session era: keep the upstream's GET stream open while it offers one."""
        async def open_stream() -> httpx.Response | None:
            headers = self._headers(None, None)
            headers["Accept"] = "text/event-stream"
            headers.pop("Content-Type", None)
            req = self.client.build_request("GET", self.url, headers=headers, timeout=self._stream_timeout())
            response = await _http.send(self.client, req, self.check_host, "the upstream's GET stream")
            if response.status_code == 405:
                await response.aclose()
                self.background = "none (the upstream offers no GET stream)"
                return None
            if response.status_code >= 400:
                await response.aclose()
                raise BackendFault(f"GET stream: HTTP {response.status_code}", kind="http")
            return response

        await self._keep_stream_open("GET stream", "the upstream's GET stream", open_stream,
                                     lambda: self.era == "session" and bool(self.session_id))

    async def _listen_loop(self, wanted: JSON) -> None:
        """Stateless era: ``subscriptions/listen`` for list changes (best effort)."""
        async def open_stream() -> httpx.Response | None:
            rid = f"listen-{next(self._ids)}"
            params = {
                "notifications": wanted,
                "_meta": {
                    META_PROTOCOL: LATEST_STATELESS,
                    META_CLIENT_INFO: self.client_info,
                    META_CLIENT_CAPS: CLIENT_CAPABILITIES,
                },
            }
            req = self.client.build_request(
                "POST", self.url, json=jsonrpc.request(rid, "subscriptions/listen", params),
                headers=self._headers("subscriptions/listen", params), timeout=self._stream_timeout(),
            )
            response = await _http.send(self.client, req, self.check_host, "subscriptions/listen")
            if response.status_code >= 400 or not response.headers.get("content-type", "").startswith("text/event-stream"):
                await response.aclose()
                self.background = "none (subscriptions/listen not offered)"
                return None
            return response

        await self._keep_stream_open("subscriptions/listen", "subscriptions/listen", open_stream,
                                     lambda: self.era == "stateless")

    async def _keep_stream_open(self, label: str, what: str, open_stream: Callable[[], Awaitable[httpx.Response | None]],
                                still_wanted: Callable[[], bool]) -> None:
        """Hold one long-lived upstream stream, reconnecting with backoff; give up after 5
        failures in a row (saying so in the service log). ``open_stream`` returns None when
        the upstream does not offer the stream at all."""
        try:
            await self._hold_stream(label, what, open_stream, still_wanted)
        finally:
            self._bg_settled.set()  # whatever happened (not wanted, refused, gave up): nobody waits for it

    async def _hold_stream(self, label: str, what: str, open_stream: Callable[[], Awaitable[httpx.Response | None]],
                           still_wanted: Callable[[], bool]) -> None:
        failures = 0
        while not self._closed and still_wanted():
            try:
                response = await open_stream()
                self._bg_settled.set()
                if response is None:
                    return
                try:
                    self.background = label
                    failures = 0
                    await self._consume_unsolicited(response, what)
                finally:
                    await response.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._bg_settled.set()
                failures += 1
                self.background = None
                log.debug("%s failed: %s", what, e)
                if failures >= 5:
                    self.host.log("warning", f"{what} keeps failing ({e}); list changes may be missed")
                    return
            await asyncio.sleep(min(30.0, 0.25 * 2**failures))

    async def _consume_unsolicited(self, response: httpx.Response, what: str) -> None:
        reader = _http.SSEReader(response, None, what)
        async for ev in reader.events():
            if ev.event != "message" or not ev.data:
                continue
            try:
                msg = _http.parse_json_message(ev.data, what)
            except BackendFault as e:
                self.host.log("warning", str(e))
                continue
            for m in msg if isinstance(msg, list) else [msg]:
                if not isinstance(m, dict):
                    continue
                if is_request(m):
                    self._spawn_answer(m)
                elif is_notification(m):
                    if m.get("method") == "notifications/subscriptions/acknowledged":
                        self._listen_acked.set()
                    handle_unsolicited_notification(m.get("method", ""), m.get("params") or {}, self.host)

    def _spawn_answer(self, msg: JSON) -> None:
        async def answer() -> None:
            await self._post_reply(await answer_server_request(msg, None, self.host))

        spawn_guarded(self._tasks, answer(), "answering an unsolicited request")

    def describe(self) -> JSON:
        return {
            "transport": "streamable_http",
            "era": self.era,
            "protocolVersion": self.protocol_version,
            "handshakes": self.handshakes,
            "reinitializations": self.reinitializations,
            "sessionIdPresent": bool(self.session_id),
            "backgroundStream": self.background,
        }
