"""The MCP gateway: one Streamable HTTP endpoint for every service, both eras.

Owns ``Gateway``, the part ``runtimed.daemon`` builds with its collaborators
passed in (settings, the supervisor, the call path, the event bus, the intent
recorder): it wires the catalog cache, the session store, the control tools,
the router and the transport endpoints, bounds how long a list waits for stale
interfaces (``fresh_catalog``), feeds ``list_changed`` and upstream
notifications to connected clients, routes server-to-client requests not tied
to a call, and counts clients. Profiles (``/mcp/@NAME``) come from the profile
registry it is given: a profile's change rebuilds that endpoint's catalog and tells
its clients (``list_changed``). Each concept lives in its own module (see
docs/spec/gateway.md). Must not: check tokens or Host/Origin
(``runtimed.http.security``), enforce call policies (``runtimed.policy``) or
change lifecycle state except through the control tools.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from starlette.routing import BaseRoute, Route

from runtimed import __version__
from runtimed.backends.base import CallContext
from runtimed.config.profile import ProfileManifest
from runtimed.config.settings import Settings
from runtimed.errors import RelayUnavailable, StoreUnavailable
from runtimed.gateway import profiles as profile_views
from runtimed.gateway.catalog import Catalog, CatalogCache, CatalogService, profile_of, service_of
from runtimed.gateway.control import ControlTools
from runtimed.gateway.router import CallPath, IntentRecorder, Router, Subscribe
from runtimed.gateway.sessions import Listener, Session, SessionStore, Stream
from runtimed.gateway.stateless import StateSigner
from runtimed.gateway.transport import McpEndpoint
from runtimed.lifecycle.service import ServiceRuntime
from runtimed.lifecycle.supervisor import Supervisor
from runtimed.protocol.jsonrpc import notification
from runtimed.protocol.types import JSON
from runtimed.state.events import Event, EventBus
from runtimed.state.store import Store

log = logging.getLogger("runtimed.gateway")
# The event types ``_follow_events`` acts on (it is not woken for the others, e.g. one "call" per tool call).
FOLLOWED_EVENTS = ("transition", "interface", "service.removed", "service.updated")
LIST_KINDS = (("tools", "toolsListChanged"), ("prompts", "promptsListChanged"), ("resources", "resourcesListChanged"))
# How long a client's list waits for stale interfaces to be refreshed (supervisor.refresh_stale)
# before it is served from the cached view (the refresh goes on; a change is announced with list_changed).
AGGREGATE_REFRESH_WAIT_S = 0.25
SCOPED_REFRESH_WAIT_S = 2.0


class ProfileSource(Protocol):
    """What the gateway reads of the profiles (``runtimed.profiles.ProfileRegistry``)."""

    listeners: list[Callable[[str | None], None]]

    def get(self, name: str) -> ProfileManifest | None: ...

    def names(self) -> list[str]: ...


class _NoProfiles:
    def __init__(self) -> None:
        self.listeners: list[Callable[[str | None], None]] = []

    def get(self, name: str) -> ProfileManifest | None:
        return None

    def names(self) -> list[str]:
        return []


class Gateway:
    def __init__(self, settings: Settings, supervisor: Supervisor, policy: CallPath, events: EventBus,
                 recorder: IntentRecorder | None, store: Store, profiles: ProfileSource | None = None) -> None:
        """``store``: the daemon's state store (signing keys, shared session records); ``profiles``:
        the profiles served at ``/mcp/@NAME`` (None: none)."""
        self.settings = settings
        self.profiles: ProfileSource = profiles if profiles is not None else _NoProfiles()
        self.profiles.listeners.append(self.profile_changed)
        self.store = store
        self.supervisor = supervisor
        self.policy = policy
        self.events = events
        self.sessions = SessionStore(on_end=self._session_ended, idle_s=settings.session_idle_s,
                                     max_sessions=settings.max_sessions, on_start=self._session_started,
                                     store=store, on_adopt=self._session_adopted)
        store.on_answer(self._peer_answer)
        self.session_client_max_bytes = settings.session_client_max_bytes
        self.control = ControlTools(settings, supervisor)
        self.catalogs = CatalogCache(supervisor.serving, self.control.tools, self._renamed,
                                     lambda: settings.capture_intent, page_size=settings.list_page_size,
                                     profiles=self.profiles.get, build_profile=profile_views.build,
                                     withheld=supervisor.pins.withheld)
        supervisor.pins.listeners.append(self._pins_changed)
        # A profile with pinTools withholds a changed tool even where its service does not pin (a service
        # with pinTools withholds it from /mcp, and so from every profile, already).
        pins = supervisor.pins
        self.catalogs.withhold = lambda profile, svc, tool: (
            pins.withheld(svc, str(tool.get("name", "")), enforce=True) if profile.spec.pinTools else None)
        self.signer = StateSigner(self.store.signing_keys())
        self.router = Router(self, policy, self.control, recorder)
        self.listeners: set[Listener] = set()
        self.stateless_inflight = [0]
        self._announced: set[tuple[str, str, str, str]] = set()
        # (service id, uri) -> (service, subscribers): one upstream subscription per URI, shared by
        # every session and listen stream that asked for it (owner keys: session ids, listener ids).
        self.resource_subs: dict[tuple[str, str], tuple[CatalogService, set[str]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # scope -> monotonic time until which no interface in it goes stale (fresh_catalog's fast path;
        # dropped whenever a service starts, stops or changes).
        self._fresh_until: dict[str | None, float] = {}
        self._events_task: asyncio.Task[None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        # Raw ASGI apps of /mcp and /mcp/{service}: routed by Starlette, and ahead of it by ``http.asgi.McpDispatch``.
        self.endpoint = McpEndpoint(self, scoped=False)
        self.scoped_endpoint = McpEndpoint(self, scoped=True)

    # -- wiring ------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "DELETE"]
        return [Route("/mcp", self.endpoint, methods=methods), Route("/mcp/{service}", self.scoped_endpoint, methods=methods)]

    def registered(self) -> list[ServiceRuntime]:
        """Every registered service, serving or not, by name (the router names the ones not serving)."""
        return self.supervisor.all()

    def find_service(self, ref: str) -> str | None:
        """The name of the service named (or with the id) ``ref``, or None."""
        svc = self.supervisor.find(ref)
        return None if svc is None else svc.name

    # -- profiles ----------------------------------------------------------------------
    def profile_names(self) -> list[str]:
        return self.profiles.names()

    def has_profile(self, name: str) -> bool:
        return self.profiles.get(name) is not None

    def profile_tools(self, name: str) -> list[JSON] | None:
        """The tools profile ``name`` serves (in search mode: the ones its search reaches), each
        {name: as shown, original: its name on /mcp, service}; None when there is no such profile."""
        if self.profiles.get(name) is None:
            return None
        cat = self.catalogs.get("@" + name)
        full = cat.full or cat
        return [{"name": shown, "original": full.originals.get(shown, shown),
                 "service": e.svc.name if e.svc is not None else None} for shown, e in full.tool_map.items()]

    def profile_changed(self, name: str | None) -> None:
        """A profile was created, replaced or removed (None: any may have): its endpoint's catalog is
        rebuilt and its clients are told their lists changed."""
        self.catalogs.invalidate(name)
        self._fresh_until.clear()
        scope = None if name is None else "@" + name
        self._push_list_changed(lambda s: profile_of(s) is not None and (scope is None or s == scope),
                                ("tools", "prompts", "resources"))

    async def startup(self) -> None:
        sup = self.supervisor
        sup.notification_sinks.append(self._on_upstream_notification)
        sup.server_request_handler = self._on_server_request
        self._events_task = asyncio.ensure_future(self._follow_events())
        self._expiry_task = asyncio.ensure_future(self._expire_idle())

    async def shutdown(self) -> None:
        for task in (self._events_task, self._expiry_task):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for lst in list(self.listeners):
            lst.stream.close()
        self.sessions.close_all()

    def client_counts(self) -> dict[str, int]:
        return {"session": len(self.sessions), "stateless": self.stateless_inflight[0] + len(self.listeners)}

    def live_sessions(self) -> list[JSON]:
        """The session-era clients connected now, most recently seen first, as the status page shows
        them: no session id (it is the client's credential for its session), only a short digest of it."""
        now_mono, now = time.monotonic(), time.time()
        out: list[JSON] = []
        for s in sorted(self.sessions.all(), key=lambda s: s.last_seen, reverse=True):
            info = s.client_info
            out.append({
                "ref": hashlib.sha256(s.id.encode()).hexdigest()[:10],
                "client": str(info.get("name") or "unnamed client")[:120],
                "clientVersion": str(info.get("version") or "")[:60],
                "endpoint": "/mcp" if s.scope is None else f"/mcp/{s.scope}",
                "protocolVersion": s.version,
                "since": now - (now_mono - s.created), "lastSeen": now - (now_mono - s.last_seen),
                "streaming": bool(s.get_connected), "inflight": len(s.inflight),
                "adopted": s.adopted,  # created by another replica, served here too
            })
        return out

    async def _expire_idle(self) -> None:
        """End idle sessions on a clock, not only when a new client arrives (their upstream sessions
        and the status page's rows go with them)."""
        interval = min(60.0, max(0.05, self.settings.session_idle_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                self.sessions.expire()
            except Exception:
                log.exception("session expiry failed")

    # -- live interfaces ---------------------------------------------------------------
    async def fresh_catalog(self, scope: str | None) -> Catalog:
        """The catalog for a client that starts listing: the services in scope whose interface is
        stale (``Supervisor.refresh_stale``: by its ttlMs; on ``/mcp`` also not within
        ``interface_refresh_min_ms`` of the last fetch; one refresh at a time per service) are
        refreshed first, waiting at most ``SCOPED_REFRESH_WAIT_S`` on ``/mcp/<service>`` and
        ``AGGREGATE_REFRESH_WAIT_S`` on ``/mcp``; past that the cached view is served and the
        refresh finishes in the background."""
        cat = self.catalogs.get(scope)
        now = time.monotonic()
        if now < self._fresh_until.get(scope, 0.0):
            return cat  # every interface in scope was fresh until then: no per-service look
        sup = self.supervisor
        one = service_of(scope) is not None  # a service's own endpoint (else /mcp or a profile's)
        floor = 0 if one else self.settings.interface_refresh_min_ms
        tasks = [t for t in (sup.refresh_stale(s.id, floor) for s in cat.services) if t is not None]
        if not tasks:
            self._fresh_until[scope] = now + min((sup.fresh_for(s.id, floor) for s in cat.services), default=0.0)
            return cat
        await asyncio.wait(tasks, timeout=SCOPED_REFRESH_WAIT_S if one else AGGREGATE_REFRESH_WAIT_S)
        return self.catalogs.get(scope)

    async def refetch_interface(self, svc: CatalogService) -> None:
        """Refresh ``svc``'s interface now (the upstream showed it changed), waiting a bounded time."""
        task = self.supervisor.refresh_stale(svc.id, max_age_ms=0)
        if task is not None:
            await asyncio.wait([task], timeout=SCOPED_REFRESH_WAIT_S)

    def refetch_later(self, svc: CatalogService) -> None:
        """A call named a tool the cached interface lacks: refresh it in the background (at most
        once per ``interface_refresh_min_ms``)."""
        self.supervisor.refresh_stale(svc.id, max_age_ms=self.settings.interface_refresh_min_ms)

    # -- what the endpoints say about themselves -----------------------------------
    def capabilities(self, scope: str | None, cat: Catalog) -> JSON:
        caps: JSON = {"tools": {"listChanged": True}, "prompts": {"listChanged": True},
                      "resources": {"subscribe": True, "listChanged": True}, "completions": {}, "logging": {}}
        if service_of(scope) is not None and cat.services and cat.services[0].interface is not None:
            # Transparent: what the upstream offers, with its own listChanged and subscribe flags.
            up = cat.services[0].interface.capabilities
            caps = {k: v for k, v in caps.items() if k in up or k in ("tools",)}
            for k in ("tools", "prompts", "resources"):
                if k in caps:
                    caps[k] = {"listChanged": bool((up.get(k) or {}).get("listChanged"))}
            if "resources" in caps:
                caps["resources"]["subscribe"] = bool((up.get("resources") or {}).get("subscribe"))
        return caps

    def server_info(self, scope: str | None, cat: Catalog) -> JSON:
        if service_of(scope) is not None and cat.services and cat.services[0].interface \
                and cat.services[0].interface.server_info:
            info = dict(cat.services[0].interface.server_info)
            info.setdefault("version", "unknown")
            return info
        return {"name": "runtimed" if scope is None else f"runtimed/{scope}", "version": __version__}

    def instructions(self, scope: str | None, cat: Catalog) -> str | None:
        profile = profile_of(scope)
        if profile is not None:
            return self._profile_instructions(profile, cat)
        if scope is not None:
            return cat.services[0].interface.instructions if cat.services and cat.services[0].interface else None
        names = ", ".join(s.name for s in cat.services) or "none running"
        return (f"MCP Runtime gateway. Tools and prompts are named <service>__<name>; services: {names}. "
                "runtime__* tools report on the services themselves.")

    def _profile_instructions(self, name: str, cat: Catalog) -> str:
        manifest = self.profiles.get(name)
        about = f" {manifest.metadata.description.strip()}" if manifest and manifest.metadata.description else ""
        names = ", ".join(s.name for s in cat.services) or "none running"
        if cat.full is not None:
            how = (f"It lists three tools over its {len(cat.full.tool_map)} tools: {profile_views.SEARCH_TOOLS} finds "
                   f"tools by what they do, {profile_views.DESCRIBE_TOOL} shows one's arguments, and "
                   f"{profile_views.CALL_TOOL} calls it.")
        else:
            how = "Tools and prompts are named <service>__<name> unless the profile renames them."
        return f"MCP Runtime gateway, profile {name!r}.{about} {how} Services: {names}."

    # -- naming events ---------------------------------------------------------------
    def _renamed(self, cat: Catalog) -> None:
        for svc, kind, upstream, public in cat.renamed:
            key = (svc.id, kind, upstream, public)
            if key in self._announced:
                continue
            self._announced.add(key)
            self.events.emit("naming", svc.name, kind=kind, upstream=upstream, public=public,
                                    reason="shortened or cleaned to fit 64 characters and the tool-name rules, "
                                           "or disambiguated from another service", serviceId=svc.id)
            svc.log("info", f"{kind} {upstream!r} is listed as {public!r} on /mcp")

    # -- tool pinning ------------------------------------------------------------------
    def _pins_changed(self, service_id: str) -> None:
        """A tool of ``service_id`` was withheld or approved: the catalogs are built again, and its
        clients told their tool list changed."""
        self.catalogs.invalidate()
        svc = self.supervisor.services.get(service_id)
        if svc is not None:
            self.broadcast_list_changed(svc.name, ("tools",))

    # -- list_changed ----------------------------------------------------------------
    async def _follow_events(self) -> None:
        async for ev in self.events.subscribe(types=FOLLOWED_EVENTS):
            try:
                self._fresh_until.clear()
                kinds = self._changed_kinds(ev)
                if kinds:
                    self.catalogs.invalidate()
                    self.broadcast_list_changed(ev.service, kinds)
                if ev.type == "transition" and ev.data.get("to") == "RUNNING":
                    self._resubscribe(ev.service)
            except Exception:
                log.exception("list_changed fan-out failed")

    @staticmethod
    def _changed_kinds(ev: Event) -> tuple[str, ...]:
        # STARTING too: a service starting with a cached interface is listed (CatalogService.serving).
        if ev.type == "transition" and {"RUNNING", "STARTING"} & {ev.data.get("to"), ev.data.get("from")}:
            return ("tools", "prompts", "resources")
        if ev.type == "interface":
            # The upstream's own list_changed is forwarded even when the re-fetch found no change.
            notified = ev.data.get("notified")
            if not ev.data.get("changed", True):
                return (notified,) if notified in ("tools", "prompts", "resources") else ()
            diff = ev.data.get("diff") or {}
            kinds = tuple(k for k in ("tools", "prompts", "resources") if k in diff or k == notified
                          or (k == "resources" and "resourceTemplates" in diff))
            return kinds or ("tools", "prompts", "resources")
        if ev.type in ("service.removed", "service.updated"):
            return ("tools", "prompts", "resources")
        return ()

    def concerns(self, scope: str | None, service: str | None) -> bool:
        """Whether a change of ``service`` (None: of the gateway itself) concerns the clients of
        endpoint ``scope``: /mcp, that service's own, and the profiles that may serve from it."""
        if scope is None:
            return True
        profile = profile_of(scope)
        if profile is None:
            return scope == service
        manifest = self.profiles.get(profile)
        if manifest is None:
            return False
        if service is None:
            return True
        spec = manifest.spec
        return any(sel.admits(service) for sel in (spec.services, spec.prompts, spec.resources) if sel is not None)

    def broadcast_list_changed(self, service: str | None, kinds: tuple[str, ...]) -> None:
        self._push_list_changed(lambda scope: self.concerns(scope, service), kinds)

    def _push_list_changed(self, concerned: Callable[[str | None], bool], kinds: tuple[str, ...]) -> None:
        for session in self.sessions.all():
            if not concerned(session.scope):
                continue
            for k in kinds:
                session.standalone.push(notification(f"notifications/{k}/list_changed"))
        for lst in list(self.listeners):
            if not concerned(lst.scope):
                continue
            for k, flag in LIST_KINDS:
                if k in kinds and lst.agreed.get(flag):
                    lst.stream.push(notification(f"notifications/{k}/list_changed", {"_meta": lst.meta}))

    # -- resource subscriptions ------------------------------------------------------
    async def subscribe_resource(self, svc: CatalogService, uri: str, owner: str, forward: Subscribe | None = None) -> None:
        """Add ``owner`` to the URI's subscribers; the first one subscribes upstream.

        ``forward(svc, method, uri)`` makes the upstream call on behalf of the asking client (its
        errors reach that client); without it the call is best effort.
        """
        key = (svc.id, uri)
        _, owners = self.resource_subs.setdefault(key, (svc, set()))
        first = not owners
        owners.add(owner)
        if first:
            try:
                await (forward or self._upstream_subscription)(svc, "resources/subscribe", uri)
            except BaseException:
                owners.discard(owner)
                if not owners:
                    self.resource_subs.pop(key, None)
                raise

    async def unsubscribe_resource(self, svc: CatalogService, uri: str, owner: str) -> None:
        key = (svc.id, uri)
        hit = self.resource_subs.get(key)
        if hit is None or owner not in hit[1]:
            return
        hit[1].discard(owner)
        if not hit[1]:
            del self.resource_subs[key]
            await self._upstream_subscription(svc, "resources/unsubscribe", uri)

    def drop_subscriber(self, owner: str) -> None:
        """A session ended or a listen stream closed: release its subscriptions (in the background)."""
        for key, (svc, owners) in list(self.resource_subs.items()):
            if owner in owners:
                self._spawn(self.unsubscribe_resource(svc, key[1], owner))

    async def _upstream_subscription(self, svc: CatalogService, method: str, uri: str) -> None:
        """Best effort: tell the upstream, if it supports subscriptions; never raises."""
        caps = (svc.interface.capabilities if svc.interface else {}).get("resources") or {}
        if not caps.get("subscribe"):
            return
        try:
            await self.policy.call(svc, method, {"uri": uri}, CallContext())
        except Exception as e:  # a refused or failed (un)subscribe must not break the caller
            svc.log("warning", f"{method} {uri!r} on behalf of connected clients failed: {e}")

    def _resubscribe(self, service: str | None) -> None:
        """A service (re)started: its upstream forgot our subscriptions; renew them."""
        for (_, uri), (svc, owners) in list(self.resource_subs.items()):
            if owners and svc.name == service:
                self._spawn(self._upstream_subscription(svc, "resources/subscribe", uri))

    def _session_adopted(self, session: Session) -> None:
        """A session another replica created is served here now: its resource subscriptions are held
        here too (best effort: the upstream is asked again)."""
        self.events.notify("clients", None, era="session", change="adopted", endpoint=session.scope)
        for uri, service_id in session.subscribed.items():
            svc = self.supervisor.services.get(service_id)
            if svc is not None:
                self._spawn(self.subscribe_resource(svc, uri, session.id))

    async def route_answer(self, session: Session, msg: JSON) -> None:
        """A client's answer to a server-to-client request this replica did not ask: to the replica
        that did (through the shared store). When that replica is gone, so is the call that asked:
        the answer has nowhere to go, and that is logged."""
        try:
            routed = await self.store.route_answer(session.id, msg.get("id"), msg)
        except StoreUnavailable as e:
            log.warning("could not route an answer of session %s… to the replica that asked: %s", session.id[:8], e)
            return
        if routed is False:
            log.info("an answer of session %s… arrived for replica-held request %r, but that replica is gone",
                     session.id[:8], msg.get("id"))

    def _peer_answer(self, session_id: str, msg: JSON) -> None:
        """An answer another replica received for a request asked here."""
        session = self.sessions.get(session_id)
        if session is not None:
            session.answer(msg)

    def _session_started(self, session: Session) -> None:
        self.events.notify("clients", None, era="session", change="started", endpoint=session.scope)

    def _session_ended(self, session: Session) -> None:
        """A downstream session ended (DELETE), expired, was evicted or the daemon stops: its
        subscriptions, and every upstream session a backend opened for it, go with it."""
        reason = session.end_reason or "deleted"
        if reason == "evicted":
            log.info("the session of client %r was evicted: max_sessions (%d) reached and it was idle the longest",
                     str(session.client_info.get("name") or "unnamed")[:120], self.sessions.max_sessions)
        self.events.notify("clients", None, era="session", change="ended", reason=reason, endpoint=session.scope)
        self.drop_subscriber(session.id)
        for svc in list(self.supervisor.services.values()):
            backend = svc.backend
            if backend is not None:
                self._spawn(backend.release_client(session.id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_listener(self, stream: Stream, scope: str | None, agreed: JSON, meta: JSON) -> Listener:
        lst = Listener(stream, scope, agreed, meta)
        self.listeners.add(lst)
        return lst

    def remove_listener(self, lst: Listener) -> None:
        self.listeners.discard(lst)
        self.drop_subscriber(f"listen:{id(lst)}")

    # -- upstream traffic not tied to a call ----------------------------------------------
    def _on_upstream_notification(self, svc: CatalogService, method: str, params: JSON, client_id: str | None) -> None:
        """An upstream notification outside a call. From a client's own upstream session it goes to
        that client only; from the service's shared session, to the clients it concerns."""
        if client_id is not None:
            own = self.sessions.get(client_id)
            if own is not None and own.get_connected and (method != "notifications/resources/updated"
                                                          or params.get("uri") in own.subscriptions):
                own.standalone.push(notification(method, params))
            return
        if method == "notifications/resources/updated":
            uri = params.get("uri")
            for session in self.sessions.all():
                if self.concerns(session.scope, svc.name) and uri in session.subscriptions:
                    session.standalone.push(notification(method, params))
            for lst in list(self.listeners):
                if self.concerns(lst.scope, svc.name) and uri in (lst.agreed.get("resourceSubscriptions") or ()):
                    lst.stream.push(notification(method, {**params, "_meta": lst.meta}))
        elif method == "notifications/message":
            for session in self.sessions.all():
                if self.concerns(session.scope, svc.name) and session.get_connected:
                    session.standalone.push(notification(method, params))

    async def _on_server_request(self, svc: CatalogService, method: str, params: JSON, client_id: str | None) -> JSON:
        """A server-to-client request outside a call, from a client's own upstream session: asked
        of that client only, on its GET stream. The service's shared session speaks for no one
        client, so nobody is asked (one client's roots must never answer for another)."""
        if client_id is None:
            raise RelayUnavailable(f"{method} on the service's shared session: no one client can answer for it")
        session = self.sessions.get(client_id)
        if session is None or not session.get_connected or not session.has_capability(method):
            raise RelayUnavailable(f"the client cannot answer {method} now (no open stream or no such capability)")
        return await session.ask(session.standalone, method, params)
