"""The one path every call takes between the gateway and a backend.

Owns: per-service call policy state (``ServicePolicy``: concurrency and queue,
rate limit, result cache, circuit breaker) and its enforcement
(``PolicyEngine.call``): timeout, allow/deny lists, readOnly, payload limits,
concurrency, rate, cache, retries, breaker; and the call record for each
``tools/call``. Must not: know which kind a backend is, speak MCP sessions,
or mutate lifecycle state except through ``Supervisor.report_fault``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from typing import TYPE_CHECKING, Any, Callable

from .backends import BackendFault, CallContext, UpstreamError
from .config import Settings
from .manifest import ServiceManifest

if TYPE_CHECKING:
    from .supervisor import ServiceRuntime

JSON = dict[str, Any]


def tool_error(text: str, **meta: Any) -> JSON:
    """An ``isError`` tool result the agent can read and adapt to."""
    result: JSON = {"content": [{"type": "text", "text": text}], "isError": True}
    if meta:
        result["_meta"] = {"runtimed": meta}
    return result


class PolicyRefusal(Exception):
    """A policy refused a non-tool request; ``policy`` names which."""

    def __init__(self, policy: str, message: str) -> None:
        super().__init__(message)
        self.policy = policy


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


class ServicePolicy:
    """Per-service policy state. Rebuilt limits on ``update``; counters survive."""

    def __init__(self, manifest: ServiceManifest, settings: Settings) -> None:
        self.settings = settings
        self.update(manifest)

    def update(self, manifest: ServiceManifest) -> None:
        self.manifest = manifest
        p, d = manifest.spec.policy, self.settings.policy
        self.timeout_ms = p.timeoutMs or d.timeoutMs
        self.max_payload = p.maxPayloadBytes or d.maxPayloadBytes
        self.max_concurrency = p.maxConcurrency or d.maxConcurrency
        self._sem = asyncio.Semaphore(self.max_concurrency)

    # -- visibility --------------------------------------------------------
    def tool_allowed(self, name: str, tool: JSON | None = None) -> str | None:
        """None when the tool may be listed and called, else which policy hides it."""
        p = self.manifest.spec.policy
        if p.allowedTools is not None and not _matches(name, p.allowedTools):
            return "allowedTools"
        if p.deniedTools and _matches(name, p.deniedTools):
            return "deniedTools"
        if p.readOnly and not ((tool or {}).get("annotations") or {}).get("readOnlyHint") is True:
            return "readOnly"
        return None

    def visible_tools(self, tools: list[JSON]) -> list[JSON]:
        return [t for t in tools if self.tool_allowed(t.get("name", ""), t) is None]

    def describe(self) -> JSON:
        return {
            "timeoutMs": self.timeout_ms,
            "maxPayloadBytes": self.max_payload,
            "maxConcurrency": self.max_concurrency,
            "allowedTools": self.manifest.spec.policy.allowedTools,
            "deniedTools": self.manifest.spec.policy.deniedTools,
            "readOnly": self.manifest.spec.policy.readOnly,
        }


class PolicyEngine:
    """Applies each service's ``ServicePolicy`` to calls. One per daemon."""

    def __init__(self, settings: Settings, report_fault: Callable[["ServiceRuntime", str], None] | None = None) -> None:
        self.settings = settings
        self.report_fault = report_fault
        self.call_sinks: list[Callable[[JSON], None]] = []

    async def call(self, svc: "ServiceRuntime", method: str, params: JSON, ctx: CallContext) -> JSON:
        """Run one request through the service's policies and its backend.

        ``tools/call`` always returns a result (refusals, timeouts and faults
        as ``isError`` results); other methods raise ``PolicyRefusal``,
        ``UpstreamError`` or ``BackendFault``.
        """
        pol = svc.policy
        if method == "tools/call":
            name = params.get("name", "")
            tool = _find_tool(svc, name)
            hidden = pol.tool_allowed(name, tool)
            if hidden:
                return tool_error(f"tool {name!r} of service {svc.name!r} is refused by policy {hidden}", policy=hidden)
        backend = svc.backend
        if backend is None:
            msg = f"service {svc.name!r} is not running ({svc.state.value})"
            if method == "tools/call":
                return tool_error(msg, outcome="unavailable")
            raise PolicyRefusal("state", msg)
        timeout = pol.timeout_ms / 1000.0
        ctx.deadline = asyncio.get_running_loop().time() + timeout
        ctx.max_response_bytes = pol.max_payload
        try:
            async with pol._sem:
                async with asyncio.timeout(timeout):
                    return await backend.call(method, params, ctx)
        except TimeoutError:
            msg = f"call to {svc.name!r} timed out after {pol.timeout_ms} ms (policy timeoutMs)"
            if method == "tools/call":
                return tool_error(msg, policy="timeoutMs")
            raise BackendFault(msg, kind="timeout") from None
        except BackendFault as e:
            if method == "tools/call":
                return tool_error(f"service {svc.name!r} failed: {e}", outcome="upstream_fault", kind=e.kind)
            raise
        except UpstreamError:
            raise


def _find_tool(svc: "ServiceRuntime", name: str) -> JSON | None:
    if svc.interface is None:
        return None
    for t in svc.interface.tools:
        if t.get("name") == name:
            return t
    return None
