"""The gateway as an OAuth resource server (``runtimed --oauth-issuer``), against a real
authorization server (``oidc-provider``, ``tests/support/oauth.py``), a real daemon, a real
upstream and the official SDK client.

Covered: the 401 challenge and the Protected Resource Metadata it points to; calls with a token
issued for this gateway (SDK client, both eras) and the principal on the call record; tokens
refused for another audience, another issuer, after expiry, without the required scope (403), or
signed with a key the issuer no longer publishes; a key rotated in is fetched; the static token
still passes; a session and a ``requestState`` are bound to their principal; the downstream token
never reaches the upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote, run_daemon_expect_exit
from tests.support.mcpclient import GUARD, text_of
from tests.support.oauth import OidcProvider, new_signing_key, run_oidc_provider
from tests.support.redisserver import RedisServer
from tests.support.upstream import Upstream, run_upstream

ADMIN = "admin-token-0123456789abcdef"
A = {"client_id": "agent-a", "client_secret": "agent-a-secret-0123456789", "grant_types": ["client_credentials"],
     "redirect_uris": [], "response_types": []}
B = {**A, "client_id": "agent-b", "client_secret": "agent-b-secret-0123456789"}
S = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": S, "io.modelcontextprotocol/clientCapabilities": {"sampling": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "oauth-test", "version": "1"}}


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), clients=[A, B]) as provider:
        yield provider


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream("echo_server", "--name", "a") as up:
        yield up


def start(state: Path, op: OidcProvider, upstream: Upstream, *extra: str) -> DaemonProc:
    d = DaemonProc(state, args=["--oauth-issuer", op.issuer, *extra], token=ADMIN).start()
    register_remote(d, "a", upstream.url)
    d.wait_state("a", "RUNNING")
    return d


@pytest.fixture
def d(tmp_path: Path, op: OidcProvider, upstream: Upstream) -> Iterator[DaemonProc]:
    daemon = start(tmp_path / "state", op, upstream)
    try:
        yield daemon
    finally:
        daemon.stop()


def token_for(op: OidcProvider, client: dict[str, Any], resource: str, scope: str = "mcp:tools mcp:read") -> str:
    return str(op.client_credentials_token(client["client_id"], client["client_secret"], resource, scope)["access_token"])


def post(d: DaemonProc, token: str | None, body: dict[str, Any], **headers: str) -> httpx.Response:
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return httpx.post(d.mcp_url, headers=h, json=body, timeout=GUARD)


def stateless_call(d: DaemonProc, token: str | None, name: str, arguments: dict[str, Any],
                   meta: dict[str, Any] | None = None) -> httpx.Response:
    params: dict[str, Any] = {"name": name, "arguments": arguments, "_meta": META}
    if meta:
        params.update(meta)
    return post(d, token, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params},
                **{"MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": name})


def test_without_a_token_the_challenge_points_at_the_metadata(d: DaemonProc, op: OidcProvider) -> None:
    r = stateless_call(d, None, "a__add", {"a": 1, "b": 2})
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "error=" not in challenge  # no token sent: no error code
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    assert metadata_url == d.url + "/.well-known/oauth-protected-resource/mcp"
    meta = httpx.get(metadata_url, timeout=GUARD).json()  # no token needed for it
    assert meta["resource"] == d.url + "/mcp" and meta["authorization_servers"] == [op.issuer], meta
    assert httpx.get(d.url + "/.well-known/oauth-protected-resource", timeout=GUARD).json() == meta
    assert "oauth" in r.json()["error"]["message"].lower() or op.issuer in r.json()["error"]["message"]


async def test_a_token_for_this_gateway_calls_in_both_eras(d: DaemonProc, op: OidcProvider) -> None:
    token = token_for(op, A, d.url + "/mcp")
    for mode in ("legacy", "auto"):
        async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
                    Client(streamable_http_client(d.mcp_url, http_client=http), mode=mode, cache=None) as c):
            r = await asyncio.wait_for(c.call_tool("a__echo", {"text": f"hello {mode}"}), GUARD)
            assert not r.is_error and text_of(r) == f"hello {mode}"
    calls = d.wait_for(lambda: (c := d.api("GET", "/api/audit", params={"service": "a"}).json()["calls"])
                       and len(c) >= 2 and c, what="the call records")
    assert all(c["principal"] == {"kind": "oauth", "sub": "agent-a", "clientId": "agent-a"} for c in calls), calls
    # The static token still reaches /mcp, as the admin.
    r = stateless_call(d, ADMIN, "a__add", {"a": 40, "b": 2})
    assert r.json()["result"]["structuredContent"]["result"] == 42, r.text


def test_tokens_that_are_not_for_this_gateway_are_refused(d: DaemonProc, op: OidcProvider, tmp_path: Path) -> None:
    other_audience = token_for(op, A, "http://127.0.0.1:9/mcp")
    r = stateless_call(d, other_audience, "a__add", {"a": 1, "b": 2})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"], r.text
    assert "not issued for this resource" in r.json()["error"]["message"]
    assert other_audience not in r.text and other_audience not in d.log()
    with run_oidc_provider(tmp_path / "other-issuer", clients=[A]) as other:
        foreign = token_for(other, A, d.url + "/mcp")
    r = stateless_call(d, foreign, "a__add", {"a": 1, "b": 2})
    assert r.status_code == 401, r.text  # signed by a key the configured issuer does not publish
    r = stateless_call(d, "not-a-token", "a__add", {"a": 1, "b": 2})
    assert r.status_code == 401, r.text


def test_an_expired_token_is_refused(tmp_path: Path, upstream: Upstream) -> None:
    with run_oidc_provider(tmp_path / "short", clients=[A], access_ttl=1) as short:
        d = start(tmp_path / "state", short, upstream)
        try:
            token = token_for(short, A, d.url + "/mcp")
            assert stateless_call(d, token, "a__add", {"a": 1, "b": 2}).status_code == 200
            exp = json.loads(_b64(token.split(".")[1]))["exp"]
            while time.time() < exp + 6:  # past exp and the 5 s leeway (a bound, not a timing claim)
                time.sleep(0.5)
            r = stateless_call(d, token, "a__add", {"a": 1, "b": 2})
            assert r.status_code == 401 and "expired" in r.json()["error"]["message"], r.text
        finally:
            d.stop()


def test_a_missing_scope_is_a_403_naming_it(tmp_path: Path, op: OidcProvider, upstream: Upstream) -> None:
    d = start(tmp_path / "state", op, upstream, "--oauth-scopes", "mcp:tools")
    try:
        narrow = token_for(op, A, d.url + "/mcp", scope="mcp:read")
        r = stateless_call(d, narrow, "a__add", {"a": 1, "b": 2})
        assert r.status_code == 403, r.text
        challenge = r.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="mcp:tools"' in challenge, challenge
        assert "mcp:tools" in r.json()["error"]["message"]
        ok = token_for(op, A, d.url + "/mcp", scope="mcp:tools")
        assert stateless_call(d, ok, "a__add", {"a": 1, "b": 2}).status_code == 200
    finally:
        d.stop()


def test_keys_rotated_in_are_fetched_and_retired_keys_refused(tmp_path: Path, upstream: Upstream) -> None:
    old_key = new_signing_key("old")
    with run_oidc_provider(tmp_path / "rot", clients=[A], keys=[old_key]) as rot:
        d = start(tmp_path / "state", rot, upstream)
        try:
            old = token_for(rot, A, d.url + "/mcp")
            assert stateless_call(d, old, "a__add", {"a": 1, "b": 2}).status_code == 200  # the key set is cached
            rot.restart(new_keys=[new_signing_key("new")])  # the old key is retired
            new = token_for(rot, A, d.url + "/mcp")
            r = stateless_call(d, new, "a__add", {"a": 1, "b": 2})  # an unknown kid: the set is fetched again
            assert r.status_code == 200, r.text
            fresh = start(tmp_path / "state2", rot, upstream)  # a daemon that never trusted the old token
            try:
                r = stateless_call(fresh, old, "a__add", {"a": 1, "b": 2})
                assert r.status_code == 401 and "does not publish" in r.json()["error"]["message"], r.text
            finally:
                fresh.stop()
        finally:
            d.stop()


def test_a_session_belongs_to_its_principal(d: DaemonProc, op: OidcProvider) -> None:
    mine, theirs = token_for(op, A, d.url + "/mcp"), token_for(op, B, d.url + "/mcp")
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "a", "version": "1"}}}
    r = post(d, mine, init)
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    session = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert post(d, mine, ping, **session).status_code == 200
    r = post(d, theirs, ping, **session)  # another principal with this session's id
    assert r.status_code == 404, r.text
    r = httpx.delete(d.mcp_url, headers={"Authorization": f"Bearer {theirs}", **session}, timeout=GUARD)
    assert r.status_code == 404, r.text
    assert post(d, mine, ping, **session).status_code == 200  # still the owner's


def test_request_state_belongs_to_its_principal(d: DaemonProc, op: OidcProvider) -> None:
    mine, theirs = token_for(op, A, d.url + "/mcp"), token_for(op, B, d.url + "/mcp")
    r = stateless_call(d, mine, "a__sample", {"prompt": "hi"})
    result = r.json()["result"]
    assert result.get("resultType") == "input_required", result
    answer = {"requestState": result["requestState"],
              "inputResponses": {k: {"role": "assistant", "content": {"type": "text", "text": "x"}, "model": "m"}
                                 for k in result["inputRequests"]}}
    r = stateless_call(d, theirs, "a__sample", {"prompt": "hi"}, answer)
    assert r.json()["error"]["code"] == -32602 and "another principal" in r.json()["error"]["message"], r.text
    r = stateless_call(d, mine, "a__sample", {"prompt": "hi"}, answer)
    assert r.json()["result"]["content"][0]["text"] == "model said: x", r.text


def test_a_session_stays_bound_to_its_principal_on_every_replica(tmp_path: Path, op: OidcProvider,
                                                                 upstream: Upstream) -> None:
    """Two replicas on one Redis: the session's record carries its principal, so the replica that
    adopts it serves its owner and nobody else."""
    with RedisServer(tmp_path / "redis") as redis:
        r1 = start(tmp_path / "r1", op, upstream, "--store", redis.url, "--replica", "r1")
        r2 = DaemonProc(tmp_path / "r2", args=["--oauth-issuer", op.issuer, "--store", redis.url, "--replica", "r2",
                                               "--oauth-audience", r1.url + "/mcp"], token=ADMIN).start()
        try:
            r2.wait_state("a", "RUNNING")
            # One resource for the cluster: r1's own URL stands for the balancer's here.
            mine, theirs = token_for(op, A, r1.url + "/mcp"), token_for(op, B, r1.url + "/mcp")
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "a", "version": "1"}}}
            r = post(r1, mine, init)
            assert r.status_code == 200, r.text
            session = {"Mcp-Session-Id": r.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
            ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
            assert post(r2, theirs, ping, **session).status_code == 404  # adopted for nobody but its owner
            assert post(r2, mine, ping, **session).status_code == 200  # adopted on r2, for its owner
            assert post(r2, theirs, ping, **session).status_code == 404
        finally:
            r2.stop()
            r1.stop()


def test_the_downstream_token_never_reaches_the_upstream(d: DaemonProc, op: OidcProvider) -> None:
    token = token_for(op, A, d.url + "/mcp")
    assert stateless_call(d, token, "a__echo", {"text": "x"}).status_code == 200
    seen = json.loads(stateless_call(d, token, "a__stats", {}).json()["result"]["content"][0]["text"])
    assert not any(token in h for h in seen["authorization"]), "the client's token was passed upstream"


def test_a_bad_issuer_setting_stops_the_daemon_with_a_message(tmp_path: Path) -> None:
    for value, says in (("http://auth.example.com", "must use https"), ("auth.example.com", "absolute http(s) URL"),
                        ("https://auth.example.com/#x", "without a fragment")):
        r = run_daemon_expect_exit(tmp_path / "s", "--oauth-issuer", value)
        assert r.returncode == 2 and "oauth_issuer" in r.stderr and says in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def _b64(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
