"""Scoped access tokens (``runtimed.auth.tokens``, ``/api/tokens``, the access check): real daemons,
real HTTP, a real upstream, a real ``redis-server`` for two replicas.

Covered: creation (shown once, stored hashed), listing without secrets, a token refused everywhere
but its profile's endpoint (``/mcp``, ``/mcp/<service>``, another profile's, ``/api``, ``/metrics``)
with a 403 naming the one endpoint it reaches, and let through on ``/mcp/@NAME``; revoked, expired,
unknown and malformed tokens answered 401 saying so; the admin unaffected; the same rules with no
static token (loopback) and with an OAuth issuer configured; the token never in an answer but the
creation's, nor in events, the daemon's log or the state dir; a token created on one replica works on
another and its revocation reaches it; the call record's ``tokenId`` (once ``/mcp/@NAME`` serves);
the token format and lifetimes (pure).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from runtimed.auth.tokens import mint, parse_lifetime, token_id
from tests.support.daemon import DaemonProc
from tests.support.foundation import closed_port, register_remote
from tests.support.mcpclient import GUARD
from tests.support.redisserver import RedisServer
from tests.support.upstream import Upstream, run_upstream

ADMIN = "admin-token-0123456789abcdef"
TOKEN_RE = re.compile(r"^rtk_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
S = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": S, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "token-test", "version": "1"}}


def profile(name: str, *services: str) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": name},
            "spec": {"services": {"include": list(services)}}}


PROFILES = {"coding": profile("coding", "a"), "ops": profile("ops", "a")}


def with_profiles(state: Path) -> Path:
    """The embedded store's profiles collection (``<state>/profiles.json``, ``{name: manifest}``), written
    before the daemon starts (``/api/profiles`` is not on this branch)."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "profiles.json").write_text(json.dumps(PROFILES))
    return state


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream("echo_server", "--name", "a") as up:
        yield up


@pytest.fixture
def d(tmp_path: Path, upstream: Upstream) -> Iterator[DaemonProc]:
    daemon = DaemonProc(with_profiles(tmp_path / "state"), token=ADMIN).start()
    register_remote(daemon, "a", upstream.url)
    daemon.wait_state("a", "RUNNING")
    try:
        yield daemon
    finally:
        daemon.stop()


def create(d: DaemonProc, name: str = "coding", **body: Any) -> dict[str, Any]:
    r = d.api("POST", "/api/tokens", json={"profile": name, **body})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    m = TOKEN_RE.match(out["token"])
    assert m is not None and m.group(1) == out["id"], out
    return out


def call(d: DaemonProc, token: str | None, path: str, method: str = "POST") -> httpx.Response:
    """A stateless-era tools/call (POST) or another request to ``path`` with ``token`` as the bearer."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if method != "POST":
        return httpx.request(method, d.url + path, headers=headers, timeout=GUARD)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "a__echo", "arguments": {"text": "hi"}, "_meta": META}}
    headers.update({"MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": "a__echo"})
    return httpx.post(d.url + path, headers=headers, json=body, timeout=GUARD)


def message(r: httpx.Response) -> str:
    body = r.json()
    return str(body["error"]["message"] if isinstance(body.get("error"), dict) else body["error"])


def refused_elsewhere(d: DaemonProc, token: str, name: str) -> None:
    """The token is a 403 naming ``/mcp/@<name>`` everywhere but there."""
    for method, path in [("POST", "/mcp"), ("POST", "/mcp/a"), ("POST", f"/mcp/@{'ops' if name != 'ops' else 'coding'}"),
                         ("GET", "/mcp"), ("DELETE", "/mcp"), ("POST", f"/mcp/@{name}x"), ("POST", f"/mcp/@{name}/"),
                         ("GET", "/api/status"), ("GET", "/api/services"), ("GET", "/api/tokens"),
                         ("POST", "/api/tokens"), ("GET", "/api/audit"), ("GET", "/api/events"), ("GET", "/metrics"),
                         ("DELETE", "/api/services/a")]:
        r = call(d, token, path, method)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert f"/mcp/@{name}" in message(r) and token not in r.text, (path, r.text)


def reaches(d: DaemonProc, token: str, name: str, served: bool = True) -> httpx.Response:
    """Past the access check on ``/mcp/@<name>``: the call is served (``served``: the profile's service
    runs there), or answered by the profile's endpoint itself (no such tool in it)."""
    r = call(d, token, f"/mcp/@{name}")
    if served:
        assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "hi", r.text
    else:
        assert r.status_code == 400 and f"profile {name!r} offers no such tool" in r.text, r.text
    return r


def test_a_token_reaches_its_profiles_endpoint_and_nothing_else(d: DaemonProc) -> None:
    made = create(d, label="ci agent", expiresIn="30d")
    token, tid = made["token"], made["id"]
    assert made["profile"] == "coding" and made["label"] == "ci agent" and made["endpoint"] == d.url + "/mcp/@coding"
    assert 29 * 86400 < made["expiresAt"] - made["createdAt"] <= 30 * 86400 and made["expired"] is False
    reaches(d, token, "coding")
    refused_elsewhere(d, token, "coding")
    # The admin keeps everything; the list holds no token and no hash.
    assert call(d, ADMIN, "/mcp").json()["result"]["content"][0]["text"] == "hi"
    listed = d.api("GET", "/api/tokens").json()["tokens"]
    assert [t["id"] for t in listed] == [tid] and token not in json.dumps(listed)
    assert set(listed[0]) == {"id", "profile", "label", "createdAt", "expiresAt", "lastUsedAt", "expired", "endpoint"}
    assert listed[0]["lastUsedAt"] is not None  # it was used above
    # Stored hashed: the file has the SHA-256, never the token (nor its secret part).
    stored = (d.state_dir / "tokens.json").read_text()
    assert hashlib.sha256(token.encode()).hexdigest() in stored and token.split("_", 2)[2] not in stored
    # A guessed secret for a real id, a malformed one, a token of this shape nobody made: 401, said so.
    forged = f"rtk_{tid}_{'A' * 43}"
    for bad, says in ((forged, "unknown or has been revoked"), ("rtk_nothing", "not a well-formed"),
                      ("rtk_0badc0de_" + "B" * 43, "unknown or has been revoked")):
        r = call(d, bad, "/mcp/@coding")
        assert r.status_code == 401 and says in message(r) and bad not in r.text, r.text
        assert r.headers["www-authenticate"].startswith("Bearer ")


def test_revoked_and_expired_tokens_are_refused_and_no_token_leaks(d: DaemonProc) -> None:
    made, other = create(d), create(d, "ops")
    reaches(d, made["token"], "coding")
    r = d.api("DELETE", f"/api/tokens/{made['id']}")
    assert r.json() == {"revoked": made["id"], "profile": "coding"}, r.text
    r = call(d, made["token"], "/mcp/@coding")
    assert r.status_code == 401 and "revoked" in message(r), r.text
    assert d.api("DELETE", f"/api/tokens/{made['id']}").status_code == 404
    assert [t["id"] for t in d.api("GET", "/api/tokens").json()["tokens"]] == [other["id"]]
    reaches(d, other["token"], "ops")  # the other one is untouched
    refused_elsewhere(d, other["token"], "ops")
    # Expiry: one second to live; refused once it passed (waited for, not timed), listed as expired.
    brief = create(d, expiresIn=1)
    r = d.wait_for(lambda: (x := call(d, brief["token"], "/mcp/@coding")).status_code == 401 and x, what="expiry")
    assert "expired" in message(r) and brief["token"] not in r.text, r.text
    assert next(t for t in d.api("GET", "/api/tokens").json()["tokens"] if t["id"] == brief["id"])["expired"] is True
    # Events say who, by id; nothing anywhere (events, log, state dir) holds a token.
    evs = d.api("GET", "/api/events", params={"limit": 2000}).json()["events"]
    assert {e["type"] for e in evs} >= {"token.created", "token.revoked"}
    assert next(e for e in evs if e["type"] == "token.revoked")["tokenId"] == made["id"]
    for t in (made["token"], other["token"], brief["token"]):
        assert t not in json.dumps(evs) and t not in d.log()
        for f in d.state_dir.rglob("*"):
            if f.is_file():
                assert t.split("_", 2)[2].encode() not in f.read_bytes(), f


def test_bad_requests_are_refused_with_reasons(d: DaemonProc) -> None:
    for body, status, says in (({"profile": "nope"}, 404, "no profile named 'nope'"),
                               ({}, 400, "profile is required"),
                               ({"profile": "coding", "expiresIn": "soon"}, 400, "not a duration"),
                               ({"profile": "coding", "expiresIn": 0}, 400, "more than 0"),
                               ({"profile": "coding", "extra": 1}, 400, "unknown field")):
        r = d.api("POST", "/api/tokens", json=body)
        assert r.status_code == status and says in r.json()["error"], r.text
    assert d.api("DELETE", "/api/tokens/00000000").status_code == 404
    # Only the admin: no token at all is a 401 on /api/tokens (a token daemon).
    assert httpx.get(d.url + "/api/tokens", timeout=GUARD).status_code == 401


def test_on_loopback_without_a_static_token_a_scoped_token_still_narrows(tmp_path: Path, upstream: Upstream) -> None:
    with DaemonProc(with_profiles(tmp_path / "state")) as d:
        register_remote(d, "a", upstream.url)
        made = create(d)  # loopback, no token: the admin
        assert call(d, None, "/api/status", "GET").status_code == 200
        reaches(d, made["token"], "coding")
        refused_elsewhere(d, made["token"], "coding")
        # Revocation reaches the same answer as with a static token.
        assert d.api("DELETE", f"/api/tokens/{made['id']}").status_code == 200
        assert call(d, made["token"], "/mcp/@coding").status_code == 401


def test_with_an_oauth_issuer_scoped_tokens_are_recognised_first(tmp_path: Path) -> None:
    """The issuer is never asked about a scoped token (here it could not even be reached)."""
    issuer = f"http://127.0.0.1:{closed_port()}"
    with DaemonProc(with_profiles(tmp_path / "state"), args=["--oauth-issuer", issuer], token=ADMIN) as d:
        made = create(d)
        reaches(d, made["token"], "coding", served=False)  # no service here: the profile itself answers
        r = call(d, made["token"], "/mcp")
        assert r.status_code == 403 and "/mcp/@coding" in message(r), r.text
        r = call(d, "rtk_0badc0de_" + "B" * 43, "/mcp/@coding")
        assert r.status_code == 401 and "unknown or has been revoked" in message(r), r.text
        assert call(d, None, "/mcp").status_code == 401  # everyone else still meets OAuth


def test_a_call_through_the_profile_carries_the_token_id(d: DaemonProc) -> None:
    made = create(d)
    reaches(d, made["token"], "coding")
    calls = d.wait_for(lambda: d.api("GET", "/api/audit", params={"service": "a"}).json()["calls"], what="the record")
    assert calls[0]["tokenId"] == made["id"], calls[0]
    assert calls[0]["principal"] == {"kind": "profile-token", "tokenId": made["id"], "profile": "coding"}, calls[0]


def test_a_token_made_on_one_replica_works_on_another(tmp_path: Path, upstream: Upstream) -> None:
    with RedisServer(tmp_path / "redis") as server:
        # The store's profiles collection on Redis (the hash docs:profiles under the default prefix).
        redis.Redis.from_url(server.url).hset("runtimed:docs:profiles",
                                              mapping={k: json.dumps(v) for k, v in PROFILES.items()})
        r1 = DaemonProc(tmp_path / "r1", args=["--store", server.url, "--replica", "r1"], token=ADMIN).start()
        r2 = DaemonProc(tmp_path / "r2", args=["--store", server.url, "--replica", "r2"], token=ADMIN).start()
        try:
            made = create(r1)
            reaches(r2, made["token"], "coding", served=False)  # at once: an unknown id makes r2 read the store
            refused_elsewhere(r2, made["token"], "coding")
            assert [t["id"] for t in r2.api("GET", "/api/tokens").json()["tokens"]] == [made["id"]]
            assert r2.api("DELETE", f"/api/tokens/{made['id']}").status_code == 200  # revoked on r2 ...
            r = r1.wait_for(lambda: (x := call(r1, made["token"], "/mcp/@coding")).status_code == 401 and x,
                            what="the revocation on r1")  # ... refused on r1
            assert "revoked" in message(r)
            assert r1.api("GET", "/api/tokens").json()["tokens"] == []
            raw = redis.Redis.from_url(server.url).hgetall("runtimed:docs:tokens")
            assert all(made["token"].encode() not in v for v in raw.values())
        finally:
            r2.stop()
            r1.stop()


# -- the pure parts ----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [(None, None), ("30d", 30 * 86400), ("12h", 43200), ("90m", 5400),
                                                ("2w", 14 * 86400), ("45", 45), (" 10 s ", 10), (3600, 3600)])
def test_lifetimes(value: Any, seconds: float | None) -> None:
    assert parse_lifetime(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5d", "0", 0, -1, "3y", True, [30], "99999w"])
def test_bad_lifetimes_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="expiresIn"):
        parse_lifetime(value)


def test_minted_tokens_parse_back_and_near_misses_do_not() -> None:
    tid, token = mint()
    assert TOKEN_RE.match(token) and token_id(token) == tid
    assert mint({tid})[0] != tid
    for bad in (token[:-1], token + "x", token.replace("rtk_", "rtx_"), f"rtk_{tid.upper()}_{token[13:]}",
                token[:12] + "-" + token[13:], token[:20] + "=" + token[21:], "rtk_", ""):
        assert token_id(bad) is None, bad
