"""Streamable HTTP endpoints ``/mcp``, ``/mcp/{service}`` and ``/mcp/@{profile}``, both eras.

Owns the HTTP side of MCP: POST (single messages, session-era batches), GET
(the session-era server-to-client stream, ``Last-Event-ID`` resume) and DELETE
(end a session); which era a request belongs to; session id and header checks;
``notifications/cancelled``; ``subscriptions/listen`` streams. Each request's
answer (JSON, or SSE once the call emits) is ``exchange.Exchange``'s; errors
become answers through ``gateway.errors``. Runs as a raw ASGI app so it sees
disconnects. Reads the gateway's shared state through ``EndpointHost``. A
profile's endpoint behaves as ``/mcp`` does (its scope is "@NAME"); an unknown
profile or service is a 404 whose JSON-RPC error names what exists. Must
not: route methods to services (``router``), or check tokens, Host or Origin
(``runtimed.http.security`` does before routing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from runtimed.auth.resource import Principal
from runtimed.errors import BackendError, RpcError
from runtimed.gateway.catalog import Catalog, CatalogCache, CatalogService, profile_of
from runtimed.gateway.errors import error_reply, unexpected_reply
from runtimed.gateway.exchange import PING_S, SSE_HEADERS, Exchange
from runtimed.gateway.relay import ExchangeRelay
from runtimed.gateway.router import RequestCtx, Router
from runtimed.gateway.sessions import Listener, Session, SessionStore, Stream, check_client_size
from runtimed.gateway.stateless import check_request, unsupported
from runtimed.protocol import headers as h
from runtimed.protocol.jsonrpc import (
    INVALID_REQUEST,
    STATELESS_HTTP_STATUS,
    check_envelope,
    dumps,
    error_response,
    is_notification,
    is_response,
    loads,
    notification,
    response,
)
from runtimed.protocol.meta import SUBSCRIPTION_ID as META_SUBSCRIPTION_ID
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import (
    BATCH_VERSIONS,
    DEFAULT_HEADERLESS,
    SESSION,
    SESSION_VERSIONS,
    STATELESS,
    STATELESS_VERSIONS,
    era_of,
    negotiate,
)

log = logging.getLogger("runtimed.gateway")
Scope = dict[str, Any]
MAX_BODY = 8 * 1024 * 1024
ROUTING_HEADERS = (h.PROTOCOL_VERSION_LC, h.METHOD_LC, h.NAME_LC)
_ROUTING_HEADERS_RAW = tuple(name.encode() for name in ROUTING_HEADERS)
_PARAM_PREFIX_RAW = h.PARAM_PREFIX.lower().encode()


class EndpointHost(Protocol):
    """What the endpoints read of the gateway (``server.Gateway``)."""

    sessions: SessionStore
    session_client_max_bytes: int
    catalogs: CatalogCache
    router: Router
    stateless_inflight: list[int]

    def find_service(self, ref: str) -> str | None: ...

    def has_profile(self, name: str) -> bool: ...

    def profile_names(self) -> list[str]: ...

    def capabilities(self, scope: str | None, cat: Catalog) -> JSON: ...

    def server_info(self, scope: str | None, cat: Catalog) -> JSON: ...

    def instructions(self, scope: str | None, cat: Catalog) -> str | None: ...

    def add_listener(self, stream: Stream, scope: str | None, agreed: JSON, meta: JSON) -> Listener: ...

    def remove_listener(self, lst: Listener) -> None: ...

    async def subscribe_resource(self, svc: CatalogService, uri: str, owner: str) -> None: ...

    async def route_answer(self, session: Session, msg: JSON) -> None: ...


class HttpReply(Exception):
    """Answer at once with this status and (optional) JSON body."""

    def __init__(self, status: int, body: Any = None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or []


async def send_json(send: Callable[..., Awaitable[None]], status: int, body: Any,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = b"" if body is None else dumps(body)
    hdrs = [(b"content-length", str(len(data)).encode())] + (headers or [])
    if body is not None:
        hdrs.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": data})


def principal_of(scope: Scope) -> Principal | None:
    """Who sent the request, as ``runtimed.http.security`` found it (None: the gateway has no issuer)."""
    state = scope.get("state")
    found = state.get("principal") if isinstance(state, dict) else None
    return found if isinstance(found, Principal) else None


def rpc_reply(err: RpcError, msg_id: Any, status: int) -> HttpReply:
    return HttpReply(err.http_status or status, error_reply(msg_id, err))


class McpEndpoint:
    """ASGI app for one path: ``scoped`` means ``/mcp/{service}`` (and ``/mcp/@{profile}``)."""

    def __init__(self, host: EndpointHost, scoped: bool) -> None:
        self.gw = host
        self.scoped = scoped

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        raw_headers = scope.get("headers", [])
        # Field values without surrounding whitespace (RFC 9110 OWS is not part of the value).
        headers = {k.decode("latin-1").lower(): v.decode("latin-1").strip(" \t") for k, v in raw_headers}
        try:
            svc_scope = self._service_scope(scope)
            method = scope["method"]
            if method == "POST":
                await self.post(scope, receive, send, headers, raw_headers, svc_scope)
            elif method == "GET":
                await self.get(scope, receive, send, headers, svc_scope)
            elif method == "DELETE":
                await self.delete(headers, svc_scope, principal_of(scope))
                await send_json(send, 200, None)
            else:
                raise HttpReply(405, {"error": f"method {method} is not allowed on an MCP endpoint (use POST, GET or DELETE)"},
                                [(b"allow", b"GET, POST, DELETE")])
        except HttpReply as r:
            await send_json(send, r.status, r.body, r.headers)

    def _service_scope(self, scope: Scope) -> str | None:
        if not self.scoped:
            return None
        name = str(scope.get("path_params", {}).get("service", ""))
        profile = profile_of(name)
        if profile is not None:
            if not self.gw.has_profile(profile):
                known = ", ".join(self.gw.profile_names()) or "none"
                raise HttpReply(404, error_response(None, INVALID_REQUEST,
                                f"no profile named {profile!r} (profiles: {known}): see GET /api/profiles, "
                                "or use /mcp for every service"))
            return name
        found = self.gw.find_service(name)
        if found is None:
            raise HttpReply(404, error_response(None, INVALID_REQUEST,
                            f"no service named {name!r}: see GET /api/services or use /mcp for every service"))
        return found

    # -- session lookup --------------------------------------------------------
    async def _session(self, headers: dict[str, str], svc_scope: str | None, msg_id: Any = None,
                       principal: Principal | None = None) -> Session:
        """The request's session, or 404: unknown, ended, of another endpoint, or another principal's."""
        sid = headers.get(h.SESSION_ID_LC)
        if not sid:
            raise HttpReply(400, error_response(msg_id, INVALID_REQUEST,
                            "Bad Request: missing Mcp-Session-Id header (send initialize first)"))
        try:
            session = await self.gw.sessions.find(sid)
        except RpcError as e:  # no room to adopt it here
            raise rpc_reply(e, msg_id, 503) from None
        if session is not None and session.principal != (principal.key if principal is not None else None):
            session = None  # another principal's session: as unknown to this one as a made-up id
        if session is None or session.scope != svc_scope:
            raise HttpReply(404, error_response(msg_id, INVALID_REQUEST,
                            "Session not found: it ended or expired (the daemon may have restarted); initialize again"))
        return session

    def _check_version_header(self, headers: dict[str, str], msg_id: Any = None) -> None:
        v = headers.get(h.PROTOCOL_VERSION_LC)
        if v is not None and v not in SESSION_VERSIONS:
            err = unsupported(v)
            raise HttpReply(400, error_response(msg_id, err.code, f"Bad Request: {err.message}", err.data))

    # -- DELETE / GET ------------------------------------------------------------
    async def delete(self, headers: dict[str, str], svc_scope: str | None, principal: Principal | None) -> None:
        if headers.get(h.PROTOCOL_VERSION_LC) in STATELESS_VERSIONS:
            raise HttpReply(405, error_response(None, INVALID_REQUEST, "DELETE is not used in protocol 2026-07-28 (no sessions)"),
                            [(b"allow", b"POST")])
        self._check_version_header(headers)
        session = await self._session(headers, svc_scope, principal=principal)
        await self.gw.sessions.close(session.id)

    async def get(self, scope: Scope, receive: Any, send: Any, headers: dict[str, str], svc_scope: str | None) -> None:
        if headers.get(h.PROTOCOL_VERSION_LC) in STATELESS_VERSIONS:
            raise HttpReply(405, error_response(None, INVALID_REQUEST,
                            "GET is not used in protocol 2026-07-28: use subscriptions/listen"), [(b"allow", b"POST")])
        self._check_version_header(headers)
        accept = headers.get("accept", "")
        if "text/event-stream" not in accept and "*/*" not in accept:
            raise HttpReply(406, error_response(None, INVALID_REQUEST, "Not Acceptable: GET needs Accept: text/event-stream"))
        session = await self._session(headers, svc_scope, principal=principal_of(scope))
        stream, seq = session.standalone, session.standalone.seq
        last = headers.get(h.LAST_EVENT_ID_LC)
        if last and session.adopted and session.find_stream(last.rpartition(".")[0]) is None:
            # A stream of the replica that created the session (gone, or another one): its events
            # are not here. The session goes on, on a new stream, rather than ending.
            last = None
        if last:
            sid, _, n = last.rpartition(".")
            found = session.find_stream(sid)
            if found is None or not n.isdigit():
                raise HttpReply(404, error_response(None, INVALID_REQUEST, f"Last-Event-ID {last!r} names no stream of this session"))
            stream, seq = found, int(n)
            if stream.closed and not stream.after(seq):
                # Nothing will follow: say so, or a client that resumes from the priming event of an
                # answer that ended without a response (a cancelled call) would reconnect forever.
                raise HttpReply(404, error_response(None, INVALID_REQUEST,
                                                    f"Last-Event-ID {last!r}: that stream has ended, nothing follows"))
        session.get_writer += 1
        me = session.get_writer
        session.get_connected += 1
        try:
            await self._write_sse(send, receive, stream, seq,
                                  lambda: stream is session.standalone and session.get_writer != me)
        finally:
            session.get_connected -= 1
            session.last_seen = time.monotonic()  # idle from when its stream closed

    async def _write_sse(self, send: Any, receive: Any, stream: Stream, seq: int,
                         superseded: Callable[[], bool] = lambda: False) -> None:
        """Write ``stream`` from after ``seq`` until it closes or the client leaves."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            priming = stream.priming(seq)
            if priming:
                await send({"type": "http.response.body", "body": priming, "more_body": True})
            while not gone.is_set() and not superseded():
                waiter = asyncio.ensure_future(stream.wait_after(seq, PING_S))
                done, _ = await asyncio.wait({waiter, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    break
                events = waiter.result()
                if events:
                    body = b"".join(stream.frame(s, d) for s, d, _ in events)
                    seq = events[-1][0]
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                elif stream.closed:
                    break
                else:
                    await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                if stream.closed and not stream.after(seq):
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass
        finally:
            watcher.cancel()

    # -- POST ----------------------------------------------------------------------
    async def post(self, scope: Scope, receive: Any, send: Any, headers: dict[str, str],
                   raw_headers: list[tuple[bytes, bytes]], svc_scope: str | None) -> None:
        body = await _read_body(receive, headers)
        try:
            msg = loads(body)
        except RpcError as e:
            raise rpc_reply(e, None, 400) from None
        version_header = headers.get(h.PROTOCOL_VERSION_LC)
        era = era_of(version_header, msg)
        accept = headers.get("accept", "")
        can_sse = "text/event-stream" in accept or "*/*" in accept or not accept
        if era == STATELESS:
            await self._post_stateless(scope, receive, send, msg, headers, raw_headers, svc_scope, can_sse)
        else:
            await self._post_session(scope, receive, send, msg, headers, svc_scope, can_sse)

    async def _post_stateless(self, scope: Scope, receive: Any, send: Any, msg: Any, headers: dict[str, str],
                              raw_headers: list[tuple[bytes, bytes]], svc_scope: str | None, can_sse: bool) -> None:
        msg_id = _reply_id(msg)
        try:
            if isinstance(msg, list):
                raise RpcError(INVALID_REQUEST, "Invalid request: JSON-RPC batches are not supported in protocol 2026-07-28",
                               http_status=400)
            check_envelope(msg)
            if is_response(msg):
                raise RpcError(INVALID_REQUEST, "Invalid request: clients do not send responses in protocol 2026-07-28",
                               http_status=400)
            if is_notification(msg):
                v = headers.get(h.PROTOCOL_VERSION_LC)
                if v not in STATELESS_VERSIONS:
                    raise unsupported(v)
                raise HttpReply(202)
            envelope = check_request(msg, headers, _duplicated(raw_headers))
        except RpcError as e:
            raise rpc_reply(e, msg_id, STATELESS_HTTP_STATUS.get(e.code, 400)) from None
        method, params = msg["method"], msg.get("params") or {}
        if method == "subscriptions/listen":
            await self._listen(receive, send, msg_id, params, svc_scope)
            return
        stream = Stream()
        ctx = RequestCtx(STATELESS, envelope.protocol_version, svc_scope, envelope.client_info,
                         envelope.client_capabilities, None, ExchangeRelay(stream, None, _progress_token(params), can_sse),
                         _progress_token(params), _param_headers(raw_headers), principal_of(scope))
        await self._exchange(send, receive, msg_id, ctx, method, params, stream, cancel_on_close=True, stateless_status=True)

    async def _post_session(self, scope: Scope, receive: Any, send: Any, msg: Any, headers: dict[str, str],
                            svc_scope: str | None, can_sse: bool) -> None:
        self._check_version_header(headers, _reply_id(msg))
        if isinstance(msg, list):
            await self._batch(send, msg, headers, svc_scope, principal_of(scope))
            return
        try:
            check_envelope(msg)
        except RpcError as e:
            raise rpc_reply(e, _reply_id(msg), 400) from None
        msg_id = _reply_id(msg)  # a request's id is valid by now; a client's response may carry any
        method = msg.get("method")
        if method == "initialize":
            if is_notification(msg):
                raise HttpReply(400, error_response(None, INVALID_REQUEST, "Invalid request: initialize must be a request"))
            try:
                answer, session_header = await self._initialize(msg, svc_scope, principal_of(scope))
            except RpcError as e:  # too large a client declaration, or no room for a session
                raise rpc_reply(e, msg_id, 200) from None
            await send_json(send, 200, answer, session_header)
            return
        session = await self._session(headers, svc_scope, msg_id, principal_of(scope))
        if is_response(msg):
            if msg_id is not None and not session.answer(msg):  # else it answers nothing we asked
                await self.gw.route_answer(session, msg)
            raise HttpReply(202)
        if is_notification(msg):
            await self._notification(session, method, msg.get("params") or {})
            raise HttpReply(202)
        params = msg.get("params") or {}
        stream = Stream()
        session.add_stream(stream)
        token = _progress_token(params)
        ctx = RequestCtx(SESSION, session.version, svc_scope, session.client_info, session.capabilities, session,
                         ExchangeRelay(stream, session, token, can_sse), token, principal=principal_of(scope))
        await self._exchange(send, receive, msg_id, ctx, method, params, stream, cancel_on_close=False,
                             stateless_status=False)

    async def _initialize(self, msg: JSON, svc_scope: str | None,
                          principal: Principal | None) -> tuple[JSON, list[tuple[bytes, bytes]]]:
        params = msg.get("params") or {}
        version = negotiate(params.get("protocolVersion"))
        raw_info, raw_caps = params.get("clientInfo"), params.get("capabilities")
        info: JSON = raw_info if isinstance(raw_info, dict) else {}
        caps: JSON = raw_caps if isinstance(raw_caps, dict) else {}
        check_client_size(info, caps, self.gw.session_client_max_bytes)
        session = await self.gw.sessions.open(version, info, caps, svc_scope,
                                              principal.key if principal is not None else None)
        cat = self.gw.catalogs.get(svc_scope)
        result: JSON = {"protocolVersion": version, "capabilities": self.gw.capabilities(svc_scope, cat),
                        "serverInfo": self.gw.server_info(svc_scope, cat)}
        instructions = self.gw.instructions(svc_scope, cat)
        if instructions:
            result["instructions"] = instructions
        return response(msg["id"], result), [(h.SESSION_ID_LC.encode(), session.id.encode())]

    async def _notification(self, session: Session, method: str, params: JSON) -> None:
        if method == "notifications/initialized":
            if not session.initialized:
                session.initialized = True
                self.gw.sessions.saved(session)
        elif method == "notifications/cancelled":
            # Only a request id (a string or an integer) names a call; anything else names none. A
            # notification is never answered, so a malformed one is ignored rather than refused.
            rid = params.get("requestId")
            task = session.inflight.get(rid) if _is_request_id(rid) else None
            if task is not None:
                task.cancel()
        elif method == "notifications/roots/list_changed":
            for svc in self.gw.catalogs.get(session.scope).services:
                if svc.backend is not None:
                    try:
                        await svc.backend.notify(method, params, client_id=session.id)
                    except BackendError:
                        pass

    async def _batch(self, send: Any, msgs: list[Any], headers: dict[str, str], svc_scope: str | None,
                     principal: Principal | None) -> None:
        sid = headers.get(h.SESSION_ID_LC)
        session = await self.gw.sessions.find(sid) if sid else None
        version = session.version if session else headers.get(h.PROTOCOL_VERSION_LC, DEFAULT_HEADERLESS)
        if version not in BATCH_VERSIONS:
            raise HttpReply(400, error_response(None, INVALID_REQUEST,
                            f"Invalid request: JSON-RPC batches are not supported in protocol {version} (removed in 2025-06-18)"))
        if not msgs:
            raise HttpReply(400, error_response(None, INVALID_REQUEST, "Invalid request: empty batch"))
        session = await self._session(headers, svc_scope, principal=principal)
        out: list[JSON] = []
        for m in msgs:
            try:
                check_envelope(m)
            except RpcError as e:
                out.append(error_reply(_reply_id(m), e))
                continue
            if m.get("method") == "initialize":
                out.append(error_response(m.get("id"), INVALID_REQUEST, "initialize must not be part of a batch"))
            elif is_response(m):
                if _is_request_id(m.get("id")) and not session.answer(m):
                    await self.gw.route_answer(session, m)
            elif is_notification(m):
                await self._notification(session, m["method"], m.get("params") or {})
            else:
                stream = Stream()
                ctx = RequestCtx(SESSION, session.version, svc_scope, session.client_info, session.capabilities, session,
                                 ExchangeRelay(stream, session, None, False), None, principal=principal)
                out.append(await self._run(ctx, m["id"], m["method"], m.get("params") or {}))
        if not out:
            raise HttpReply(202)
        await send_json(send, 200, out)

    # -- one request, JSON or SSE ------------------------------------------------
    async def _run(self, ctx: RequestCtx, msg_id: Any, method: str, params: JSON) -> JSON:
        try:
            return response(msg_id, await self.gw.router.handle(ctx, method, params))
        except RpcError as e:
            return error_reply(msg_id, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must still answer with something readable
            return unexpected_reply(msg_id, method, e)

    async def _exchange(self, send: Any, receive: Any, msg_id: Any, ctx: RequestCtx, method: str, params: JSON,
                        stream: Stream, cancel_on_close: bool, stateless_status: bool) -> None:
        session = ctx.session
        counter = self.gw.stateless_inflight if session is None else None
        ex = Exchange(send, receive, stream, cancel_on_close)
        if session is not None:
            session.inflight[msg_id] = ex
        if counter is not None:
            counter[0] += 1
        try:
            await ex.run(self._run(ctx, msg_id, method, params), _stateless_status if stateless_status else _ok)
        finally:
            if counter is not None:
                counter[0] -= 1
            if session is not None and session.inflight.get(msg_id) is ex:
                del session.inflight[msg_id]

    # -- subscriptions/listen (stateless era) ------------------------------------
    async def _listen(self, receive: Any, send: Any, msg_id: Any, params: JSON, svc_scope: str | None) -> None:
        raw_wanted = params.get("notifications")
        wanted: JSON = raw_wanted if isinstance(raw_wanted, dict) else {}
        agreed: JSON = {}
        for key in ("toolsListChanged", "promptsListChanged", "resourcesListChanged"):
            if wanted.get(key):
                agreed[key] = True
        uris = wanted.get("resourceSubscriptions")
        routed: list[tuple[CatalogService, str]] = []
        if isinstance(uris, list):
            # Honoured: the URIs that belong to a serving service (the acknowledgement says which).
            for u in dict.fromkeys(u for u in uris if isinstance(u, str)):
                svc = self.gw.router.route_subscription(svc_scope, u)
                if svc is not None:
                    routed.append((svc, u))
            if routed:
                agreed["resourceSubscriptions"] = [u for _, u in routed]
        stream = Stream()
        meta = {META_SUBSCRIPTION_ID: msg_id}
        listener = self.gw.add_listener(stream, svc_scope, agreed, meta)
        try:
            for svc, u in routed:
                await self.gw.subscribe_resource(svc, u, f"listen:{id(listener)}")
        except BaseException:
            self.gw.remove_listener(listener)
            raise
        stream.push(notification("notifications/subscriptions/acknowledged", {"notifications": agreed, "_meta": meta}))
        try:
            await self._write_sse(send, receive, stream, 0)
        finally:
            self.gw.remove_listener(listener)
            stream.close()


async def _read_body(receive: Any, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise HttpReply(413, error_response(None, INVALID_REQUEST, f"request body larger than {MAX_BODY} bytes"))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpReply(400, None)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpReply(413, error_response(None, INVALID_REQUEST, f"request body larger than {MAX_BODY} bytes"))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _is_request_id(value: Any) -> bool:
    """A JSON-RPC request id as the gateway accepts one: a string or an integer (not a boolean)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _reply_id(msg: Any) -> Any:
    """The id to answer ``msg`` with: its own when it is a valid request id, else null (JSON-RPC:
    an id that cannot be determined is answered as null, never echoed)."""
    rid = msg.get("id") if isinstance(msg, dict) else None
    return rid if _is_request_id(rid) else None


def _ok(resp: JSON) -> int:
    return 200


def _stateless_status(resp: JSON) -> int:
    err = resp.get("error")
    return 200 if err is None else STATELESS_HTTP_STATUS.get(err.get("code"), 200)


def _duplicated(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    seen: set[bytes] = set()
    for k, _ in raw_headers:
        k = k.lower()
        if k in _ROUTING_HEADERS_RAW:
            if k in seen:
                return k.decode()
            seen.add(k)
    return None


def _param_headers(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The request's ``Mcp-Param-*`` headers, every copy, as (lower-case name, value) pairs."""
    return [(k.decode("latin-1").lower(), v.decode("latin-1").strip(" \t")) for k, v in raw_headers
            if k[:10].lower() == _PARAM_PREFIX_RAW]


def _progress_token(params: JSON) -> Any:
    meta = params.get("_meta")
    return meta.get("progressToken") if isinstance(meta, dict) else None


__all__ = ["McpEndpoint"]
