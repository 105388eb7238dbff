"""Call analytics and audit: one record per ``tools/call``, kept.

Owns the call audit (``calls.jsonl`` in the state dir, append-only, rotated by
size through ``events.JsonlLog``, written in batches at most ``FLUSH_S`` after
each call, at shutdown and before ``/api/audit`` answers), the in-memory recent-call rings and rolling
per-service stats (calls, error rate, p50/p95 latency over a recent window),
intent and capability-request records (``intents.jsonl``), and per-minute series over the last hour for the status page's charts
(calls, errors, p50/p95 from a fixed-size latency histogram: per service and for
the whole gateway, at most ``SERIES_MINUTES + 1`` buckets each). Built by
``runtimed.daemon`` with the settings and the event bus, and registered as a
``PolicyEngine`` call sink there; its routes (``/api/audit``,
``/api/services/{ref}/calls``, ``/api/analytics``) are ``runtimed.http.audit``'s.
Must not: serve HTTP, store arguments or results unless ``capture_arguments``
is on (and then only redacted and size-bounded, see ``redaction``), block a
call (a sink never raises), or decide anything about a call (that is ``policy``).

How the gateway uses it (handed to ``Gateway`` as its intent recorder):
``add_intent_property(schema)`` on each listed tool when
``settings.capture_intent``; ``intent, args = pop_intent(args)`` before the
call; ``record_intent(service, tool, intent, client)`` right before
``policy.call`` (same task: the call record then carries the intent);
``capability_tool()`` in ``tools/list`` and, for its calls,
``record_capability_request(description, context, client)`` whose return
value is the tool result.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from runtimed.config.settings import Settings
from runtimed.protocol.types import JSON
from runtimed.records.intents import capability_result, clean_intent
from runtimed.records.redaction import capture, redact_text
from runtimed.state.events import EventBus, JsonlLog
from runtimed.state.store import Journal

log = logging.getLogger("runtimed.analytics")

FLUSH_S = 0.1  # call records reach calls.jsonl in batches, at most this late (and at shutdown)
FLUSH_MAX = 512
WINDOW_SECONDS = 15 * 60  # the "recent window" of the rolling stats
RING_PER_SERVICE = 200
RING_ALL = 5000
WINDOW_SAMPLES = 2000
NOT_ERRORS = frozenset({"ok", "cancelled"})  # a cancelled call is the client's choice, not a failure
TOP_INTENTS = 5
SERIES_MINUTES = 60  # the charts' window: one point per minute over the last hour
# Latency histogram of a minute: bins of a fixed ratio (HIST_STEPS per doubling from HIST_BASE_MS), so a
# percentile read from it is within 2^(1/(2*HIST_STEPS)) - 1 (4.4 %) of the exact one, in bounded memory.
HIST_BASE_MS = 0.01
HIST_STEPS = 8
HIST_BINS = HIST_STEPS * 27  # the last bin holds everything beyond 0.01 ms * 2^27 (22 minutes)

_pending_intent: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "runtimed_pending_intent", default=None)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def _bin(duration_ms: float) -> int:
    if duration_ms <= HIST_BASE_MS:
        return 0
    return min(HIST_BINS - 1, math.ceil(math.log2(duration_ms / HIST_BASE_MS) * HIST_STEPS))


def _bin_value(index: int) -> float:
    """The geometric middle of a bin (the value a percentile falling in it is reported as)."""
    return round(HIST_BASE_MS * 2 ** ((index - 0.5) / HIST_STEPS), 3)


class _Minute:
    __slots__ = ("calls", "errors", "hist")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.hist: dict[int, int] = {}

    def percentile(self, q: float) -> float | None:
        if not self.calls:
            return None
        rank = max(1, math.ceil(q * self.calls))
        seen = 0
        for index in sorted(self.hist):
            seen += self.hist[index]
            if seen >= rank:
                return _bin_value(index)
        return None  # not reached: the histogram holds every call


class MinuteSeries:
    """Calls, errors and a latency histogram per minute, for the last ``SERIES_MINUTES`` minutes only."""

    def __init__(self) -> None:
        self._minutes: dict[int, _Minute] = {}

    def __len__(self) -> int:
        return len(self._minutes)

    def add(self, t: float, duration_ms: float, ok: bool, now: float | None = None) -> None:
        current = int((time.time() if now is None else now) // 60)
        minute = int(t // 60)
        if minute <= current - SERIES_MINUTES or minute > current + 1:
            return  # older than the window (a record read back at start), or from a clock far ahead
        bucket = self._minutes.get(minute)
        if bucket is None:
            for old in [m for m in self._minutes if m <= current - SERIES_MINUTES]:
                del self._minutes[old]
            bucket = self._minutes[minute] = _Minute()
        bucket.calls += 1
        if not ok:
            bucket.errors += 1
        b = _bin(max(0.0, duration_ms))
        bucket.hist[b] = bucket.hist.get(b, 0) + 1

    def to_json(self, now: float | None = None) -> JSON:
        """Columns, oldest minute first, the current (partial) minute last: ``t`` (the minute's start, epoch
        seconds), ``calls``, ``errors``, ``errorRate``, ``p50Ms``, ``p95Ms`` (None for a minute without calls)."""
        current = int((time.time() if now is None else now) // 60)
        minutes = range(current - SERIES_MINUTES + 1, current + 1)
        empty = _Minute()
        buckets = [self._minutes.get(m, empty) for m in minutes]
        return {
            "stepSeconds": 60,
            "t": [m * 60 for m in minutes],
            "calls": [b.calls for b in buckets],
            "errors": [b.errors for b in buckets],
            "errorRate": [round(b.errors / b.calls, 4) if b.calls else None for b in buckets],
            "p50Ms": [b.percentile(0.50) for b in buckets],
            "p95Ms": [b.percentile(0.95) for b in buckets],
        }


@dataclass
class ServiceStats:
    calls: int = 0
    errors: int = 0
    samples: collections.deque[tuple[float, float, bool]] = field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_SAMPLES))
    last_error: JSON | None = None
    last_call_at: float | None = None
    series: MinuteSeries = field(default_factory=MinuteSeries)

    def add(self, rec: JSON) -> None:
        ok = rec.get("outcome") in NOT_ERRORS
        self.calls += 1
        if not ok:
            self.errors += 1
            self.last_error = {"time": rec.get("time"), "tool": rec.get("tool"), "outcome": rec.get("outcome"),
                               "policy": rec.get("policy"), "message": rec.get("error")}
        t = float(rec.get("time") or time.time())
        self.last_call_at = t
        self.samples.append((t, float(rec.get("durationMs") or 0.0), ok))
        self.series.add(t, float(rec.get("durationMs") or 0.0), ok)

    def to_json(self, now: float | None = None) -> JSON:
        now = time.time() if now is None else now
        recent = [s for s in self.samples if s[0] >= now - WINDOW_SECONDS]
        durations = sorted(s[1] for s in recent)
        errors = sum(1 for s in recent if not s[2])
        return {
            "calls": self.calls,
            "errors": self.errors,
            "windowSeconds": WINDOW_SECONDS,
            "windowCalls": len(recent),
            "windowErrors": errors,
            "errorRate": round(errors / len(recent), 4) if recent else None,
            "p50Ms": percentile(durations, 0.50),
            "p95Ms": percentile(durations, 0.95),
            "lastError": self.last_error,
            "lastCallAt": self.last_call_at,
        }


class Analytics:
    """The daemon's call recorder. ``record`` is a ``PolicyEngine`` call sink."""

    def __init__(self, settings: Settings, events: EventBus, calls: Journal | None = None,
                 intents: Journal | None = None) -> None:
        """``calls``/``intents``: the store's journals of those names (default: the state dir's files)."""
        self.settings = settings
        self.events = events
        state_dir = settings.state_dir
        self.calls_log: Journal = calls if calls is not None else JsonlLog(state_dir / "calls.jsonl")
        self.intents_log: Journal = intents if intents is not None else JsonlLog(state_dir / "intents.jsonl")
        self._ids = itertools.count(1)
        self.all: collections.deque[JSON] = collections.deque(maxlen=RING_ALL)
        self.by_service: dict[str, collections.deque[JSON]] = {}
        self.stats: dict[str, ServiceStats] = {}
        self.gateway_series = MinuteSeries()  # every service's calls together
        self.intents: dict[tuple[str, str], collections.Counter[str]] = {}
        self.capabilities: dict[str, JSON] = {}
        self._pending: list[JSON] = []  # call records not yet written (see flush)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._load()
        self.calls_log.follow(self._peer_call)

    def _peer_call(self, rec: JSON) -> None:
        """A call another replica served (a shared store's journal): in the rings, stats and live page."""
        if not isinstance(rec, dict) or not rec.get("service"):
            return
        out = dict(rec)
        out["id"] = next(self._ids)
        self._remember(out)
        self.events.notify("call", out.get("service"), tool=out.get("tool"), outcome=out.get("outcome"),
                           durationMs=out.get("durationMs"), callId=out["id"], replica=out.get("replica"),
                           **({"tokenId": out["tokenId"]} if out.get("tokenId") else {}))

    # -- start-up ------------------------------------------------------------
    def _load(self) -> None:
        """Rebuild the rings and stats from the end of the files (a restart
        keeps recent history)."""
        for rec in self.calls_log.tail(RING_ALL):
            if isinstance(rec, dict) and rec.get("service"):
                rec["id"] = next(self._ids)
                self._remember(rec)
        for rec in self.intents_log.tail(RING_ALL):
            if not isinstance(rec, dict):
                continue
            if rec.get("kind") == "intent":
                self._count_intent(str(rec.get("service")), str(rec.get("tool")), str(rec.get("intent")))
            elif rec.get("kind") == "capability":
                self._count_capability(rec)

    def close(self) -> None:
        self.flush()
        self.calls_log.close()
        self.intents_log.close()

    # -- the audit file: appended in batches ----------------------------------------
    def _schedule_flush(self) -> None:
        if len(self._pending) >= FLUSH_MAX:
            self.flush()
            return
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (direct use): write now
            self.flush()
            return
        self._flush_handle = loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write the call records not yet in ``calls.jsonl`` (one write per batch)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self._pending = self._pending, []
        try:
            # The pending records are the ones kept in the rings: written without their in-memory id.
            self.calls_log.append_many([{k: v for k, v in r.items() if k != "id"} for r in batch])
        except (OSError, ValueError) as e:  # ValueError: the file was closed
            log.warning("could not append to the call journal: %s", e)

    # -- recording -----------------------------------------------------------
    def record(self, rec: JSON) -> None:
        """One finished ``tools/call`` (the record ``PolicyEngine`` builds)."""
        try:
            self._record(rec)
        except Exception:  # never let analytics break a call
            log.exception("could not record a call")

    def _record(self, rec: JSON) -> None:
        out = dict(rec)
        out.pop("arguments", None)
        out.pop("result", None)
        out["id"] = next(self._ids)
        if out.get("error"):
            out["error"] = redact_text(str(out["error"]))[:1000]
        pending = _pending_intent.get()
        if pending is not None and pending[:2] == (rec.get("service"), rec.get("tool")):
            out["intent"] = pending[2]
            _pending_intent.set(None)
        if self.settings.capture_arguments:
            if "arguments" in rec:
                out["arguments"] = capture(rec.get("arguments"))
            if "result" in rec:
                out["result"] = capture(rec.get("result"))
        self._pending.append(out)  # never changed after this: flush() writes it without "id"
        self._schedule_flush()
        self._remember(out)
        self.events.notify("call", out.get("service"), tool=out.get("tool"), outcome=out.get("outcome"),
                           durationMs=out.get("durationMs"), callId=out["id"],
                           **({"principal": out["principal"]} if out.get("principal") else {}),
                           **({"tokenId": out["tokenId"]} if out.get("tokenId") else {}))

    def _remember(self, rec: JSON) -> None:
        name = str(rec["service"])
        self.all.append(rec)
        self.by_service.setdefault(name, collections.deque(maxlen=RING_PER_SERVICE)).append(rec)
        self.stats.setdefault(name, ServiceStats()).add(rec)
        self.gateway_series.add(float(rec.get("time") or time.time()), float(rec.get("durationMs") or 0.0),
                                rec.get("outcome") in NOT_ERRORS)

    def record_intent(self, service: str, tool: str, intent: str | None, client: str | None = None) -> None:
        """An agent's stated intent for a call about to be made (from ``_intent``).

        Call it in the task that then calls ``policy.call``: that call's
        record carries the intent. None or empty intents are ignored.
        """
        text = clean_intent(intent)
        if text is None:
            return
        _pending_intent.set((service, tool, text))
        self._count_intent(service, tool, text)
        try:
            self.intents_log.append({"time": time.time(), "kind": "intent", "service": service, "tool": tool,
                                     "intent": text, "client": client})
        except OSError as e:
            log.warning("could not append to %s: %s", self.intents_log.where, e)

    def record_capability_request(self, description: Any, context: Any = None, client: str | None = None) -> JSON:
        """A ``runtime__request_capability`` call; returns its tool result."""
        text = clean_intent(description)
        if text is None:
            return capability_result(False, "describe the missing capability in 'description' (a non-empty string)")
        rec = {"time": time.time(), "kind": "capability", "description": text, "context": clean_intent(context),
               "client": client}
        self._count_capability(rec)
        try:
            self.intents_log.append(rec)
        except OSError as e:
            log.warning("could not append to %s: %s", self.intents_log.where, e)
        self.events.notify("capability.requested", None, description=text)
        return capability_result(True, "Recorded: the gateway's operators will see this request. No tool performs "
                                       "it yet; tell the user it is not available.")

    def _count_intent(self, service: str, tool: str, intent: str) -> None:
        self.intents.setdefault((service, tool), collections.Counter())[intent.lower()] += 1

    def _count_capability(self, rec: JSON) -> None:
        desc = str(rec.get("description") or "")
        if not desc:
            return
        key = desc.lower()
        entry = self.capabilities.setdefault(key, {"description": desc, "count": 0, "firstAt": rec.get("time"),
                                                   "lastAt": None, "contexts": []})
        entry["count"] += 1
        entry["lastAt"] = rec.get("time")
        ctx = rec.get("context")
        if ctx and ctx not in entry["contexts"]:
            entry["contexts"] = (entry["contexts"] + [ctx])[-3:]

    # -- reading -------------------------------------------------------------
    def service_stats(self, name: str) -> JSON:
        st = self.stats.get(name)
        return (st or ServiceStats()).to_json()

    def series(self, service: str | None) -> JSON:
        """Per-minute calls, errors, error rate and p50/p95 over the last hour: one service's, or (None) the
        whole gateway's. See ``MinuteSeries.to_json``."""
        if service is None:
            source = self.gateway_series
        else:
            st = self.stats.get(service)
            source = st.series if st is not None else MinuteSeries()
        return {"service": service, "minutes": SERIES_MINUTES, **source.to_json()}

    def recent(self, service: str | None = None, tool: str | None = None, outcome: str | None = None,
               limit: int = 100, before: int | None = None) -> list[JSON]:
        """Newest first."""
        source = self.all if service is None else self.by_service.get(service, ())
        out: list[JSON] = []
        for rec in reversed(source):
            if before is not None and rec["id"] >= before:
                continue
            if tool is not None and rec.get("tool") != tool:
                continue
            if outcome is not None and rec.get("outcome") != outcome:
                continue
            out.append(rec)
            if len(out) >= limit:
                break
        return out

    def top_intents(self, service: str | None = None) -> list[JSON]:
        out = []
        for (svc, tool), counter in sorted(self.intents.items()):
            if service is not None and svc != service:
                continue
            out.append({"service": svc, "tool": tool, "total": sum(counter.values()),
                        "top": [{"intent": i, "count": c} for i, c in counter.most_common(TOP_INTENTS)]})
        return out

    def missing_capabilities(self) -> list[JSON]:
        return sorted(self.capabilities.values(), key=lambda e: (-e["count"], -(e["lastAt"] or 0)))

    def summary(self) -> JSON:
        return {
            "windowSeconds": WINDOW_SECONDS,
            "captureArguments": self.settings.capture_arguments,
            "captureIntent": self.settings.capture_intent,
            "services": {name: st.to_json() for name, st in self.stats.items()},
            "intents": self.top_intents(),
            "capabilities": self.missing_capabilities(),
        }
