"""The pins of every service: ``ToolPins``.

Owns, per service id, one document in the store's ``pins`` collection: ``{tool name: {"fingerprint",
"definition", "firstSeen", "approvedAt", "pending"?, "removedAt"?}}``. ``observe`` is given each
interface as it arrives (the supervisor calls it before the interface is served): a tool never seen
is pinned as it is; a tool whose fingerprint differs from its pin is a change (``tool.changed``, with
a readable diff), kept as ``pending`` (its definition, fingerprint and when it was found) until it is
approved (``approve``: the pending definition becomes the pin, ``tool.approved``) or the upstream goes
back to the pinned definition (``tool.reverted``); a tool that disappears keeps its pin
(``tool.removed`` says so once). ``withheld(svc, tool)`` is the predicate the gateway's catalogs
are given: the reason a tool with a pending change is not served, when the service (or, with
``enforce``, the profile asking) has ``pinTools``; None otherwise.

Decisions are made in memory, synchronously (a changed tool is withheld before its new definition
can be listed); documents are written in the background, in order, one at a time (``flush`` waits
for them), except an approval, which is durable when ``approve`` returns. Before a document is
written, the shared one is read again and what peer replicas recorded meanwhile is folded in
(``_merge``); ``tool.changed`` is emitted after that write, unless a peer had already recorded the same
change. A peer replica's change to a document is read again (``peer_change``). Must not: serve MCP or HTTP, call upstreams, or decide
lifecycle state.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from runtimed.config.manifest import ServiceManifest
from runtimed.errors import StoreUnavailable, SupervisorError
from runtimed.pins.fingerprint import fingerprint, tool_diff
from runtimed.state.events import EventBus
from runtimed.state.store import Store

log = logging.getLogger("runtimed.pins")
JSON = dict[str, Any]
COLLECTION = "pins"


class PinSubject(Protocol):
    """What the pins read of a service (the supervisor's ``ServiceRuntime`` satisfies it)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def manifest(self) -> ServiceManifest: ...

    def log(self, level: str, message: str) -> None: ...


def approve_command(service: str, tool: str | None = None) -> str:
    return f"runtimectl approve {service}" + (f" {tool}" if tool else "")


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if isinstance(t, (int, float)) else "?"


class ToolPins:
    """The pinned tool definitions of every service, and their pending changes."""

    def __init__(self, store: Store, events: EventBus,
                 spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]) -> None:
        self.store = store
        self.events = events
        self._spawn = spawn
        self.docs: dict[str, dict[str, JSON]] = {}
        self.loaded = False
        # Told (a service id) whenever what ``withheld`` answers for that service may have changed.
        self.listeners: list[Callable[[str], None]] = []
        self._observed: dict[str, object] = {}  # service id -> the tools list last observed (identity)
        self._dirty: set[str] = set()
        # service id -> the changes this replica found, (tool, ``tool.changed`` data), announced when written
        self._announce: dict[str, list[tuple[str, JSON]]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._loading: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    # -- loading ------------------------------------------------------------
    async def load(self) -> None:
        """Read every service's pins (at boot, before any interface is observed)."""
        try:
            docs = await asyncio.to_thread(self.store.load_docs, COLLECTION)
        except (OSError, StoreUnavailable) as e:
            log.warning("could not read the tool pins (%s): services with pinTools serve no tool until they "
                        "can be read; trying again at the next interface", e)
            return
        for sid, doc in docs.items():
            if sid not in self._dirty:
                self.docs[sid] = {k: v for k, v in doc.items() if isinstance(v, dict)}
        self.loaded = True
        self._observed.clear()

    def peer_change(self, collection: str | None, key: str | None) -> None:
        """Another replica changed a document (``Supervisor.doc_listeners``): read it again."""
        if collection not in (None, COLLECTION):
            return
        self._spawn(self._reload(key))

    async def _reload(self, key: str | None) -> None:
        try:
            docs = await asyncio.to_thread(self.store.load_docs, COLLECTION)
        except (OSError, StoreUnavailable) as e:
            log.warning("could not read the tool pins another replica changed: %s", e)
            return
        keys = [key] if key is not None else sorted(set(docs) | set(self.docs))
        for sid in keys:
            if sid in self._dirty:
                continue  # this replica's own newer change is on its way
            doc = docs.get(sid)
            if doc is None:
                self.docs.pop(sid, None)
            else:
                self.docs[sid] = {k: v for k, v in doc.items() if isinstance(v, dict)}
            self._observed.pop(sid, None)
            self._changed(sid)
        self.loaded = True

    # -- what an interface brings -----------------------------------------------
    def observe(self, svc: PinSubject, tools: list[JSON]) -> None:
        """The tools ``svc`` offers now: pin the new ones, find the changed ones. Cheap when ``tools`` is
        the very list observed last time."""
        if self._observed.get(svc.id) is tools:
            return
        if not self.loaded:
            if self._loading is None or self._loading.done():
                self._loading = self._spawn(self.load())
            return
        self._observed[svc.id] = tools
        doc = self.docs.setdefault(svc.id, {})
        now = time.time()
        pinned: list[str] = []
        changed: list[tuple[str, JSON, JSON]] = []
        reverted: list[str] = []
        returned: list[str] = []
        seen: set[str] = set()
        for tool in tools:
            name = tool.get("name")
            if not isinstance(name, str) or name in seen:
                continue
            seen.add(name)
            fp = fingerprint(tool)
            entry = doc.get(name)
            if entry is None:
                doc[name] = {"fingerprint": fp, "definition": tool, "firstSeen": now, "approvedAt": None}
                pinned.append(name)
                continue
            if entry.pop("removedAt", None) is not None:
                returned.append(name)
            pending = entry.get("pending")
            if entry.get("fingerprint") == fp:
                if pending is not None:
                    del entry["pending"]
                    reverted.append(name)
            elif not (isinstance(pending, dict) and pending.get("fingerprint") == fp):
                entry["pending"] = {"fingerprint": fp, "definition": tool, "detectedAt": now}
                changed.append((name, entry, tool))
        removed = [n for n, e in doc.items() if n not in seen and "removedAt" not in e]
        for name in removed:
            doc[name]["removedAt"] = now
        if not (pinned or changed or reverted or removed or returned):
            return
        self._save_later(svc.id)
        held = svc.manifest.spec.pinTools
        if pinned:
            self.events.emit("tool.pinned", svc.name, serviceId=svc.id, tools=pinned)
        for name, entry, tool in changed:
            diff = tool_diff(entry.get("definition") or {}, tool)
            fields = ", ".join(diff["fields"]) or "definition"
            svc.log("warning", f"tool {name!r} changed since it was approved ({fields})"
                    + (f"; withheld until approved: {approve_command(svc.name, name)}" if held else ""))
            # Announced once written (``_write``), unless another replica recorded it first.
            self._announce.setdefault(svc.id, []).append(
                (name, dict(service=svc.name, serviceId=svc.id, tool=name, diff=diff,
                            fingerprint=entry["pending"]["fingerprint"], pinnedFingerprint=entry.get("fingerprint"),
                            withheld=held, approve=approve_command(svc.name, name))))
        for name in reverted:
            svc.log("info", f"tool {name!r} is back to its approved definition")
            self.events.emit("tool.reverted", svc.name, serviceId=svc.id, tool=name)
        if removed:
            self.events.emit("tool.removed", svc.name, serviceId=svc.id, tools=removed,
                             note="the pins are kept: if a removed tool comes back changed, it is a change")
        if changed or reverted:
            self._changed(svc.id)

    # -- the predicate ---------------------------------------------------------
    def withheld(self, svc: PinSubject, tool: str, enforce: bool = False) -> str | None:
        """Why ``tool`` of ``svc`` is not served (its definition changed since it was approved, and the
        service has ``pinTools``, or ``enforce``: a profile with ``pinTools`` asks), or None."""
        if not (enforce or svc.manifest.spec.pinTools):
            return None
        if not self.loaded:
            return (f"tool {tool!r} of service {svc.name!r} is withheld: its pinned definition could not be read "
                    f"from the state store yet (pinTools)")
        entry = self.docs.get(svc.id, {}).get(tool) or {}
        pending = entry.get("pending")
        if not isinstance(pending, dict):
            return None
        fields = ", ".join(tool_diff(entry.get("definition") or {}, pending.get("definition") or {})["fields"])
        return (f"tool {tool!r} of service {svc.name!r} changed since it was approved ({fields or 'its definition'} "
                f"changed, detected {_when(pending.get('detectedAt'))}) and is withheld until someone approves the "
                f"new definition: {approve_command(svc.name, tool)} (or the Approve button on the status page)")

    # -- views -------------------------------------------------------------------
    def pending(self, service_id: str) -> list[JSON]:
        """The pending changes of a service, by tool name: each with its diff, both definitions and
        fingerprints, and when it was found."""
        out = []
        for name, entry in sorted(self.docs.get(service_id, {}).items()):
            pend = entry.get("pending")
            if not isinstance(pend, dict):
                continue
            out.append({"tool": name, "detectedAt": pend.get("detectedAt"), "fingerprint": pend.get("fingerprint"),
                        "pinnedFingerprint": entry.get("fingerprint"),
                        "diff": tool_diff(entry.get("definition") or {}, pend.get("definition") or {}),
                        "definition": pend.get("definition"), "pinned": entry.get("definition"),
                        "removed": "removedAt" in entry})
        return out

    def describe(self, svc: PinSubject) -> JSON:
        """What ``GET /api/services/{ref}/pins`` answers."""
        tools = {name: {"fingerprint": e.get("fingerprint"), "firstSeen": e.get("firstSeen"),
                        "approvedAt": e.get("approvedAt"), "removedAt": e.get("removedAt"),
                        "pending": isinstance(e.get("pending"), dict)}
                 for name, e in sorted(self.docs.get(svc.id, {}).items())}
        return {"service": svc.name, "id": svc.id, "pinTools": svc.manifest.spec.pinTools, "loaded": self.loaded,
                "tools": tools, "pending": self.pending(svc.id)}

    # -- approving ---------------------------------------------------------------
    async def approve(self, svc: PinSubject, tools: list[str] | None) -> list[str]:
        """The pending definitions of ``tools`` (None: every pending one) become the pinned ones; durable
        when it returns. Returns the names approved. A named tool with nothing pending is refused (404)."""
        if not self.loaded:
            raise SupervisorError("the tool pins could not be read from the state store; try again", status=503)
        async with self._write_lock:
            doc = self.docs.get(svc.id, {})
            pending = [n for n, e in doc.items() if isinstance(e.get("pending"), dict)]
            if tools is None:
                names = sorted(pending)
            else:
                unknown = [t for t in tools if t not in pending]
                if unknown:
                    have = f"pending: {', '.join(sorted(pending))}" if pending else "no tool change is pending"
                    raise SupervisorError(f"service {svc.name!r} has no pending change of "
                                          f"{', '.join(repr(t) for t in unknown)} ({have})", status=404)
                names = list(dict.fromkeys(tools))
            if not names:
                return []
            before = copy.deepcopy(doc)
            now = time.time()
            for name in names:
                entry = doc[name]
                pend = entry.pop("pending")
                entry.update(fingerprint=pend.get("fingerprint"), definition=pend.get("definition"), approvedAt=now)
            try:
                await asyncio.to_thread(self.store.save_doc, COLLECTION, svc.id, copy.deepcopy(doc))
            except (OSError, StoreUnavailable) as e:
                self.docs[svc.id] = before
                raise SupervisorError(f"could not record the approval ({e}); nothing was approved", status=503) from None
        svc.log("info", f"approved the new definition of {', '.join(names)}")
        self.events.emit("tool.approved", svc.name, serviceId=svc.id, tools=names)
        self._changed(svc.id)
        return names

    async def forget(self, service_id: str) -> None:
        """The service was removed: its pins go (an origin added again starts afresh). Best effort."""
        self.docs.pop(service_id, None)
        self._observed.pop(service_id, None)
        self._dirty.discard(service_id)
        self._announce.pop(service_id, None)
        async with self._write_lock:
            try:
                await asyncio.to_thread(self.store.save_doc, COLLECTION, service_id, None)
            except (OSError, StoreUnavailable) as e:
                log.warning("could not drop the tool pins of %s: %s", service_id, e)

    def dropped(self, service_id: str) -> None:
        """Another replica removed the service (and its pins): forget them here."""
        self.docs.pop(service_id, None)
        self._observed.pop(service_id, None)

    # -- writing -------------------------------------------------------------------
    def _save_later(self, service_id: str) -> None:
        self._dirty.add(service_id)
        if self._writer is None or self._writer.done():
            self._writer = self._spawn(self._write())

    async def _write(self) -> None:
        while self._dirty:
            async with self._write_lock:
                if not self._dirty:
                    return
                sid = self._dirty.pop()
                found = self._announce.pop(sid, [])
                known: set[str] = set()
                try:  # what the other replicas recorded meanwhile is kept, not overwritten
                    shared = (await asyncio.to_thread(self.store.load_docs, COLLECTION)).get(sid)
                except (OSError, StoreUnavailable) as e:
                    log.warning("could not read the tool pins of %s before writing them: %s", sid, e)
                    shared = None
                if shared is not None and sid in self.docs:
                    known, moved = self._merge(self.docs[sid], shared)
                    if moved:
                        self._changed(sid)
                doc = copy.deepcopy(self.docs.get(sid))
                try:
                    await asyncio.to_thread(self.store.save_doc, COLLECTION, sid, doc)
                except (OSError, StoreUnavailable) as e:
                    log.warning("could not record the tool pins of %s: %s", sid, e)
            for name, data in found:
                if name not in known:
                    self.events.emit("tool.changed", data.pop("service"), **data)

    @staticmethod
    def _merge(doc: dict[str, JSON], shared: dict[str, Any]) -> tuple[set[str], bool]:
        """Fold into ``doc`` (this replica's) what another replica recorded in ``shared`` since this one
        read it: its pins of tools not seen here, its approvals, and its pending changes this replica
        found too (the first ``detectedAt`` is kept). Returns the tools whose pending change here was
        already recorded (or approved) there, and whether what ``withheld`` answers changed."""
        known: set[str] = set()
        moved = False
        for name, theirs in shared.items():
            if not isinstance(theirs, dict):
                continue
            ours = doc.get(name)
            if ours is None:
                doc[name] = theirs
                moved = moved or isinstance(theirs.get("pending"), dict)
                continue
            mine = ours.get("pending") if isinstance(ours.get("pending"), dict) else None
            if (theirs.get("approvedAt") or 0) > (ours.get("approvedAt") or 0):  # approved there meanwhile
                ours.update(fingerprint=theirs.get("fingerprint"), definition=theirs.get("definition"),
                            approvedAt=theirs.get("approvedAt"))
                if mine is not None and mine.get("fingerprint") == ours["fingerprint"]:
                    del ours["pending"]
                    known.add(name)
                    moved = True
            pend = theirs.get("pending")
            if mine is not None and isinstance(pend, dict) and pend.get("fingerprint") == mine.get("fingerprint"):
                ours["pending"] = pend
                known.add(name)
        return known, moved

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout`` seconds) for the documents still being written."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait([writer], timeout=timeout)

    def _changed(self, service_id: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(service_id)
            except Exception:
                log.exception("a listener of the tool pins failed")


__all__ = ["COLLECTION", "PinSubject", "ToolPins", "approve_command"]
