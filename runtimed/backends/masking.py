"""Upstream text never carries a service's secret values into the daemon: the one
wrapper ``create_backend`` puts around every backend.

Owns ``MaskedBackend`` (a ``Backend`` that forwards to the real one and masks,
with that backend's own ``secret_mask()``, everything coming back: results,
errors and the errors chained to them, input-required requests, probe details,
interfaces, ``describe()``), ``MaskedHost`` (the ``BackendHost`` the real
backend talks to: log lines, notifications, server-to-client requests and
failure reasons are masked before they reach the service's runtime) and
``MaskedRelay`` (a call's progress and log notifications and the requests it
sends its client, likewise). So an upstream that echoes the credential it was
sent (in an error, a result, a log message, a failed start) is forwarded to
clients and recorded in state, events, logs, call records and the status page
with ``[secret]`` in its place, whatever kind the service is. The values stay
with the backend that resolved them. Must not: keep, log or show a secret value,
change anything but the masked text, or know which kind a backend is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from runtimed.backends.base import Backend, BackendHost, CallContext, HostProxy, Interface, NullRelay, ProbeResult, Relay
from runtimed.backends.secrets import SecretMask
from runtimed.config.manifest import ServiceManifest
from runtimed.errors import BackendError
from runtimed.protocol.types import JSON


class _MaskSource:
    """Late-bound: the host is made before the backend whose mask it applies."""

    backend: Backend | None = None

    def mask(self) -> SecretMask | None:
        mask = self.backend.secret_mask() if self.backend is not None else None
        return mask if mask else None


class MaskedHost(HostProxy):
    """The ``BackendHost`` a wrapped backend reports to: what it passes on is masked first."""

    def __init__(self, host: BackendHost, source: _MaskSource) -> None:
        super().__init__(host)
        self._source = source

    def log(self, level: str, message: str) -> None:
        mask = self._source.mask()
        self._host.log(level, mask.text(message) if mask else message)

    def on_notification(self, method: str, params: JSON, client_id: str | None = None) -> None:
        mask = self._source.mask()
        self._host.on_notification(method, mask.value(params) if mask else params, client_id)

    def on_failure(self, reason: str) -> None:
        mask = self._source.mask()
        self._host.on_failure(mask.text(reason) if mask else reason)

    async def on_server_request(self, method: str, params: JSON, client_id: str | None = None) -> JSON:
        mask = self._source.mask()
        try:
            return await self._host.on_server_request(method, mask.value(params) if mask else params, client_id)
        except BackendError as e:
            if mask:
                mask.error(e)
            raise


class MaskedRelay:
    """A call's relay to its client, the upstream's notifications and requests masked (with the
    backend's mask as it is when each is sent: a secret rotated mid-call is masked too)."""

    def __init__(self, relay: Relay, mask: Callable[[], SecretMask | None]) -> None:
        self.inner = relay
        self._mask = mask

    async def notify(self, method: str, params: JSON) -> None:
        mask = self._mask()
        await self.inner.notify(method, mask.value(params) if mask else params)

    async def request(self, method: str, params: JSON) -> JSON:
        mask = self._mask()
        return await self.inner.request(method, mask.value(params) if mask else params)


class MaskedBackend(Backend):
    """Forwards to ``inner`` (built with a ``MaskedHost``); masks what comes back."""

    def __init__(self, inner: Backend, source: _MaskSource) -> None:
        super().__init__(inner.manifest, inner.host)
        self.inner = inner
        source.backend = inner

    def _mask(self) -> SecretMask | None:
        mask = self.inner.secret_mask()
        return mask if mask else None

    def _masked_error(self, e: BaseException) -> None:
        mask = self._mask()
        if mask:
            mask.error(e)

    def update_manifest(self, manifest: ServiceManifest) -> None:
        self.manifest = manifest
        self.inner.update_manifest(manifest)

    def secret_mask(self) -> SecretMask:
        return self.inner.secret_mask()

    async def start(self) -> None:
        try:
            await self.inner.start()
        except Exception as e:
            self._masked_error(e)
            raise

    async def stop(self) -> None:
        await self.inner.stop()

    async def probe(self) -> ProbeResult:
        result = await self.inner.probe()
        mask = self._mask()
        if mask:
            result.detail = mask.text(result.detail)
        return result

    async def introspect(self) -> Interface:
        try:
            interface = await self.inner.introspect()
        except Exception as e:
            self._masked_error(e)
            raise
        mask = self._mask()
        if not mask:
            return interface
        interface.tools = mask.value(interface.tools)
        interface.resources = mask.value(interface.resources)
        interface.resource_templates = mask.value(interface.resource_templates)
        interface.prompts = mask.value(interface.prompts)
        interface.capabilities = mask.value(interface.capabilities)
        interface.server_info = mask.value(interface.server_info)
        if interface.instructions is not None:
            interface.instructions = mask.text(interface.instructions)
        return interface

    async def call(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        # A retry reuses the context: wrapped once. A NullRelay (the gateway's own work) carries
        # nothing to mask and stays what it is: backends tell a client's call by it.
        if not isinstance(ctx.relay, (MaskedRelay, NullRelay)):
            # Left in place after the call: a backend may still relay through it (a parked call).
            ctx.relay = MaskedRelay(ctx.relay, self._mask)
        try:
            result = await self.inner.call(method, params, ctx)
        except Exception as e:
            self._masked_error(e)
            raise
        mask = self._mask()  # now: the call may have resolved a rotated secret
        return cast(JSON, mask.value(result)) if mask else result

    async def notify(self, method: str, params: JSON, client_id: str | None = None) -> None:
        await self.inner.notify(method, params, client_id)

    async def release_client(self, client_id: str) -> None:
        await self.inner.release_client(client_id)

    def describe(self) -> JSON:
        facts = self.inner.describe()
        mask = self._mask()
        return cast(JSON, mask.value(facts)) if mask else facts


def wrap(make: Any, manifest: ServiceManifest, host: BackendHost) -> MaskedBackend:
    """``make(manifest, host)`` built with a ``MaskedHost``, inside a ``MaskedBackend``."""
    source = _MaskSource()
    return MaskedBackend(make(manifest, MaskedHost(host, source)), source)
