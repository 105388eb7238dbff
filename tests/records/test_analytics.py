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
