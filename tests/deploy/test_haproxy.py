"""``deploy/haproxy.cfg`` in front of three real ``runtimed`` replicas (issue 15, deployment).

Real programs only: HAProxy from the distribution run with the very file users get, three daemons
(today's embedded store, each its own state dir: no Redis yet, so only stateless-era traffic is
cluster-safe here), one real upstream MCP server registered on each. Checks: HAProxy accepts the
file; health and stateless-era calls are answered through the balancer and spread over the
replicas (each replica's own ``/metrics`` counts what it served); ``kill -9`` of a replica: calls
either succeed or fail fast (never hang, never a wrong answer) and, once HAProxy has marked it
down, every call succeeds; a ``tools/call`` in flight on the killed replica is answered with an
error and not run again elsewhere (HAProxy retries only what never reached a replica).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.support.cluster import (
    BOUND,
    HAPROXY_CFG,
    META,
    HAProxy,
    S,
    address_of,
    answer_of,
    haproxy_check,
    lb_env,
    start_replicas,
    stateless_call,
)
from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.mcpclient import GUARD, text_of
from tests.support.upstream import Upstream, run_upstream


def metric(d: DaemonProc, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples on replica ``d`` whose labels include ``labels``."""
    total = 0.0
    for line in d.api("GET", "/metrics").text.splitlines():
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


class Cluster:
    def __init__(self, upstream: Upstream, replicas: list[DaemonProc], lb: HAProxy) -> None:
        self.upstream, self.replicas, self.lb = upstream, replicas, lb

    def calls_served(self, tool: str) -> list[float]:
        return [metric(d, "runtimed_tool_calls_total", service="a", tool=tool) for d in self.replicas]


def make_cluster(tmp: Path, upstream: Upstream) -> tuple[list[DaemonProc], HAProxy]:
    replicas = start_replicas(tmp, 3)
    try:
        for d in replicas:
            register_remote(d, "a", upstream.url)
        for d in replicas:
            d.wait_state("a", "RUNNING", timeout=60)
        lb = HAProxy(HAPROXY_CFG, [address_of(d.url) for d in replicas], tmp / "lb").start()
    except BaseException:
        for d in replicas:
            d.stop()
        raise
    return replicas, lb


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream("echo_server", "--name", "a") as up:
        yield up


@pytest.fixture
def cluster(tmp_path: Path, upstream: Upstream) -> Iterator[Cluster]:
    replicas, lb = make_cluster(tmp_path, upstream)
    try:
        yield Cluster(upstream, replicas, lb)
    finally:
        lb.stop()
        for d in replicas:
            d.stop()


# -- the file -------------------------------------------------------------------------------------

def test_haproxy_accepts_the_config_for_one_to_three_replicas() -> None:
    for n in (1, 2, 3):
        env = lb_env([f"127.0.0.1:{4707 + i}" for i in range(n)], bind="127.0.0.1:7777")
        r = haproxy_check(HAPROXY_CFG, env)
        assert r.returncode == 0, f"{n} replicas: {r.stdout}{r.stderr}"
    default_bind = lb_env(["127.0.0.1:4707"])  # RUNTIMED_LB_BIND unset: the file's default
    r = haproxy_check(HAPROXY_CFG, default_bind)
    assert r.returncode == 0, r.stdout + r.stderr


def test_haproxy_refuses_the_config_without_a_replica() -> None:
    r = haproxy_check(HAPROXY_CFG, lb_env([]))
    assert r.returncode != 0
    assert "server" in (r.stdout + r.stderr)


# -- through the balancer -------------------------------------------------------------------------

async def test_health_and_stateless_calls_are_answered_through_the_balancer(cluster: Cluster) -> None:
    r = httpx.get(cluster.lb.url + "/healthz", timeout=BOUND)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    r = stateless_call(None, cluster.lb.mcp_url, "a__add", {"a": 40, "b": 2})
    assert answer_of(r) == 42, r.text
    async with Client(cluster.lb.mcp_url, mode="auto", cache=None) as c:  # the official SDK, stateless era
        for i in range(6):  # over every replica: the SDK's own discover and calls land on any of them
            result = await c.call_tool("a__echo", {"text": f"hello {i}"})
            assert not result.is_error and text_of(result) == f"hello {i}"


def test_requests_are_spread_over_the_replicas(cluster: Cluster) -> None:
    before = cluster.calls_served("add")
    with httpx.Client() as client:
        for i in range(30):
            r = stateless_call(client, cluster.lb.mcp_url, "a__add", {"a": i, "b": 1})
            assert answer_of(r) == i + 1, r.text
    served = [after - b for after, b in zip(cluster.calls_served("add"), before, strict=True)]
    assert sum(served) == 30, served
    assert all(n > 0 for n in served), f"round robin left a replica idle: {served}"


# -- kill -9 --------------------------------------------------------------------------------------

class Load:
    """``workers`` threads calling ``a__add`` through the balancer, each on its own kept-alive
    connection, recording every outcome: the answer, an HTTP error status, a connection error, or a
    hang (no answer within ``BOUND``)."""

    def __init__(self, url: str, workers: int = 4) -> None:
        self.url = url
        self.outcomes: list[tuple[float, str]] = []  # (start time, "ok" | "wrong ..." | "http 502" | "conn ..." | "hang")
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)]

    def _run(self, w: int) -> None:
        with httpx.Client() as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                started = time.monotonic()
                try:
                    r = stateless_call(client, self.url, "a__add", {"a": w * 1_000_000 + i, "b": 1})
                    got = answer_of(r)
                    outcome = ("ok" if got == w * 1_000_000 + i + 1 else f"wrong {got!r}") if r.status_code == 200 \
                        else f"http {r.status_code}"
                except httpx.TimeoutException:
                    outcome = "hang"
                except httpx.TransportError as e:
                    outcome = f"conn {type(e).__name__}"
                with self.lock:
                    self.outcomes.append((started, outcome))

    def count(self) -> int:
        with self.lock:
            return len(self.outcomes)

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while self.count() < n:
            assert time.monotonic() < deadline, f"the load made {self.count()} of {n} calls"
            time.sleep(0.02)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(BOUND + 5)

    def between(self, start: float, end: float = float("inf")) -> list[str]:
        with self.lock:
            return [o for t, o in self.outcomes if start <= t < end]


def wait_for_log(lb: HAProxy, pattern: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, lb.log()):
        assert time.monotonic() < deadline, f"HAProxy never logged {pattern!r}: {lb.log()}"
        time.sleep(0.05)


def test_kill_9_of_a_replica_costs_no_hang_and_then_no_error(cluster: Cluster) -> None:
    victim = cluster.replicas[1]
    with Load(cluster.lb.mcp_url) as load:
        load.wait_for(100)  # the load is running on all three
        killed_at = time.monotonic()
        assert victim.proc is not None
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        reaped_at = time.monotonic()
        # HAProxy's health check takes it out (fall 2); until then its requests are retried elsewhere.
        wait_for_log(cluster.lb, r"Server runtimed_replicas/r2 is DOWN")
        down_at = time.monotonic()
        n = load.count()
        load.wait_for(n + 200)
    before, window = load.between(0, killed_at), load.between(killed_at, down_at)
    gone, after = load.between(reaped_at, down_at), load.between(down_at)
    everything = load.between(0)
    summary = {o: everything.count(o) for o in set(everything)}
    assert "hang" not in everything, summary
    assert not [o for o in everything if o.startswith("wrong")], summary
    # At the kill: an answer, or an error at once; only calls the victim had in flight can fail, and
    # each worker had at most one call in flight.
    failed_before = [o for o in before if o != "ok"]
    assert len(failed_before) <= len(load.threads), summary
    assert all(o == "ok" or o.startswith(("http 502", "conn ")) for o in failed_before + window), summary
    # Once it is gone, before HAProxy has marked it down: HAProxy still picks it, the connection is
    # refused, and the request is sent to another replica (retry-on conn-failure, option redispatch 1).
    # Without those this is where 503s show. The one error still possible: a request HAProxy put on a
    # kept-alive connection to the victim in the instant before it saw that connection close is
    # answered by closing the client's connection (HTTP's keep-alive race), never by a 5xx.
    assert all(o == "ok" or o == "conn RemoteProtocolError" for o in gone), {o: gone.count(o) for o in set(gone)}
    # Once HAProxy has marked it down: every call succeeds.
    assert len(after) >= 200 and set(after) == {"ok"}, {o: after.count(o) for o in set(after)}
    survivors = [d for d in cluster.replicas if d is not victim]
    assert all(metric(d, "runtimed_tool_calls_total", service="a", tool="add") > 0 for d in survivors)


def raw_call(port: int, name: str, arguments: dict[str, Any]) -> bytes:
    """A stateless-era ``tools/call`` written to the balancer in one ``sendall`` (headers and body
    together, as many clients send a small request) on a connection that closes after the answer;
    returns everything received until the balancer closed it (b"" for no answer at all)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments, "_meta": META}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {S}\r\n"
            f"Mcp-Method: tools/call\r\nMcp-Name: {name}\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_call_in_flight_on_a_killed_replica_fails_and_is_not_run_again(cluster: Cluster) -> None:
    """A tools/call that reached a replica is never sent to another one (``retry-on`` and
    ``disable-l7-retry`` for POST in deploy/haproxy.cfg): its client gets an error at the kill, not
    the answer of a second run. (With an L7 retry on POST, HAProxy would replay the buffered request
    on a survivor and answer 200 after the tool's 8 s there: this test would fail.)"""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["received"] = raw_call(cluster.lb.port, "a__slow", {"seconds": 8, "steps": 1})
        except OSError as e:
            outcome["error"] = repr(e)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + BOUND
    owner = None
    while owner is None:
        assert time.monotonic() < deadline and caller.is_alive(), f"the slow call never showed in flight: {outcome}"
        owner = next((d for d in cluster.replicas if metric(d, "runtimed_calls_in_flight", service="a") > 0), None)
        time.sleep(0.02)
    assert owner.proc is not None
    os.kill(owner.proc.pid, signal.SIGKILL)
    owner.proc.wait(10)
    caller.join(GUARD + 5)
    assert not caller.is_alive(), "the call hung after its replica was killed"
    assert "error" not in outcome, outcome  # the balancer answered (it does not just drop the client)
    status_line = outcome["received"].split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 502"), f"not a 502 (run again elsewhere?): {outcome['received'][:500]!r}"
    survivors = [d for d in cluster.replicas if d is not owner]
    for d in survivors:  # nobody else started it: nothing in flight, nothing served
        assert metric(d, "runtimed_calls_in_flight", service="a") == 0
        assert metric(d, "runtimed_tool_calls_total", service="a", tool="slow") == 0
    assert answer_of(stateless_call(None, cluster.lb.mcp_url, "a__add", {"a": 1, "b": 1})) == 2
