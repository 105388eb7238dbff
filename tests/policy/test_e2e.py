"""Policies end to end: a real daemon, real upstream servers, calls through /mcp.

The upstreams are shaped like the servers users put behind the gateway
(tests/upstreams/pol_*.py): a bearer-token analytics connector with one
action-routed tool, a 10-calls-a-day export API, and a read-only revenue
operations connector with long jobs and few concurrent slots. Each upstream
reports on ``GET /stats`` what actually reached it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from mcp import Client

from tests.support.daemon import DaemonProc
from tests.support.upstream import run_upstream


def register(d: DaemonProc, name: str, url: str, policy: dict[str, Any], **origin: Any) -> dict[str, Any]:
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
                "spec": {"origin": {"type": "remote_mcp", "url": url, **origin}, "policy": policy}}
    r = d.api("POST", "/api/services", json=manifest)
    assert r.status_code in (200, 201), r.text
    return d.wait_state(name, "RUNNING")


def stats(up: Any) -> dict[str, Any]:
    return httpx.get(up.base_url + "/stats", timeout=10).json()


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def runtimed_meta(result: Any) -> dict[str, Any]:
    return ((result.meta or {}).get("runtimed") or {}) if isinstance(result.meta, dict) else {}


async def refusal(client: Client, name: str, args: dict[str, Any]) -> str:
    """The text of a call to a policy-hidden tool: an isError result naming the policy."""
    r = await client.call_tool(name, args)
    assert r.is_error, text(r)
    return text(r)


async def eventually(predicate: Any, what: str, tries: int = 400) -> None:
    """Poll a blocking predicate off the event loop (the client's calls keep running)."""
    for _ in range(tries):
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


# -- the export API: rate limit + cache ----------------------------------------
def test_export_api_ten_a_day_with_cache_survives_restart(make_daemon):
    with run_upstream("pol_export") as up:
        d = make_daemon()
        register(d, "export", up.url, {
            "rateLimit": {"calls": 10, "per": "day"},
            "cache": {"ttlSeconds": 3600, "tools": ["export_metrics"]},
        })

        async def session_one() -> None:
            async with Client(d.mcp_url) as c:
                assert "export__export_metrics" in await tool_names(c)
                metrics = ["signups", "visits", "trials", "churn", "mrr"]
                for i in range(10):
                    r = await c.call_tool("export__export_metrics", {"metric": metrics[i % 5], "days": 1 + i // 5})
                    assert not r.is_error, text(r)
                    assert json.loads(text(r))["rows"]
                # The 11th question repeats an earlier one: answered from the cache.
                again = await c.call_tool("export__export_metrics", {"days": 1, "metric": "visits"})
                assert not again.is_error and runtimed_meta(again)["cache"] == "hit"
                # A new question: refused clearly, saying when calls resume.
                new = await c.call_tool("export__export_metrics", {"metric": "revenue", "days": 3})
                assert new.is_error
                assert "rateLimit" in text(new) and "calls resume in" in text(new)
                assert runtimed_meta(new)["policy"] == "rateLimit" and runtimed_meta(new)["resumesAt"] in text(new)

        asyncio.run(session_one())
        seen = stats(up)
        assert seen["calls"] == 10 and seen["refused_over_quota"] == 0
        detail = d.service("export")
        assert detail["policy"]["rateLimit"]["remaining"] == 0
        assert detail["policy"]["cache"]["hits"] == 1

        # The count survives a daemon restart (same state dir).
        d.stop()
        d.start()
        d.wait_state("export", "RUNNING")

        async def session_two() -> None:
            async with Client(d.mcp_url) as c:
                r = await c.call_tool("export__export_metrics", {"metric": "pipeline", "days": 2})
                assert r.is_error and runtimed_meta(r)["policy"] == "rateLimit"

        asyncio.run(session_two())
        assert stats(up)["calls"] == 10


# -- the analytics connector: authRef + allow/deny --------------------------------
def test_analytics_connector_bearer_and_tool_lists(make_daemon):
    token = "analytics-secret-token-7f3a9c"
    with run_upstream("pol_analytics", "--token", token, "--disable", "export_raw") as up:
        d = make_daemon(env={"ANALYTICS_TOKEN": token})
        register(d, "analytics", up.url, {"allowedTools": ["insights", "annotate", "delete_*"],
                                          "deniedTools": ["delete_*"]}, authRef="env:ANALYTICS_TOKEN")

        async def run() -> None:
            async with Client(d.mcp_url) as c:
                names = await tool_names(c)
                assert "analytics__insights" in names and "analytics__annotate" in names
                assert "analytics__delete_dashboard" not in names  # denied by glob: hidden
                assert "analytics__export_raw" not in names  # toggled off in the connector itself
                r = await c.call_tool("analytics__insights", {"action": "top_pages", "days": 30, "limit": 2})
                assert not r.is_error and len(json.loads(text(r))["pages"]) == 2
                r = await c.call_tool("analytics__insights", {"action": "summary"})
                assert json.loads(text(r))["visitors"] == 412 * 7
                refused = await refusal(c, "analytics__delete_dashboard", {"dashboard_id": "d1"})
                assert "deniedTools" in refused

        asyncio.run(run())
        seen = stats(up)
        assert seen["calls"] == {"insights:top_pages": 1, "insights:summary": 1}
        assert "delete_dashboard" not in seen["calls"]
        assert seen["authorized"] > 0
        # The secret never shows in the API output.
        assert token not in d.api("GET", "/api/services/analytics").text

        # Narrow the connector to read-only: annotate disappears and is refused.
        register(d, "analytics", up.url, {"readOnly": True}, authRef="env:ANALYTICS_TOKEN")

        async def read_only() -> None:
            async with Client(d.mcp_url) as c:
                names = await tool_names(c)
                assert "analytics__insights" in names and "analytics__annotate" not in names
                r = await refusal(c, "analytics__annotate", {"date": "2026-11-01", "note": "launch"})
                assert "readOnly" in r

        asyncio.run(read_only())
        assert "annotate" not in stats(up)["calls"]


# -- the revops connector: readOnly, long timeout, progress, queue -----------------
def test_revops_forecasts_queued_with_progress(make_daemon):
    with run_upstream("pol_revops", "--job-seconds", "1", "--max-jobs", "2", "--steps", "4") as up:
        d = make_daemon()
        register(d, "revops", up.url, {"readOnly": True, "timeoutMs": 120_000, "maxConcurrency": 2,
                                       "maxQueue": 10, "queueTimeoutMs": 120_000})

        async def run() -> None:
            async with Client(d.mcp_url) as c:
                names = await tool_names(c)
                assert {"revops__forecast", "revops__pipeline"} <= names
                assert "revops__update_opportunity" not in names
                progress: dict[int, list[float]] = {i: [] for i in range(5)}

                def on_progress(i: int) -> Any:
                    async def cb(p: float, total: float | None, message: str | None) -> None:
                        progress[i].append(p)
                    return cb

                calls = [c.call_tool("revops__forecast", {"quarter": f"Q{i % 4 + 1}"}, progress_callback=on_progress(i))
                         for i in range(5)]
                results = await asyncio.gather(*calls)
                for r in results:
                    assert not r.is_error, text(r)
                    assert json.loads(text(r))["commit"] == 1_250_000
                for i in range(5):
                    assert progress[i] == [1, 2, 3, 4], progress
                upd = await refusal(c, "revops__update_opportunity", {"opportunity_id": "o1", "stage": "won"})
                assert "readOnly" in upd

        asyncio.run(run())
        seen = stats(up)
        assert seen["finished"] == 5 and seen["refused"] == 0  # queued by the gateway, never refused upstream
        assert seen["max_running"] <= 2 and seen["updates"] == 0


def test_revops_queue_full_is_busy_and_timeout_is_clear(make_daemon):
    with run_upstream("pol_revops", "--job-seconds", "3", "--max-jobs", "2", "--steps", "3") as up, \
            run_upstream("echo_server", "--name", "other") as other:
        d = make_daemon()
        register(d, "revops", up.url, {"maxConcurrency": 1, "maxQueue": 1, "timeoutMs": 60_000})
        register(d, "other", other.url, {})
        register(d, "hasty", up.url.replace("/mcp", "/mcp?x=1"), {"timeoutMs": 300})

        async def run() -> None:
            async with Client(d.mcp_url) as c:
                first = asyncio.create_task(c.call_tool("revops__forecast", {"quarter": "Q1"}))
                await eventually(lambda: stats(up)["running"] == 1, "first job running")
                second = asyncio.create_task(c.call_tool("revops__forecast", {"quarter": "Q2"}))
                await eventually(lambda: d.service("revops")["policy"]["queued"] == 1, "second call queued")
                busy = await c.call_tool("revops__forecast", {"quarter": "Q3"})
                assert busy.is_error and "busy" in text(busy) and runtimed_meta(busy)["policy"] == "maxConcurrency"
                # Another service is not delayed by the busy one.
                echo = await c.call_tool("other__echo", {"text": "still here"})
                assert text(echo) == "still here"
                # A short timeout on a long job: a clear timeout result, the upstream job cancelled.
                hasty = await c.call_tool("hasty__forecast", {"quarter": "Q4"})
                assert hasty.is_error and "timed out after 300 ms" in text(hasty)
                for r in await asyncio.gather(first, second):
                    assert not r.is_error, text(r)

        asyncio.run(run())
        d.wait_for(lambda: stats(up)["cancelled"] >= 1, what="the timed-out job to be cancelled upstream")
        detail = d.service("revops")["policy"]
        assert detail["inFlight"] == 0 and detail["queued"] == 0


# -- faults: breaker through a real daemon, repeated trips feed the restart policy --
def test_breaker_trips_feed_restart_policy_and_quarantine(make_daemon):
    with run_upstream("faulty_server") as faulty, run_upstream("echo_server", "--name", "healthy") as healthy:
        d = make_daemon(env={"RUNTIMED_POLICY_BREAKER_THRESHOLD": "2", "RUNTIMED_POLICY_BREAKER_COOLDOWN_MS": "200"})
        manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "faulty"},
                    "spec": {"origin": {"type": "remote_mcp", "url": faulty.url}, "policy": {"retries": 0},
                             "restartPolicy": {"maxRestarts": 0, "windowSeconds": 600}}}
        assert d.api("POST", "/api/services", json=manifest).status_code in (200, 201)
        d.wait_state("faulty", "RUNNING")
        register(d, "healthy", healthy.url, {})

        async def run() -> None:
            async with Client(d.mcp_url) as c:
                # Two HTTP 500s in a row (threshold 2) open the breaker.
                for _ in range(2):
                    r = await c.call_tool("faulty__http500", {})
                    assert r.is_error and "failed" in text(r)
                br = (await asyncio.to_thread(d.service, "faulty"))["policy"]["breaker"]
                assert br["state"] == "open" and br["trips"] == 1
                fast = await c.call_tool("faulty__http500", {})
                assert fast.is_error and runtimed_meta(fast)["policy"] == "breaker"
                # The healthy service is unaffected meanwhile.
                assert text(await c.call_tool("healthy__echo", {"text": "ok"})) == "ok"
                # Two more trips (each half-open probe fails) within the window: reported as a crash.
                for _trip in (2, 3):
                    await eventually(lambda: d.service("faulty")["policy"]["breaker"]["state"] == "half_open",
                                     "cool-down to pass")
                    r = await c.call_tool("faulty__http500", {})
                    assert r.is_error and runtimed_meta(r).get("outcome") == "upstream_fault"

        asyncio.run(run())
        svc = d.wait_state("faulty", "QUARANTINED")
        assert "circuit breaker tripped 3 times" in (svc["quarantineReason"] or "") + (svc["lastError"] or "")
        assert d.service("healthy")["state"] == "RUNNING"
