"""One service's policy state, and what the policy layer needs from a service.

Owns ``ServicePolicy`` (per-service limits read from the manifest and the
daemon's defaults, with their live state: concurrency gate and queue, rate
limiter, result cache, circuit breaker, outcome counts; tool visibility) and
``PolicedService``, the ``typing.Protocol`` of what the engine reads of a
service (the way ``BackendHost`` is what a backend gets): the supervisor's
``ServiceRuntime`` satisfies it structurally, and so does a test's stand-in.
Must not: call backends (``engine`` does), import the supervisor, or know
which kind a backend is.
"""

from __future__ import annotations

import asyncio
import fnmatch
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runtimed.backends.base import Backend, Interface
from runtimed.config.manifest import ServiceManifest
from runtimed.config.settings import Settings
from runtimed.policy.breaker import CircuitBreaker
from runtimed.policy.cache import ResultCache
from runtimed.policy.limits import ConcurrencyGate, RateLimiter
from runtimed.protocol.types import JSON

if TYPE_CHECKING:
    from runtimed.state.store import Store

_background: set[asyncio.Task[Any]] = set()  # fire-and-forget store calls, held until done


class _StateLike(Protocol):
    @property
    def value(self) -> str: ...


class PolicedService(Protocol):
    """What the policy engine reads of a service, and the one thing it does to it (``log``)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def manifest(self) -> ServiceManifest: ...

    @property
    def policy(self) -> ServicePolicy: ...

    @property
    def backend(self) -> Backend | None: ...

    @property
    def interface(self) -> Interface | None: ...

    @property
    def state(self) -> _StateLike: ...

    @property
    def state_reason(self) -> str | None: ...

    def log(self, level: str, message: str) -> None: ...


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def annotation(tool: JSON | None, key: str) -> bool:
    """Whether a tool's ``annotations`` set ``key`` to true."""
    ann = (tool or {}).get("annotations") or {}
    return isinstance(ann, dict) and ann.get(key) is True


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ServicePolicy:
    """Per-service policy state. Limits are re-read on ``update``; counters survive."""

    def __init__(self, manifest: ServiceManifest, settings: Settings, store: Store | None = None) -> None:
        """``store``: where cluster-wide limits and caches live when several replicas share one."""
        self.settings = settings
        self.store = store
        self.gate: ConcurrencyGate | None = None
        self.breaker: CircuitBreaker | None = None
        self.rate: RateLimiter | None = None
        self.cache: ResultCache | None = None
        self.outcomes: dict[str, int] = {}
        self.update(manifest)

    @property
    def state_path(self) -> Path:
        """Where the rate-limit log survives restarts: ``<state_dir>/policy/<service-id>.json``."""
        return Path(self.settings.state_dir) / "policy" / f"{self.manifest.id}.json"

    def update(self, manifest: ServiceManifest) -> None:
        old = getattr(self, "manifest", None)
        self.manifest = manifest
        p, d = manifest.spec.policy, self.settings.policy
        self.timeout_ms = p.timeoutMs or d.timeoutMs
        self.connect_timeout_ms = p.connectTimeoutMs or d.connectTimeoutMs
        self.max_payload = p.maxPayloadBytes or d.maxPayloadBytes
        self.max_concurrency = p.maxConcurrency or d.maxConcurrency
        self.max_queue = p.maxQueue if p.maxQueue is not None else d.maxQueue
        self.queue_timeout_ms = p.queueTimeoutMs or d.queueTimeoutMs
        self.retries = p.retries if p.retries is not None else d.retries
        if self.gate is None:
            self.gate = ConcurrencyGate(self.max_concurrency, self.max_queue)
        else:
            self.gate.configure(self.max_concurrency, self.max_queue)
        cooldown = d.breakerCooldownMs / 1000.0
        if self.breaker is None:
            self.breaker = CircuitBreaker(d.breakerThreshold, cooldown)
        else:
            self.breaker.configure(d.breakerThreshold, cooldown)
        if p.rateLimit is None:
            self.rate = None
        elif self.rate is None:
            shared = self.store.rate_limiter(manifest.id) if self.store is not None else None
            self.rate = RateLimiter(p.rateLimit.calls, p.rateLimit.per, None if shared else self.state_path, shared)
        else:
            self.rate.configure(p.rateLimit.calls, p.rateLimit.per)
        if p.cache is None:
            self.cache = None
        elif self.cache is None:
            self.cache = ResultCache(p.cache.ttlSeconds, p.cache.maxEntries,
                                     self.store.result_cache(manifest.id) if self.store is not None else None)
        else:
            self.cache.configure(p.cache.ttlSeconds, p.cache.maxEntries)
            old_cache = old.spec.policy.cache if old is not None else None
            if old_cache is None or (old_cache.tools, old_cache.readOnlyHint) != (p.cache.tools, p.cache.readOnlyHint):
                self.cache.clear()

    def flush(self) -> None:
        """The daemon is stopping: what is persisted lazily is written now (the rate limiter's log)."""
        if self.rate is not None:
            self.rate.flush()

    def forget(self) -> None:
        """The service was removed: drop its persisted state (a shared limiter's admissions too)."""
        if self.rate is not None:
            self.rate.discard()
        try:
            self.state_path.unlink()
        except OSError:
            pass
        shared = self.rate.shared if self.rate is not None else None
        if shared is not None:
            try:
                task = asyncio.get_running_loop().create_task(shared.forget())
            except RuntimeError:
                return
            _background.add(task)
            task.add_done_callback(_background.discard)

    # -- visibility --------------------------------------------------------
    def tool_allowed(self, name: str, tool: JSON | None = None) -> str | None:
        """None when the tool may be listed and called, else which policy hides it."""
        p = self.manifest.spec.policy
        if p.allowedTools is not None and not _matches(name, p.allowedTools):
            return "allowedTools"
        if p.deniedTools and _matches(name, p.deniedTools):
            return "deniedTools"
        if p.readOnly and not annotation(tool, "readOnlyHint"):
            return "readOnly"
        return None

    def visible_tools(self, tools: list[JSON]) -> list[JSON]:
        return [t for t in tools if self.tool_allowed(t.get("name", ""), t) is None]

    def cacheable(self, name: str, tool: JSON | None) -> bool:
        c = self.manifest.spec.policy.cache
        if c is None:
            return False
        return _matches(name, c.tools) or (c.readOnlyHint and annotation(tool, "readOnlyHint"))

    def describe(self) -> JSON:
        p = self.manifest.spec.policy
        assert self.gate is not None and self.breaker is not None
        out: JSON = {
            "timeoutMs": self.timeout_ms,
            "connectTimeoutMs": self.connect_timeout_ms,
            "maxPayloadBytes": self.max_payload,
            "maxConcurrency": self.max_concurrency,
            "maxQueue": self.max_queue,
            "queueTimeoutMs": self.queue_timeout_ms,
            "retries": self.retries,
            "allowedTools": p.allowedTools,
            "deniedTools": p.deniedTools,
            "readOnly": p.readOnly,
            "inFlight": self.gate.in_flight,
            "queued": self.gate.queued,
            "rateLimit": None,
            "cache": None,
            "breaker": self.breaker.describe(),
            "outcomes": dict(self.outcomes),
        }
        if self.rate is not None:
            used = self.rate.used()
            rl: JSON = {"calls": self.rate.calls, "per": self.rate.per, "used": used,
                        "remaining": max(0, self.rate.calls - used), "persisted": True}
            if used >= self.rate.calls:
                at = self.rate.resumes_at()
                if at is not None:
                    rl["resumesAt"] = iso(at)
            if self.rate.persist_error:
                rl["persistError"] = self.rate.persist_error
            out["rateLimit"] = rl
        if self.cache is not None and p.cache is not None:
            out["cache"] = {"ttlSeconds": p.cache.ttlSeconds, "tools": p.cache.tools,
                            "readOnlyHint": p.cache.readOnlyHint, "maxEntries": p.cache.maxEntries,
                            "entries": len(self.cache), "hits": self.cache.hits, "misses": self.cache.misses}
        return out

