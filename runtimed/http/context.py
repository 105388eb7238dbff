"""What the HTTP routes are given: ``ApiContext``, built once by ``runtimed.daemon``.

Owns the list of collaborators a route may use (settings, the supervisor, the
event bus, the call analytics, the daemon's start time and pid, the client
counts and live session-era sessions of the gateway, the profile registry and
the tools each profile serves, and the scoped tokens). Routes receive it when they are built, never through
``request.app.state``. Must not: hold behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtimed.auth.tokens import TokenRegistry
from runtimed.config.settings import Settings
from runtimed.lifecycle.supervisor import Supervisor
from runtimed.profiles.registry import ProfileRegistry
from runtimed.records.analytics import Analytics
from runtimed.state.events import EventBus


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    supervisor: Supervisor
    events: EventBus
    analytics: Analytics
    started_at: float
    pid: int
    client_counts: Callable[[], dict[str, int]]
    live_sessions: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    # The state store as shown (kind, where without credentials, reachable) and the live replicas.
    store: Callable[[], dict[str, Any]] = field(default=lambda: {})
    replicas: Callable[[], list[dict[str, Any]]] = field(default=lambda: [])
    # The scoped access tokens (``/api/tokens``, and the access check); None: none are served.
    tokens: TokenRegistry | None = None
    # The profiles (None: this daemon serves none), and the tools each serves (the gateway's
    # ``profile_tools``: None for an unknown profile).
    profiles: ProfileRegistry | None = None
    profile_tools: Callable[[str], list[dict[str, Any]] | None] = field(default=lambda _name: None)
