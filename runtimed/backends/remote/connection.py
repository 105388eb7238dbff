"""The interface every remote transport implements: one upstream MCP session.

Owns ``RemoteConnection``, the abstract base of the transports (in the manner
of httpx's ``AsyncBaseTransport``: one base, sibling implementations):
``streamable.StreamableHttpConnection`` (Streamable HTTP, both eras) and
``sse.LegacySseConnection`` (HTTP+SSE, 2024-11-05). It holds what every
transport is built with (``ConnectionConfig``: the URL, how to get
credentials and check a host, the timeouts, what the session declares of its
client, the era to force; plus the service's httpx client and the host it
reports to), the facts the backend
reads once the handshake is done (era, protocol version, capabilities, server
info, instructions, handshake count) and declares the calls the backend makes
(``open``, ``close``, ``request``, ``notify``, ``ping``, ``describe``).
``backend.RemoteBackend`` uses nothing else of a connection.
Must not: do I/O, know a transport's wire format, or hold behaviour beyond
storing the shared settings.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from runtimed.backends.base import BackendHost, CallContext
from runtimed.backends.messages import CLIENT_CAPABILITIES
from runtimed.backends.remote.h1 import Resolver
from runtimed.protocol.types import JSON


@dataclass(frozen=True)
class ConnectionConfig:
    """What a connection is built with; one per service, copied (``dataclasses.replace``) for a
    client's own session with that client's info and capabilities."""

    url: str
    auth_headers: Callable[[], dict[str, str]]  # resolved at every request: a rotated secret is picked up
    check_host: Callable[[str], None]  # raises for a host not allowed; called before every connect
    client_info: JSON
    default_timeout_s: float
    connect_timeout_s: float
    # What the session declares of its client in ``initialize``: the gateway's (it relays to the
    # calling client) for the shared session, the downstream client's own for a client's session.
    client_capabilities: JSON = field(default_factory=lambda: dict(CLIENT_CAPABILITIES))
    force_era: str | None = None  # "session" / "stateless": skip the era probe (per-client sessions, tests)
    resolve: Resolver | None = None  # the service's connect-time address check (DNS rebinding), for the h1 pool


class RemoteConnection(abc.ABC):
    """One service's upstream session over one transport."""

    def __init__(self, config: ConnectionConfig, client: httpx.AsyncClient, host: BackendHost) -> None:
        self.config = config
        self.url = config.url
        self.client = client
        self.host = host
        self.auth_headers = config.auth_headers
        self.check_host = config.check_host
        self.client_info = config.client_info
        self.client_capabilities = config.client_capabilities
        self.default_timeout_s = config.default_timeout_s
        self.connect_timeout_s = config.connect_timeout_s
        # Known once the handshake is done; ``era`` is None until then (and after a lost session).
        self.era: str | None = None  # "session" | "stateless"
        self.protocol_version: str | None = None
        self.capabilities: JSON = {}
        self.server_info: JSON = {}
        self.instructions: str | None = None
        self.handshakes = 0

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and handshake unless that is done; raise ``BackendFault`` or ``UpstreamError``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the session, its streams and background tasks; must not raise."""

    @abc.abstractmethod
    async def request(self, method: str, params: JSON | None, ctx: CallContext) -> JSON:
        """Send one request and return its ``result`` (handshaking first if needed).

        Raises ``UpstreamError`` for the upstream's JSON-RPC error, ``BackendFault`` for a fault,
        ``InputRequired`` when a stateless-era call needs input no client can give here.
        """

    @abc.abstractmethod
    async def notify(self, method: str, params: JSON | None) -> None:
        """Forward a client notification (dropped where the era has none)."""

    @abc.abstractmethod
    async def ping(self, timeout_s: float) -> None:
        """One liveness check within ``timeout_s``; raises like ``request``."""

    @abc.abstractmethod
    def describe(self) -> JSON:
        """Transport facts for ``RemoteBackend.describe`` (no secrets)."""
