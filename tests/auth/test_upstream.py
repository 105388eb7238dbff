"""The gateway as the OAuth client of a protected remote MCP server (``authRef: "oauth"``), against a
real authorization server (``oidc-provider``), a real upstream protected by the official ``mcp`` SDK's
own auth support (``tests/upstreams/protected_server.py``: it records every Authorization header it
receives), real daemons, the SDK client in both eras, and a headless browser for the sign-in.

Covered: a service waiting for its sign-in (STOPPED, UNAUTHORIZED, the command in its reason and in
a call's isError); discovery from the upstream's 401, dynamic registration, the authorization URL
(PKCE S256, resource, state, the daemon's callback), the browser's sign-in and consent, calls in both
client eras; the sign-in kept across a daemon restart; refresh after expiry (short-lived tokens);
a revoked refresh token -> UNAUTHORIZED with the command to run; sign-out; the client-credentials
grant; callbacks that must be refused (unknown state, RFC 9207 issuer mix-up, an error answer); the
downstream client's token never reaching the upstream; no token or secret in any output.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.browser import launch_chromium
from tests.support.daemon import DaemonProc, run_cli
from tests.support.foundation import events
from tests.support.mcpclient import GUARD, text_of
from tests.support.oauth import OidcProvider, browser_login, run_oidc_provider
from tests.support.protected import ProtectedServer, run_protected_server
from tests.support.redisserver import RedisServer
from tests.support.upstream import free_port

ACCESS_TTL = 6  # seconds: short, so that refreshes happen within a test
M2M_SECRET = "m2m-secret-0123456789abcdef-XYZ"
M2M = {"client_id": "gateway-m2m", "client_secret": M2M_SECRET, "grant_types": ["client_credentials"],
       "redirect_uris": [], "response_types": []}
DOWN = {"client_id": "agent-down", "client_secret": "agent-down-secret-0123456789", "grant_types": ["client_credentials"],
        "redirect_uris": [], "response_types": []}
S = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": S, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "oauth-upstream-test", "version": "1"}}


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), access_ttl=ACCESS_TTL, clients=[M2M, DOWN]) as provider:
        yield provider


@pytest.fixture(scope="module")
def up(op: OidcProvider, port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtectedServer]:
    with run_protected_server(op.issuer, tmp_path_factory.mktemp("protected"), port=port) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


def oauth_manifest(name: str, url: str, **oauth: Any) -> dict[str, Any]:
    origin: dict[str, Any] = {"type": "remote_mcp", "url": url, "authRef": "oauth"}
    if oauth:
        origin["oauth"] = oauth
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name}, "spec": {"origin": origin}}


def add(d: DaemonProc, name: str, url: str, **oauth: Any) -> None:
    r = d.api("POST", "/api/services", json=oauth_manifest(name, url, **oauth))
    assert r.status_code in (200, 201), r.text


def waiting(d: DaemonProc, name: str) -> dict[str, Any]:
    """The service once it waits for a sign-in."""
    return d.wait_for(lambda: (s := d.service(name))["health"] == "UNAUTHORIZED" and s["state"] == "STOPPED" and s,
                      what=f"{name} waiting for a sign-in")  # type: ignore[no-any-return]


def sign_in(d: DaemonProc, name: str, browser: Any, username: str = "alice") -> dict[str, Any]:
    """``runtimectl auth login``'s API, then the browser on the provider's pages; the daemon's callback
    completes it. Returns the query of the authorization URL."""
    r = d.api("POST", f"/api/services/{name}/auth/login", json={})
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    landed = browser_login(url, username=username, browser=browser)
    assert urlsplit(landed).path == "/oauth/callback", landed
    d.wait_state(name, "RUNNING", timeout=30)
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def service_id(d: DaemonProc, name: str) -> str:
    return str(d.service(name)["id"])


def record(d: DaemonProc, name: str) -> dict[str, Any]:
    """The sign-in record as kept in the state dir (the test reads the tokens from there)."""
    return json.loads((d.state_dir / "oauth" / f"{service_id(d, name)}.json").read_text())  # type: ignore[no-any-return]


def stateless_call(d: DaemonProc, name: str, arguments: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": name}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = httpx.post(d.mcp_url, headers=headers, timeout=GUARD, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments, "_meta": META}})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def whoami(d: DaemonProc, tool: str, mode: str, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (httpx2.AsyncClient(headers=headers) as http,
                Client(streamable_http_client(d.mcp_url, http_client=http), mode=mode, cache=None) as c):
        r = await asyncio.wait_for(c.call_tool(tool, {}), GUARD)
        assert not r.is_error, text_of(r)
        return json.loads(text_of(r))  # type: ignore[no-any-return]


def run(coro: Any) -> Any:
    """Run ``coro`` on a loop of its own thread (the browser's sync API holds a loop in this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def everything_shown(d: DaemonProc, name: str) -> str:
    """Every output a user, a log reader or a page visitor sees: API answers, events, call records, the
    page's fragments, the daemon's and the service's logs, and the state dir's files but the sign-ins."""
    parts = [d.log()]
    for path in ("/api/services", f"/api/services/{name}", f"/api/services/{name}/auth", "/api/events?limit=2000",
                 "/api/audit?limit=2000", "/api/status", "/status", f"/status/services/{name}",
                 *(f"/api/ui/services/{name}/{part}" for part in ("summary", "interface", "calls", "logs", "events"))):
        parts.append(d.api("GET", path).text)
    for p in d.state_dir.rglob("*"):
        if p.is_file() and "oauth" not in p.parts and p.suffix in (".json", ".jsonl", ".log", ""):
            parts.append(p.read_text(errors="replace"))
    return "\n".join(parts)


@pytest.fixture
def d(tmp_path: Path) -> Iterator[DaemonProc]:
    daemon = DaemonProc(tmp_path / "state", env={"M2M_SECRET": M2M_SECRET}).start()
    try:
        yield daemon
    finally:
        daemon.stop()


# -- the authorization-code flow ---------------------------------------------------------------------------
def test_sign_in_from_a_401_then_calls_in_both_eras_and_refresh(d: DaemonProc, op: OidcProvider, up: ProtectedServer,
                                                                browser: Any, tmp_path: Path) -> None:
    add(d, "notes", up.url)
    svc = waiting(d, "notes")
    assert "runtimectl auth login notes" in svc["stateReason"], svc
    status = d.api("GET", "/api/services/notes/auth").json()
    assert status["state"] == "signed-out" and status["login"] == "runtimectl auth login notes", status
    # A call meanwhile says what to do (the service is not running: the gateway says why); so does doctor.
    out = stateless_call(d, "notes__whoami", {})
    assert "runtimectl auth login notes" in json.dumps(out), out
    page = d.api("GET", "/api/ui/services/notes/summary").text
    assert 'data-signin="signed-out"' in page and "runtimectl auth login notes" in page, page
    doctor = run_cli(d, "doctor")
    assert "waiting for a sign-in" in doctor.stdout and "→ runtimectl auth login notes" in doctor.stdout, doctor.stdout

    query = sign_in(d, "notes", browser)
    # The authorization request: PKCE S256, the upstream as the resource, the daemon's callback, a state.
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43, query
    assert query["resource"] == up.url and query["redirect_uri"] == d.url + "/oauth/callback", query
    assert query["response_type"] == "code" and len(query["state"]) >= 32 and query["scope"] == "mcp:tools", query
    status = d.api("GET", "/api/services/notes/auth").json()
    assert status["signedIn"] and status["issuer"] == op.issuer and status["registration"] == "dcr", status
    assert status["clientId"] == query["client_id"] and status["refreshable"], status
    page = d.api("GET", "/api/ui/services/notes/summary").text
    assert 'data-signin="signed-in"' in page and op.issuer in page, page
    # The upstream's 401 led to discovery (an unauthenticated request came first).
    assert None in up.authorizations()

    # Calls in both client eras reach the upstream as the signed-in user.
    for mode in ("legacy", "auto"):
        me = run(whoami(d, "notes__whoami", mode))
        assert me["sub"] == "alice" and me["client_id"] == status["clientId"] and me["aud"] in (up.url, [up.url]), me

    kept = record(d, "notes")
    path = d.state_dir / "oauth" / f"{service_id(d, 'notes')}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = kept["tokens"]["access_token"]
    assert up.bearer_tokens()[-1] == first

    # After the access token expires, the next call refreshes it first (the refresh token rotates).
    time.sleep(ACCESS_TTL + 1)
    out = stateless_call(d, "notes__whoami", {})
    assert not out["result"].get("isError"), out
    renewed = record(d, "notes")["tokens"]
    assert renewed["access_token"] != first and renewed["refresh_token"] != kept["tokens"]["refresh_token"]
    assert up.bearer_tokens()[-1] == renewed["access_token"]
    assert "refreshed the OAuth access token" in d.api("GET", "/api/services/notes/logs").text

    # An upstream that echoes the token it received (its `received` tool) has it masked on the way back.
    echoed = json.dumps(stateless_call(d, "notes__received", {}))
    assert renewed["access_token"] not in echoed and "Bearer [secret]" in echoed, echoed[:500]

    # No token, code or verifier anywhere a user can see.
    shown = everything_shown(d, "notes")
    for secret in (first, renewed["access_token"], renewed["refresh_token"], kept["tokens"]["refresh_token"]):
        assert secret not in shown

    # The sign-in outlives the daemon.
    d.stop()
    d.start()
    d.wait_state("notes", "RUNNING", timeout=30)
    assert not stateless_call(d, "notes__whoami", {})["result"].get("isError")


def test_a_revoked_refresh_token_asks_for_a_new_sign_in(d: DaemonProc, op: OidcProvider, up: ProtectedServer,
                                                         browser: Any) -> None:
    add(d, "notes", up.url)
    waiting(d, "notes")
    sign_in(d, "notes", browser, username="bob")
    tokens = record(d, "notes")["tokens"]
    client = {"client_id": record(d, "notes")["client"]["client_id"], "token_endpoint_auth_method": "none"}
    op.revoke(tokens["refresh_token"], client, "refresh_token")
    time.sleep(max(0.0, tokens["expires_at"] - time.time()) + 1)
    out = stateless_call(d, "notes__whoami", {})
    result = out["result"]
    assert result.get("isError"), out
    text = result["content"][0]["text"]
    assert "invalid_grant" in text and "runtimectl auth login notes" in text, text
    svc = waiting(d, "notes")
    assert "runtimectl auth login notes" in svc["healthDetail"], svc
    assert any(e["type"] == "auth.signed_out" for e in events(d, "notes"))
    status = d.api("GET", "/api/services/notes/auth").json()
    assert status["state"] == "signed-out" and "invalid_grant" in status["reason"], status
    # A new sign-in brings it back.
    sign_in(d, "notes", browser, username="bob")
    assert run(whoami(d, "notes__whoami", "auto"))["sub"] == "bob"


def test_sign_out_revokes_and_waits(d: DaemonProc, up: ProtectedServer, browser: Any) -> None:
    add(d, "notes", up.url)
    waiting(d, "notes")
    sign_in(d, "notes", browser)
    r = d.api("DELETE", "/api/services/notes/auth", json={})
    assert r.status_code == 200 and r.json()["revoked"] is True and r.json()["state"] == "signed-out", r.text
    waiting(d, "notes")
    assert "tokens" not in record(d, "notes")


def test_callbacks_that_are_refused(d: DaemonProc, op: OidcProvider, up: ProtectedServer) -> None:
    add(d, "notes", up.url)
    waiting(d, "notes")
    cb = d.url + "/oauth/callback"
    r = httpx.get(cb, params={"code": "x", "state": "not-a-state-of-this-daemon"}, timeout=GUARD)
    assert r.status_code == 400 and "unknown or expired" in r.text, r.text
    r = httpx.get(cb, params={"code": "x"}, timeout=GUARD)
    assert r.status_code == 400 and "no state" in r.text, r.text

    def started() -> str:
        url = d.api("POST", "/api/services/notes/auth/login", json={}).json()["url"]
        return parse_qs(urlsplit(url).query)["state"][0]

    # RFC 9207: a response naming another issuer is a mix-up: refused, and the state is spent.
    state = started()
    r = httpx.get(cb, params={"code": "x", "state": state, "iss": "http://127.0.0.1:1/evil"}, timeout=GUARD)
    assert r.status_code == 400 and "RFC 9207" in r.text, r.text
    r = httpx.get(cb, params={"code": "x", "state": state, "iss": op.issuer}, timeout=GUARD)
    assert r.status_code == 400 and "unknown or expired" in r.text, r.text
    # oidc-provider says it sends iss (authorization_response_iss_parameter_supported): a response without it is refused.
    r = httpx.get(cb, params={"code": "x", "state": started()}, timeout=GUARD)
    assert r.status_code == 400 and "no iss" in r.text, r.text
    # The server's error answer is shown, not a traceback.
    r = httpx.get(cb, params={"error": "access_denied", "error_description": "the user said no", "state": started()},
                  timeout=GUARD)
    assert r.status_code == 400 and "access_denied" in r.text and "the user said no" in r.text, r.text
    waiting(d, "notes")


# -- client credentials ----------------------------------------------------------------------------------
def test_client_credentials_need_no_user(d: DaemonProc, up: ProtectedServer) -> None:
    add(d, "m2m", up.url, grant="client_credentials", clientId=M2M["client_id"], clientSecretRef="env:M2M_SECRET")
    d.wait_state("m2m", "RUNNING", timeout=30)
    me = run(whoami(d, "m2m__whoami", "legacy"))
    assert me["client_id"] == M2M["client_id"], me
    status = d.api("GET", "/api/services/m2m/auth").json()
    assert status["grant"] == "client_credentials" and status["registration"] == "configured" and status["signedIn"]
    time.sleep(ACCESS_TTL + 1)  # expired: a new token is got before the next call
    first = record(d, "m2m")["tokens"]["access_token"]
    assert run(whoami(d, "m2m__whoami", "auto"))["client_id"] == M2M["client_id"]
    assert record(d, "m2m")["tokens"]["access_token"] != first
    shown = everything_shown(d, "m2m")
    assert M2M_SECRET not in shown and first not in shown


def test_a_wrong_client_secret_is_a_clear_error(tmp_path: Path, up: ProtectedServer) -> None:
    with DaemonProc(tmp_path / "state", env={"M2M_SECRET": "not-the-secret-0123456789"}) as d:
        add(d, "m2m", up.url, grant="client_credentials", clientId=M2M["client_id"], clientSecretRef="env:M2M_SECRET")
        svc = waiting(d, "m2m")
        assert "client credentials" in svc["stateReason"] and "invalid_client" in svc["stateReason"], svc
        assert "not-the-secret" not in everything_shown(d, "m2m")


# -- no token passthrough ------------------------------------------------------------------------------------
def test_the_downstream_token_never_reaches_the_upstream(tmp_path: Path, op: OidcProvider, up: ProtectedServer) -> None:
    with DaemonProc(tmp_path / "state", args=["--oauth-issuer", op.issuer],
                    env={"M2M_SECRET": M2M_SECRET}) as d:
        r = httpx.post(d.url + "/api/services", json=oauth_manifest(
            "m2m", up.url, grant="client_credentials", clientId=M2M["client_id"], clientSecretRef="env:M2M_SECRET"),
            timeout=GUARD)
        assert r.status_code in (200, 201), r.text
        d.wait_state("m2m", "RUNNING", timeout=30)
        downstream = str(op.client_credentials_token(DOWN["client_id"], DOWN["client_secret"], d.url + "/mcp")["access_token"])
        before = len(up.records())
        for mode in ("legacy", "auto"):
            me = run(whoami(d, "m2m__whoami", mode, token=downstream))
            assert me["client_id"] == M2M["client_id"], me  # the gateway's own identity upstream
        received = [rec["authorization"] for rec in up.records()[before:]]
        assert received and all(a and downstream not in a for a in received), received
        assert all(a == f"Bearer {record(d, 'm2m')['tokens']['access_token']}" for a in received if a)


def test_an_oauth_service_shows_no_secret_in_its_manifest(d: DaemonProc, up: ProtectedServer) -> None:
    add(d, "m2m", up.url, grant="client_credentials", clientId=M2M["client_id"], clientSecretRef="env:M2M_SECRET")
    detail = d.service("m2m")
    origin = detail["origin"]
    assert origin["authRef"] == "oauth" and origin["oauth"]["clientSecretRef"] == "env:M2M_SECRET", origin
    assert os.environ.get("M2M_SECRET") is None  # the secret lives in the daemon's environment only


# -- several replicas --------------------------------------------------------------------------------------
def test_a_sign_in_on_one_replica_serves_every_replica(tmp_path: Path, up: ProtectedServer, browser: Any) -> None:
    """Two replicas on one Redis: the sign-in begun on r2 completes at r1's callback (r2's public_url
    names r1, as a balancer's would), and both call with the kept tokens."""
    with RedisServer(tmp_path / "redis") as redis:
        r1 = DaemonProc(tmp_path / "r1", args=["--store", redis.url, "--replica", "r1"]).start()
        r2 = DaemonProc(tmp_path / "r2", args=["--store", redis.url, "--replica", "r2", "--public-url", r1.url]).start()
        try:
            add(r1, "notes", up.url)
            waiting(r1, "notes")
            waiting(r2, "notes")
            url = r2.api("POST", "/api/services/notes/auth/login", json={}).json()["url"]
            assert parse_qs(urlsplit(url).query)["redirect_uri"] == [r1.url + "/oauth/callback"]
            browser_login(url, username="carol", browser=browser)
            for r in (r1, r2):
                r.wait_state("notes", "RUNNING", timeout=30)
                assert run(whoami(r, "notes__whoami", "auto"))["sub"] == "carol"
            assert not (r1.state_dir / "oauth").exists()  # kept in Redis, not in a replica's files
        finally:
            r2.stop()
            r1.stop()
