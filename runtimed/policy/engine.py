"""The one path every call takes between the gateway and a backend.

Owns the enforcement of each service's ``ServicePolicy`` (``PolicyEngine.call``):
timeout, allow/deny lists, readOnly, payload limits, concurrency, rate, cache,
retries, breaker; and the call record for each ``tools/call``, handed to the
call sinks. A policy that refuses a request raises ``PolicyRefusal`` for every
method; the gateway turns it into the answer (``runtimed.gateway.errors``).
Must not: know which kind a backend is, speak MCP sessions or JSON-RPC
errors, import the supervisor (a service is a ``PolicedService``), or mutate
lifecycle state except through the ``report_fault`` callback it is given.

The mechanisms live in small modules of their own: ``service`` (per-service
state), ``limits`` (concurrency gate with FIFO queue, rate limiter), ``cache``
(result cache) and ``breaker`` (circuit breaker). docs/spec/policies.md
describes the behaviour a user sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from runtimed.backends.base import Backend, CallContext
from runtimed.config.settings import Settings
from runtimed.errors import BackendFault, InputRequired, PolicyRefusal, QueueFull, QueueTimeout, UpstreamError
from runtimed.policy.breaker import HALF_OPEN
from runtimed.policy.cache import ResultCache, canonical_json
from runtimed.policy.service import PolicedService, ServicePolicy, annotation, iso
from runtimed.protocol.jsonrpc import tool_error
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import SESSION, STATELESS, is_stateless
from runtimed.state.store import Change, Store

log = logging.getLogger("runtimed.policy")

# Methods that only read: safe to retry after a fault.
READ_METHODS = frozenset({
    "tools/list", "resources/list", "resources/templates/list", "prompts/list",
    "resources/read", "prompts/get", "completion/complete", "ping",
})
# Requests that do the upstream's work and so count toward ``rateLimit``.
RATE_LIMITED_METHODS = frozenset({"tools/call", "resources/read"})
# Breaker trips within the restart window after which the service is reported
# to the supervisor as failed (restart policy, then quarantine).
BREAKER_TRIPS_TO_FAULT = 3
RETRY_BASE_S = 0.1
RETRY_CAP_S = 2.0
OUTCOMES = ("ok", "tool_error", "timeout", "refused", "busy", "rate_limited", "upstream_fault", "unavailable",
            "cancelled")


def _era(protocol_version: str | None) -> str | None:
    if not protocol_version:
        return None
    return STATELESS if is_stateless(protocol_version) else SESSION


class PolicyEngine:
    """Applies each service's ``ServicePolicy`` to calls. One per daemon."""

    def __init__(self, settings: Settings, report_fault: Callable[[PolicedService, str], None] | None = None,
                 store: Store | None = None) -> None:
        """``store``: told of each breaker trip, so that replicas sharing it open theirs too."""
        self.settings = settings
        self.report_fault = report_fault
        self.store = store
        self.call_sinks: list[Callable[[JSON], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, svc: PolicedService, method: str, params: JSON, ctx: CallContext) -> JSON:
        """Run one request through the service's policies and its backend.

        Every method raises ``PolicyRefusal`` when a policy refuses (its
        ``meta`` carries the ``outcome`` and the policy's facts, e.g.
        ``retryAfterSeconds``); the gateway answers with it. ``tools/call``
        returns a result for a timeout or an upstream fault (an ``isError``
        result whose text and ``_meta.runtimed`` say what happened); other
        methods raise ``BackendFault`` for those. A JSON-RPC error from the
        upstream is raised as ``UpstreamError`` for every method, to be passed
        on as-is. ``InputRequired`` passes through untouched.
        """
        params = params if isinstance(params, dict) else {}
        rec: JSON | None = None
        started = time.monotonic()
        if method == "tools/call":
            args_json = canonical_json(params.get("arguments") or {})
            rec = {
                "time": time.time(), "service": svc.name, "serviceId": svc.id, "tool": params.get("name", ""),
                "durationMs": 0.0, "outcome": "ok", "policy": None, "error": None, "bytesIn": 0, "bytesOut": 0,
                "argsHash": hashlib.sha256(args_json.encode()).hexdigest()[:16],
                "cache": None, "protocolVersion": ctx.protocol_version, "era": _era(ctx.protocol_version),
                "client": (ctx.client_info or {}).get("name"), "attempts": 0,
            }
            if ctx.principal is not None:  # who called (an OAuth subject and client; never a token)
                rec["principal"] = ctx.principal
                if ctx.principal.get("tokenId"):  # a scoped token's id (runtimed.auth.tokens)
                    rec["tokenId"] = ctx.principal["tokenId"]
            if ctx.record_fields:  # where it was called (e.g. a profile, and the name used there)
                rec.update(ctx.record_fields)
            if self.settings.capture_arguments:  # the sinks redact and bound them
                rec["arguments"] = params.get("arguments")
        outcome = _Outcome(rec)
        if rec is not None:
            outcome.size_in = len(_canonical_params(params, args_json).encode())
        try:
            result = await self._call(svc, method, params, ctx, outcome)
            if rec is not None and self.settings.capture_arguments:
                rec["result"] = result
            return result
        except PolicyRefusal as e:
            if rec is not None and self.settings.capture_arguments:
                # The result the client is answered with (``gateway.errors.tool_refusal`` builds the same).
                rec["result"] = tool_error(str(e), policy=e.policy, **e.meta)
            raise
        except InputRequired:
            outcome.rec = None  # not finished: the retry is the call that gets recorded
            raise
        except asyncio.CancelledError:
            outcome.set("cancelled", error="the client cancelled the call")
            raise
        finally:
            svc.policy.outcomes[outcome.name] = svc.policy.outcomes.get(outcome.name, 0) + 1
            if outcome.rec is not None:
                outcome.rec["durationMs"] = round((time.monotonic() - started) * 1000, 3)
                self._emit(outcome.rec)

    def _emit(self, rec: JSON) -> None:
        for sink in self.call_sinks:
            try:
                sink(rec)
            except Exception:  # a sink must never break a call
                log.exception("call sink failed")

    # -- the path ------------------------------------------------------------
    async def _call(self, svc: PolicedService, method: str, params: JSON, ctx: CallContext, out: _Outcome) -> JSON:
        pol = svc.policy
        assert pol.gate is not None and pol.breaker is not None
        is_tool = method == "tools/call"
        name = str(params.get("name", "")) if is_tool else ""
        tool = _find_tool(svc, name) if is_tool else None
        what = f"tool {name!r} of service {svc.name!r}" if is_tool else f"{method} on service {svc.name!r}"

        def refuse(outcome: str, policy: str, message: str, **meta: Any) -> PolicyRefusal:
            out.set(outcome, policy=policy, error=message)
            return PolicyRefusal(policy, message, outcome=outcome, **meta)

        # 1. Visibility: hidden tools are refused too.
        if is_tool:
            hidden = pol.tool_allowed(name, tool)
            if hidden:
                raise refuse("refused", hidden, f"{what} is refused by policy {hidden}")
        # 2. Request size, measured as canonical JSON of the params.
        size_in = out.size_in if out.size_in is not None else len(canonical_json(params).encode())
        out.field(bytesIn=size_in)
        if size_in > pol.max_payload:
            raise refuse("refused", "maxPayloadBytes",
                         f"request to {what} is {size_in} bytes, over the limit of {pol.max_payload} "
                          "(policy maxPayloadBytes)", limitBytes=pol.max_payload, sizeBytes=size_in)
        # 3. A backend to call.
        backend = svc.backend
        if backend is None:
            why = f": {svc.state_reason}" if svc.state_reason else ""
            raise refuse("unavailable", "state", f"service {svc.name!r} is not running ({svc.state.value}{why})")
        breaker = pol.breaker
        if breaker.subject is not None and breaker.subject is not backend:
            breaker.reset()  # a new backend instance (restarted): it gets a fresh chance
            breaker.subject = None
        # 4. Cache: a hit costs no rate, no slot and no upstream call.
        cache_key: str | None = None
        if is_tool and pol.cache is not None and pol.cacheable(name, tool):
            cache_key = ResultCache.key(name, params.get("arguments"))
            hit = await pol.cache.lookup(cache_key)
            if hit is not None:
                out.field(cache="hit", bytesOut=len(canonical_json(hit).encode()))
                return hit
            out.field(cache="miss")
        # 5. Circuit breaker: fail fast while open.
        if not breaker.allow():
            wait = breaker.retry_in()
            raise refuse("unavailable", "breaker",
                         f"service {svc.name!r} is failing ({breaker.consecutive} upstream faults in a row, last: "
                         f"{breaker.last_fault}); calls are refused for {wait:.1f} s more, then one trial call is "
                         "let through (policy breaker)",
                         retryAfterSeconds=round(wait, 3))
        probing = breaker.state() == HALF_OPEN
        admitted_at: float | None = None
        reached = False
        try:
            # 6. Rate limit (sliding window).
            if pol.rate is not None and method in RATE_LIMITED_METHODS:
                admitted_at, resume = await pol.rate.acquire()
                if resume is not None:
                    wait = max(0.0, resume - time.time())
                    raise refuse("rate_limited", "rateLimit",
                                 f"service {svc.name!r} allows {pol.rate.calls} calls per {pol.rate.per} and that "
                                 f"many were made in the last {pol.rate.per}; calls resume in {wait:.0f} s, at "
                                 f"{iso(resume)} (policy rateLimit)",
                                 retryAfterSeconds=round(wait, 3), resumesAt=iso(resume))
            # 7. Concurrency: wait in line, bounded.
            try:
                await pol.gate.acquire(pol.queue_timeout_ms / 1000.0)
            except QueueFull:
                raise refuse("busy", "maxConcurrency",
                             f"service {svc.name!r} is busy: {pol.gate.in_flight} calls in flight (maxConcurrency "
                             f"{pol.max_concurrency}) and the wait queue is full (maxQueue {pol.max_queue}); try "
                             "again shortly (policy maxConcurrency)",
                             inFlight=pol.gate.in_flight, queued=pol.gate.queued) from None
            except QueueTimeout:
                raise refuse("busy", "queueTimeoutMs",
                             f"service {svc.name!r} is busy: the call waited {pol.queue_timeout_ms} ms for one of "
                             f"{pol.max_concurrency} slots without getting one (policy queueTimeoutMs)",
                             inFlight=pol.gate.in_flight, queued=pol.gate.queued) from None
            reached = True
            try:
                return await self._forward(svc, pol, backend, method, params, ctx, tool, what, cache_key, out, refuse)
            finally:
                pol.gate.release()
        finally:
            if not reached and admitted_at is not None and pol.rate is not None:
                await pol.rate.give_back(admitted_at)
            if probing and breaker.probe_in_flight and breaker.state() == HALF_OPEN:
                breaker.release_probe()  # ended without a verdict: let the next call probe

    async def _forward(self, svc: PolicedService, pol: ServicePolicy, backend: Backend, method: str, params: JSON,
                       ctx: CallContext, tool: JSON | None, what: str, cache_key: str | None, out: _Outcome,
                       refuse: Callable[..., PolicyRefusal]) -> JSON:
        """Steps 8-9: the backend call with timeout and retries, then the verdicts."""
        breaker = pol.breaker
        assert breaker is not None
        is_tool = method == "tools/call"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pol.timeout_ms / 1000.0
        ctx.deadline = deadline
        ctx.max_response_bytes = pol.max_payload
        attempts = 0
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    attempts += 1
                    out.field(attempts=attempts)
                    try:
                        result = await backend.call(method, params, ctx)
                        break
                    except BackendFault as e:
                        if attempts > pol.retries or not self._retryable(method, tool, e):
                            raise
                        delay = random.uniform(0.5, 1.0) * min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempts - 1))
                        if loop.time() + delay >= deadline:
                            raise
                        await asyncio.sleep(delay)
        except TimeoutError:
            self._fault(svc, pol, backend, f"timed out after {pol.timeout_ms} ms")
            msg = f"call to {what} timed out after {pol.timeout_ms} ms (policy timeoutMs)"
            out.set("timeout", policy="timeoutMs", error=msg)
            if is_tool:
                return tool_error(msg, policy="timeoutMs", outcome="timeout", timeoutMs=pol.timeout_ms)
            raise BackendFault(msg, kind="timeout") from None
        except BackendFault as e:
            if e.kind == "payload":
                # The upstream answered, too much: refused by policy, not a fault of the service.
                breaker.success()
                raise refuse("refused", "maxPayloadBytes",
                             f"the response of {what} exceeded the limit of {pol.max_payload} bytes and was "
                             f"dropped (policy maxPayloadBytes): {e}", limitBytes=pol.max_payload) from None
            self._fault(svc, pol, backend, f"{e.kind}: {e}")
            msg = f"service {svc.name!r} failed: {e}"
            out.set("upstream_fault", policy=None, error=msg)
            if is_tool:
                suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                return tool_error(msg + suffix, outcome="upstream_fault", kind=e.kind, attempts=attempts)
            raise
        except UpstreamError as e:
            breaker.success()  # the upstream answered: a client mistake, not a fault
            out.set("tool_error", error=f"upstream error {e.code}: {e.message}")
            raise
        except (InputRequired, asyncio.CancelledError):
            raise  # no verdict on the service; _call gives a probe slot back
        except Exception as e:  # a bug below us must not escape as a traceback
            log.exception("backend call raised")
            self._fault(svc, pol, backend, f"internal error {type(e).__name__}")
            msg = f"service {svc.name!r} failed: internal error {type(e).__name__}"
            out.set("upstream_fault", error=msg)
            if is_tool:
                return tool_error(msg, outcome="upstream_fault", kind="internal")
            raise BackendFault(msg, kind="protocol") from None
        breaker.success()
        if not isinstance(result, dict):
            result = {}
        size_out = len(canonical_json(result).encode())
        out.field(bytesOut=size_out)
        if size_out > pol.max_payload:
            raise refuse("refused", "maxPayloadBytes",
                         f"the response of {what} is {size_out} bytes, over the limit of {pol.max_payload} "
                          "(policy maxPayloadBytes)", limitBytes=pol.max_payload, sizeBytes=size_out)
        if method == "tools/list" and isinstance(result.get("tools"), list):
            result["tools"] = pol.visible_tools(result["tools"])
        if is_tool:
            if result.get("isError"):
                out.set("tool_error", error=_first_text(result))
            elif cache_key is not None and pol.cache is not None:
                await pol.cache.keep(cache_key, result)
        return result

    @staticmethod
    def _retryable(method: str, tool: JSON | None, e: BackendFault) -> bool:
        if e.kind in ("payload", "unauthorized"):
            return False
        if e.safe_to_retry or method in READ_METHODS:
            return True
        return method == "tools/call" and annotation(tool, "idempotentHint")

    def _fault(self, svc: PolicedService, pol: ServicePolicy, backend: Backend, reason: str) -> None:
        breaker = pol.breaker
        assert breaker is not None
        if not breaker.fault(reason):
            return
        breaker.subject = backend
        _svc_log(svc, "warning", f"circuit breaker opened after {breaker.consecutive} upstream faults "
                                 f"(last: {reason}); cool-down {breaker.cooldown:g} s")
        if self.store is not None and self.store.shared:
            change = Change("breaker", svc.id, {"until": time.time() + breaker.cooldown, "reason": reason})
            task = asyncio.get_running_loop().create_task(self.store.publish(change))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        window = svc.manifest.spec.restartPolicy.windowSeconds
        trips = breaker.recent_trips(window)
        if trips >= BREAKER_TRIPS_TO_FAULT and self.report_fault is not None:
            breaker.trips.clear()
            try:
                self.report_fault(svc, f"circuit breaker tripped {trips} times within {window:g}s; last fault: {reason}")
            except Exception:
                log.exception("report_fault failed")


class _Outcome:
    """The call's verdict so far, and its record (None for non-tool methods)."""

    def __init__(self, rec: JSON | None) -> None:
        self.rec = rec
        self.name = "ok"
        self.size_in: int | None = None  # the request's canonical JSON size, when already known

    def set(self, outcome: str, policy: str | None = None, error: str | None = None) -> None:
        self.name = outcome
        if self.rec is not None:
            self.rec.update(outcome=outcome, policy=policy, error=error)

    def field(self, **kw: Any) -> None:
        if self.rec is not None:
            self.rec.update(kw)


def _canonical_params(params: JSON, args_json: str) -> str:
    """``canonical_json(params)``, reusing ``args_json`` (``canonical_json`` of ``params["arguments"]``,
    computed for the argsHash) instead of encoding the arguments a second time."""
    if not params.get("arguments") or not all(type(k) is str for k in params):
        return canonical_json(params)  # "arguments" missing or falsy (hashed as {}), or unusual keys
    return "{" + ",".join(f"{canonical_json(k)}:{args_json if k == 'arguments' else canonical_json(params[k])}"
                          for k in sorted(params)) + "}"


def _first_text(result: JSON) -> str | None:
    for c in result.get("content") or []:
        if isinstance(c, dict) and c.get("type") == "text":
            return str(c.get("text", ""))[:500]
    return None


def _svc_log(svc: PolicedService, level: str, message: str) -> None:
    try:  # a service's log must never break a call
        svc.log(level, message)
    except Exception:
        pass


def _find_tool(svc: PolicedService, name: str) -> JSON | None:
    if svc.interface is None:
        return None
    for t in svc.interface.tools:
        if t.get("name") == name:
            return t
    return None
