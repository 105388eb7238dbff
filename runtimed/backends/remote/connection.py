"""The interface every remote transport implements: one upstream MCP session.

Owns ``RemoteConnection``, the abstract base of the transports (in the manner
of httpx's ``AsyncBaseTransport``: one base, sibling implementations):
``streamable.StreamableHttpConnection`` (Streamable HTTP, both eras) and
``sse.LegacySseConnection`` (HTTP+SSE, 2024-11-05). It holds what every
transport is built with (the URL, the service's httpx client, the host, how
to get credentials and check a host, the timeouts), the facts the backend
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

import httpx

from runtimed.backends.base import BackendHost, CallContext
from runtimed.protocol.types import JSON


class RemoteConnection(abc.ABC):
    """One service's upstream session over one transport."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        host: BackendHost,
        *,
        auth_headers: Callable[[], dict[str, str]],
        check_host: Callable[[str], None],
        client_info: JSON,
        default_timeout_s: float,
        connect_timeout_s: float,
    ) -> None:
        self.url = url
        self.client = client
        self.host = host
        self.auth_headers = auth_headers  # resolved at every request: a rotated secret is picked up
        self.check_host = check_host  # raises for a host not allowed; called before every connect
        self.client_info = client_info
        self.default_timeout_s = default_timeout_s
        self.connect_timeout_s = connect_timeout_s
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
