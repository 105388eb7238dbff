"""The daemon's composition root: builds every part, in one place, and the ASGI app.

Owns ``Daemon``: the order the parts are built in (settings, the state store, registry, events,
supervisor, profiles, policy engine, analytics, gateway, metrics, scoped tokens), each given the few
collaborators it needs as constructor arguments; the call sinks it registers
on the policy engine; the ``ApiContext`` the HTTP routes get; the start-up and
shutdown order (``lifespan``, telling ``say`` what the shutdown does). ``build_app`` hands the parts to
``runtimed.http.asgi``. Must not hold protocol, HTTP or lifecycle logic of its
own: each part owns its concept; this module only wires them. Only
``runtimed.cli`` imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette

from runtimed import __version__
from runtimed.auth.tokens import TokenRegistry
from runtimed.config.settings import Settings
from runtimed.gateway.server import Gateway
from runtimed.http import asgi
from runtimed.http.context import ApiContext
from runtimed.http.metrics import Metrics
from runtimed.lifecycle.supervisor import Supervisor
from runtimed.policy.engine import PolicyEngine
from runtimed.profiles.registry import ProfileRegistry
from runtimed.records.analytics import Analytics
from runtimed.state.events import EventBus
from runtimed.state.registry import Registry
from runtimed.state.stores import open_store, replica_id

log = logging.getLogger("runtimed")
ANNOUNCE_S = 2.0  # how often a replica says it is alive (it is gone after three times that)


class Daemon:
    """Everything one daemon holds. Built before the port is bound."""

    def __init__(self, settings: Settings, say: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.say = say or (lambda _message: None)
        self.pid = os.getpid()
        self.started_at = time.time()
        self.replica = replica_id(settings.replica)
        self.store = open_store(settings.store, settings.state_dir, self.replica, settings.signing_key)
        self.registry = Registry(self.store, settings.state_dir)
        self.events = EventBus(self.store.journal("events"))
        self.supervisor = Supervisor(settings, self.registry, self.events, self.store)
        # Profiles: loaded with the registry (``load``); another replica's change reloads them.
        self.profiles = ProfileRegistry(self.store)
        self.supervisor.doc_listeners.append(self.profiles.peer_changed)
        # A profile created, replaced or removed (here or on a peer): live subscribers (the status page) are told.
        self.profiles.listeners.append(self._profile_changed)
        self.policy = PolicyEngine(settings, report_fault=self.supervisor.report_fault, store=self.store)
        self.analytics = Analytics(settings, self.events, self.store.journal("calls"), self.store.journal("intents"))
        self.gateway = Gateway(settings, self.supervisor, self.policy, self.events, recorder=self.analytics,
                               store=self.store, profiles=self.profiles)
        self.metrics = Metrics(self.supervisor, self.started_at, self.client_counts, self.replica)
        # Every finished tools/call: recorded (audit, stats), then counted (/metrics).
        self.policy.call_sinks.append(self.analytics.record)
        self.policy.call_sinks.append(self.metrics.record)
        # Scoped access tokens, kept in the store's "tokens" collection; peers' changes reload them.
        self.tokens = TokenRegistry(lambda: self.store.load_docs("tokens"),
                                    lambda key, doc: self.store.save_doc("tokens", key, doc), self.profile_exists)
        self.supervisor.doc_listeners.append(self.tokens.on_change)
        self.api = ApiContext(settings=settings, supervisor=self.supervisor, events=self.events,
                              analytics=self.analytics, started_at=self.started_at, pid=self.pid,
                              client_counts=self.client_counts, live_sessions=self.gateway.live_sessions,
                              store=self.store.describe, replicas=self.store.replicas, tokens=self.tokens,
                              profiles=self.profiles, profile_tools=self.gateway.profile_tools)

    def _profile_changed(self, name: str | None) -> None:
        """A profile was created, replaced or removed (here or on a peer; None: any may have): live
        subscribers of the event stream (the status page's Profiles panel) are told."""
        self.events.notify("profiles", None, profile=name)

    def profile_exists(self, name: str) -> bool:
        """Whether a profile ``name`` is stored (a scoped token may be created for it). Blocking."""
        return self.profiles.get(name) is not None

    def load(self) -> list[str]:
        """Load the registry and the profiles; returns the problems to say out loud."""
        report = self.registry.load()
        for p in report.problems:
            self.events.emit("registry.recovered", None, message=p)
        try:
            profile_problems = self.profiles.load()
        except OSError as e:  # an unreadable profiles file: the daemon serves no profile, and says so
            profile_problems = [f"profiles could not be loaded: {e}"]
        for p in profile_problems:
            self.events.emit("profile.invalid", None, message=p)
        return report.problems + profile_problems

    async def _announce(self) -> None:
        """Tell the store this replica is alive, and how it is, every ``ANNOUNCE_S`` (the page shows
        every replica's health, and their sum)."""
        while True:
            by_state, by_health = self.supervisor.counts()
            info = {"address": self.settings.base_url, "pid": self.pid, "version": __version__,
                    "startedAt": self.started_at, "byState": by_state, "byHealth": by_health,
                    "services": len(self.supervisor.services), "inFlight": self.in_flight(),
                    "clients": self.client_counts()}
            try:
                await self.store.announce(info, ANNOUNCE_S * 3)
            except Exception as e:  # best effort: the store says when it is back
                log.debug("could not announce this replica: %s", e)
            await asyncio.sleep(ANNOUNCE_S)

    def client_counts(self) -> dict[str, int]:
        return self.gateway.client_counts()

    def in_flight(self) -> int:
        """Calls being served now, across services."""
        return sum(svc.policy.gate.in_flight for svc in self.supervisor.all() if svc.policy.gate is not None)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.store.open(self.supervisor.peer_change)
        await self.supervisor.boot()
        try:
            await self.tokens.reload()
        except Exception as e:  # the store is away: a token presented later reads it again
            log.warning("could not load the scoped tokens: %s", e)
        await self.gateway.startup()
        self.events.emit("daemon.started", None, version=__version__, pid=self.pid, replica=self.replica)
        heartbeat = asyncio.ensure_future(self._announce())
        try:
            yield
        finally:
            heartbeat.cancel()
            self.events.emit("daemon.stopping", None)
            running = [svc.name for svc in self.supervisor.all() if svc.backend is not None]
            self.say(f"stopping {len(running)} service{'s' if len(running) != 1 else ''} ({', '.join(running)})"
                     if running else "no service running")
            await self.gateway.shutdown()
            await self.supervisor.shutdown()
            self.analytics.close()
            self.events.close()
            await self.store.close()
            if running:
                self.say("services stopped")


def build_app(daemon: Daemon) -> asgi.ASGIApp:
    """The ASGI app serving ``daemon``, behind the access check."""
    gw = daemon.gateway
    return asgi.build(daemon.settings, daemon.api, gw.routes(), gw.endpoint, gw.scoped_endpoint, daemon.metrics,
                      daemon.lifespan)
