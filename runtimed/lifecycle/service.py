"""One service's runtime state: ``ServiceRuntime`` and its lifecycle ``State``.

Owns what the daemon knows of one registered service while it runs: its
manifest, state and reason, health, backend, interface snapshot, failures,
restart schedule, log (a ``state.logs.ServiceLog``: ``logs/<name>.log``, kept
across daemon restarts, following a rename) and ``ServicePolicy``, and the views of them
(``summary``, ``detail``). A ``ServiceRuntime`` is also the ``BackendHost`` its
backend talks to (and satisfies the policy layer's ``PolicedService``); what a
backend reports goes to its ``ServiceOwner`` (the supervisor). Must not: make
transitions or start and stop backends (the ``supervisor`` does), or know
which kind a service is.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from runtimed.auth.upstream import SignIns, UpstreamAuth
from runtimed.backends import origin_label
from runtimed.backends.base import Backend, Health, Interface
from runtimed.config.manifest import ServiceManifest
from runtimed.config.settings import Settings
from runtimed.errors import RelayUnavailable
from runtimed.policy.service import ServicePolicy
from runtimed.protocol.types import JSON
from runtimed.state.logs import ServiceLog
from runtimed.state.store import Store

log = logging.getLogger("runtimed.supervisor")


class ServiceOwner(Protocol):
    """What a ``ServiceRuntime`` needs of the supervisor that holds it."""

    settings: Settings
    store: Store
    sign_ins: SignIns
    notification_sinks: list[Callable[[ServiceRuntime, str, JSON, str | None], None]]
    server_request_handler: Callable[[ServiceRuntime, str, JSON, str | None], Awaitable[JSON]] | None

    def serving_changed(self) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    async def refresh_interface(self, svc: ServiceRuntime, reason: str = ..., notified: str | None = ...) -> Interface: ...

    async def handle_failure(self, svc: ServiceRuntime, reason: str) -> None: ...


class State(enum.StrEnum):
    REGISTERED = "REGISTERED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    CRASHED = "CRASHED"
    QUARANTINED = "QUARANTINED"


class ServiceRuntime:
    """One service's live state; also the ``BackendHost`` its backend talks to."""

    def __init__(self, sup: ServiceOwner, manifest: ServiceManifest) -> None:
        self._sup = sup
        self.logs = ServiceLog(self._log_path(manifest.name, sup.settings))
        self.manifest = manifest
        self.state = State.REGISTERED
        self.state_reason = "registered"
        self.state_since = time.time()
        self.health = Health.UNKNOWN
        self.health_detail = ""
        self.health_latency_ms: float | None = None
        self.backend: Backend | None = None
        self.interface = None
        self.interface_at: float | None = None
        self.last_diff: JSON = {}
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_error_cause: str | None = None  # what it means: backends.failure_cause (refused, dns...)
        self.failures: collections.deque[float] = collections.deque()
        self.restart_count = 0
        self.next_restart_at: float | None = None
        self.quarantine_reason: str | None = None
        self.lock = asyncio.Lock()
        self.started = asyncio.Event()  # set while RUNNING
        self._probe_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._probe_failures = 0
        self.policy = ServicePolicy(manifest, sup.settings, sup.store)

    # -- what the gateway lists depends on these: setting one drops the supervisor's serving() cache --
    @property
    def manifest(self) -> ServiceManifest:
        return self._manifest

    @manifest.setter
    def manifest(self, value: ServiceManifest) -> None:
        old = getattr(self, "_manifest", None)
        self._manifest = value
        if old is not None and old.name != value.name:
            self.logs.move(self._log_path(value.name, self._sup.settings))
        self._sup.serving_changed()

    @staticmethod
    def _log_path(name: str, settings: Settings) -> Path:
        return Path(settings.state_dir) / "logs" / f"{name}.log"  # beside the stdio <name>.stderr.log

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        self._state = value
        self._sup.serving_changed()

    @property
    def interface(self) -> Interface | None:
        return self._interface

    @interface.setter
    def interface(self, value: Interface | None) -> None:
        self._interface = value
        self._sup.serving_changed()

    # -- identity --------------------------------------------------------
    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def namespace(self) -> str:
        return self.manifest.namespace

    @property
    def enabled(self) -> bool:
        return self.manifest.spec.enabled

    # -- BackendHost -----------------------------------------------------
    @property
    def state_dir(self) -> str:
        return str(self._sup.settings.state_dir)

    @property
    def settings(self) -> Settings:
        return self._sup.settings

    def log(self, level: str, message: str) -> None:
        self.logs.append(level, message)

    @property
    def last_log_seq(self) -> int:
        """The ``seq`` of the newest log line (0 before the first)."""
        return self.logs.last_seq

    def on_list_changed(self, kind: str) -> None:
        self.log("info", f"upstream reports {kind} list changed; refreshing the interface")
        self._sup.spawn(self._sup.refresh_interface(self, reason=f"{kind} list_changed", notified=kind))

    def on_notification(self, method: str, params: JSON, client_id: str | None = None) -> None:
        for sink in self._sup.notification_sinks:
            try:
                sink(self, method, params, client_id)
            except Exception:  # a sink must never break a backend
                log.exception("notification sink failed")

    def upstream_auth(self) -> UpstreamAuth:
        return self._sup.sign_ins.get(self.id, self.name, self.manifest.spec.origin)

    def on_failure(self, reason: str) -> None:
        self._sup.spawn(self._sup.handle_failure(self, reason))

    async def on_server_request(self, method: str, params: JSON, client_id: str | None = None) -> JSON:
        handler = self._sup.server_request_handler
        if handler is None:
            raise RelayUnavailable(f"no client connected to answer {method}")
        return await handler(self, method, params, client_id)

    # -- views -----------------------------------------------------------
    @property
    def serving(self) -> bool:
        """Listed by the gateway: running, or starting with a cached interface."""
        return self.state == State.RUNNING or (self.state == State.STARTING and self.interface is not None)

    def summary(self) -> JSON:
        kind, label = origin_label(self.manifest)
        return {
            "id": self.id,
            "name": self.name,
            "namespace": self.namespace,
            "displayName": self.manifest.metadata.displayName,
            "description": self.manifest.metadata.description,
            "origin": self.manifest.spec.origin.model_dump(mode="json", exclude_none=True),
            "originKind": kind,
            "originLabel": label,
            "enabled": self.manifest.spec.enabled,
            "autostart": self.manifest.spec.autostart,
            "state": self.state.value,
            "stateReason": self.state_reason,
            "stateSince": self.state_since,
            "health": self.health.value,
            "healthDetail": self.health_detail,
            "healthLatencyMs": self.health_latency_ms,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "lastErrorCause": self.last_error_cause,
            "restarts": self.restart_count,
            "nextRestartAt": self.next_restart_at,
            "quarantineReason": self.quarantine_reason,
            "toolCount": len(self.interface.tools) if self.interface else 0,
            "interfaceRevision": self.interface.revision if self.interface else None,
        }

    def hidden_tools(self) -> dict[str, str]:
        """Tools of the current interface that the policy hides: name -> the policy that hides it."""
        if self.interface is None:
            return {}
        hidden = {}
        for t in self.interface.tools:
            why = self.policy.tool_allowed(t.get("name", ""), t)
            if why:
                hidden[t.get("name", "")] = why
        return hidden

    def detail(self) -> JSON:
        out = self.summary()
        out["manifest"] = self.manifest.public_dict()
        out["policy"] = self.policy.describe()
        out["backend"] = self.backend.describe() if self.backend else {}
        out["interfaceUpdatedAt"] = self.interface_at
        out["lastDiff"] = self.last_diff
        return out
