"""The one backend interface every kind of service implements.

Owns: the ``Backend`` abstract class (start, stop, probe, introspect, call), the
value types that cross it (``Interface``, ``ProbeResult``, ``CallContext``), the
errors a backend may raise, ``BackendHost`` (what the daemon lends a backend) and
``HostProxy`` (a host passing everything on, the base of hosts that change one thing).
Must not: know about policies, the gateway's naming, sessions, or the registry.
The supervisor and the gateway see only this module; nothing outside
``runtimed/backends/`` asks which kind a service is.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtimed.auth.upstream import UpstreamAuth
from runtimed.backends.secrets import NO_SECRETS, SecretMask
from runtimed.config.manifest import ServiceManifest
from runtimed.errors import (  # re-exported: defined in the one error tree
    BackendError as BackendError,
    BackendFault as BackendFault,
    BackendStartError as BackendStartError,
    InputRequired as InputRequired,
    InvalidOrigin as InvalidOrigin,
    RelayUnavailable as RelayUnavailable,
    UpstreamError as UpstreamError,
)
from runtimed.protocol.types import JSON


# Not StrEnum: its str() and format() give the bare value where these give "Health.X" today.
class Health(str, enum.Enum):  # noqa: UP042
    UNKNOWN = "UNKNOWN"
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    TIMEOUT = "TIMEOUT"
    UNAUTHORIZED = "UNAUTHORIZED"
    UNREACHABLE = "UNREACHABLE"


@dataclass
class ProbeResult:
    health: Health
    detail: str = ""
    latency_ms: float | None = None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Interface:
    """What a service offers, as the MCP spec's own objects (plain dicts).

    ``capabilities`` is the upstream's server capabilities object (used to know
    whether e.g. completions, logging or resource subscriptions are offered).
    ``ttl_ms`` is how long the lists stay fresh (see the field).
    """

    tools: list[JSON] = field(default_factory=list)
    resources: list[JSON] = field(default_factory=list)
    resource_templates: list[JSON] = field(default_factory=list)
    prompts: list[JSON] = field(default_factory=list)
    capabilities: JSON = field(default_factory=dict)
    server_info: JSON = field(default_factory=dict)
    instructions: str | None = None
    # How long (ms) the lists may be taken as current without asking again: the smallest ``ttlMs``
    # of the upstream's list results (absent counts as 0, stale at once, per the 2026-07-28 caching
    # rules); None: they change only when the service restarts. Not part of the revision or snapshot.
    ttl_ms: int | None = None

    @property
    def revision(self) -> str:
        """Hash of the content: the same interface always has the same revision."""
        body = _canonical(
            {
                "tools": self.tools,
                "resources": self.resources,
                "resourceTemplates": self.resource_templates,
                "prompts": self.prompts,
            }
        )
        return "rev_" + hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_json(self) -> JSON:
        return {
            "revision": self.revision,
            "tools": self.tools,
            "resources": self.resources,
            "resourceTemplates": self.resource_templates,
            "prompts": self.prompts,
            "capabilities": self.capabilities,
            "serverInfo": self.server_info,
            "instructions": self.instructions,
        }

    @classmethod
    def from_json(cls, data: JSON) -> Interface:
        return cls(
            tools=list(data.get("tools") or []),
            resources=list(data.get("resources") or []),
            resource_templates=list(data.get("resourceTemplates") or []),
            prompts=list(data.get("prompts") or []),
            capabilities=dict(data.get("capabilities") or {}),
            server_info=dict(data.get("serverInfo") or {}),
            instructions=data.get("instructions"),
        )

    def diff(self, older: Interface | None) -> JSON:
        """Added, removed and changed names per kind, against an older snapshot."""
        out: JSON = {}
        for kind, key in (("tools", "name"), ("prompts", "name"), ("resources", "uri"), ("resourceTemplates", "uriTemplate")):
            new: dict[Any, JSON] = {i.get(key): i for i in self._kind(kind)}
            old: dict[Any, JSON] = {i.get(key): i for i in (older._kind(kind) if older else [])}
            added = sorted(k for k in new if k not in old)
            removed = sorted(k for k in old if k not in new)
            changed = sorted(k for k in new if k in old and _canonical(new[k]) != _canonical(old[k]))
            if added or removed or changed:
                out[kind] = {"added": added, "removed": removed, "changed": changed}
        return out

    def _kind(self, kind: str) -> list[JSON]:
        return {"tools": self.tools, "prompts": self.prompts, "resources": self.resources,
                "resourceTemplates": self.resource_templates}[kind]


class Relay(Protocol):
    """The downstream side of one call, lent by the gateway.

    ``notify`` sends a notification that belongs to the call (progress, log
    message) to the client that made it. ``request`` sends a server-to-client
    request (sampling/createMessage, elicitation/create, roots/list) to that
    client and returns its result; it raises ``UpstreamError`` with the
    client's error, or ``RelayUnavailable`` if the client cannot be asked.
    """

    async def notify(self, method: str, params: JSON) -> None: ...

    async def request(self, method: str, params: JSON) -> JSON: ...


class NullRelay:
    """A relay for calls that have no downstream client (probes, CLI, tests)."""

    async def notify(self, method: str, params: JSON) -> None:
        return None

    async def request(self, method: str, params: JSON) -> JSON:
        raise RelayUnavailable(f"no client to answer {method}")


@dataclass
class CallContext:
    """Per-call facts a backend may use.

    ``progress_token``: the downstream's token, or None; a backend that relays
    progress must use its own upstream token and map it back (the gateway has
    already remapped nothing: the backend sends ``notifications/progress`` with
    this token through ``relay.notify``).
    ``deadline``: loop time (``asyncio.get_running_loop().time()``) by which the
    call must end, or None. The policy layer also enforces it by cancelling the
    task; a backend uses it to bound its own waits and to tell the upstream.
    ``max_response_bytes``: stop reading an upstream response past this size
    and raise ``BackendFault(kind="payload")``.
    Cancellation is task cancellation: when the awaiting task is cancelled, the
    backend tells the upstream (``notifications/cancelled``) and re-raises.
    """

    relay: Relay = field(default_factory=NullRelay)
    progress_token: str | int | None = None
    deadline: float | None = None
    max_response_bytes: int | None = None
    client_info: JSON = field(default_factory=dict)
    client_capabilities: JSON = field(default_factory=dict)
    protocol_version: str | None = None
    # Who asks: the downstream session's id (session era), or None for a stateless-era client and
    # for the gateway's own work (probes, introspection, shared subscriptions). A backend keeps
    # per-client upstream state (an upstream session, its roots, its log level) under this key,
    # released by ``Backend.release_client``; one client's state never serves another.
    client_id: str | None = None
    # Opaque, backend-owned state carried across an input-required retry
    # (stateless era); the gateway signs and round-trips it.
    request_state: str | None = None
    # ``tools/call``: the upstream tool's cached ``inputSchema``, or None when the tool is not in the
    # cached interface; a transport mirrors its ``x-mcp-header`` arguments into ``Mcp-Param-*`` headers.
    input_schema: JSON | None = None
    # Who the downstream client is (``Principal.to_json``: subject, client id; never a token), for the
    # call record. A backend must not send it upstream.
    principal: JSON | None = None
    # More fields for the call record of a ``tools/call`` (e.g. on a profile's endpoint: ``profile``
    # and ``profileTool``, the name the client used). A backend must not send them upstream.
    record_fields: JSON = field(default_factory=dict)


class BackendHost(Protocol):
    """What the daemon lends a backend. Implemented by the supervisor."""

    @property
    def state_dir(self) -> str: ...

    @property
    def settings(self) -> Any:
        """The daemon's validated ``runtimed.config.Settings``."""

    def log(self, level: str, message: str) -> None:
        """Append a line to the service's log (secrets must already be absent)."""

    def on_list_changed(self, kind: str) -> None:
        """The upstream says its tools/resources/prompts changed: refresh."""

    def on_notification(self, method: str, params: JSON, client_id: str | None = None) -> None:
        """Any other upstream notification not tied to a call (resources/updated, message).

        ``client_id``: the downstream client whose own upstream session sent it, or None for the
        service's shared session."""

    def on_failure(self, reason: str) -> None:
        """The service died between calls (connection lost for good, etc.)."""

    def upstream_auth(self) -> UpstreamAuth:
        """The service's OAuth sign-in (``authRef: "oauth"``): kept across restarts of its backend."""

    async def on_server_request(self, method: str, params: JSON, client_id: str | None = None) -> JSON:
        """A server-to-client request not tied to any call; may raise RelayUnavailable.

        ``client_id``: the downstream client whose own upstream session asked; None (the shared
        session) has no client to ask and raises RelayUnavailable."""


class HostProxy:
    """A ``BackendHost`` that passes everything to ``host``: the base of the hosts that change one
    thing on the way (a client's own session tags its traffic; the masking wrapper masks it)."""

    def __init__(self, host: BackendHost) -> None:
        self._host = host

    @property
    def state_dir(self) -> str:
        return self._host.state_dir

    @property
    def settings(self) -> Any:
        return self._host.settings

    def log(self, level: str, message: str) -> None:
        self._host.log(level, message)

    def on_list_changed(self, kind: str) -> None:
        self._host.on_list_changed(kind)

    def on_notification(self, method: str, params: JSON, client_id: str | None = None) -> None:
        self._host.on_notification(method, params, client_id)

    def on_failure(self, reason: str) -> None:
        self._host.on_failure(reason)

    def upstream_auth(self) -> UpstreamAuth:
        return self._host.upstream_auth()

    async def on_server_request(self, method: str, params: JSON, client_id: str | None = None) -> JSON:
        return await self._host.on_server_request(method, params, client_id)


class Backend(abc.ABC):
    """One running service. Constructed by ``runtimed.backends.create_backend``."""

    def __init__(self, manifest: ServiceManifest, host: BackendHost) -> None:
        self.manifest = manifest
        self.host = host

    def update_manifest(self, manifest: ServiceManifest) -> None:
        """A policy-only change applied while running (origin unchanged)."""
        self.manifest = manifest

    @abc.abstractmethod
    async def start(self) -> None:
        """Make the service usable; raise BackendStartError saying why not."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release everything; must not raise."""

    @abc.abstractmethod
    async def probe(self) -> ProbeResult:
        """One health check; must not raise."""

    @abc.abstractmethod
    async def introspect(self) -> Interface:
        """The full interface (all pages). Raise BackendFault on failure."""

    @abc.abstractmethod
    async def call(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        """Forward one JSON-RPC request and return its ``result`` object.

        ``method`` is the MCP method (tools/call, resources/read, prompts/get,
        completion/complete, resources/subscribe, resources/unsubscribe,
        logging/setLevel, ping). Tool failures come back as a result with
        ``isError: true``; protocol errors as ``UpstreamError``; faults as
        ``BackendFault``.
        """

    async def notify(self, method: str, params: JSON, client_id: str | None = None) -> None:
        """Forward a client notification not tied to a call (roots/list_changed) to that client's
        own upstream state only."""
        return None

    async def release_client(self, client_id: str) -> None:
        """The downstream client ``client_id`` is gone (its session ended or expired): release
        what the backend holds for it (an upstream session). Must not raise."""
        return None

    def describe(self) -> JSON:
        """Kind-specific facts for ``show`` and the status page (no secrets)."""
        return {}

    def secret_mask(self) -> SecretMask:
        """The mask of the secret values this backend has resolved and sends upstream (a remote
        service's ``authRef``, a stdio service's ``env:``/``file:`` references), so that nothing the
        upstream echoes reaches a client or a record (``masking.MaskedBackend`` applies it to all
        this backend hands the daemon). The values are never logged or shown. Default: none."""
        return NO_SECRETS


OnEvent = Callable[..., Awaitable[None]]
