"""Forwarding each MCP method to the right service, through the policy engine.

Owns ``RequestCtx`` (who asks, in which era, on which endpoint) and
``Router.handle``: lists from the catalog, ``tools/call`` / ``prompts/get`` by
public name (on a profile's endpoint, ``/mcp/@NAME``, by the name the profile shows:
a renamed tool routes to the original, a name the profile does not offer is unknown,
and the search-mode tools ``search_tools``/``describe_tool``/``call_tool`` are
answered here, ``call_tool`` taking the very path of a direct ``tools/call``), ``resources/*`` by URI, ``completion/complete`` by reference,
``logging/setLevel`` to every service in scope, ``ping``, ``server/discover``;
the stateless era's input-required results with signed ``requestState``; the
``Mcp-Param-*`` check of a stateless client's ``tools/call`` and the cached
schema handed to the backend (one retry after a re-list on an upstream -32020);
forwarding tool names the cache lacks (docs/spec/gateway.md, Live interfaces);
a tool name of a registered service that is not serving (stopped, crashed,
quarantined...) answered with what is true about it (``gateway.errors.not_serving``);
a tool the catalog withholds (``pinTools``: changed since it was approved) answered with the reason;
and refreshing stale interfaces before a list starts (through the host).
Every upstream call goes through the ``CallPath`` it is given (the policy
engine); what a call raises becomes an answer through ``gateway.errors``.
Its collaborators are explicit: the gateway's shared state (``RouterHost``),
the call path, the control tools and the intent recorder. Must not: speak
HTTP, hold sessions, or change lifecycle state (control tools go through
``control``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from runtimed.auth.resource import Principal
from runtimed.backends.base import CallContext, NullRelay
from runtimed.errors import BackendError, InputRequired, PolicyRefusal, RpcError
from runtimed.gateway import profiles
from runtimed.gateway.catalog import Catalog, CatalogCache, CatalogService, Entry, service_of
from runtimed.gateway.control import ControlTools
from runtimed.gateway.errors import NotServing, not_serving, rpc_error, tool_refusal, withheld_tool
from runtimed.gateway.sessions import Session, SessionStore
from runtimed.gateway.stateless import StateSigner, input_required
from runtimed.policy.service import PolicedService
from runtimed.protocol.jsonrpc import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    RESOURCE_NOT_FOUND,
    tool_error,
)
from runtimed.protocol.meta import ENVELOPE_KEYS, LOG_LEVEL, SERVER_INFO
from runtimed.protocol.params import check_param_headers
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import ALL_VERSIONS, STATELESS
from runtimed.records.intents import CAPABILITY_TOOL, INTENT_PROPERTY, capability_result, pop_intent

log = logging.getLogger("runtimed.gateway")


class CallPath(Protocol):
    """The one path a call to a service takes (``PolicyEngine.call``)."""

    async def call(self, svc: PolicedService, method: str, params: JSON, ctx: CallContext) -> JSON: ...


class IntentRecorder(Protocol):
    """Where stated intents and capability requests go (``records.analytics.Analytics``)."""

    def record_intent(self, service: str, tool: str, intent: str | None, client: str | None = None) -> None: ...

    def record_capability_request(self, description: Any, context: Any = None, client: str | None = None) -> JSON: ...


# ``forward(svc, method, uri)``: make an upstream (un)subscription on behalf of the asking client.
Subscribe = Callable[[CatalogService, str, str], Awaitable[None]]


class RouterHost(Protocol):
    """What the router reads of the gateway (``server.Gateway``)."""

    sessions: SessionStore
    catalogs: CatalogCache
    signer: StateSigner

    def registered(self) -> Sequence[NotServing]: ...

    def capabilities(self, scope: str | None, cat: Catalog) -> JSON: ...

    def server_info(self, scope: str | None, cat: Catalog) -> JSON: ...

    def instructions(self, scope: str | None, cat: Catalog) -> str | None: ...

    def client_counts(self) -> dict[str, int]: ...

    async def subscribe_resource(self, svc: CatalogService, uri: str, owner: str, forward: Subscribe | None = None) -> None: ...

    async def unsubscribe_resource(self, svc: CatalogService, uri: str, owner: str) -> None: ...

    async def fresh_catalog(self, scope: str | None) -> Catalog: ...

    async def refetch_interface(self, svc: CatalogService) -> None: ...

    def refetch_later(self, svc: CatalogService) -> None: ...


LIST_METHODS = {"tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources",
                "resources/templates/list": "resourceTemplates"}
LIST_TTL_MS = 0  # lists change when services start or stop: never cache
# Removed in 2026-07-28 (no sessions, subscriptions/listen, per-request log level): 404 / METHOD_NOT_FOUND there.
REMOVED_STATELESS = frozenset({"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})


@dataclass
class RequestCtx:
    era: str
    version: str
    scope: str | None  # None: aggregate (/mcp); "@NAME": profile NAME (/mcp/@NAME); else the service of /mcp/<name>
    client_info: JSON = field(default_factory=dict)
    client_capabilities: JSON = field(default_factory=dict)
    session: Session | None = None
    relay: Any = field(default_factory=NullRelay)
    progress_token: Any = None
    # Stateless era: the request's headers as (lower-case name, value) pairs, for the Mcp-Param-*
    # check; None in the session era (2025-11-25 and earlier define no Mcp-Param headers).
    param_headers: list[tuple[str, str]] | None = None
    # Who sent it (an OAuth token's subject and client, or the static token), when the gateway has an
    # issuer; None otherwise.
    principal: Principal | None = None


_STRIP = tuple(k for k in ENVELOPE_KEYS if k != LOG_LEVEL)


def _upstream_schema(svc: CatalogService, upstream: str) -> JSON | None:
    """The ``inputSchema`` of the service's tool ``upstream`` in its cached interface, or None."""
    iface = svc.interface
    for tool in (iface.tools if iface is not None else ()):
        if tool.get("name") == upstream:
            schema = tool.get("inputSchema")
            return schema if isinstance(schema, dict) else None
    return None


def _json_type(value: Any) -> str:
    """How JSON would name ``value``'s type, for a message about a wrong one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def _declares_intent(item: JSON, svc: CatalogService, upstream: str) -> bool:
    """Whether the upstream tool itself has an ``_intent`` argument (then it is its own, not ours)."""
    iface = svc.interface
    for tool in (iface.tools if iface is not None else ()):
        if tool.get("name") == upstream:
            props = (tool.get("inputSchema") or {}).get("properties")
            return isinstance(props, dict) and INTENT_PROPERTY in props
    return False


def _strip_envelope(params: JSON, log_level: str | None) -> JSON:
    """Drop the downstream's envelope (the backend speaks its own era); keep the log level opt-in."""
    meta = params.get("_meta")
    if log_level is not None:
        meta = {**(meta if isinstance(meta, dict) else {}), LOG_LEVEL: log_level}
        params = {**params, "_meta": meta}
    if not isinstance(meta, dict) or not any(k in meta for k in _STRIP):
        return params
    out = dict(params)
    rest = {k: v for k, v in meta.items() if k not in _STRIP}
    if rest:
        out["_meta"] = rest
    else:
        out.pop("_meta")
    return out


def _strip_stateless_residue(result: JSON) -> JSON:
    """A session-era client gets its own era's shapes: a stateless-era upstream's ``resultType``
    and ``_meta`` server info are not for it. Returns ``result`` itself when there is nothing to
    strip (the common case), else a copy (a cached result is shared)."""
    meta = result.get("_meta")
    has_info = isinstance(meta, dict) and SERVER_INFO in meta
    if "resultType" not in result and not has_info:
        return result
    out = {k: v for k, v in result.items() if k != "resultType"}
    if has_info:
        assert isinstance(meta, dict)
        rest = {k: v for k, v in meta.items() if k != SERVER_INFO}
        if rest:
            out["_meta"] = rest
        else:
            del out["_meta"]
    return out


class Router:
    def __init__(self, host: RouterHost, policy: CallPath, control: ControlTools,
                 recorder: IntentRecorder | None = None) -> None:
        self.gw = host
        self.policy = policy
        self.control = control
        self.recorder = recorder

    # -- entry ---------------------------------------------------------------
    async def handle(self, ctx: RequestCtx, method: str, params: JSON) -> JSON:
        if ctx.era == STATELESS and method in REMOVED_STATELESS:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method} does not exist in protocol {ctx.version}",
                           http_status=404)
        if method in LIST_METHODS and params.get("cursor") is None:
            # A client starts listing: stale interfaces are refreshed first (bounded; see fresh_catalog).
            cat = await self.gw.fresh_catalog(ctx.scope)
        else:
            cat = self.gw.catalogs.get(ctx.scope)
        if method == "tools/call":
            result = await self._tools_call(ctx, cat, params)
        elif method in LIST_METHODS:
            kind = LIST_METHODS[method]
            cursor = params.get("cursor")
            if cursor is not None and not isinstance(cursor, str):
                raise RpcError(INVALID_PARAMS, "Invalid params: cursor must be a string")
            items, nxt = cat.page(kind, cursor)
            result = {kind: items}
            if nxt is not None:
                result["nextCursor"] = nxt
            if ctx.era == STATELESS:
                result["ttlMs"] = LIST_TTL_MS
                result["cacheScope"] = "private"
        elif method == "resources/read":
            result = await self._by_uri(ctx, cat, method, params)
        elif method == "prompts/get":
            name = params.get("name")
            entry = cat.prompt_map.get(name) if isinstance(name, str) else None
            if entry is None:
                raise RpcError(INVALID_PARAMS, f"Unknown prompt: {name!r}", http_status=400)
            result = await self._forward(ctx, entry.svc, method, {**params, "name": entry.upstream}, params)
        elif method in ("resources/subscribe", "resources/unsubscribe"):
            result = await self._subscribe(ctx, cat, method, params)
        elif method == "completion/complete":
            result = await self._complete(ctx, cat, params)
        elif method == "logging/setLevel":
            result = await self._set_level(ctx, cat, params)
        elif method == "ping":
            result = {}
        elif method == "server/discover" and ctx.era == STATELESS:
            result = self.discover(ctx.scope, cat)
        else:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}", http_status=404)
        if ctx.era == STATELESS:
            result.setdefault("resultType", "complete")
        return result

    # -- methods ---------------------------------------------------------------
    async def _tools_call(self, ctx: RequestCtx, cat: Catalog, params: JSON) -> JSON:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: tools/call needs a string 'name'", http_status=400)
        args = params.get("arguments", {})
        if args is not None and not isinstance(args, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: 'arguments' must be an object", http_status=400)
        withheld = cat.withheld.get(name)
        if withheld is not None:  # pinTools: changed since it was approved
            return withheld_tool(withheld, name)
        entry = cat.tool_map.get(name) or cat.hidden_map.get(name)
        if entry is None:
            found = self._profile_unlisted(ctx, cat, name) if cat.profile is not None else None
            if isinstance(found, Entry):
                entry = found
            else:
                idle = found if found is not None else self._not_serving_owners(ctx, cat, name)
                if idle:
                    return not_serving(idle)
                entry = self._unlisted_tool(ctx, cat, name)
        schema = entry.item.get("inputSchema")
        if ctx.param_headers is not None:
            why = check_param_headers(schema, args, ctx.param_headers)
            if why is not None:
                raise RpcError(HEADER_MISMATCH, f"Header mismatch: {why}", http_status=400)
        analytics = self.recorder
        client = (ctx.client_info or {}).get("name")
        if entry.svc is None:
            if cat.full is not None and name in profiles.SEARCH_MODE_NAMES:
                return await self._search_mode(ctx, cat, name, args or {}, params)
            if name == CAPABILITY_TOOL:
                if analytics is None:
                    return capability_result(False, "capability requests are not recorded by this daemon")
                a = args or {}
                return analytics.record_capability_request(a.get("description"), a.get("context"), client)
            return await self.control.call(name, args or {}, self.gw.client_counts())
        fwd = {**params, "name": entry.upstream}
        if cat.intent and not _declares_intent(entry.item, entry.svc, entry.upstream):
            # The gateway added `_intent` to the schema: take it out, record it, never forward it.
            intent, rest = pop_intent(args)
            if rest is not args:
                fwd["arguments"] = rest
            if analytics is not None and intent is not None:
                analytics.record_intent(entry.svc.name, entry.upstream, intent, client)
        svc = entry.svc
        if not entry.item:  # not in the cached interface: the upstream answers; then look again
            self.gw.refetch_later(svc)
        # On a profile's endpoint the call record names the profile and the name the client used.
        record = {"profile": cat.profile.name, "profileTool": name} if cat.profile is not None else None
        try:
            return await self._forward(ctx, svc, "tools/call", fwd, params, input_schema=schema, record=record)
        except RpcError as e:
            if e.code != HEADER_MISMATCH:
                raise
            # The upstream wants Mcp-Param headers our cached schema does not ask for: its tool
            # changed. As the spec asks of a client: list again, then retry once with the new schema.
            await self.gw.refetch_interface(svc)
            fresh = _upstream_schema(svc, entry.upstream)
            if fresh is None or fresh == schema:
                raise
            return await self._forward(ctx, svc, "tools/call", fwd, params, input_schema=fresh, record=record)

    async def _search_mode(self, ctx: RequestCtx, cat: Catalog, name: str, args: JSON, params: JSON) -> JSON:
        """The three tools of a search-mode profile. ``call_tool`` is a ``tools/call`` of the named
        tool on the profile's full catalog: the same routing, policies and call record (which names
        the real tool); only an unknown name is answered here, as an ``isError`` result."""
        if name == profiles.SEARCH_TOOLS:
            return await profiles.search(cat, args)
        if name == profiles.DESCRIBE_TOOL:
            return profiles.describe(cat, args)
        full = cat.full
        assert full is not None
        target, arguments = args.get("name"), args.get("arguments")
        if not isinstance(target, str) or not (target in full.tool_map or target in full.hidden_map
                                               or target in full.withheld):
            return profiles.unknown_tool(cat, target)
        if arguments is not None and not isinstance(arguments, dict):
            return tool_error(f"{profiles.CALL_TOOL}: 'arguments' must be an object (the arguments of {target!r}; "
                              f"see {profiles.DESCRIBE_TOOL})")
        inner = {k: v for k, v in params.items() if k not in ("name", "arguments")}
        inner.update(name=target, arguments=arguments or {})
        # No Mcp-Param-* check: the client sent call_tool's headers, not the inner tool's (the
        # backend still mirrors the tool's x-mcp-header arguments upstream).
        return await self._tools_call(replace(ctx, param_headers=None), full, inner)

    def _profile_unlisted(self, ctx: RequestCtx, cat: Catalog, name: str) -> Entry | list[NotServing]:
        """A name a profile's catalog lacks: the services that are not serving and would own it
        (answered with what is true about them), or the entry of a tool the cached interfaces lack
        (forwarded, as on /mcp), when the profile offers that tool; else -32602 unknown tool."""
        profile = cat.profile
        assert profile is not None
        unknown = RpcError(INVALID_PARAMS, f"Unknown tool: {name!r} (profile {profile.name!r} offers no such tool; "
                                           "see tools/list)", http_status=400)
        original = profiles.resolve_name(profile, name)
        if original is None or cat.full is not None:
            raise unknown
        agg = self.gw.catalogs.get(None)
        if original in agg.tool_map or original in agg.hidden_map:
            raise unknown  # a tool /mcp knows, and this profile does not list: outside the profile
        admits = profile.spec.services.admits
        idle = [s for s in self._not_serving_owners(RequestCtx(ctx.era, ctx.version, None), cat, original)
                if admits(s.name)]
        if idle:
            return idle
        try:
            entry = self._unlisted_tool(RequestCtx(ctx.era, ctx.version, None), cat, original)
        except RpcError:
            raise unknown from None
        if entry.svc is None or not admits(entry.svc.name):
            raise unknown
        return entry

    def _not_serving_owners(self, ctx: RequestCtx, cat: Catalog, name: str) -> list[NotServing]:
        """The registered services that are not serving and would own the tool ``name``: on
        ``/mcp/<service>`` that service when it is not serving; on ``/mcp`` those whose namespace
        is the longest prefix ``<namespace>__`` of ``name``, unless a serving service's is as long."""
        serving = {s.id for s in cat.services}
        if service_of(ctx.scope) is not None:
            if cat.services:
                return []
            return [s for s in self.gw.registered() if s.name == ctx.scope and s.id not in serving][:1]

        def owns(ns: str) -> bool:
            return name.startswith(ns + "__") and len(name) > len(ns) + 2

        longest_serving = max((len(s.namespace) for s in cat.services if owns(s.namespace)), default=0)
        idle = [s for s in self.gw.registered() if s.id not in serving and owns(s.namespace)]
        longest = max((len(s.namespace) for s in idle), default=0)
        if longest <= longest_serving:
            return []
        return [s for s in idle if len(s.namespace) == longest]

    def _unlisted_tool(self, ctx: RequestCtx, cat: Catalog, name: str) -> Entry:
        """A tool name the catalog does not have. ``/mcp/<service>`` forwards it to the service (the
        upstream decides; its interface may have changed since it was cached); ``/mcp`` does when
        the name is ``<namespace>__<tool>`` for the namespace of exactly one serving service; else -32602."""
        svc: CatalogService | None = None
        upstream = name
        hint = f" (service {ctx.scope!r} offers no such tool)" if ctx.scope else " (see tools/list)"
        if service_of(ctx.scope) is not None:
            svc = cat.services[0] if cat.services else None
        else:
            owners = [s for s in cat.services if name.startswith(s.namespace + "__") and len(name) > len(s.namespace) + 2]
            longest = max((len(s.namespace) for s in owners), default=0)
            owners = [s for s in owners if len(s.namespace) == longest]
            if len(owners) == 1:
                svc, upstream = owners[0], name[longest + 2:]
            elif owners:
                hint = (f" (services {', '.join(repr(s.name) for s in owners)} share the namespace "
                        f"{owners[0].namespace!r}, so an unlisted name cannot be routed; see tools/list)")
        if svc is None:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name!r}{hint}", http_status=400)
        return Entry(svc, upstream, {})

    async def _by_uri(self, ctx: RequestCtx, cat: Catalog, method: str, params: JSON) -> JSON:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, f"Invalid params: {method} needs a string 'uri'", http_status=400)
        svc = self._resource_service(ctx, cat, uri)
        return await self._forward(ctx, svc, method, params, params)

    def _resource_service(self, ctx: RequestCtx, cat: Catalog, uri: str) -> CatalogService:
        entry = cat.route_resource(uri)
        if entry is not None and entry.svc is not None:
            return entry.svc
        if service_of(ctx.scope) is not None and cat.services:
            return cat.services[0]  # transparent proxy: the one service decides
        raise RpcError(RESOURCE_NOT_FOUND, f"Resource not found: {uri!r} matches no resource or template of a running service",
                       data={"uri": uri})

    async def _subscribe(self, ctx: RequestCtx, cat: Catalog, method: str, params: JSON) -> JSON:
        """Session era. The gateway keeps the subscription per session and holds one upstream
        subscription per URI (the first subscriber makes it, the last one releases it); for a
        2026-07-28 upstream the backend carries it on ``subscriptions/listen``."""
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, f"Invalid params: {method} needs a string 'uri'", http_status=400)
        svc = self._resource_service(ctx, cat, uri)
        if ctx.session is None:
            return {}
        if method == "resources/subscribe":

            async def forward(s: CatalogService, m: str, u: str) -> None:
                caps = (s.interface.capabilities if s.interface else {}).get("resources") or {}
                if caps.get("subscribe"):
                    # Held on the service's shared session: it outlives this client (one upstream
                    # subscription per URI for every subscriber).
                    await self._forward(ctx, s, m, {**params, "uri": u}, params, shared=True)

            await self.gw.subscribe_resource(svc, uri, ctx.session.id, forward)
            ctx.session.subscriptions.add(uri)
            ctx.session.subscribed[uri] = svc.id
        else:
            ctx.session.subscriptions.discard(uri)
            ctx.session.subscribed.pop(uri, None)
            await self.gw.unsubscribe_resource(svc, uri, ctx.session.id)
        self.gw.sessions.saved(ctx.session)
        return {}

    def route_subscription(self, scope: str | None, uri: str) -> CatalogService | None:
        """The service a listen stream's ``resourceSubscriptions`` URI belongs to, or None."""
        cat = self.gw.catalogs.get(scope)
        try:
            return self._resource_service(RequestCtx(STATELESS, "", scope), cat, uri)
        except RpcError:
            return None

    async def _complete(self, ctx: RequestCtx, cat: Catalog, params: JSON) -> JSON:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: completion/complete needs a 'ref' object", http_status=400)
        if ref.get("type") == "ref/prompt":
            prompt = ref.get("name")
            if not isinstance(prompt, str):
                raise RpcError(INVALID_PARAMS, "Invalid params: a ref/prompt's ref.name must be a string (the prompt's "
                               f"name, see prompts/list), not {_json_type(prompt)}", http_status=400)
            entry = cat.prompt_map.get(prompt)
            if entry is None:
                raise RpcError(INVALID_PARAMS, f"Unknown prompt: {prompt!r}", http_status=400)
            svc, fwd = entry.svc, {**params, "ref": {**ref, "name": entry.upstream}}
        elif ref.get("type") == "ref/resource":
            uri = ref.get("uri")
            if not isinstance(uri, str):
                raise RpcError(INVALID_PARAMS, "Invalid params: a ref/resource's ref.uri must be a string, "
                               f"not {_json_type(uri)}", http_status=400)
            svc, fwd = self._template_service(ctx, cat, uri), params
        else:
            raise RpcError(INVALID_PARAMS, f"Invalid params: unknown ref type {ref.get('type')!r}", http_status=400)
        if svc is None:
            raise RpcError(INVALID_PARAMS, "Invalid params: no service for this reference", http_status=400)
        if not (svc.interface and "completions" in svc.interface.capabilities):
            return {"completion": {"values": [], "hasMore": False}}
        return await self._forward(ctx, svc, "completion/complete", fwd, params)

    def _template_service(self, ctx: RequestCtx, cat: Catalog, uri: str) -> CatalogService | None:
        for e in cat.templates:
            if e.upstream == uri:
                return e.svc
        return self._resource_service(ctx, cat, uri)

    async def _set_level(self, ctx: RequestCtx, cat: Catalog, params: JSON) -> JSON:
        level = params.get("level")
        if not isinstance(level, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: logging/setLevel needs a string 'level'", http_status=400)
        if ctx.session is not None:
            ctx.session.log_level = level
            self.gw.sessions.saved(ctx.session)
        targets = [s for s in cat.services if s.interface and "logging" in s.interface.capabilities]
        if targets:
            # Best effort: one service refusing must not fail the client's request.
            await asyncio.gather(*(self._forward(ctx, s, "logging/setLevel", params, params) for s in targets),
                                 return_exceptions=True)
        return {}

    def discover(self, scope: str | None, cat: Catalog) -> JSON:
        result: JSON = {
            "supportedVersions": list(ALL_VERSIONS),
            "capabilities": self.gw.capabilities(scope, cat),
            "instructions": self.gw.instructions(scope, cat),
            "ttlMs": 0,
            "cacheScope": "private",
            "resultType": "complete",
            "_meta": {SERVER_INFO: self.gw.server_info(scope, cat)},
        }
        if result["instructions"] is None:
            del result["instructions"]
        return result

    # -- the one call path ---------------------------------------------------
    async def _forward(self, ctx: RequestCtx, svc: CatalogService | None, method: str, params: JSON,
                       original: JSON, input_schema: JSON | None = None, *,
                       shared: bool = False, record: JSON | None = None) -> JSON:
        """Call ``svc`` through the policy path on behalf of ``ctx``'s client (its own upstream
        session in the session era; ``shared``: on the service's shared session). ``record``: fields
        for the call record of a ``tools/call``."""
        if svc is None:
            raise RpcError(INTERNAL_ERROR, "internal routing error: no service")
        # Session-era servers may send log messages without logging/setLevel; a stateless-era
        # upstream only does when asked, so a session-era client's level defaults to debug.
        params = _strip_envelope(params, (ctx.session.log_level or "debug") if ctx.session is not None else None)
        request_state = None
        if "requestState" in params:
            payload = self.gw.signer.verify(params["requestState"])
            if payload.get("p") != (ctx.principal.key if ctx.principal is not None else None):
                raise RpcError(INVALID_PARAMS, "Invalid params: requestState was issued to another principal",
                               http_status=400)
            if payload.get("s") != svc.id or payload.get("m") != method:
                raise RpcError(INVALID_PARAMS, "Invalid params: requestState belongs to another request", http_status=400)
            # The upstream's own state; none (or empty) means the retry carries no requestState.
            request_state = payload.get("st") or None
            params = {k: v for k, v in params.items() if k != "requestState"}
            if request_state is not None:
                params["requestState"] = request_state
        client_id = ctx.session.id if ctx.session is not None and not shared else None
        cctx = CallContext(relay=ctx.relay, progress_token=ctx.progress_token, client_info=ctx.client_info,
                           client_capabilities=ctx.client_capabilities, protocol_version=ctx.version,
                           request_state=request_state, client_id=client_id,
                           input_schema=input_schema,
                           principal=ctx.principal.to_json() if ctx.principal is not None else None,
                           record_fields=record or {})
        try:
            result = await self.policy.call(svc, method, params, cctx)
            return result if ctx.era == STATELESS else _strip_stateless_residue(result)
        except InputRequired as e:
            if ctx.era != STATELESS:
                raise rpc_error(e, svc.name) from None
            signed: JSON = {"s": svc.id, "m": method, "st": e.request_state}
            if ctx.principal is not None:
                signed["p"] = ctx.principal.key
            token = self.gw.signer.sign(signed)
            return input_required(e.requests, token)
        except PolicyRefusal as e:
            if method == "tools/call":
                return tool_refusal(e)
            raise rpc_error(e, svc.name) from None
        except BackendError as e:
            raise rpc_error(e, svc.name) from None
