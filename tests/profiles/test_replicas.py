"""Profiles shared by two real replicas on one real Redis: a profile created, changed or removed
on one replica is served (or no longer) by the other, which follows the store's change
(``Supervisor.doc_listeners`` -> ``ProfileRegistry.peer_changed``), with the official SDK client
on the other replica's endpoint. Waits are bounded (a bound, not a timing claim)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.mcpclient import call, client, text_of
from tests.support.redisserver import RedisServer
from tests.support.upstream import run_upstream

BOUND = 20.0


def until(pred: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + BOUND
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"never happened within {BOUND} s: {what} (last: {last!r})")


def profile(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": name}, "spec": spec}


def tools_on(d: DaemonProc, name: str) -> list[str] | None:
    r = d.api("GET", f"/api/profiles/{name}")
    return [t["name"] for t in r.json()["tools"]] if r.status_code == 200 else None


async def test_a_profile_changed_on_one_replica_is_served_by_the_other(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as redis, run_upstream("echo_server", "--name", "a") as up:
        r1 = DaemonProc(tmp_path / "r1", args=["--store", redis.url, "--replica", "r1"]).start()
        r2 = DaemonProc(tmp_path / "r2", args=["--store", redis.url, "--replica", "r2"]).start()
        try:
            register_remote(r1, "a", up.url)
            for d in (r1, r2):
                d.wait_state("a", "RUNNING", timeout=60)
            r = r1.api("POST", "/api/profiles", json=profile("shared", services={"include": ["a"]},
                                                            tools={"include": ["a__echo"]},
                                                            overrides={"a__echo": {"name": "echoes"}}))
            assert r.status_code == 201, r.text
            until(lambda: tools_on(r2, "shared") == ["echoes"], "r2 serves the profile r1 created")
            for mode in ("auto", "legacy"):
                async with client(f"{r2.mcp_url}/@shared", mode) as c:
                    assert [t.name for t in (await c.list_tools()).tools] == ["echoes"]
                    assert text_of(await call(c, "echoes", {"text": "from r2"})) == "from r2"
            # Changed on r2: r1 follows.
            r = r2.api("POST", "/api/profiles", json=profile("shared", services={"include": ["a"]},
                                                            tools={"include": ["a__echo", "a__add"]}))
            assert r.status_code == 200, r.text
            until(lambda: tools_on(r1, "shared") == ["a__echo", "a__add"], "r1 follows r2's change")
            # Removed on r1: gone from r2's endpoint too.
            assert r1.api("DELETE", "/api/profiles/shared").status_code == 200
            until(lambda: tools_on(r2, "shared") is None, "r2 forgets the removed profile")
            resp = httpx.post(f"{r2.mcp_url}/@shared", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
            assert resp.status_code == 404
        finally:
            r2.stop()
            r1.stop()
