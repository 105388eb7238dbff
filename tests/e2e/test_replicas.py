"""Three real replicas on one real Redis behind real HAProxy (issue 15).

Everything is the real program: ``redis-server`` (AOF, fsync always), ``haproxy`` with
``deploy/haproxy.cfg``, three ``runtimed --store redis://… --replica rN`` processes, a real upstream
MCP server, and the official SDK client. Covered: a change made on one replica holds on every
replica (registry, stop, start); a session-era session outlives the replica that created it
(``kill -9``); under load through the balancer a ``kill -9`` costs only the calls in flight on that
replica, and nothing hangs; a rate limit and a result cache are cluster-wide; with Redis stopped
calls go on and changes are refused (503), and once it is back changes work and the replicas
converge; any replica's API and page show the calls served by the others.

Waits are bounded (``BOUND``): a bound, never a timing claim (the bench measures convergence).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.support.cluster import HAPROXY_CFG, META, HAProxy, S, address_of, answer_of, stateless_call
from tests.support.daemon import DaemonProc
from tests.support.foundation import closed_port, register_remote, run_daemon_expect_exit
from tests.support.mcpclient import GUARD, call_text, sampling, text_of
from tests.support.redisserver import RedisServer
from tests.support.thirdparty import everything_stdio_argv, run_everything
from tests.support.upstream import Upstream, run_upstream

BOUND = 20.0  # seconds any one convergence may take before the test fails (a bound, not a claim)


def until(pred: Callable[[], Any], what: str, bound: float = BOUND) -> Any:
    deadline = time.monotonic() + bound
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (httpx.HTTPError, KeyError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.05)
    raise AssertionError(f"never happened within {bound} s: {what} (last: {last!r})")


def state_of(d: DaemonProc, name: str) -> str | None:
    r = d.api("GET", f"/api/services/{name}")
    return r.json()["state"] if r.status_code == 200 else None


class Cluster:
    def __init__(self, redis: RedisServer, replicas: list[DaemonProc], lb: HAProxy, upstream: Upstream) -> None:
        self.redis, self.replicas, self.lb, self.upstream = redis, replicas, lb, upstream

    def everywhere(self, name: str, state: str, among: list[DaemonProc] | None = None, bound: float = BOUND) -> None:
        for d in among or self.replicas:
            until(lambda d=d: state_of(d, name) == state, f"{name} {state} on {d.url}", bound)


def start_replica(base: Path, i: int, store: str) -> DaemonProc:
    return DaemonProc(base / f"r{i}", args=["--store", store, "--replica", f"r{i}"]).start()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream("echo_server", "--name", "a") as up:
        yield up


@pytest.fixture
def cluster(tmp_path: Path, upstream: Upstream) -> Iterator[Cluster]:
    with RedisServer(tmp_path / "redis") as redis:
        replicas: list[DaemonProc] = []
        lb: HAProxy | None = None
        try:
            for i in (1, 2, 3):
                replicas.append(start_replica(tmp_path, i, redis.url))
            lb = HAProxy(HAPROXY_CFG, [address_of(d.url) for d in replicas], tmp_path / "lb").start()
            yield Cluster(redis, replicas, lb, upstream)
        finally:
            if lb is not None:
                lb.stop()
            for d in replicas:
                d.stop()


def test_a_store_that_cannot_be_used_stops_the_daemon_with_a_message(tmp_path: Path) -> None:
    port = closed_port()
    r = run_daemon_expect_exit(tmp_path / "s1", "--store", f"redis://:hunter2secret@127.0.0.1:{port}/0")
    assert r.returncode == 1, r.stderr
    assert f"the shared store redis://127.0.0.1:{port}/0 cannot be reached" in r.stderr, r.stderr
    assert "hunter2secret" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_daemon_expect_exit(tmp_path / "s2", "--store", "http://127.0.0.1:6379")
    assert r.returncode == 2 and "must be 'embedded' or a Redis URL" in r.stderr, r.stderr
    r = run_daemon_expect_exit(tmp_path / "s3", "--replica", "no spaces")
    assert r.returncode == 2 and "replica" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_change_on_one_replica_holds_on_every_replica(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    register_remote(a, "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    for d in (b, c):  # registered through A, called through B and C directly
        r = stateless_call(None, d.url + "/mcp", "a__add", {"a": 40, "b": 2})
        assert answer_of(r) == 42, r.text
    for d in (b, c):  # the events of the whole cluster on every replica, each saying where it happened
        until(lambda d=d: any(e["type"] == "service.added" and e.get("replica") == "r1"
                              for e in d.api("GET", "/api/events").json()["events"]), f"r1's event on {d.url}")
    r = b.api("POST", "/api/services/a/stop")
    assert r.status_code == 200, r.text
    cluster.everywhere("a", "STOPPED")
    assert "r2" in a.api("GET", "/api/services/a").json()["stateReason"]  # says where it was stopped
    r = c.api("POST", "/api/services/a/start")
    assert r.status_code == 200, r.text
    cluster.everywhere("a", "RUNNING")
    r = a.api("DELETE", "/api/services/a")
    assert r.status_code == 200, r.text
    for d in (b, c):
        until(lambda d=d: d.api("GET", "/api/services/a").status_code == 404, f"a removed on {d.url}")


def test_a_replica_started_later_gets_the_registry_and_the_stops(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.replicas[0]
    register_remote(a, "a", cluster.upstream.url)
    register_remote(a, "b", cluster.upstream.url + "?b")
    cluster.everywhere("b", "RUNNING")
    assert a.api("POST", "/api/services/b/stop").status_code == 200
    late = start_replica(tmp_path, 4, cluster.redis.url)
    try:
        until(lambda: state_of(late, "a") == "RUNNING", "a RUNNING on the late replica")
        b = late.api("GET", "/api/services/b").json()  # the stop holds for a replica that was not there
        assert b["state"] == "REGISTERED" and "stopped" in b["stateReason"], b
        names = [r["replica"] for r in late.api("GET", "/api/status").json()["replicas"]]
        until(lambda: {"r1", "r2", "r3", "r4"} <= {r["replica"] for r in
                                                 late.api("GET", "/api/status").json()["replicas"]},
              f"every replica announced (saw {names})")
    finally:
        late.stop()


async def test_a_session_outlives_the_replica_that_created_it(cluster: Cluster) -> None:
    register_remote(cluster.replicas[0], "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    async with Client(cluster.lb.mcp_url, mode="legacy", cache=None) as client:
        r = await asyncio.wait_for(client.call_tool("a__echo", {"text": "before"}), GUARD)
        assert text_of(r) == "before"
        holders = {d.url: d.api("GET", "/api/sessions").json()["sessions"] for d in cluster.replicas}
        created = [d for d in cluster.replicas if any(not s["adopted"] for s in holders[d.url])]
        assert len(created) == 1, holders
        ref = next(s["ref"] for s in holders[created[0].url] if not s["adopted"])
        created[0].kill()  # kill -9
        others = [d for d in cluster.replicas if d is not created[0]]
        for i in range(8):  # every surviving replica serves it: no 404, no new session
            r = await asyncio.wait_for(client.call_tool("a__echo", {"text": f"after {i}"}), GUARD)
            assert not r.is_error and text_of(r) == f"after {i}"
        for d in others:
            sessions = d.api("GET", "/api/sessions").json()["sessions"]
            assert [s["ref"] for s in sessions] == [ref], sessions  # the same session, adopted
            assert all(s["adopted"] for s in sessions)


class Load:
    """``n`` stateless-era workers (raw POSTs) and ``n`` session-era ones (SDK clients, legacy mode)
    calling ``a__add`` through the balancer, each call recorded: (start, end, outcome)."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.calls: list[tuple[float, float, str]] = []
        self.stop = asyncio.Event()

    def count(self) -> int:
        return len(self.calls)

    async def _record(self, coro: Any, expect: int) -> None:
        started = time.monotonic()
        try:
            got = await asyncio.wait_for(coro, BOUND)
            outcome = "ok" if got == expect else f"wrong {got!r}"
        except TimeoutError:
            outcome = "hang"
        except Exception as e:  # a connection error, a 502 from the balancer...
            outcome = f"error {type(e).__name__}: {str(e)[:100]}"
        self.calls.append((started, time.monotonic(), outcome))

    async def stateless(self, w: int) -> None:
        async with httpx.AsyncClient() as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                a = w * 1_000_000 + i

                async def one(a: int = a) -> Any:
                    r = await http.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                        "name": "a__add", "arguments": {"a": a, "b": 1}, "_meta": META}},
                        headers={"MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": "a__add",
                                 "Accept": "application/json, text/event-stream"})
                    r.raise_for_status()
                    return answer_of(r)

                await self._record(one(), a + 1)

    async def session(self, w: int) -> None:
        """One SDK client at a time; when a dropped connection ends it (the SDK's transport fails the
        whole client), the call in flight is counted as failed and a new client goes on, as an agent
        would reconnect."""
        i = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                async with Client(self.url, mode="legacy", cache=None) as client:
                    while not self.stop.is_set():
                        i += 1
                        a = (self.n + w) * 1_000_000 + i
                        started = time.monotonic()

                        async def one(a: int = a) -> Any:
                            r = await client.call_tool("a__add", {"a": a, "b": 1})
                            return None if r.is_error else (r.structured_content or {}).get("result")

                        await self._record(one(), a + 1)
            except BaseException as e:  # the client ended under its call (a group of transport errors)
                if isinstance(e, asyncio.CancelledError) and self.stop.is_set():
                    raise
                self.calls.append((started, time.monotonic(), f"error client ended: {type(e).__name__}: {e!s:.80}"))

    async def run(self) -> None:
        await asyncio.gather(*(self.stateless(w) for w in range(self.n)), *(self.session(w) for w in range(self.n)))


async def test_kill_under_load_costs_only_the_calls_in_flight(cluster: Cluster) -> None:
    register_remote(cluster.replicas[0], "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    load = Load(cluster.lb.mcp_url, 8)  # c = 16: 8 stateless-era, 8 session-era clients
    task = asyncio.ensure_future(load.run())
    try:
        await _until_async(lambda: load.count() >= 200, "200 calls before the kill")
        victim = cluster.replicas[1]
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)  # kill -9, reaped
        reaped_at = time.monotonic()
        await _until_async(lambda: "r2 is DOWN" in cluster.lb.log() or "is DOWN" in cluster.lb.log(),
                           "HAProxy marks the killed replica down")
        before = load.count()
        await _until_async(lambda: load.count() >= before + 300, "300 calls after the kill")
    finally:
        load.stop.set()
        await asyncio.wait_for(task, BOUND + 5)
    assert not [c for c in load.calls if c[2] == "hang"], "a call hung"
    assert not [c for c in load.calls if c[2].startswith("wrong")], [c for c in load.calls if c[2].startswith("wrong")]
    failed = [c for c in load.calls if c[2] != "ok"]
    # Only calls in flight on the killed replica when it died fail; every call started after it
    # was reaped succeeds (refused connections are retried on another replica by the balancer).
    assert all(start < reaped_at and end >= killed_at for start, end, _ in failed), failed
    after = [c for c in load.calls if c[0] >= reaped_at]
    assert len(after) >= 300 and all(c[2] == "ok" for c in after), [c for c in after if c[2] != "ok"]
    print(f"{len(load.calls)} calls, {len(failed)} failed at the kill: {sorted({c[2][:60] for c in failed})}")
    assert len(failed) <= 16, failed  # at most one call per client was in flight


def test_sigterm_drains_a_replica(cluster: Cluster) -> None:
    """SIGTERM: the replica stops taking calls, finishes the one in flight, then exits 0; the
    balancer's calls go to the others meanwhile."""
    register_remote(cluster.replicas[0], "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    victim = cluster.replicas[1]
    result: dict[str, Any] = {}

    def slow_call() -> None:
        result["r"] = stateless_call(None, victim.url + "/mcp", "a__slow", {"seconds": 3, "steps": 3})

    t = threading.Thread(target=slow_call)
    t.start()
    until(lambda: victim.api("GET", "/api/services/a").json()["policy"]["inFlight"] == 1, "the slow call in flight")
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGTERM)
    with httpx.Client() as http:
        while victim.proc.poll() is None:  # meanwhile the balancer serves every call
            r = stateless_call(http, cluster.lb.mcp_url, "a__add", {"a": 1, "b": 1})
            assert answer_of(r) == 2, r.text
    t.join(BOUND)
    assert victim.proc.returncode == 0, victim.log()[-2000:]
    r = result["r"]
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "slept 3.0", r.text


async def _until_async(pred: Callable[[], bool], what: str, bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not pred():
        assert time.monotonic() < deadline, f"never happened within {bound} s: {what}"
        await asyncio.sleep(0.05)


SESSION_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def open_session(url: str) -> str:
    """A raw session-era client's initialize (declaring sampling) and initialized, on ``url``."""
    r = httpx.post(url, headers=SESSION_HEADERS, timeout=BOUND, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
                   "clientInfo": {"name": "raw-replica-test", "version": "1"}}})
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    headers = {**SESSION_HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    r = httpx.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout=BOUND)
    assert r.status_code == 202, r.text
    return sid


def sse_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data:") and line[5:].strip():
            yield json.loads(line[5:])


def test_an_answer_reaching_another_replica_is_routed_to_the_one_that_asked(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    register_remote(a, "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    sid = open_session(a.url + "/mcp")
    headers = {**SESSION_HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a__sample", "arguments": {"prompt": "hi"}}}
    with httpx.stream("POST", a.url + "/mcp", headers=headers, json=call, timeout=BOUND) as stream:
        assert stream.status_code == 200 and "text/event-stream" in stream.headers["content-type"]
        messages = sse_messages(stream)
        asked = next(m for m in messages if m.get("method") == "sampling/createMessage")
        answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {
            "role": "assistant", "content": {"type": "text", "text": "routed"}, "model": "m"}}
        r = httpx.post(b.url + "/mcp", headers=headers, json=answer, timeout=BOUND)  # to another replica
        assert r.status_code == 202, r.text
        final = next(m for m in messages if m.get("id") == 1)
    assert final["result"]["content"][0]["text"] == "model said: routed", final
    assert [s["adopted"] for s in b.api("GET", "/api/sessions").json()["sessions"]] == [True]
    # The replica that asked is gone: the answer has nowhere to go, and is accepted without a hang.
    with httpx.stream("POST", a.url + "/mcp", headers=headers, json={**call, "id": 2}, timeout=BOUND) as stream:
        asked = next(m for m in sse_messages(stream) if m.get("method") == "sampling/createMessage")
        a.kill()
    r = httpx.post(c.url + "/mcp", headers=headers, timeout=BOUND, json={
        "jsonrpc": "2.0", "id": asked["id"], "result": {"role": "assistant", "content": {"type": "text", "text": "x"},
                                                        "model": "m"}})
    assert r.status_code == 202, r.text
    assert "that replica is gone" in c.log(), c.log()[-2000:]


@pytest.mark.parametrize("kind", ["stdio", "http"])
async def test_server_everything_through_the_balancer(cluster: Cluster, kind: str) -> None:
    """A server nobody here wrote (the reference server-everything), as a stdio child of each
    replica or over streamable HTTP: a session-era client's calls and its sampling answers spread
    over the replicas (answers routed to the replica that asked); a stateless-era client's calls."""
    a = cluster.replicas[0]
    if kind == "stdio":
        argv = everything_stdio_argv()
        r = a.api("POST", "/api/services", json={"apiVersion": "runtimed/v1", "kind": "MCPService",
                                                   "metadata": {"name": "ev"},
                                                   "spec": {"origin": {"type": "stdio", "command": argv[0],
                                                                       "args": argv[1:]}}})
        assert r.status_code == 201, r.text
        await _everything_calls(cluster)
    else:
        with run_everything() as ev:
            register_remote(a, "ev", ev.url)
            await _everything_calls(cluster)


async def _everything_calls(cluster: Cluster) -> None:
    cluster.everywhere("ev", "RUNNING", bound=60)
    async with Client(cluster.lb.mcp_url, mode="legacy", cache=None, sampling_callback=sampling) as c:
        for i in range(6):
            assert await call_text(c, "ev__echo", {"message": f"m{i}"}) == f"Echo: m{i}"
            got = await call_text(c, "ev__trigger-sampling-request", {"prompt": "meaning of life?"})
            assert "forty-two" in got and not got.startswith("<"), got
    async with Client(cluster.lb.mcp_url, mode="auto", cache=None) as c:  # the stateless era
        for i in range(6):
            assert await call_text(c, "ev__echo", {"message": f"s{i}"}) == f"Echo: s{i}"
    served = [calls_served(d, "ev") for d in cluster.replicas]
    assert sum(served) == 18 and sum(1 for n in served if n) >= 2, served  # spread over the replicas


def calls_served(d: DaemonProc, service: str) -> float:
    """The tool calls replica ``d`` itself served for ``service`` (its own /metrics)."""
    total = 0.0
    for line in d.api("GET", "/metrics").text.splitlines():
        if line.startswith("runtimed_tool_calls_total{") and f'service="{service}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_rate_limit_and_cache_hold_across_replicas(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    register_remote(a, "a", cluster.upstream.url, policy={"rateLimit": {"calls": 10, "per": "minute"}})
    register_remote(a, "k", cluster.upstream.url + "?k", policy={"cache": {"ttlSeconds": 300, "tools": ["echo"]}})
    cluster.everywhere("a", "RUNNING")
    cluster.everywhere("k", "RUNNING")
    outcomes = []
    with httpx.Client() as http:
        for i in range(11):
            r = stateless_call(http, cluster.lb.mcp_url, "a__add", {"a": i, "b": 0})
            outcomes.append(r.json()["result"])
    assert [o.get("isError", False) for o in outcomes] == [False] * 10 + [True], outcomes
    refused = outcomes[-1]
    assert refused["_meta"]["runtimed"]["policy"] == "rateLimit", refused
    for d in (a, b, c):  # the 11th is refused whichever replica is asked
        r = stateless_call(None, d.url + "/mcp", "a__add", {"a": 1, "b": 1})
        assert r.json()["result"].get("isError") and "rateLimit" in str(r.json()["result"]), r.text
    # The cache: a miss on A, then a hit on B and on C.
    first = stateless_call(None, a.url + "/mcp", "k__echo", {"text": "cached"}).json()["result"]
    assert first.get("_meta", {}).get("runtimed", {}).get("cache") != "hit", first
    for d in (b, c):
        hit = stateless_call(None, d.url + "/mcp", "k__echo", {"text": "cached"}).json()["result"]
        assert hit["_meta"]["runtimed"]["cache"] == "hit", hit
        assert hit["structuredContent"] == first["structuredContent"]


def test_a_breaker_opened_on_one_replica_is_open_on_every_replica(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    with run_upstream("echo_server", "--name", "f") as failing:
        register_remote(a, "f", failing.url)
        cluster.everywhere("f", "RUNNING")
        failing.stop()  # every call now fails to connect: an upstream fault
        for _ in range(5):  # breakerThreshold (5) faults in a row on A open A's breaker
            r = stateless_call(None, a.url + "/mcp", "f__echo", {"text": "x"}).json()["result"]
            assert r["isError"], r
        refused = stateless_call(None, a.url + "/mcp", "f__echo", {"text": "x"}).json()["result"]
        assert refused["_meta"]["runtimed"]["policy"] == "breaker", refused
    for d in (b, c):  # B and C never called it: their breakers are open too, naming where it tripped
        until(lambda d=d: d.api("GET", "/api/services/f").json()["policy"]["breaker"]["state"] == "open",
              f"the breaker open on {d.url}")
        r = stateless_call(None, d.url + "/mcp", "f__echo", {"text": "x"}).json()["result"]
        assert r["_meta"]["runtimed"]["policy"] == "breaker" and "on replica r1" in r["content"][0]["text"], r


def test_redis_down_calls_go_on_changes_refused_then_converge(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    register_remote(a, "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    cluster.redis.stop()
    try:
        with httpx.Client() as http:
            for i in range(9):  # through the balancer: every replica serves from memory
                r = stateless_call(http, cluster.lb.mcp_url, "a__add", {"a": i, "b": 1})
                assert answer_of(r) == i + 1, r.text
        for d in (a, b, c):
            r = d.api("POST", "/api/services", json=_manifest("new", cluster.upstream.url + "?new"))
            assert r.status_code == 503, r.text
            assert "cannot be reached" in r.json()["error"] and "nothing changed" in r.json()["error"], r.text
            r = d.api("POST", "/api/services/a/stop")
            assert r.status_code == 503, r.text
        assert all(state_of(d, "a") == "RUNNING" for d in (a, b, c))  # a refused stop changed nothing
    finally:
        cluster.redis.start()
    # Accepted once Redis is back (201; 200 if an attempt whose answer was lost as Redis came back took).
    until(lambda: b.api("POST", "/api/services", json=_manifest("new", cluster.upstream.url + "?new"))
          .status_code in (200, 201), "a change accepted once Redis is back")
    cluster.everywhere("new", "RUNNING")


def test_any_replica_shows_the_calls_served_by_the_others(cluster: Cluster) -> None:
    a, b, c = cluster.replicas
    register_remote(a, "a", cluster.upstream.url)
    cluster.everywhere("a", "RUNNING")
    for i in range(3):
        assert answer_of(stateless_call(None, a.url + "/mcp", "a__add", {"a": i, "b": 2})) == i + 2

    def seen_on(d: DaemonProc) -> list[dict[str, Any]]:
        calls = d.api("GET", "/api/audit", params={"service": "a"}).json()["calls"]
        return [x for x in calls if x.get("replica") == "r1" and x.get("tool") == "add"]

    for d in (b, c):
        until(lambda d=d: len(seen_on(d)) == 3, f"r1's calls in {d.url}'s audit")
        page = d.api("GET", "/api/ui/services").text  # the page's services table counts r1's calls
        assert re.search(r'data-calls>\s*3\s*<', page), page
        until(lambda d=d: all(f'data-replica="r{i}"' in d.api("GET", "/api/ui/overview").text for i in (1, 2, 3)),
              f"every replica on {d.url}'s page")


def _manifest(name: str, url: str) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "remote_mcp", "url": url}}}
