"""``/metrics``: Prometheus text from a real daemon after real calls."""

from __future__ import annotations

import asyncio

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.upstream import run_upstream

TOKEN = "metrics-token-0123456789"


def _samples(text: str, replica: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples by (name, labels other than ``replica``); every one carries ``replica`` (this one's)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = dict(s.labels)
            got = labels.pop("replica", None)
            assert got and (replica is None or got == replica), (s.name, s.labels)
            out[(s.name, tuple(sorted(labels.items())))] = s.value
    return out


def _get(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_calls(make_daemon) -> None:
    d = make_daemon(token=TOKEN)
    assert d.api("GET", "/metrics", headers={"Authorization": "Bearer wrong-token-000000"}).status_code == 401
    with run_upstream("echo_server") as up:
        manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "echo"},
                    "spec": {"origin": {"type": "remote_mcp", "url": up.url}}}
        assert d.api("POST", "/api/services", json=manifest).status_code == 201
        d.wait_state("echo", "RUNNING")

        async def calls() -> None:
            async with (httpx2.AsyncClient(headers=d.headers()) as http,
                        Client(streamable_http_client(d.mcp_url, http_client=http)) as c):
                await c.call_tool("echo__echo", {"text": "a"})
                await c.call_tool("echo__echo", {"text": "b"})
                await c.call_tool("echo__fail", {})

        asyncio.run(calls())
        r = d.wait_for(lambda: (r := d.api("GET", "/metrics")).status_code == 200
                       and 'tool="fail"' in r.text and r, what="metrics of the calls")
    assert r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text, d.api("GET", "/api/status").json()["store"]["replica"])
    assert _get(s, "runtimed_tool_calls_total", service="echo", tool="echo", outcome="ok") == 2
    assert _get(s, "runtimed_tool_calls_total", service="echo", tool="fail", outcome="tool_error") == 1
    assert _get(s, "runtimed_tool_call_errors_total", service="echo", tool="fail", outcome="tool_error") == 1
    assert _get(s, "runtimed_tool_call_errors_total", service="echo", tool="echo", outcome="ok") is None
    assert _get(s, "runtimed_tool_call_duration_seconds_count", service="echo", tool="echo") == 2
    assert _get(s, "runtimed_tool_call_duration_seconds_bucket", service="echo", tool="echo", le="+Inf") == 2
    assert _get(s, "runtimed_service_state", service="echo", state="RUNNING") == 1
    assert _get(s, "runtimed_breaker_state", service="echo", state="closed") == 1
    assert _get(s, "runtimed_breaker_state", service="echo", state="open") == 0
    assert _get(s, "runtimed_queue_depth", service="echo") == 0
    assert _get(s, "runtimed_calls_in_flight", service="echo") == 0
    assert any(k[0] == "runtimed_connected_clients" for k in s)
    assert _get(s, "runtimed_tool_call_request_bytes_total", service="echo", tool="echo") > 0
    assert TOKEN not in r.text
