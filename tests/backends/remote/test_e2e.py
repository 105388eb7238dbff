"""Remote MCP services end to end (issue 4): a real ``runtimed``, real upstreams
on loopback, the official SDK ``Client`` on ``/mcp``, ``runtimectl`` as a process.

Covers what a user sees, not the mechanisms (those have their own tests in
tests/backends/remote/test_backend.py and tests/policy/): injected upstream faults answered
clearly while a healthy service keeps working; health probes and the restart
policy; the circuit breaker and its path to quarantine; one upstream session
for many calls; the persisted interface cache and list_changed; authRef
secrets never leaking; the SSRF allowlist; the old SSE transport; and
``runtimectl show``. No timed assertions: waits are bounded only as hang guards.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support.daemon import DaemonProc, run_cli
from tests.support.foundation import remote_manifest, symlink_loop as _loop
from tests.support.upstream import run_upstream

GUARD = 60.0  # hang guard for one awaited step, never an assertion on speed


# -- helpers ---------------------------------------------------------------------------
def manifest(name: str, url: str, policy: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    origin = {"type": "remote_mcp", "url": url, **spec.pop("origin", {})}
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": origin, "policy": policy or {}, **spec}}


def register(d: DaemonProc, name: str, url: str, policy: dict[str, Any] | None = None, *, state: str | None = "RUNNING",
             **spec: Any) -> dict[str, Any]:
    r = d.api("POST", "/api/services", json=manifest(name, url, policy, **spec))
    assert r.status_code in (200, 201), r.text
    return d.wait_state(name, state, timeout=GUARD) if state else r.json()["service"]


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def meta(result: Any) -> dict[str, Any]:
    m = result.meta if isinstance(result.meta, dict) else {}
    return m.get("runtimed") or {}


def events(d: DaemonProc, service: str, kind: str | None = None) -> list[dict[str, Any]]:
    r = d.api("GET", "/api/events", params={"service": service, "limit": 2000})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if kind is None or e["type"] == kind]


def transitions(d: DaemonProc, service: str) -> list[tuple[str, str, str]]:
    return [(e["from"], e["to"], e["reason"]) for e in events(d, service, "transition")]


def health_events(d: DaemonProc, service: str) -> list[str]:
    return [e["health"] for e in events(d, service, "health")]


def show(d: DaemonProc, service: str) -> str:
    r = run_cli(d, "show", service)
    assert r.returncode == 0, r.stderr
    return r.stdout


async def poll(predicate: Any, what: str, tries: int = 600) -> Any:
    """Poll a blocking predicate off the event loop; a hang guard, not a timing check."""
    for _ in range(tries):
        got = await asyncio.to_thread(predicate)
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


# -- 1. faults through /mcp, a healthy service unaffected -------------------------------
FAULTS = {
    # tool: words the result must contain (what happened, and which policy answered if one did)
    "hang": ["timed out after 1500 ms", "policy timeoutMs"],
    "drip": ["timed out after 1500 ms", "policy timeoutMs"],
    "http500": ["service 'faulty' failed", "HTTP 500"],
    "reset": ["service 'faulty' failed", "reset"],
    "badjson": ["service 'faulty' failed", "invalid JSON"],
    "badframe": ["service 'faulty' failed", "invalid JSON"],
    "oversized": ["exceeded the limit of 1000000 bytes", "policy maxPayloadBytes"],
    "unauthorized": ["service 'faulty' failed", "401"],
}


def test_each_fault_is_answered_clearly_while_a_healthy_service_keeps_working(make_daemon):
    # A high breaker threshold so every fault reaches the upstream (the breaker has its own test).
    d = make_daemon(env={"RUNTIMED_POLICY_BREAKER_THRESHOLD": "1000"})
    with run_upstream("faulty_server") as bad, run_upstream("echo_server", "--name", "healthy") as good:
        register(d, "faulty", bad.url, {"timeoutMs": 1500, "maxPayloadBytes": 1_000_000, "retries": 0})
        register(d, "healthy", good.url)

        async def scenario() -> dict[str, str]:
            seen: dict[str, str] = {}
            async with Client(d.mcp_url, mode="legacy") as c:
                for fault in FAULTS:
                    healthy = [c.call_tool("healthy__add", {"a": i, "b": 1000}) for i in range(6)]
                    got = await asyncio.wait_for(
                        asyncio.gather(c.call_tool(f"faulty__{fault}", {}), *healthy), GUARD)
                    faulty, *fine = got
                    assert faulty.is_error, (fault, text(faulty))
                    seen[fault] = text(faulty)
                    assert [text(r) for r in fine] == [str(i + 1000) for i in range(6)], fault
                    assert not any(r.is_error for r in fine)
                # The upstream session survived every fault.
                ok = await asyncio.wait_for(c.call_tool("faulty__ok", {}), GUARD)
                assert not ok.is_error and text(ok) == "ok"
            return seen

        seen = asyncio.run(scenario())
        for fault, words in FAULTS.items():
            for w in words:
                assert w in seen[fault], (fault, seen[fault])
            assert "Traceback" not in seen[fault]
        outcomes = d.service("faulty")["policy"]["outcomes"]
        assert outcomes.get("timeout") == 2, outcomes
        assert outcomes.get("refused") == 1, outcomes  # oversized: refused by maxPayloadBytes
        assert outcomes.get("upstream_fault") == 5, outcomes
        assert d.service("healthy")["policy"]["outcomes"] == {"ok": 6 * len(FAULTS)}
        # Neither service was taken down by the faults.
        assert d.service("faulty")["state"] == "RUNNING" and d.service("healthy")["state"] == "RUNNING"


# -- 2. health probes -----------------------------------------------------------------
FAST_PROBES = {"intervalSeconds": 0.2, "timeoutMs": 2000}
FAST_RESTARTS = {"maxRestarts": 100, "windowSeconds": 300,
                 "backoff": {"initialMs": 200, "maxMs": 200, "multiplier": 1.0}}


def test_probes_healthy_unreachable_crash_restart_and_recovery(make_daemon):
    d = make_daemon()
    with run_upstream("echo_server", "--name", "probed") as up:
        register(d, "probed", up.url, healthCheck=FAST_PROBES, restartPolicy=FAST_RESTARTS)
        # Probes run: the health detail moves from "started" to a probe's answer, with a latency.
        s = d.wait_for(lambda: (s := d.service("probed"))["healthDetail"] != "started" and s, what="a probe")
        assert s["health"] == "HEALTHY" and s["healthLatencyMs"] is not None
        assert s["healthDetail"] in ("ping ok", "server/discover ok")

        up.stop()  # the upstream goes away
        d.wait_for(lambda: "UNREACHABLE" in health_events(d, "probed"), what="UNREACHABLE")
        d.wait_for(lambda: any(t == "CRASHED" and "3 failed probes" in r for _, t, r in transitions(d, "probed")),
                   what="CRASHED after 3 failed probes")
        d.wait_for(lambda: events(d, "probed", "restart.scheduled"), what="the restart policy to schedule a restart")
        # The restart policy keeps trying while the upstream is down; each try fails clearly.
        d.wait_for(lambda: any(f == "STARTING" and t == "CRASHED" and "start failed" in r and "cannot connect" in r
                               for f, t, r in transitions(d, "probed")), what="a failed restart attempt")

        up.restart()  # back on the same port
        back = d.wait_state("probed", "RUNNING", timeout=GUARD)
        assert back["health"] == "HEALTHY"
        assert back["restarts"] >= 1
        hs = health_events(d, "probed")
        assert "UNREACHABLE" in hs and hs[-1] == "HEALTHY", hs
        # Calls work again through /mcp.

        async def call() -> str:
            async with Client(d.mcp_url, mode="legacy") as c:
                return text(await asyncio.wait_for(c.call_tool("probed__echo", {"text": "again"}), GUARD))

        assert asyncio.run(call()) == "again"
        out = show(d, "probed")
        assert "state:      RUNNING" in out and "health:     HEALTHY" in out


def test_probes_timeout_crash_and_quarantine(make_daemon):
    d = make_daemon()
    with run_upstream("faulty_server") as up:
        # Starts (initialize is answered) but never answers ping.
        register(d, "pingless", up.base_url + "/hangping/mcp",
                 healthCheck={"intervalSeconds": 0.2, "timeoutMs": 300},
                 restartPolicy={"maxRestarts": 1, "windowSeconds": 300,
                                "backoff": {"initialMs": 100, "maxMs": 100, "multiplier": 1.0}})
        q = d.wait_state("pingless", "QUARANTINED", timeout=GUARD)
        assert "2 failures" in q["quarantineReason"] and "failed probes" in q["quarantineReason"]
        assert "TIMEOUT" in health_events(d, "pingless")
        ts = transitions(d, "pingless")
        crashes = [r for _, t, r in ts if t == "CRASHED"]
        assert len(crashes) == 2 and all("3 failed probes" in r and "300 ms" in r for r in crashes), ts
        assert any(t == "RUNNING" and r == "restart policy" for _, t, r in ts), ts
        out = show(d, "pingless")
        assert "state:      QUARANTINED" in out and "quarantine: 2 failures" in out


def test_slow_probes_are_degraded_not_crashed(make_daemon):
    d = make_daemon()
    with run_upstream("faulty_server") as up:
        # ping is answered after at least 300 ms; degradedMs 100 makes that DEGRADED.
        register(d, "slowpoke", up.base_url + "/slowping/mcp",
                 healthCheck={"intervalSeconds": 0.2, "timeoutMs": 5000, "degradedMs": 100})
        s = d.wait_for(lambda: (s := d.service("slowpoke"))["health"] == "DEGRADED" and s, what="DEGRADED")
        assert s["healthDetail"].startswith("slow:") and "> 100 ms" in s["healthDetail"], s["healthDetail"]
        assert s["healthLatencyMs"] >= 300 and s["state"] == "RUNNING"
        assert "DEGRADED" in health_events(d, "slowpoke")


def test_a_restarted_upstream_answering_400_recovers_and_a_failing_one_is_never_healthy(make_daemon):
    """The TypeScript reference server answers a stale session with 400/-32000, not 404 (issue 12, point 6)."""
    d = make_daemon()
    probes = {"intervalSeconds": 0.2, "timeoutMs": 5000}
    with run_upstream("session_server") as up, run_upstream("session_server", "--forgetful") as lost, \
            run_upstream("session_server", "--ping", "error") as broken:
        register(d, "tslike", up.url, healthCheck=probes)
        register(d, "pingerr", broken.url, healthCheck=probes)
        register(d, "lost", lost.url, healthCheck=probes, restartPolicy={"mode": "never"}, state=None)
        up.restart()  # every session is gone; the next request carries a stale id

        async def after_restart() -> None:
            async with Client(d.mcp_url, mode="legacy") as c:
                r = await asyncio.wait_for(c.call_tool("tslike__echo", {"text": "back"}), GUARD)
                assert not r.is_error and text(r) == "back", text(r)

        asyncio.run(after_restart())
        # The client's call went over its own new upstream session; the shared session meets its stale
        # id at its next probe (every 0.2 s), which may come just after the call: wait for it.
        d.wait_for(lambda: d.service("tslike")["backend"]["reinitializations"] == 1,
                   what="the shared session re-initialized once")
        d.wait_for(lambda: (s := d.service("tslike"))["health"] == "HEALTHY" and s["healthDetail"] != "started",
                   what="tslike probed HEALTHY")
        s = d.wait_for(lambda: (s := d.service("pingerr"))["health"] == "DEGRADED" and s, what="pingerr DEGRADED")
        assert "ping is broken here" in s["healthDetail"] and s["state"] == "RUNNING", s
        # Its handshake works, then every request is refused: whatever it reaches, never HEALTHY after that.
        s = d.wait_for(lambda: (s := d.service("lost"))["state"] not in ("STARTING", "RUNNING") and s, what="lost failing")
        assert s["health"] != "HEALTHY", s
        assert "lost the session again" in json.dumps([s, transitions(d, "lost")]), s


def test_probe_reports_unauthorized_when_the_credential_is_revoked(make_daemon):
    token = "s3cret-value-123"
    d = make_daemon()
    secrets = d.state_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "tok").write_text(token)
    with run_upstream("echo_server", "--require-header", f"Authorization: Bearer {token}") as up:
        register(d, "guarded", up.url, origin={"authRef": "file:tok"}, healthCheck=FAST_PROBES)
        d.wait_for(lambda: d.service("guarded")["healthDetail"] != "started", what="a probe")
        (secrets / "tok").write_text("revoked-value-999")  # resolved at call time: picked up now
        s = d.wait_for(lambda: (s := d.service("guarded"))["health"] == "UNAUTHORIZED" and s, what="UNAUTHORIZED")
        assert "401" in s["healthDetail"] and "revoked-value-999" not in json.dumps(s)
        # UNAUTHORIZED is not a crash: the service stays RUNNING.
        assert s["state"] == "RUNNING"
        (secrets / "tok").write_text(token)
        d.wait_for(lambda: d.service("guarded")["health"] == "HEALTHY", what="HEALTHY again")


def test_a_service_refused_by_its_upstream_is_unauthorized(make_daemon):
    d = make_daemon()
    with run_upstream("faulty_server") as up:
        for path in ("401", "403"):
            register(d, f"refused{path}", f"{up.base_url}/{path}/mcp", restartPolicy={"mode": "never"}, state="CRASHED")
            s = d.service(f"refused{path}")
            assert f"HTTP {path}" in s["lastError"], s["lastError"]
            assert s["health"] == "UNAUTHORIZED", (s["health"], s["healthDetail"])
        assert "health:     UNAUTHORIZED" in show(d, "refused403")


# -- 3. circuit breaker -----------------------------------------------------------------
def test_breaker_opens_on_upstream_faults_not_client_mistakes_and_feeds_quarantine(make_daemon):
    d = make_daemon(env={"RUNTIMED_POLICY_BREAKER_THRESHOLD": "2", "RUNTIMED_POLICY_BREAKER_COOLDOWN_MS": "1500"})
    with run_upstream("faulty_server") as bad, run_upstream("echo_server", "--name", "mistakes") as good:
        register(d, "flaky", bad.url, {"retries": 0, "deniedTools": ["badjson"]},
                 restartPolicy={"maxRestarts": 1, "windowSeconds": 300,
                                "backoff": {"initialMs": 100, "maxMs": 100, "multiplier": 1.0}})
        register(d, "mistakes", good.url)

        def breaker(name: str) -> dict[str, Any]:
            return d.service(name)["policy"]["breaker"]

        async def call(c: Client, name: str, args: dict[str, Any] | None = None) -> Any:
            return await asyncio.wait_for(c.call_tool(name, args or {}), GUARD)

        def crashed_by_breaker() -> bool:
            return any(t == "CRASHED" and "circuit breaker tripped 3 times" in r for _, t, r in transitions(d, "flaky"))

        def quarantined() -> bool:
            return d.service("flaky")["state"] == "QUARANTINED"

        async def trip_three_times(c: Client, reported: Any) -> None:
            """Two faults open it; each half-open trial that faults opens it again, until the third
            trip is reported to the supervisor (``reported()``; its restart then resets the breaker)."""
            for _ in range(2):
                r = await call(c, "flaky__http500")
                assert r.is_error and "HTTP 500" in text(r), text(r)
            while not reported():
                await poll(lambda: reported() or breaker("flaky")["state"] == "half_open",
                           "half-open after the cool-down")
                if reported():
                    break
                r = await call(c, "flaky__http500")
                assert r.is_error and "HTTP 500" in text(r), text(r)

        async def scenario() -> None:
            async with Client(d.mcp_url, mode="legacy") as c:
                # Client mistakes and tool errors are not upstream faults.
                for _ in range(4):
                    r = await call(c, "mistakes__fail", {"message": "nope"})
                    assert r.is_error and "fail" in text(r), text(r)
                    r = await call(c, "mistakes__add", {"a": "not a number", "b": 1})
                    assert r.is_error
                    try:  # refused by policy deniedTools (the gateway may not even know the name)
                        r = await call(c, "flaky__badjson")
                        assert r.is_error and "deniedTools" in text(r), text(r)
                    except MCPError as e:
                        assert "Unknown tool" in str(e), e
                assert breaker("mistakes")["state"] == "closed" and breaker("mistakes")["consecutiveFaults"] == 0
                assert breaker("flaky")["state"] == "closed" and breaker("flaky")["consecutiveFaults"] == 0

                # Upstream faults open it; then calls fail fast, naming the policy. (The cool-down,
                # 1.5 s, only has to outlast the one call made right after the trip.)
                for _ in range(2):
                    r = await call(c, "flaky__http500")
                    assert r.is_error and "HTTP 500" in text(r)
                fast = await call(c, "flaky__ok")
                assert fast.is_error and "policy breaker" in text(fast), text(fast)
                assert "2 upstream faults in a row" in text(fast) and "HTTP 500" in text(fast), text(fast)
                assert meta(fast).get("policy") == "breaker" and "retryAfterSeconds" in meta(fast)
                b = breaker("flaky")
                assert b["state"] in ("open", "half_open") and b["trips"] == 1 and "500" in b["lastFault"], b
                assert b["threshold"] == 2 and b["cooldownMs"] == 1500
                out = await asyncio.to_thread(show, d, "flaky")
                # Open, or half-open if the cool-down ended meanwhile: never closed without a call.
                assert re.search(r"breaker:\s+(open|half_open)", out), out
                # After the cool-down one trial call passes; its success closes the breaker.
                await poll(lambda: breaker("flaky")["state"] == "half_open", "half-open")
                r = await call(c, "flaky__ok")
                assert not r.is_error and text(r) == "ok"
                assert breaker("flaky")["state"] == "closed"

                # Three trips within the restart window: reported as a crash, restart policy applies.
                await trip_three_times(c, crashed_by_breaker)
                await poll(crashed_by_breaker, "CRASHED by the breaker")
                await poll(lambda: d.service("flaky")["state"] == "RUNNING", "restarted by the restart policy")
                # The restarted service gets a fresh chance.
                r = await call(c, "flaky__ok")
                assert not r.is_error and text(r) == "ok", text(r)
                assert breaker("flaky")["state"] == "closed"
                # It happens again: beyond maxRestarts, quarantined.
                await trip_three_times(c, quarantined)
                await poll(quarantined, "QUARANTINED")

        asyncio.run(scenario())
        q = d.service("flaky")
        assert "circuit breaker tripped 3 times" in q["quarantineReason"], q["quarantineReason"]
        assert d.service("mistakes")["state"] == "RUNNING"
        logs = d.api("GET", "/api/services/flaky/logs").json()["lines"]
        assert any("circuit breaker opened" in line["message"] for line in logs)


# -- 4. one upstream session ------------------------------------------------------------
def test_one_upstream_session_per_client_for_1000_calls_and_a_reinit_after_restart(make_daemon):
    """A session-era client gets one upstream session of its own for all its calls (plus the
    service's shared session, made at start); a restarted upstream forgets it, and the next call
    re-initializes that same client session instead of failing."""
    d = make_daemon()
    with run_upstream("echo_server", "--name", "pooled", "--session-only") as up:
        register(d, "pooled", up.url)

        async def many_then_restart() -> None:
            async with Client(d.mcp_url, mode="legacy") as c:
                for batch in range(50):
                    got = await asyncio.wait_for(asyncio.gather(
                        *(c.call_tool("pooled__add", {"a": batch, "b": i}) for i in range(20))), GUARD)
                    assert [text(r) for r in got] == [str(batch + i) for i in range(20)]
                seen = json.loads(text(await c.call_tool("pooled__stats", {})))
                assert seen["initialize"] == 2, seen  # the service's shared session + this client's own
                assert seen["methods"].get("tools/call", 0) == 1001
                backend = d.service("pooled")["backend"]
                assert backend["era"] == "session" and backend["handshakes"] == 1, backend
                assert backend["clientSessions"]["open"] == 1 and backend["clientSessions"]["opened"] == 1, backend

                up.restart()  # the upstream forgets every session: the next request gets 404
                r = await asyncio.wait_for(c.call_tool("pooled__echo", {"text": "still here"}), GUARD)
                assert not r.is_error and text(r) == "still here", text(r)
                backend = d.service("pooled")["backend"]
                assert backend["clientSessions"]["opened"] == 1, backend  # re-initialized, not replaced

        asyncio.run(many_then_restart())
        assert d.service("pooled")["state"] == "RUNNING"


# -- 5. interface cache -------------------------------------------------------------------
class BlackHole:
    """A real loopback listener that accepts connections and never answers (a cold upstream)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)

    def close(self) -> None:
        self.sock.close()


def test_interface_snapshot_serves_lists_after_a_daemon_restart(make_daemon):
    d = make_daemon()
    with run_upstream("echo_server", "--name", "cached") as up:
        # mode never: the test decides when it starts again (no restart loop to race with).
        register(d, "cached", up.url, restartPolicy={"mode": "never"})
        revision = d.service("cached")["interfaceRevision"]
        assert revision and revision.startswith("rev_")
        tools_before = {t["name"] for t in d.api("GET", "/api/services/cached/interface").json()["tools"]}
        d.stop()
        up.stop()
        hole = BlackHole(up.port)  # the upstream accepts connections but does not answer yet
        try:
            d.start()
            starting = d.service("cached")
            assert starting["state"] == "STARTING", starting["state"]
            assert starting["interfaceRevision"] == revision
            changed = asyncio.Event()

            async def on_message(msg: Any) -> None:
                if isinstance(msg, types.ToolListChangedNotification):
                    changed.set()

            async def scenario() -> tuple[set[str], set[str]]:
                async with Client(d.mcp_url, mode="legacy", cache=None, message_handler=on_message) as c:
                    names = {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
                    r = await asyncio.wait_for(c.call_tool("cached__echo", {"text": "x"}), GUARD)
                    assert r.is_error and "not running" in text(r) and "STARTING" in text(r), text(r)
                    assert d.service("cached")["state"] == "STARTING"  # still not reached: from the snapshot
                    await asyncio.sleep(0.2)  # let the SDK open its GET stream (it does so in the background)
                    hole.close()  # the upstream fails: the start fails, the service no longer serves
                    await poll(lambda: d.service("cached")["state"] == "CRASHED", "CRASHED")
                    await asyncio.wait_for(changed.wait(), GUARD)  # clients are told the list changed
                    after = {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
                    return names, after

            names, after = asyncio.run(scenario())
            assert {f"cached__{t}" for t in tools_before} <= names
            assert not any(n.startswith("cached__") for n in after), after
        finally:
            hole.close()
        up.start()  # the upstream is back on the same port
        r = d.api("POST", "/api/services/cached/start")
        assert r.status_code == 200, r.text
        back = d.wait_state("cached", "RUNNING", timeout=GUARD)
        assert back["interfaceRevision"] == revision  # same interface, same revision
        # The same interface after a restart records no change.
        assert not [e for e in events(d, "cached", "interface") if e.get("changed")]


def test_list_changed_refreshes_the_interface_and_reaches_clients(make_daemon):
    d = make_daemon()
    with run_upstream("echo_server", "--name", "growing") as up:
        register(d, "growing", up.url)
        before = d.service("growing")["interfaceRevision"]
        changed = asyncio.Event()

        async def on_message(msg: Any) -> None:
            if isinstance(msg, types.ToolListChangedNotification):
                changed.set()

        async def scenario() -> None:
            async with Client(d.mcp_url, mode="legacy", cache=None, message_handler=on_message) as c:
                await asyncio.sleep(0.2)  # let the SDK open its GET stream (it does so in the background)
                r = await asyncio.wait_for(c.call_tool("growing__add_tool", {"name": "fresh"}), GUARD)
                assert text(r) == "added fresh"
                await asyncio.wait_for(changed.wait(), GUARD)
                await poll(lambda: d.service("growing")["interfaceRevision"] != before, "a new revision")
                names = {t.name for t in (await c.list_tools()).tools}
                assert "growing__fresh" in names
                r = await asyncio.wait_for(c.call_tool("growing__fresh", {"text": "hi"}), GUARD)
                assert text(r) == "fresh: hi"

        asyncio.run(scenario())
        # The upstream announces the change on each of its sessions (the service's shared one and
        # the client's own): the first refresh finds the new tool, a later one finds nothing new.
        ev = [e for e in events(d, "growing", "interface") if e.get("reason") == "tools list_changed" and e["diff"]]
        assert ev, events(d, "growing", "interface")
        assert ev[0]["diff"] == {"tools": {"added": ["fresh"], "removed": [], "changed": []}}
        s = d.service("growing")
        assert s["lastDiff"]["tools"]["added"] == ["fresh"]
        assert s["interfaceRevision"] in show(d, "growing")


# -- 6. authRef ----------------------------------------------------------------------------
def test_authref_env_file_and_header_env_without_leaking_the_secret(make_daemon):
    secret = "s3cret-value-123"
    d = make_daemon(env={"E2E_BEARER": secret, "E2E_API_KEY": secret})
    (d.state_dir / "secrets").mkdir(parents=True, exist_ok=True)
    (d.state_dir / "secrets" / "tok").write_text(secret + "\n")
    with run_upstream("echo_server", "--name", "bearer", "--require-header", f"Authorization: Bearer {secret}") as bearer, \
            run_upstream("echo_server", "--name", "keyed", "--require-header", f"X-Api-Key: {secret}") as keyed:
        register(d, "by-env", bearer.url, origin={"authRef": "env:E2E_BEARER"})
        register(d, "by-file", bearer.url + "?via=file", origin={"authRef": "file:tok"})
        register(d, "by-header", keyed.url, origin={"authRef": "header_env:X-Api-Key:E2E_API_KEY"})

        async def scenario() -> None:
            async with Client(d.mcp_url, mode="legacy") as c:
                for svc in ("by-env", "by-file", "by-header"):
                    r = await asyncio.wait_for(c.call_tool(f"{svc}__echo", {"text": f"hi {svc}"}), GUARD)
                    assert not r.is_error and text(r) == f"hi {svc}", (svc, text(r))
                # A rotated (wrong) file secret is picked up at call time and refused by the upstream,
                # and the error names the reference, not the value.
                (d.state_dir / "secrets" / "tok").write_text("wr0ng-value-456")
                r = await asyncio.wait_for(c.call_tool("by-file__echo", {"text": "x"}), GUARD)
                assert r.is_error and "401" in text(r), text(r)
                assert "wr0ng-value-456" not in text(r)

        asyncio.run(scenario())
        places = {"daemon log": d.log(), "events": d.api("GET", "/api/events", params={"limit": 2000}).text}
        for svc in ("by-env", "by-file", "by-header"):
            places[f"{svc} api"] = d.api("GET", f"/api/services/{svc}").text
            places[f"{svc} logs"] = d.api("GET", f"/api/services/{svc}/logs").text
        places["runtimectl show"] = show(d, "by-file")  # the one whose call was refused
        places["status page"] = d.api("GET", "/status").text
        for where, content in places.items():
            assert secret not in content, where
            assert "wr0ng-value-456" not in content, where
        assert "env:E2E_BEARER" in places["by-env api"]  # the reference is shown, not the value


# -- 7. SSRF allowlist ---------------------------------------------------------------------
def test_remote_allowed_hosts_refuse_loopback_at_registration_and_at_connect(make_daemon):
    with run_upstream("echo_server", "--name", "inside") as up:
        strict = make_daemon("strict", env={"RUNTIMED_REMOTE_ALLOWED_HOSTS": "example.com"})
        r = strict.api("POST", "/api/services", json=manifest("inside", up.url))
        assert r.status_code == 422, r.text
        msg = r.json()["error"]
        assert "127.0.0.1" in msg and "RUNTIMED_REMOTE_ALLOWED_HOSTS" in msg and "example.com" in msg, msg
        assert strict.api("GET", "/api/services").json()["services"] == []

        # Per service: origin.allowedHosts narrows it further.
        open_ = make_daemon("open")
        r = open_.api("POST", "/api/services", json=manifest("inside", up.url, origin={"allowedHosts": ["example.com"]}))
        assert r.status_code == 422 and "origin.allowedHosts" in r.json()["error"], r.text
        register(open_, "inside", up.url, origin={"allowedHosts": ["127.0.0.1"]})

        # Checked again at connect: the same registry under a daemon that now forbids loopback.
        open_.stop()
        again = DaemonProc(open_.state_dir, env={"RUNTIMED_REMOTE_ALLOWED_HOSTS": "example.com"})
        with again:
            s = again.wait_for(lambda: (s := again.service("inside"))["state"] in ("CRASHED", "QUARANTINED") and s,
                               what="the start to be refused")
            assert "RUNTIMED_REMOTE_ALLOWED_HOSTS" in s["lastError"], s["lastError"]


# -- 8. old SSE transport -------------------------------------------------------------------
def test_legacy_sse_upstream_through_mcp(make_daemon):
    d = make_daemon()
    with run_upstream("legacy_sse_server", "--name", "old") as up:
        register(d, "old", up.sse_url, origin={"transport": "sse"})
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        async def scenario() -> None:
            async with Client(d.mcp_url, mode="legacy") as c:
                names = {t.name for t in (await c.list_tools()).tools}
                assert {"old__echo", "old__add", "old__slow"} <= names
                got = await asyncio.wait_for(asyncio.gather(
                    *(c.call_tool("old__add", {"a": i, "b": 2}) for i in range(20))), GUARD)
                assert [text(r) for r in got] == [str(i + 2) for i in range(20)]
                r = await asyncio.wait_for(
                    c.call_tool("old__slow", {"seconds": 0.2, "steps": 2}, progress_callback=on_progress), GUARD)
                assert text(r) == "slept 0.2"

        asyncio.run(scenario())
        assert progress == [1, 2]
        backend = d.service("old")["backend"]
        assert backend["transport"] == "sse" and backend["handshakes"] == 1, backend

        up.restart()  # the event streams drop: the next call on each session connects and handshakes again

        async def after_restart() -> None:
            async with Client(d.mcp_url, mode="legacy") as c:  # a new client: a new session of its own
                r = await asyncio.wait_for(c.call_tool("old__echo", {"text": "back"}), GUARD)
                assert not r.is_error and text(r) == "back", text(r)
            async with Client(d.mcp_url) as c:  # a stateless-era client: the service's shared session
                r = await asyncio.wait_for(c.call_tool("old__echo", {"text": "shared"}), GUARD)
                assert not r.is_error and text(r) == "shared", text(r)

        asyncio.run(after_restart())
        backend = d.service("old")["backend"]
        assert backend["clientSessions"]["opened"] == 2, backend
        assert backend["handshakes"] == 2 and d.service("old")["state"] == "RUNNING", backend


# -- 9. runtimectl show -----------------------------------------------------------------------
def test_runtimectl_show_displays_policies_health_breaker_and_revision(make_daemon):
    d = make_daemon()
    with run_upstream("echo_server", "--name", "shown") as up:
        register(d, "shown", up.url, {"timeoutMs": 1500, "maxConcurrency": 3, "deniedTools": ["add_tool"],
                                      "rateLimit": {"calls": 100, "per": "minute"}},
                 healthCheck=FAST_PROBES)
        d.wait_for(lambda: d.service("shown")["healthDetail"] != "started", what="a probe")
        s = d.service("shown")
        out = show(d, "shown")
        assert f"shown ({s['id']})" in out
        assert "state:      RUNNING" in out and "health:     HEALTHY" in out
        assert "timeoutMs: 1500" in out and "maxConcurrency: 3" in out and 'deniedTools: ["add_tool"]' in out
        assert '"calls": 100' in out and '"per": "minute"' in out
        assert "breaker:    closed" in out
        assert f"interface:  {s['interfaceRevision']}" in out
        assert "add_tool  [hidden: deniedTools]" in out or "add_tool [hidden: deniedTools]" in out


# -- regression, secrets: authRef file: symlink loop (found by review; fails with its fix reverted) ---

def test_auth_ref_file_symlink_loop_is_a_clear_start_failure(daemon: DaemonProc) -> None:
    _loop(daemon.state_dir / "secrets", "loop")
    with run_upstream("echo_server", "--name", "up") as up:
        m = remote_manifest("sec", up.url, restartPolicy={"mode": "never"})
        m["spec"]["origin"]["authRef"] = "file:loop"
        r = daemon.api("POST", "/api/services", json=m)
        assert r.status_code in (200, 201), r.text
        svc = daemon.wait_state("sec", "CRASHED")
        err = svc["lastError"] or ""
        assert "file:loop" in err and "symlink loop" in err, err
        assert "internal error" not in err, err  # was: "internal error RuntimeError: Symlink loop from ..."
        assert "Traceback" not in daemon.log()
    # The daemon keeps serving: another service (another upstream) starts.
    with run_upstream("echo_server", "--name", "up2") as up2:
        r = daemon.api("POST", "/api/services", json=remote_manifest("ok", up2.url))
        assert r.status_code in (200, 201), r.text
        daemon.wait_state("ok", "RUNNING")
    assert daemon.service("sec")["state"] == "CRASHED"


async def test_auth_ref_file_turned_into_symlink_loop_is_is_error(daemon: DaemonProc) -> None:
    """The secret is read at every request: a file replaced by a loop makes the call isError, no crash."""
    from mcp import Client

    secrets = daemon.state_dir / "secrets"
    secrets.mkdir()
    (secrets / "tok").write_text("not-a-real-secret-0123456789\n")
    with run_upstream("echo_server", "--name", "up") as up:
        m = remote_manifest("sec", up.url, restartPolicy={"mode": "never"})
        m["spec"]["origin"]["authRef"] = "file:tok"
        r = daemon.api("POST", "/api/services", json=m)
        assert r.status_code in (200, 201), r.text
        daemon.wait_state("sec", "RUNNING")
        (secrets / "tok").unlink()
        os.symlink(secrets / "tok", secrets / "tok")
        async with Client(daemon.mcp_url, mode="legacy") as c:
            res = await c.call_tool("sec__echo", {"text": "hi"})
            assert res.is_error, res
            text = " ".join(getattr(b, "text", "") for b in res.content)
            assert "file:tok" in text and "symlink loop" in text, text
            assert "internal error" not in text.lower(), text
            # The daemon still answers on the same session.
            names = {t.name for t in (await c.list_tools()).tools}
            assert "runtime__list_services" in names
    assert "Traceback" not in daemon.log()
