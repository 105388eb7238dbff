"""The state store: where everything that must outlive a process, or be shared by
several replicas, is kept. One base class, two implementations: ``embedded``
(the files in the state dir, for one daemon; the default) and ``redis`` (one
Redis shared by N replicas).

Owns the contract every part of the daemon persists and shares through:

- the registry document (entries and a revision): ``load_registry`` and
  ``commit_registry``, durable when they return;
- lifecycle intents (the desired state of a service made by start, stop,
  quarantine, unquarantine): ``load_intents`` and ``save_intent``;
- journals (append-only record streams: events, call records, intents):
  ``journal(name)``; a shared store also delivers the records other replicas
  append (``Journal.follow``);
- policy state shared across replicas: ``rate_limiter``/``result_cache`` (None
  when the local, in-memory policy objects are the whole truth);
- session-era session records and the routing of a server-to-client answer to
  the replica that waits for it;
- the key that signs ``requestState`` (``signing_keys``, with a key id for
  rotation);
- small keyed collections (``load_docs``/``save_doc``): ``profiles`` (profile
  manifests by name), ``tokens`` (scoped access tokens by id, hashed), ``pins``
  (the pinned tool fingerprints of a service, by service id); a change to one is
  a ``Change("docs", data={"collection": ..., "key": ...})`` to the others;
- OAuth sign-ins to upstreams (``load_credentials``/``save_credentials``: tokens and client
  registrations, secret: a 0600 file or a Redis key, never shown) and the pending sign-in flows
  (``save_flow``/``take_flow``, by ``state``, taken once);
- changes made by other replicas, delivered to the callback given to ``open``
  (``Change``): a registry revision, a lifecycle intent, a breaker trip.

Nothing outside this package knows which implementation is in use: callers ask
``shared`` (does another replica see this?) where behaviour differs. Which
implementation a URL names is ``stores.open_store``'s. Must not:
decide lifecycle or policy, serve HTTP, or import from outside
``runtimed.config``, ``runtimed.errors`` and ``runtimed.state``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runtimed.state.registry import Entry, RegistryDoc

__all__ = ["Change", "Journal", "RegistryDoc", "SharedCache", "SharedRateLimit", "Store"]

JSON = dict[str, Any]
COLLECTIONS = frozenset({"profiles", "tokens", "pins"})


@dataclass
class Change:
    """What another replica changed; delivered once to the callback given to ``Store.open``.

    ``kind`` is one of:
    - ``"registry"``: the registry is at ``data["revision"]``; reload it (``load_registry``).
    - ``"intent"``: ``service`` (an id) has a new lifecycle intent ``data["intent"]`` (None: cleared).
    - ``"breaker"``: ``service``'s circuit breaker was opened by ``replica`` until ``data["until"]``
      (wall-clock seconds) because of ``data["reason"]``.
    - ``"docs"``: the collection ``data["collection"]``'s document ``data["key"]`` changed; reload it.
    - ``"resync"``: the store reconnected after messages may have been lost: reload everything.
    """

    kind: str
    service: str | None = None
    data: JSON = field(default_factory=dict)
    replica: str = ""


class Journal(Protocol):
    """An append-only stream of JSON records (events, call records...).

    ``append``/``append_many`` never block on the network (a shared journal
    queues and writes in the background) and never raise for a store that is
    down (the record is kept in memory and counted as lost past a bound).
    ``tail`` is read at start-up: the newest ``limit`` records, oldest first,
    including other replicas'. ``follow(callback)``: records appended by *other*
    replicas from now on, each once (the embedded journal has no others and
    never calls it). Each record a shared journal hands back carries ``replica``.
    """

    @property
    def where(self) -> str:
        """Where the records are kept, for a user to read (a file path, a Redis stream)."""
        ...

    def append(self, record: JSON) -> None: ...

    def append_many(self, records: list[JSON]) -> None: ...

    def tail(self, limit: int = 100) -> list[JSON]: ...

    def follow(self, callback: Callable[[JSON], None]) -> None: ...

    def close(self) -> None: ...


class SharedRateLimit(Protocol):
    """A cluster-wide sliding-window rate limit for one service (see ``policy.limits.RateLimiter``)."""

    async def try_acquire(self, calls: int, window_s: float, now: float) -> float | None:
        """Admit one call at ``now`` (None) or return the wall time at which one will be admitted. Atomic
        across replicas."""
        ...

    async def refund(self, admitted_at: float) -> None:
        """Give back the admission made at ``admitted_at`` (its call never reached the upstream)."""
        ...

    async def used(self, window_s: float, now: float) -> int: ...

    async def forget(self) -> None:
        """The service was removed: drop its admissions."""
        ...


class SharedCache(Protocol):
    """A cluster-wide result cache for one service (see ``policy.cache.ResultCache``)."""

    async def get(self, key: str) -> tuple[float, JSON] | None:
        """(age in seconds, result) of a fresh entry, or None."""
        ...

    async def put(self, key: str, result: JSON, ttl_s: float, max_entries: int) -> None: ...

    async def clear(self) -> None: ...


class Store(ABC):
    """One daemon's view of the persisted and shared state."""

    kind: str = "?"
    #: True when other replicas share this store (what one replica does, the others see).
    shared: bool = False

    def __init__(self, state_dir: Path, replica: str) -> None:
        self.state_dir = Path(state_dir)
        self.replica = replica

    # -- lifetime --------------------------------------------------------------
    async def open(self, on_change: Callable[[Change], Awaitable[None]]) -> None:
        """Start delivering other replicas' changes to ``on_change`` (the embedded store has none)."""
        return None

    async def close(self) -> None:
        """Stop listening, flush what is queued (best effort), release connections."""
        return None

    def describe(self) -> JSON:
        """What ``/api/daemon`` and the page show: kind, where (no credentials), reachable, replica."""
        return {"kind": self.kind, "replica": self.replica, "shared": self.shared, "available": True}

    @property
    def available(self) -> bool:
        """False while a shared store cannot be reached: changes are then refused (``StoreUnavailable``)."""
        return True

    # -- the registry ------------------------------------------------------------
    @abstractmethod
    def load_registry(self) -> RegistryDoc:
        """The registry as stored (blocking: call it from a thread or before the loop runs). Raises
        ``RegistryError`` when it cannot be read and nothing may start."""

    @abstractmethod
    def commit_registry(self, entries: dict[str, Entry], revision: int) -> int:
        """Store ``entries`` as the whole registry, following ``revision`` (the one this replica last
        loaded or committed); returns the new revision. Durable when it returns; other replicas get a
        ``Change("registry")``. Raises ``OSError`` (a file store refused the write),
        ``StoreUnavailable`` (a shared store cannot be reached) or ``RegistryConflict`` (another
        replica committed since ``revision``: reload and try again). Blocking."""

    # -- lifecycle intents ---------------------------------------------------------
    @abstractmethod
    def load_intents(self) -> dict[str, JSON]:
        """Service id -> intent record (``{"desired": "stopped"|"running"|"quarantined", ...}``)."""

    @abstractmethod
    def save_intent(self, service_id: str, intent: JSON | None) -> None:
        """Record (or clear, with None) one service's intent; other replicas get a ``Change("intent")``.
        The embedded store keeps only quarantines (a stop does not outlive the daemon there). Blocking."""

    # -- interface snapshots ---------------------------------------------------------
    @abstractmethod
    def load_interface(self, service_id: str) -> tuple[JSON, float] | None:
        """(the interface snapshot as ``Interface.to_json``, when it was taken) or None. Blocking."""

    @abstractmethod
    def save_interface(self, service_id: str, snapshot: JSON) -> None:
        """Keep the newest interface of a service (a replica starting shows it before it has fetched
        its own). Raises ``OSError``/``StoreUnavailable``. Blocking."""

    @abstractmethod
    def drop_interface(self, service_id: str) -> None:
        """The service was removed. Best effort. Blocking."""

    # -- journals ------------------------------------------------------------------
    @abstractmethod
    def journal(self, name: str) -> Journal:
        """The journal ``name`` (``events``, ``calls``, ``intents``); one object per name."""

    # -- shared policy state -----------------------------------------------------
    def rate_limiter(self, service_id: str) -> SharedRateLimit | None:
        """A cluster-wide limiter for ``service_id``, or None: the local one is the whole truth."""
        return None

    def result_cache(self, service_id: str) -> SharedCache | None:
        """A cluster-wide cache for ``service_id``, or None: the local one is the whole truth."""
        return None

    async def publish(self, change: Change) -> None:
        """Tell the other replicas (breaker trips). Best effort; never raises."""
        return None

    # -- sessions ------------------------------------------------------------------
    async def save_session(self, session_id: str, record: JSON, ttl_s: float) -> None:
        """Keep a session-era session's record (version, client info and capabilities, log level,
        subscriptions, principal) for ``ttl_s`` of idleness. Raises ``StoreUnavailable``."""
        return None

    async def load_session(self, session_id: str) -> JSON | None:
        """The record of a session another replica created, or None (unknown or expired). Raises
        ``StoreUnavailable`` when a shared store cannot be reached (the session may exist: not unknown)."""
        return None

    async def touch_session(self, session_id: str, ttl_s: float) -> None:
        """The session was used: its idle time starts again. Best effort."""
        return None

    async def drop_session(self, session_id: str) -> None:
        """The session ended (DELETE, expiry): no replica serves it again. Best effort."""
        return None

    async def route_answer(self, session_id: str, request_id: Any, message: JSON) -> bool | None:
        """A client answered a server-to-client request this replica does not hold: pass it to the replica
        that does. True: delivered; False: that replica is gone (or a shared store cannot be reached: the
        answer cannot be delivered); None: no replica asked it (or this one did)."""
        return None

    def on_answer(self, callback: Callable[[str, JSON], None]) -> None:
        """Answers other replicas received for requests this replica asked: ``callback(session_id, msg)``."""
        return None

    async def claim_request(self, session_id: str, request_id: Any, ttl_s: float) -> None:
        """This replica asked ``request_id`` of the client of ``session_id``: its answer comes here."""
        return None

    # -- replicas ------------------------------------------------------------------
    async def announce(self, info: JSON, ttl_s: float) -> None:
        """This replica is alive (``info``: address, pid, version, started, health summary); said again
        before ``ttl_s`` passes. Best effort."""
        return None

    def replicas(self) -> list[JSON]:
        """The live replicas' latest ``announce`` info, each with ``replica`` (this one included). The
        embedded store: just this one (empty until announced)."""
        return []

    # -- small keyed collections: profiles, tokens, pins ---------------------------------
    @abstractmethod
    def load_docs(self, collection: str) -> dict[str, JSON]:
        """Every document of ``collection`` (one of ``COLLECTIONS``), by key. Blocking."""

    @abstractmethod
    def save_doc(self, collection: str, key: str, doc: JSON | None) -> None:
        """Keep (None: remove) one document; durable when it returns (a 0600 file, or Redis); other
        replicas get a ``Change("docs")``. Raises ``OSError``/``StoreUnavailable``. Blocking."""

    # -- OAuth sign-ins to upstreams ---------------------------------------------------
    @abstractmethod
    def load_credentials(self, service_id: str) -> JSON | None:
        """A service's OAuth sign-in record (``auth.upstream``), or None. Blocking."""

    @abstractmethod
    def save_credentials(self, service_id: str, record: JSON | None) -> None:
        """Keep (None: forget) a service's sign-in record; durable when it returns, readable by the
        daemon's user only. Raises ``OSError``/``StoreUnavailable``. Blocking."""

    async def save_flow(self, state: str, record: JSON, ttl_s: float) -> None:
        """A sign-in waiting for its callback, by its ``state``, for ``ttl_s`` (memory: one daemon)."""
        now = time.time()
        self._flows = {k: v for k, v in getattr(self, "_flows", {}).items() if v[0] > now}
        self._flows[state] = (now + ttl_s, record)

    async def take_flow(self, state: str) -> JSON | None:
        """The flow of ``state``, removed (a callback is used once); None when unknown or expired."""
        found = getattr(self, "_flows", {}).pop(state, None)
        return found[1] if found is not None and found[0] > time.time() else None

    # -- keys ----------------------------------------------------------------------
    @abstractmethod
    def signing_keys(self) -> tuple[str, dict[str, bytes]]:
        """(current key id, key id -> key): what signs and verifies ``requestState``. Blocking."""
