"""The lifecycle supervisor: the set of services, and every change of their state.

Owns ``Supervisor``: boot and shutdown, registering, updating (a whole
manifest: ``apply``; some fields, as a merge patch applied under the registry
lock: ``update``) and removing services (through ``Registry``; a removal is
unregistered durably before the service is stopped, so a registry that cannot
be written changes nothing), the lifecycle transitions (each one an
event), the restart policy (backoff, quarantine; a quarantine is kept in
``quarantine.json`` and outlives a restart: such a service is not retried at
boot, and the daemon says so), what a failure means (``last_error_cause``),
refusing to keep a new service whose origin cannot be reached when asked
(``apply(..., keep_unreachable=False)``), the health-probe schedule,
the interface snapshot (cached, persisted under ``interfaces/``, diffed on
refresh, refreshed when stale by its ``ttl_ms`` as clients list:
``refresh_stale``; each interface is handed to the tool pins, ``runtimed.pins``, before it is
served), and the operations the API and the control tools call.
One service's state is ``service.ServiceRuntime``. Must not: know which kind a service is
(it holds a ``Backend``), enforce call policies (``runtimed.policy``), speak
MCP to clients (``runtimed.gateway``), or touch ``registry.json`` except
through ``Registry``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from runtimed.auth.upstream import SignIns
from runtimed.backends import (
    UNREACHABLE_CAUSES,
    create_backend,
    explain_cause,
    failure_cause,
    origin_label,
    prepare_origin,
    release_leftovers,
)
from runtimed.backends.base import Backend, Health, Interface, ProbeResult
from runtimed.backends.secrets import resolve_reference
from runtimed.config.changes import field_changes, merge_patch
from runtimed.config.manifest import ServiceManifest, parse_manifest
from runtimed.config.settings import Settings
from runtimed.errors import (
    BackendError,
    BackendFault,
    BackendStartError,
    InvalidOrigin,
    ManifestError,
    RegistryConflict,
    RegistryError,
    SignInRequired,
    StoreUnavailable,
    SupervisorError,
)
from runtimed.lifecycle.service import ServiceRuntime, State
from runtimed.pins.book import ToolPins
from runtimed.policy.service import PolicedService
from runtimed.protocol.types import JSON
from runtimed.state.events import EventBus
from runtimed.state.registry import Registry, RegistryDoc
from runtimed.state.store import Change, Store

log = logging.getLogger("runtimed.supervisor")

# Consecutive failed probes (UNREACHABLE) after which a running service is
# treated as crashed and the restart policy applies.
PROBE_FAILURES_TO_CRASH = 3


class Supervisor:
    def __init__(self, settings: Settings, registry: Registry, events: EventBus, store: Store) -> None:
        self.settings = settings
        self.registry = registry
        self.events = events
        self.store = store
        self.services: dict[str, ServiceRuntime] = {}
        # (len(services), serving()) until a service's state, interface or manifest is set or the set changes.
        self._serving_cache: tuple[int, list[ServiceRuntime]] | None = None
        self.notification_sinks: list[Callable[[ServiceRuntime, str, JSON, str | None], None]] = []
        self.server_request_handler: Callable[[ServiceRuntime, str, JSON, str | None], Awaitable[JSON]] | None = None
        # Told when another replica changed a keyed document (profiles, tokens, pins): (collection, key).
        self.doc_listeners: list[Callable[[str | None, str | None], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._mutate = asyncio.Lock()  # serialises registry changes
        self._closing = False
        # Interface refreshes asked for by clients listing: one task per service id at a time, and
        # when each service's interface was last fetched or tried (monotonic seconds).
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._checked: dict[str, float] = {}
        # OAuth sign-ins of services whose authRef is "oauth": kept across their backends' restarts.
        self.sign_ins = SignIns(store, settings.callback_base_url, public_url=settings.public_url,
                                secret=lambda ref, name: resolve_reference(ref, settings.state_dir, f"oauth.clientSecretRef {ref}"),
                                log=self._service_log)
        self.sign_ins.on_signed_in = self._signed_in
        self.sign_ins.on_signed_out = self._signed_out
        # Tool pinning: each interface is observed before it is served (``_store_interface``).
        self.pins = ToolPins(store, events, self.spawn)
        self.doc_listeners.append(self.pins.peer_change)

    # -- OAuth sign-ins ---------------------------------------------------
    def _service_log(self, service_id: str, level: str, message: str) -> None:
        svc = self.services.get(service_id)
        if svc is not None:
            svc.log(level, message)

    async def _signed_in(self, service_id: str) -> None:
        """A sign-in completed: the service starts (again) with its new token."""
        svc = self.services.get(service_id)
        if svc is None:
            return
        self.events.emit("auth.signed_in", svc.name, serviceId=svc.id)
        if svc.state == State.QUARANTINED or not svc.manifest.spec.enabled:
            return
        self.spawn(self._start_signed_in(svc))

    async def _start_signed_in(self, svc: ServiceRuntime) -> None:
        try:  # recorded as an intent: with a shared store, every replica starts it with the new sign-in
            await self.restart(svc.id, reason="signed in", intend=True)
        except (SupervisorError, StoreUnavailable) as e:
            svc.log("warning", f"signed in, but could not start: {e}")

    def _signed_out(self, service_id: str, reason: str) -> None:
        """A service's sign-in ended (refused refresh, revoked token, sign-out): it waits for a new one."""
        svc = self.services.get(service_id)
        if svc is None:
            return
        self.events.emit("auth.signed_out", svc.name, serviceId=svc.id, reason=reason)
        self._set_health(svc, Health.UNAUTHORIZED, reason, None)
        if svc.state in (State.RUNNING, State.STARTING, State.CRASHED):
            self.spawn(self._wait_for_sign_in(svc, reason))

    async def _wait_for_sign_in(self, svc: ServiceRuntime, reason: str) -> None:
        _cancel_restart(svc)
        async with svc.lock:
            if svc.state in (State.RUNNING, State.CRASHED):
                await self._stop_backend(svc, reason)
                self._set_health(svc, Health.UNAUTHORIZED, reason, None)
                self._transition(svc, State.STOPPED, f"waiting for a sign-in: {reason}")

    # -- plumbing --------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; cancelled at shutdown."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def serving_changed(self) -> None:
        """A service's state, interface or manifest was set: ``serving()`` is computed again."""
        self._serving_cache = None

    def get(self, ref: str) -> ServiceRuntime:
        svc = self.services.get(ref)
        if svc is None:
            for s in self.services.values():
                if s.name == ref:
                    return s
            raise SupervisorError(f"no service named or with id {ref!r}", status=404)
        return svc

    def find(self, ref: str) -> ServiceRuntime | None:
        try:
            return self.get(ref)
        except SupervisorError:
            return None

    def all(self) -> list[ServiceRuntime]:
        return sorted(self.services.values(), key=lambda s: s.name)

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(services by state, every state listed; services by health)."""
        by_state = {s.value: 0 for s in State}
        by_health: dict[str, int] = {}
        for svc in self.services.values():
            by_state[svc.state.value] += 1
            by_health[svc.health.value] = by_health.get(svc.health.value, 0) + 1
        return by_state, by_health

    def serving(self) -> list[ServiceRuntime]:
        """The services the gateway lists, by name. The same list object until a service is added or
        removed or one's state, interface or manifest is set (the gateway's catalog cache relies on
        that): callers must not mutate it."""
        cached = self._serving_cache
        if cached is not None and cached[0] == len(self.services):
            return cached[1]
        out = [s for s in self.all() if s.serving]
        self._serving_cache = (len(self.services), out)
        return out

    def _transition(self, svc: ServiceRuntime, to: State, reason: str) -> None:
        frm = svc.state
        svc.state = to
        svc.state_reason = reason
        svc.state_since = time.time()
        if to == State.RUNNING:
            svc.started.set()
        else:
            svc.started.clear()
        svc.log("info" if to not in (State.CRASHED, State.QUARANTINED) else "error", f"{frm.value} -> {to.value}: {reason}")
        self.events.emit("transition", svc.name, **{"from": frm.value, "to": to.value, "reason": reason, "serviceId": svc.id})

    def _set_health(self, svc: ServiceRuntime, health: Health, detail: str, latency: float | None) -> None:
        changed = health != svc.health
        svc.health, svc.health_detail, svc.health_latency_ms = health, detail, latency
        if changed:
            self.events.emit("health", svc.name, health=health.value, detail=detail, serviceId=svc.id)

    # -- boot and shutdown ----------------------------------------------
    async def boot(self) -> None:
        # Children a previous daemon left when it was killed would hold ports, files and memory.
        for line in await asyncio.to_thread(release_leftovers, str(self.settings.state_dir)):
            log.warning("%s", line)
            self.events.emit("daemon.leftovers", None, message=line)
        await self.pins.load()  # before any interface arrives: a change made while down is still a change
        for entry in self.registry:
            svc = ServiceRuntime(self, entry.manifest)
            self._load_snapshot(svc)
            self.services[svc.id] = svc
        self._serving_cache = None
        intents = await asyncio.to_thread(self.store.load_intents)
        for svc in self.all():
            self._first_start(svc, intents.get(svc.id))

    def _first_start(self, svc: ServiceRuntime, intent: JSON | None) -> None:
        """A service this daemon just learned of (at boot, or registered by another replica): kept
        quarantined or stopped as its intent says, else started as its manifest says."""
        desired = intent.get("desired") if intent else None
        if desired == "quarantined" and intent is not None:
            self._keep_quarantined(svc, intent)
        elif not svc.manifest.spec.enabled:
            svc.state_reason = "disabled"
        elif desired == "stopped" and intent is not None:
            svc.state_reason = f"stopped ({intent.get('reason') or 'stop requested'})"
        elif desired == "running" or svc.manifest.spec.autostart:
            self.spawn(self.start(svc.id, reason="autostart"))

    # -- lifecycle intents: a quarantine outlives a restart, and with a shared store every
    # start, stop, quarantine and unquarantine holds on every replica ----------------------------
    async def _intend(self, svc: ServiceRuntime, desired: str | None, reason: str, required: bool = True) -> None:
        """Record what ``svc`` should be (``running``, ``stopped``, ``quarantined``; None: as its manifest
        says). ``required``: a store that cannot take it refuses the request (503), else it is logged."""
        record: JSON | None = None
        if desired == "quarantined":
            record = {"desired": desired, "name": svc.name, "since": svc.state_since, "reason": svc.quarantine_reason,
                      "lastError": svc.last_error, "cause": svc.last_error_cause, "replica": self.store.replica}
        elif desired is not None:
            record = {"desired": desired, "reason": reason, "since": time.time(), "replica": self.store.replica}
        try:
            await asyncio.to_thread(self.store.save_intent, svc.id, record)
        except (StoreUnavailable, OSError) as e:
            if required:
                raise SupervisorError(f"{e}; {svc.name} was not changed", status=503) from None
            log.warning("could not record that %s is %s: %s", svc.name, desired or "as its manifest says", e)

    async def peer_change(self, change: Change) -> None:
        """What another replica changed (``Store.open``'s callback): this replica follows."""
        try:
            if change.kind in ("registry", "resync"):
                await self.sync_registry(resync=change.kind == "resync")
                if change.kind == "resync":
                    self._docs_changed(None, None)
            elif change.kind == "docs":
                self._docs_changed(change.data.get("collection"), change.data.get("key"))
            elif change.kind == "intent" and change.service:
                await self._follow_intent(change.service, change.data.get("intent"), change.replica)
            elif change.kind == "breaker" and change.service in self.services:
                svc = self.services[change.service]
                if svc.policy.breaker is not None:
                    svc.policy.breaker.open_until(float(change.data.get("until") or 0),
                                                  f"{change.data.get('reason')} (on replica {change.replica})")
        except Exception:  # a peer's message must not take anything down
            log.exception("could not apply a change from replica %s (%s)", change.replica, change.kind)

    def _docs_changed(self, collection: Any, key: Any) -> None:
        """Another replica changed a keyed document (None, None: maybe any, after a resync): its owners
        reload it."""
        for listener in list(self.doc_listeners):
            try:
                listener(collection if isinstance(collection, str) else None, key if isinstance(key, str) else None)
            except Exception:
                log.exception("a listener of %s failed", collection)

    async def _follow_intent(self, sid: str, intent: Any, replica: str) -> None:
        svc = self.services.get(sid)
        if svc is None:
            return
        desired = intent.get("desired") if isinstance(intent, dict) else None
        where = f"on replica {replica}"
        if desired == "stopped":
            await self._stop(svc, f"stopped {where}")
        elif desired == "quarantined":
            if svc.state != State.QUARANTINED:
                svc.quarantine_reason = f"{intent.get('reason') or 'quarantined'} ({where})"
                async with svc.lock:
                    await self._stop_backend(svc, svc.quarantine_reason)
                    self._transition(svc, State.QUARANTINED, svc.quarantine_reason)
        elif desired == "running":
            if svc.state == State.QUARANTINED:
                svc.failures.clear()
                svc.quarantine_reason = None
                self._transition(svc, State.STOPPED, f"unquarantined {where}")
            if svc.manifest.spec.enabled and svc.state in (State.REGISTERED, State.STOPPED, State.CRASHED):
                await self.start(svc.id, reason=f"started {where}")
        elif svc.manifest.spec.enabled and svc.manifest.spec.autostart and svc.state in (State.REGISTERED,
                                                                                          State.STOPPED):
            # No intent (cleared, or none after a resync): as the manifest says. A quarantine or a
            # pending restart here is this replica's own, and stays.
            await self.start(svc.id, reason="autostart")

    async def sync_registry(self, resync: bool = False) -> None:
        """Take the stored registry when another replica changed it: services added there are added
        (and started as their intents say), changed ones follow their new manifest, removed ones stop."""
        async with self._mutate:  # loaded under the lock: never older than a change this replica just made
            try:
                doc = await asyncio.to_thread(self.store.load_registry)
            except (StoreUnavailable, RegistryError, OSError) as e:
                log.warning("could not reload the shared registry: %s", e)
                return
            if doc.revision > self.registry.revision:  # else nothing newer than what this replica holds
                self._take_registry(doc)
        if resync:  # intents changed while this replica could not hear of it are followed now
            try:
                intents = await asyncio.to_thread(self.store.load_intents)
            except StoreUnavailable as e:
                log.warning("could not reload the shared intents: %s", e)
                return
            for sid in list(self.services):
                await self._follow_intent(sid, intents.get(sid), str((intents.get(sid) or {}).get("replica") or "?"))

    def _take_registry(self, doc: RegistryDoc) -> None:
        """Under ``_mutate``: ``doc`` becomes the registry, and the services follow it."""
        self.registry.replace(doc)
        for sid, svc in list(self.services.items()):
            if sid not in doc.entries:
                self.services.pop(sid, None)
                self._serving_cache = None
                self.spawn(self._forget(svc, "removed on another replica"))
        for sid, entry in doc.entries.items():
            svc_or_none = self.services.get(sid)
            if svc_or_none is None:
                svc = ServiceRuntime(self, entry.manifest)
                self._load_snapshot(svc)
                self.services[svc.id] = svc
                self._serving_cache = None
                self.events.notify("service.added", svc.name, serviceId=svc.id)
                self.spawn(self._first_start_later(svc))
            elif svc_or_none.manifest != entry.manifest:
                self._replaced(svc_or_none, entry.manifest, announce=False)
                if entry.manifest.spec.enabled and entry.manifest.spec.autostart \
                        and svc_or_none.state in (State.REGISTERED, State.STOPPED):
                    self.spawn(self.start(sid, reason="updated on another replica"))

    async def _first_start_later(self, svc: ServiceRuntime) -> None:
        try:
            intents = await asyncio.to_thread(self.store.load_intents)
        except StoreUnavailable as e:  # as its manifest says; a resync brings the intent once the store is back
            log.warning("could not read the intents of %s (%s): it starts as its manifest says", svc.name, e)
            intents = {}
        self._first_start(svc, intents.get(svc.id))

    async def _forget(self, svc: ServiceRuntime, reason: str) -> None:
        """``svc`` is no longer registered: stopped, and what this replica kept of it dropped."""
        await self._stop(svc, reason=reason)
        svc.policy.forget()
        svc.logs.delete()
        await asyncio.to_thread(self.store.drop_interface, svc.id)
        self.pins.dropped(svc.id)
        self.events.notify("service.removed", svc.name, serviceId=svc.id)

    async def _commit(self, change: Callable[[], Any]) -> Any:
        """Under ``_mutate``: run the registry ``change`` in a thread; when another replica committed
        first, take its registry and try again (the change is checked again against it)."""
        for _ in range(5):
            try:
                return await asyncio.to_thread(change)
            except RegistryConflict:
                doc = await asyncio.to_thread(self.store.load_registry)
                self._take_registry(doc)
        raise SupervisorError("the registry kept changing on other replicas while this change was made; try again",
                              status=409)

    def _keep_quarantined(self, svc: ServiceRuntime, record: JSON) -> None:
        """At boot: ``svc`` was quarantined when the daemon stopped. It stays so, untried, and that is said."""
        since = record.get("since")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
        svc.quarantine_reason = str(record.get("reason") or "quarantined")
        svc.last_error = record.get("lastError") if isinstance(record.get("lastError"), str) else None
        cause = record.get("cause")
        svc.last_error_cause = cause if isinstance(cause, str) else None
        reason = (f"quarantined before the daemon restarted (since {when}: {svc.quarantine_reason}); not retried: "
                  f"runtimectl unquarantine {svc.name} once the cause is fixed")
        self._transition(svc, State.QUARANTINED, reason)
        log.warning("service %s stays quarantined across the restart (since %s: %s); it is not retried: "
                    "runtimectl unquarantine %s once the cause is fixed", svc.name, when, svc.quarantine_reason,
                    svc.name)

    async def shutdown(self) -> None:
        self._closing = True
        for svc in self.all():
            for t in (svc._probe_task, svc._restart_task):
                if t:
                    t.cancel()
            if svc.backend is not None:
                svc.log("info", f"daemon stopping: {svc.state.value} -> stopped with the daemon")
        await asyncio.gather(*(self._stop_backend(s, "daemon shutdown") for s in self.all()), return_exceptions=True)
        await self.pins.flush()  # the pins found last are kept
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for svc in self.all():
            svc.logs.close()
            svc.policy.flush()

    # -- registry changes -------------------------------------------------
    async def apply(self, manifest: ServiceManifest, start: bool | None = None,
                    keep_unreachable: bool = True) -> tuple[ServiceRuntime, bool]:
        """Register or update a service. Durable when it returns. (svc, created). ``keep_unreachable=False``:
        a new service whose start shows its origin cannot be reached (``UNREACHABLE_CAUSES``) is removed
        again, and a 502 says why (nothing registered, nothing retried)."""
        try:
            manifest = await asyncio.to_thread(prepare_origin, manifest, self.settings)
        except InvalidOrigin as e:
            raise SupervisorError(str(e), status=422) from None
        async with self._mutate:
            existing = self.services.get(manifest.id)
            try:
                _, created = await self._commit(lambda: self.registry.put(manifest))
            except RegistryError as e:  # a name or origin conflict: nothing changed
                raise SupervisorError(str(e), status=409) from None
            except StoreUnavailable as e:
                raise SupervisorError(f"{e}; nothing changed", status=503) from None
            except OSError as e:  # the state dir refused the write: nothing changed
                raise SupervisorError(self._unwritable(e), status=503) from None
            existing = self.services.get(manifest.id)  # a conflict may have brought it from another replica
            if existing is None:
                svc = ServiceRuntime(self, manifest)
                self._load_snapshot(svc)
                self.services[svc.id] = svc
                self._serving_cache = None
                self.events.emit("service.added", svc.name, serviceId=svc.id)
            else:
                svc = existing
                self._replaced(svc, manifest)
        want_start = manifest.spec.enabled and (manifest.spec.autostart if start is None else start)
        if want_start and svc.state in (State.REGISTERED, State.STOPPED, State.CRASHED):
            await self.start(svc.id, reason="registered" if created else "updated")
            cause = svc.last_error_cause
            if created and not keep_unreachable and svc.state in (State.CRASHED, State.QUARANTINED) \
                    and cause in UNREACHABLE_CAUSES:
                error, where = svc.last_error, origin_label(manifest)[1]
                await self.remove(svc.id)
                raise SupervisorError(f"{svc.name}: {where} cannot be reached: {explain_cause(cause, where)} "
                                      f"({error}); nothing was registered", status=502)
        return svc, created

    def _replaced(self, svc: ServiceRuntime, manifest: ServiceManifest, announce: bool = True) -> None:
        """``svc`` has a new manifest (already durable): its policy, backend and state follow it.
        ``announce``: emit ``service.updated`` (a change another replica made was emitted there)."""
        origin_changed = svc.manifest.spec.origin != manifest.spec.origin
        svc.manifest = manifest
        svc.policy.update(manifest)
        self._serving_cache = None
        if svc.backend:
            svc.backend.update_manifest(manifest)
        if announce:
            self.events.emit("service.updated", svc.name, serviceId=svc.id)
        else:
            self.events.notify("service.updated", svc.name, serviceId=svc.id)
        if origin_changed and svc.state == State.RUNNING:
            self.spawn(self.restart(svc.id, reason="origin changed"))
        if not manifest.spec.enabled and svc.state in (State.RUNNING, State.STARTING):
            self.spawn(self._stop(svc, reason="disabled"))

    async def update(self, ref: str, patch: JSON, start: bool = False) -> tuple[ServiceRuntime, list[JSON]]:
        """Change some fields of a registered service: ``patch`` is a JSON merge patch (RFC 7396) over
        its manifest (``null``: back to the default); what it does not name is kept. Checked whole
        (the schema, then the origin) before anything changes; durable when it returns. The origin
        that identifies the service (URL, file, command) cannot change; the name can, and a tool
        namespace that followed the old name follows the new one. ``start``: start it afterwards
        unless it runs (or is quarantined or disabled). Returns (svc, the changed fields)."""
        for _ in range(5):  # re-done when another change lands while the origin is checked
            svc = self.get(ref)
            current = svc.manifest
            old = current.public_dict()
            merged = merge_patch(old, patch)
            meta, spec = patch.get("metadata"), patch.get("spec")
            new_name = meta.get("name") if isinstance(meta, dict) else None
            renamed = isinstance(new_name, str) and new_name != current.name
            if renamed and not (isinstance(spec, dict) and "toolNamespace" in spec) \
                    and current.spec.toolNamespace == current.name and isinstance(merged.get("spec"), dict):
                merged["spec"]["toolNamespace"] = new_name
            try:
                manifest = parse_manifest(merged)
            except ManifestError as e:
                raise SupervisorError(f"invalid change: {e}", status=422) from None
            if manifest.id != svc.id:
                raise SupervisorError(
                    f"spec.origin: the {_identity_words(manifest)} identifies the service ({svc.id}) and cannot "
                    f"change: register the new origin as a service of its own (runtimectl add) and remove this one",
                    status=409)
            try:
                manifest = await asyncio.to_thread(prepare_origin, manifest, self.settings)
            except InvalidOrigin as e:
                raise SupervisorError(str(e), status=422) from None
            async with self._mutate:
                if svc.manifest is not current or self.services.get(svc.id) is not svc:
                    continue
                changes = field_changes(old, manifest.public_dict())
                if changes:
                    try:
                        await self._commit(functools.partial(self.registry.put, manifest, renamed))
                    except RegistryError as e:  # a name taken by another service: nothing changed
                        raise SupervisorError(str(e), status=409) from None
                    except StoreUnavailable as e:
                        raise SupervisorError(f"{e}; nothing changed", status=503) from None
                    except OSError as e:
                        raise SupervisorError(f"could not write the registry: {e}", status=503) from None
                    self._replaced(svc, manifest)
            if start and manifest.spec.enabled and svc.state in (State.REGISTERED, State.STOPPED, State.CRASHED):
                await self.start(svc.id, reason="updated")
            return svc, changes
        raise SupervisorError(f"service {ref!r} kept changing while this change was checked; try again", status=409)

    async def remove(self, ref: str) -> ServiceRuntime:
        """Unregister (durably, first), then stop. A registry write that fails changes nothing:
        the service stays registered, in the state it was in, and the refusal says so (503)."""
        svc = self.get(ref)
        async with self._mutate:
            if self.services.get(svc.id) is not svc:
                raise SupervisorError(f"service {svc.name!r} was removed meanwhile", status=404)
            try:
                await self._commit(lambda: self.registry.remove(svc.id))
            except StoreUnavailable as e:
                raise SupervisorError(f"{e}; {svc.name!r} is still registered", status=503) from None
            except OSError as e:
                raise SupervisorError(self._unwritable(
                    e, f"service {svc.name!r} is still registered and {svc.state.value}"), status=503) from None
            self.services.pop(svc.id, None)
            self._serving_cache = None
        await self._stop(svc, reason="removed")
        svc.policy.forget()  # a re-added origin must not inherit old rate-limit counts
        svc.logs.delete()  # nor a new service of that name its log
        await self._intend(svc, None, "removed", required=False)  # a re-added origin starts afresh
        await asyncio.to_thread(self.store.drop_interface, svc.id)
        await asyncio.to_thread(self.sign_ins.forget, svc.id)  # its tokens go with it
        await self.pins.forget(svc.id)  # and its tool pins
        self.events.emit("service.removed", svc.name, serviceId=svc.id)
        return svc

    def _unwritable(self, e: OSError, still: str = "") -> str:
        """The refusal of a change the state dir would not take (full disk, permissions...)."""
        where = self.registry.state_dir
        return (f"could not write the registry in {where} ({e.strerror or e}); nothing changed"
                + (f": {still}" if still else "") + f". Free space in {where} (or fix its permissions) and try again")

    # -- lifecycle -------------------------------------------------------
    async def start(self, ref: str, reason: str = "start requested", intend: bool = False) -> ServiceRuntime:
        """Start ``ref``. ``intend``: a user asked (it is recorded: with a shared store every replica starts it)."""
        svc = self.get(ref)
        if not svc.manifest.spec.enabled:
            raise SupervisorError(f"service {svc.name!r} is disabled (spec.enabled: false)")
        if svc.state == State.QUARANTINED and reason != "unquarantine":
            raise SupervisorError(
                f"service {svc.name!r} is quarantined ({svc.quarantine_reason}); run unquarantine first"
            )
        if intend:
            await self._intend(svc, "running", reason)
        if reason != "restart policy":
            _cancel_restart(svc)
        async with svc.lock:
            if svc.state in (State.RUNNING, State.STARTING) and reason != "restart policy":
                return svc
            await self._start_locked(svc, reason)
        return svc

    async def _start_locked(self, svc: ServiceRuntime, reason: str) -> None:
        self._transition(svc, State.STARTING, reason)
        backend: Backend | None = None
        try:
            await self._refresh_origin(svc)
            backend = create_backend(svc.manifest, svc)
            await backend.start()
            interface = await backend.introspect()
        except (BackendError, OSError) as e:
            if backend is not None:
                await _quiet_stop(backend)
            needed = _sign_in_required(e)
            if needed is not None:  # not a failure: the service waits for its user, without restarts
                svc.last_error, svc.last_error_at, svc.last_error_cause = str(needed), time.time(), "unauthorized"
                self._set_health(svc, Health.UNAUTHORIZED, str(needed), None)
                self._transition(svc, State.STOPPED, f"waiting for a sign-in: {needed}")
                return
            await self._failed(svc, f"start failed: {e}", health=_start_failure_health(e),
                               cause=failure_cause(e, svc.manifest))
            return
        except Exception as e:  # a bug in a backend must not take the daemon down
            log.exception("backend start crashed")
            if backend is not None:
                await _quiet_stop(backend)
            await self._failed(svc, f"start failed: internal error {type(e).__name__}: {e}", health=Health.UNREACHABLE)
            return
        svc.backend = backend
        svc.last_error = None
        svc.last_error_cause = None
        if svc.policy.breaker is not None:  # a fresh backend gets a fresh chance, and the display says so
            svc.policy.breaker.reset()
        self._store_interface(svc, interface, reason="start")
        self._set_health(svc, Health.HEALTHY, "started", None)
        svc._probe_failures = 0
        self._transition(svc, State.RUNNING, reason)
        self._ensure_prober(svc)

    async def _refresh_origin(self, svc: ServiceRuntime) -> None:
        """Check the origin again at every start (the file may have changed, the
        allowlist may have shrunk) and record what changed (e.g. a new sha256)."""
        try:
            fresh = await asyncio.to_thread(prepare_origin, svc.manifest, self.settings)
        except InvalidOrigin as e:
            raise BackendStartError(str(e)) from None
        if fresh.spec.origin != svc.manifest.spec.origin:
            async with self._mutate:
                if self.services.get(svc.id) is not svc:  # removed while starting: never registered again
                    raise BackendStartError(f"service {svc.name!r} was removed")
                try:
                    await self._commit(functools.partial(self.registry.put, fresh))
                except (StoreUnavailable, RegistryError) as e:
                    raise BackendStartError(f"could not record the origin's new fingerprint: {e}") from None
            svc.manifest = fresh
            svc.log("info", "origin re-checked at start: recorded its new fingerprint")

    async def stop(self, ref: str, reason: str = "stop requested", intend: bool = False) -> ServiceRuntime:
        """Stop ``ref``. ``intend``: a user asked (recorded: with a shared store every replica stops it, and
        a replica started later keeps it stopped)."""
        svc = self.get(ref)
        if intend and svc.state != State.QUARANTINED:
            await self._intend(svc, "stopped", reason)
        return await self._stop(svc, reason)

    async def _stop(self, svc: ServiceRuntime, reason: str) -> ServiceRuntime:
        _cancel_restart(svc)
        async with svc.lock:
            if svc.state in (State.STOPPED, State.REGISTERED) and svc.backend is None:
                return svc
            if svc.state == State.QUARANTINED and reason != "removed":
                return svc
            self._transition(svc, State.STOPPING, reason)
            await self._stop_backend(svc, reason)
            self._set_health(svc, Health.UNKNOWN, "stopped", None)
            self._transition(svc, State.STOPPED, reason)
        return svc

    async def _stop_backend(self, svc: ServiceRuntime, reason: str) -> None:
        if svc._probe_task:
            svc._probe_task.cancel()
            svc._probe_task = None
        backend, svc.backend = svc.backend, None
        if backend is not None:
            await _quiet_stop(backend)

    async def restart(self, ref: str, reason: str = "restart requested", intend: bool = False) -> ServiceRuntime:
        svc = self.get(ref)
        if svc.state == State.QUARANTINED:
            raise SupervisorError(f"service {svc.name!r} is quarantined ({svc.quarantine_reason}); run unquarantine first")
        if intend:
            await self._intend(svc, "running", reason)
        await self._stop(svc, reason=reason)
        return await self.start(svc.id, reason=reason)

    async def unquarantine(self, ref: str) -> ServiceRuntime:
        svc = self.get(ref)
        if svc.state != State.QUARANTINED:
            raise SupervisorError(f"service {svc.name!r} is not quarantined (it is {svc.state.value})")
        await self._intend(svc, "running", "unquarantined")
        svc.failures.clear()
        svc.quarantine_reason = None
        self._transition(svc, State.STOPPED, "unquarantined")
        if svc.manifest.spec.enabled:
            await self.start(svc.id, reason="unquarantine")
        return svc

    # -- failure and restart policy --------------------------------------
    async def _failed(self, svc: ServiceRuntime, reason: str, health: Health | None = None,
                      cause: str | None = None) -> None:
        """Called with svc.lock held, or from handle_failure which takes it. ``cause``: what the failure
        means when the caller had the exception (else it is read from ``reason``)."""
        svc.last_error_cause = cause or failure_cause(reason, svc.manifest)
        now = time.time()
        svc.last_error, svc.last_error_at = reason, now
        rp = svc.manifest.spec.restartPolicy
        svc.failures.append(now)
        while svc.failures and svc.failures[0] < now - rp.windowSeconds:
            svc.failures.popleft()
        await self._stop_backend(svc, reason)
        self._set_health(svc, svc.health if health is None else health, reason, None)
        self._transition(svc, State.CRASHED, reason)
        if rp.mode == "never" or self._closing:
            return
        if len(svc.failures) > rp.maxRestarts:
            svc.quarantine_reason = (
                f"{len(svc.failures)} failures within {rp.windowSeconds:g}s (maxRestarts {rp.maxRestarts}); last: {reason}"
            )
            self._transition(svc, State.QUARANTINED, svc.quarantine_reason)
            await self._intend(svc, "quarantined", svc.quarantine_reason, required=False)
            return
        attempt = len(svc.failures)
        delay = min(rp.backoff.initialMs * (rp.backoff.multiplier ** (attempt - 1)), rp.backoff.maxMs) / 1000.0
        svc.next_restart_at = now + delay
        svc.log("info", f"restarting in {delay:.2f}s (failure {attempt} of at most {rp.maxRestarts + 1} in the window)")
        self.events.emit("restart.scheduled", svc.name, delaySeconds=delay, attempt=attempt, serviceId=svc.id)
        svc._restart_task = self.spawn(self._restart_later(svc, delay))

    async def _restart_later(self, svc: ServiceRuntime, delay: float) -> None:
        await asyncio.sleep(delay)
        svc._restart_task = None
        svc.next_restart_at = None
        if svc.state != State.CRASHED or svc.id not in self.services:
            return
        svc.restart_count += 1
        async with svc.lock:
            if svc.state == State.CRASHED:
                await self._start_locked(svc, "restart policy")

    async def handle_failure(self, svc: ServiceRuntime, reason: str) -> None:
        async with svc.lock:
            if svc.state != State.RUNNING:
                return
            await self._failed(svc, reason)

    # -- probes ----------------------------------------------------------
    def _ensure_prober(self, svc: ServiceRuntime) -> None:
        if svc._probe_task is None or svc._probe_task.done():
            svc._probe_task = self.spawn(self._probe_loop(svc))

    def probe_interval(self, svc: ServiceRuntime) -> float:
        return svc.manifest.spec.healthCheck.intervalSeconds or self.settings.probe_interval_s

    async def _probe_loop(self, svc: ServiceRuntime) -> None:
        while svc.state == State.RUNNING:
            await asyncio.sleep(self.probe_interval(svc))
            if svc.state != State.RUNNING or svc.backend is None:
                return
            await self.probe_once(svc)

    async def probe_once(self, svc: ServiceRuntime) -> None:
        backend = svc.backend
        if backend is None:
            return
        hc = svc.manifest.spec.healthCheck
        timeout = (hc.timeoutMs or self.settings.probe_timeout_ms) / 1000.0
        try:
            async with asyncio.timeout(timeout):
                result = await backend.probe()
        except TimeoutError:
            result = ProbeResult(Health.TIMEOUT, f"probe took longer than {timeout * 1000:.0f} ms")
        degraded_ms = hc.degradedMs or self.settings.probe_degraded_ms
        if result.health == Health.HEALTHY and result.latency_ms is not None and result.latency_ms > degraded_ms:
            result.health = Health.DEGRADED
            result.detail = f"slow: {result.latency_ms:.0f} ms > {degraded_ms} ms"
        self._set_health(svc, result.health, result.detail, result.latency_ms)
        if result.health in (Health.UNREACHABLE, Health.TIMEOUT):
            svc._probe_failures += 1
            if svc._probe_failures >= PROBE_FAILURES_TO_CRASH:
                svc._probe_failures = 0
                await self.handle_failure(svc, f"{PROBE_FAILURES_TO_CRASH} failed probes: {result.detail}")
        else:
            svc._probe_failures = 0

    def report_fault(self, svc: PolicedService, reason: str) -> None:
        """The policy layer's circuit breaker tripped repeatedly: treat as a crash."""
        runtime = self.services.get(svc.id)
        if runtime is not None:  # a removed service has nothing left to fail
            self.spawn(self.handle_failure(runtime, reason))

    # -- interface cache -------------------------------------------------
    def refresh_stale(self, service_id: str, floor_ms: float = 0.0,
                      max_age_ms: float | None = None) -> asyncio.Task[None] | None:
        """Start refreshing a running service's interface if it is stale, or join the refresh under
        way; None when it is fresh (or not running). Stale: fetched at least ``max(its ttl_ms,
        floor_ms)`` ago (an interface with no ``ttl_ms`` never goes stale by age), or, when
        ``max_age_ms`` is given, at least that long ago whatever its ttl. A failed refresh counts
        as a fetch (no hammering); the task never raises."""
        task = self._refreshing.get(service_id)
        if task is not None:
            return task
        svc = self.services.get(service_id)
        if svc is None or svc.state != State.RUNNING or svc.backend is None or svc.interface is None:
            return None
        if max_age_ms is None:
            if svc.interface.ttl_ms is None:
                return None
            max_age_ms = max(svc.interface.ttl_ms, floor_ms)
        if (time.monotonic() - self._checked.get(service_id, 0.0)) * 1000 < max_age_ms:
            return None

        async def refresh() -> None:
            try:
                await self.refresh_interface(svc, reason="stale (ttlMs) on a client's list")
            except Exception as e:  # logged by refresh_interface; the cached view stays
                log.debug("stale refresh of %s failed: %s", svc.name, e)
                self._checked[service_id] = time.monotonic()
            finally:
                self._refreshing.pop(service_id, None)

        task = self._refreshing[service_id] = self.spawn(refresh())
        return task

    def fresh_for(self, service_id: str, floor_ms: float = 0.0) -> float:
        """Seconds until ``refresh_stale(service_id, floor_ms)`` would refresh (inf: never by age)."""
        svc = self.services.get(service_id)
        if svc is None or svc.interface is None or svc.interface.ttl_ms is None:
            return float("inf")
        age_s = time.monotonic() - self._checked.get(service_id, 0.0)
        return max(0.0, max(svc.interface.ttl_ms, floor_ms) / 1000 - age_s)

    async def refresh_interface(self, svc: ServiceRuntime, reason: str = "introspect",
                                notified: str | None = None) -> Interface:
        """Fetch and store the interface. ``notified``: the list kind the upstream said changed
        (``list_changed``); then an ``interface`` event is emitted even if nothing changed, so the
        gateway forwards the notification."""
        backend = svc.backend
        if backend is None or svc.state != State.RUNNING:
            raise SupervisorError(f"service {svc.name!r} is not running (it is {svc.state.value})")
        try:
            interface = await backend.introspect()
        except BackendError as e:
            svc.log("error", f"introspect failed: {e}")
            raise SupervisorError(f"introspect of {svc.name!r} failed: {e}", status=502) from None
        self._store_interface(svc, interface, reason=reason, notified=notified)
        return interface

    def _store_interface(self, svc: ServiceRuntime, interface: Interface, reason: str,
                         notified: str | None = None) -> None:
        old = svc.interface
        self._checked[svc.id] = time.monotonic()
        if old is not None and _same_content(old, interface):
            # The same content: keep the object (the gateway's catalogs stay as they are).
            self.pins.observe(svc, old.tools)  # nothing to do unless it was never observed
            old.ttl_ms = interface.ttl_ms
            svc.interface_at = time.time()
            if notified:
                self.events.emit("interface", svc.name, revision=old.revision, diff={}, reason=reason,
                                 serviceId=svc.id, changed=False, notified=notified)
            return
        diff = interface.diff(old)
        self.pins.observe(svc, interface.tools)  # before it is served: a changed tool may be withheld
        svc.interface = interface
        svc.interface_at = time.time()
        if old is None or old.revision != interface.revision:
            svc.last_diff = diff
            self.events.emit(
                "interface", svc.name, revision=interface.revision, diff=diff, reason=reason, serviceId=svc.id,
                changed=old is None or bool(diff), **({"notified": notified} if notified else {}),
            )
            self.spawn(self._save_snapshot(svc, interface))
        elif notified:
            self.events.emit("interface", svc.name, revision=interface.revision, diff={}, reason=reason,
                             serviceId=svc.id, changed=False, notified=notified)

    async def _save_snapshot(self, svc: ServiceRuntime, interface: Interface) -> None:
        try:
            await asyncio.to_thread(self.store.save_interface, svc.id, interface.to_json())
        except (OSError, StoreUnavailable) as e:
            svc.log("warning", f"could not persist the interface snapshot: {e}")

    def _load_snapshot(self, svc: ServiceRuntime) -> None:
        try:
            found = self.store.load_interface(svc.id)
        except StoreUnavailable:
            found = None
        try:
            if found is not None:
                svc.interface = Interface.from_json(found[0])
                svc.interface_at = found[1]
            else:
                svc.interface = None
        except (ValueError, TypeError, AttributeError, KeyError):
            svc.interface = None


def _identity_words(manifest: ServiceManifest) -> str:
    """What identifies a service of this kind, in words (``url``, ``path``, ``command, args and cwd``)."""
    kind = manifest.spec.origin.type
    return {"remote_mcp": "url", "local_wasm": "path"}.get(kind, "command, args and cwd")


def _same_content(a: Interface, b: Interface) -> bool:
    """Everything but ``ttl_ms`` equal (plain comparisons: cheaper than hashing two revisions)."""
    return (a.tools, a.resources, a.resource_templates, a.prompts, a.capabilities, a.server_info, a.instructions) == (
        b.tools, b.resources, b.resource_templates, b.prompts, b.capabilities, b.server_info, b.instructions)


def _cancel_restart(svc: ServiceRuntime) -> None:
    """A scheduled restart is no longer wanted (a stop, a sign-in to wait for)."""
    if svc._restart_task:
        svc._restart_task.cancel()
        svc._restart_task = None
        svc.next_restart_at = None


def _sign_in_required(e: BaseException) -> SignInRequired | None:
    """The sign-in an OAuth service's start lacked (raised, or the cause of a refused handshake)."""
    if isinstance(e, SignInRequired):
        return e
    return e.__cause__ if isinstance(e.__cause__, SignInRequired) else None


def _start_failure_health(e: BaseException) -> Health:
    """A start refused for its credentials (401/403) is UNAUTHORIZED, anything else UNREACHABLE."""
    fault = e if isinstance(e, BackendFault) else e.__cause__
    if isinstance(fault, BackendFault) and fault.kind == "unauthorized":
        return Health.UNAUTHORIZED
    return Health.UNREACHABLE


async def _quiet_stop(backend: Backend) -> None:
    try:
        await backend.stop()
    except Exception:
        log.exception("backend stop raised")


__all__ = ["Supervisor"]
