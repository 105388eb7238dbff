"""Call analytics and audit: the records of real calls through /mcp, rolling stats, capture
with redaction, intents. (The JSON Lines files and the event bus: tests/state/test_events.py.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mcp import Client

from runtimed.config.settings import Settings
from runtimed.daemon import Daemon
from runtimed.records.analytics import Analytics, percentile
from runtimed.records.intents import pop_intent
from tests.support.upstream import run_upstream


def _echo_manifest(url: str, name: str = "echo") -> dict:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "remote_mcp", "url": url}}}


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.95) == 95.0


# -- records of real calls --------------------------------------------------------

def test_calls_through_mcp_are_recorded(make_daemon) -> None:
    d = make_daemon()
    with run_upstream("echo_server") as up:
        assert d.api("POST", "/api/services", json=_echo_manifest(up.url)).status_code == 201
        d.wait_state("echo", "RUNNING")

        async def calls() -> None:
            async with Client(d.mcp_url) as c:
                await c.call_tool("echo__echo", {"text": "hello"})
                await c.call_tool("echo__add", {"a": 2, "b": 3})
                await c.call_tool("echo__fail", {})

        asyncio.run(calls())
        body = d.wait_for(lambda: (r := d.api("GET", "/api/services/echo/calls").json())["stats"]["calls"] >= 3 and r,
                          what="three calls recorded")
    stats = body["stats"]
    assert stats["calls"] == 3 and stats["errors"] == 1
    assert abs(stats["errorRate"] - 1 / 3) < 0.001
    assert stats["p50Ms"] is not None and stats["p95Ms"] >= stats["p50Ms"]
    assert stats["lastError"]["tool"] == "fail" and stats["lastError"]["outcome"] == "tool_error"
    tools = [c["tool"] for c in body["calls"]]
    assert tools == ["fail", "add", "echo"]  # newest first
    rec = body["calls"][-1]
    for key in ("time", "service", "tool", "durationMs", "outcome", "bytesIn", "bytesOut", "argsHash", "era", "client"):
        assert key in rec, key
    assert rec["outcome"] == "ok" and rec["bytesIn"] > 0 and rec["bytesOut"] > 0
    assert "arguments" not in rec  # capture_arguments is off
    audit = d.api("GET", "/api/audit", params={"outcome": "tool_error"}).json()["calls"]
    assert [c["tool"] for c in audit] == ["fail"]
    assert d.api("GET", "/api/audit", params={"limit": "x"}).status_code == 400
    assert d.api("GET", "/api/services/nope/calls").status_code == 404
    lines = (d.state_dir / "calls.jsonl").read_text().splitlines()
    assert [json.loads(x)["tool"] for x in lines] == ["echo", "add", "fail"]
    assert "hello" not in "".join(lines)
    # The history survives a daemon restart.
    d.stop()
    d.start()
    again = d.api("GET", "/api/services/echo/calls").json()
    assert [c["tool"] for c in again["calls"]] == ["fail", "add", "echo"]
    summary = d.api("GET", "/api/analytics").json()
    assert summary["services"]["echo"]["calls"] == 3


def test_capture_arguments_redacts_in_the_audit(tmp_path: Path) -> None:
    daemon = Daemon(Settings(state_dir=tmp_path / "s", capture_arguments=True))
    a: Analytics = daemon.analytics
    rec = {"time": 1.0, "service": "mail", "tool": "send", "durationMs": 3.0, "outcome": "upstream_fault",
           "error": "upstream said: invalid key sk-abcdefghijklmnopqrstuvwxyz", "bytesIn": 10, "bytesOut": 0,
           "arguments": {"to": "bob@example.com", "apiKey": "k-123", "body": "card 4111111111111111"},
           "result": {"content": [{"type": "text", "text": "Bearer abcdefghijklmnop"}]}}
    for sink in daemon.policy.call_sinks:
        sink(rec)
    stored = (tmp_path / "s" / "calls.jsonl").read_text()
    for secret in ("bob@example.com", "k-123", "4111111111111111", "sk-abcdef", "abcdefghijklmnop"):
        assert secret not in stored, secret
    got = a.recent(service="mail")[0]
    assert got["arguments"] == {"to": "<email>", "apiKey": "<redacted>", "body": "card <card-number>"}
    assert got["error"].endswith("<api-key>")
    daemon.events.close()
    a.close()

    off = Daemon(Settings(state_dir=tmp_path / "t", capture_arguments=False))
    off.analytics.record(dict(rec))
    kept = off.analytics.recent(service="mail")[0]
    assert "arguments" not in kept and "result" not in kept
    off.events.close()
    off.analytics.close()


async def test_intents_and_capability_requests(tmp_path: Path) -> None:
    daemon = Daemon(Settings(state_dir=tmp_path / "s", capture_intent=True))
    a: Analytics = daemon.analytics

    async def one_call(intent_text: str) -> None:
        intent, args = pop_intent({"text": "x", "_intent": intent_text})
        assert args == {"text": "x"}
        a.record_intent("echo", "echo", intent, client="codex")
        a.record({"time": 2.0, "service": "echo", "tool": "echo", "durationMs": 1.0, "outcome": "ok"})

    await asyncio.gather(one_call("Repeat the user's words"), one_call("repeat the user's   words"),
                         one_call("say hi to alice@example.com"))
    a.record({"time": 3.0, "service": "echo", "tool": "echo", "durationMs": 1.0, "outcome": "ok"})
    calls = a.recent(service="echo")
    assert "intent" not in calls[0]  # a call without a stated intent
    assert sorted(c["intent"] for c in calls[1:]) == ["Repeat the user's words", "repeat the user's words",
                                                      "say hi to <email>"]
    top = a.top_intents()[0]
    assert top["tool"] == "echo" and top["top"][0] == {"intent": "repeat the user's words", "count": 2}
    result = a.record_capability_request("Book a meeting room", context="user asked to book room 4")
    assert result["isError"] is False
    a.record_capability_request("book a meeting room")
    assert a.record_capability_request("  ")["isError"] is True
    caps = a.missing_capabilities()
    assert caps[0]["count"] == 2 and caps[0]["contexts"] == ["user asked to book room 4"]
    a.close()
    daemon.events.close()
    # Persisted: a new daemon on the same state dir shows the same.
    again = Daemon(Settings(state_dir=tmp_path / "s", capture_intent=True))
    assert again.analytics.top_intents()[0]["top"][0]["count"] == 2
    assert again.analytics.missing_capabilities()[0]["count"] == 2
    again.analytics.close()
    again.events.close()


# -- issue 14 item 20: per-minute series for the charts -------------------------------------------------------------

def test_minute_series_cover_the_last_hour_bounded(tmp_path: Path) -> None:
    import time

    from runtimed.records.analytics import SERIES_MINUTES
    from runtimed.state.events import EventBus

    settings = Settings(state_dir=tmp_path / "s")
    events = EventBus()
    a = Analytics(settings, events)
    now = time.time()
    start_minute = int(now // 60) - 3 * 60  # three hours of calls, ten a minute, two of them failing
    for minute in range(start_minute, int(now // 60) + 1):
        for i in range(10):
            a.record({"time": minute * 60 + i, "service": "svc", "tool": "t", "durationMs": float(i + 1),
                      "outcome": "ok" if i < 8 else "upstream_fault"})
            a.record({"time": minute * 60 + i, "service": "other", "tool": "t", "durationMs": 1.0, "outcome": "ok"})
    s = a.series("svc")
    assert s["service"] == "svc" and s["stepSeconds"] == 60 and len(s["t"]) == SERIES_MINUTES == 60
    for key in ("calls", "errors", "errorRate", "p50Ms", "p95Ms"):
        assert len(s[key]) == 60, key
    assert s["t"][-1] == int(now // 60) * 60 and s["t"][0] == s["t"][-1] - 59 * 60
    assert s["calls"] == [10] * 60 and s["errors"] == [2] * 60  # nothing older than the hour
    assert s["errorRate"][-1] == 0.2
    # Percentiles from a bounded histogram: within 5 % of the exact ones (5 ms and 10 ms).
    assert abs(s["p50Ms"][-1] - 5.0) <= 0.25 and abs(s["p95Ms"][-1] - 10.0) <= 0.5
    g = a.series(None)
    assert g["service"] is None and g["calls"] == [20] * 60 and g["errors"] == [2] * 60
    # Bounded: one bucket per minute of the window, whatever came before.
    assert len(a.stats["svc"].series) <= SERIES_MINUTES + 1
    # A minute without calls is a zero for counts, a gap (None) for rates and latencies.
    assert a.series("nobody")["calls"] == [0] * 60 and a.series("nobody")["p50Ms"] == [None] * 60
    a.close()
    # After a restart the series are rebuilt from calls.jsonl.
    again = Analytics(settings, events)
    assert again.series("svc")["calls"][-1] == 10
    again.close()
    events.close()


def test_series_over_http(make_daemon) -> None:
    d = make_daemon()
    with run_upstream("echo_server") as up:
        assert d.api("POST", "/api/services", json=_echo_manifest(up.url)).status_code == 201
        d.wait_state("echo", "RUNNING")

        async def calls() -> None:
            async with Client(d.mcp_url) as c:
                await c.call_tool("echo__echo", {"text": "hello"})
                await c.call_tool("echo__fail", {})

        asyncio.run(calls())
        # Summed over the minutes: the two calls may fall on either side of a minute's boundary.
        s = d.wait_for(lambda: sum((r := d.api("GET", "/api/services/echo/series").json())["calls"]) >= 2 and r,
                       what="the calls in the series")
    assert s["service"] == "echo" and sum(s["errors"]) == 1 and max(p or 0 for p in s["p95Ms"]) > 0
    g = d.api("GET", "/api/analytics/series").json()
    assert g["service"] is None and sum(g["calls"]) == 2 and sum(g["errors"]) == 1
    r = d.api("GET", "/api/services/nope/series")
    assert r.status_code == 404 and "nope" in r.json()["error"]
