"""``/metrics`` in the Prometheus text format (prometheus-client).

Owns the daemon's metric families, in a ``CollectorRegistry`` of its own (never
the process-global one): call counters, error counters and latency histograms
per service and tool (fed by a ``PolicyEngine`` call sink), and gauges read at
scrape time (service states, health, in-flight calls, queue depth, breaker
state, connected clients). Built by ``runtimed.daemon`` with what the gauges
read (the supervisor, the start time, the gateway's client counts) and
registered there as a call sink. Every series carries the ``replica`` label. Must not hold secrets in labels or decide
anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runtimed import __version__
from runtimed.lifecycle.supervisor import Supervisor

log = logging.getLogger("runtimed.metrics")
NOT_ERRORS = ("ok", "cancelled")
BREAKER_STATES = ("closed", "half_open", "open")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _LiveCollector(Collector):
    """Gauges computed from the daemon's state at each scrape."""

    def __init__(self, supervisor: Supervisor, started_at: float, client_counts: Callable[[], dict[str, int]]) -> None:
        self.supervisor = supervisor
        self.started_at = started_at
        self.client_counts = client_counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        services = self.supervisor.all()
        info = GaugeMetricFamily("runtimed_info", "Daemon version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        up = GaugeMetricFamily("runtimed_uptime_seconds", "Seconds since the daemon started")
        up.add_metric([], time.time() - self.started_at)
        yield up
        state = GaugeMetricFamily("runtimed_service_state", "1 for the service's current lifecycle state",
                                  labels=["service", "state"])
        health = GaugeMetricFamily("runtimed_service_health", "1 for the service's current health",
                                   labels=["service", "health"])
        inflight = GaugeMetricFamily("runtimed_calls_in_flight", "Calls being served", labels=["service"])
        queued = GaugeMetricFamily("runtimed_queue_depth", "Calls waiting for a concurrency slot", labels=["service"])
        breaker = GaugeMetricFamily("runtimed_breaker_state", "1 for the circuit breaker's current state",
                                    labels=["service", "state"])
        tools = GaugeMetricFamily("runtimed_service_tools", "Tools in the service's interface", labels=["service"])
        for svc in services:
            state.add_metric([svc.name, svc.state.value], 1)
            health.add_metric([svc.name, svc.health.value], 1)
            tools.add_metric([svc.name], len(svc.interface.tools) if svc.interface else 0)
            gate = getattr(svc.policy, "gate", None)
            if gate is not None:
                inflight.add_metric([svc.name], gate.in_flight)
                queued.add_metric([svc.name], gate.queued)
            br = getattr(svc.policy, "breaker", None)
            if br is not None:
                current = str(br.state()).lower()
                for s in BREAKER_STATES:
                    breaker.add_metric([svc.name, s], 1 if current == s else 0)
        yield from (state, health, inflight, queued, breaker, tools)
        clients = GaugeMetricFamily("runtimed_connected_clients", "Connected MCP clients by protocol era",
                                    labels=["era"])
        try:
            counts = self.client_counts() or {}
        except Exception:
            counts = {}
        for era, n in sorted(counts.items()):
            if isinstance(n, (int, float)):
                clients.add_metric([str(era)], n)
        yield clients


class Metrics:
    """The metric families of one daemon."""

    def __init__(self, supervisor: Supervisor, started_at: float, client_counts: Callable[[], dict[str, int]],
                 replica: str = "") -> None:
        """``replica``: this daemon's name among replicas, a label of every series (several replicas
        behind one balancer are scraped apart, and summed by it)."""
        self.replica = replica
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter("runtimed_tool_calls", "Tool calls by outcome", ["service", "tool", "outcome"],
                             registry=self.registry)
        self.errors = Counter("runtimed_tool_call_errors", "Tool calls that did not succeed",
                              ["service", "tool", "outcome"], registry=self.registry)
        self.latency = Histogram("runtimed_tool_call_duration_seconds", "Tool call duration",
                                 ["service", "tool"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.bytes_in = Counter("runtimed_tool_call_request_bytes", "Request bytes of tool calls",
                                ["service", "tool"], registry=self.registry)
        self.bytes_out = Counter("runtimed_tool_call_response_bytes", "Response bytes of tool calls",
                                 ["service", "tool"], registry=self.registry)
        self.registry.register(_LiveCollector(supervisor, started_at, client_counts))
        # (service, tool, outcome) -> the labelled children a call of that kind updates (labels() is a
        # locked lookup with validation; these are the same objects it would return).
        self._children: dict[tuple[Any, Any, Any], tuple[Any, Any, Any, Any, Any]] = {}

    def record(self, rec: dict[str, Any]) -> None:
        """A ``PolicyEngine`` call sink."""
        try:
            key = (rec.get("service"), rec.get("tool"), rec.get("outcome"))
            try:
                children = self._children.get(key)
            except TypeError:  # an unhashable value: counted under its str(), uncached
                children = None
            if children is None:
                children = self._children_for(key)
            calls, errors, latency, bytes_in, bytes_out = children
            calls.inc()
            if errors is not None:
                errors.inc()
            latency.observe(float(rec.get("durationMs") or 0.0) / 1000.0)
            bytes_in.inc(max(0, int(rec.get("bytesIn") or 0)))
            bytes_out.inc(max(0, int(rec.get("bytesOut") or 0)))
        except Exception:
            log.exception("could not count a call")

    def _children_for(self, key: tuple[Any, Any, Any]) -> tuple[Any, Any, Any, Any, Any]:
        service, tool, outcome = str(key[0] or ""), str(key[1] or "")[:128], str(key[2] or "ok")
        children = (self.calls.labels(service, tool, outcome),
                    self.errors.labels(service, tool, outcome) if outcome not in NOT_ERRORS else None,
                    self.latency.labels(service, tool), self.bytes_in.labels(service, tool),
                    self.bytes_out.labels(service, tool))
        if isinstance(key[0], str) and isinstance(key[1], str) and isinstance(key[2], (str, type(None))):
            self._children[key] = children  # hashable, stable keys only
        return children

    def render(self) -> bytes:
        return generate_latest(_Labelled(self.registry, self.replica))


class _Labelled:
    """``registry``'s metrics with ``replica`` added to every sample's labels (at scrape time only)."""

    def __init__(self, registry: CollectorRegistry, replica: str) -> None:
        self.registry, self.replica = registry, replica

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            metric.samples = [sample._replace(labels={**sample.labels, "replica": self.replica})
                              for sample in metric.samples]
            yield metric


def routes(metrics: Metrics) -> list[Route]:
    async def scrape(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", scrape, methods=["GET"])]
