"""The OAuth-protected upstream (``tests/upstreams/protected_server.py``, started by
``tests/support/protected.py``) against the real authorization server (``oidc-provider``,
``tests/support/oauth.py``), spoken to directly with raw HTTP and the official SDK client, without
the gateway: proof that it protects itself the way the gateway's OAuth client will meet it.

Covered: the 401 challenge naming the Protected Resource Metadata, and that document naming the
issuer; tokens refused for another resource, for another issuer, when not a JWT, after expiry
(403 without the required scope); a client-credentials token and a browser-login token accepted,
``whoami`` called in both protocol eras; a key the issuer rotated in fetched again; the record of
every request with the ``Authorization`` header exactly as received.

Waits are for the clock to pass a token's ``exp``; nothing asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
import base64
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

from tests.support.browser import launch_chromium
from tests.support.mcpclient import GUARD, text_of
from tests.support.oauth import OidcProvider, new_signing_key, require_oidc_provider, run_oidc_provider
from tests.support.protected import ProtectedServer, protected_url, run_protected_server
from tests.support.upstream import free_port

SVC: dict[str, Any] = {"client_id": "m2m", "client_secret": "m2m-secret-0123456789abcdef", "grant_types": ["client_credentials"],
       "redirect_uris": [], "response_types": []}
OTHER = "http://127.0.0.1:9/mcp"  # another resource the provider serves tokens for
S = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": S, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "protected-test", "version": "1"}}
CHALLENGE = 'Bearer error="invalid_token", error_description="Authentication required", resource_metadata="{}"'


def claims_of(token: str, index: int = 1) -> dict[str, Any]:
    """A JWT's payload (``index=0``: its header), unverified."""
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def token_for(op: OidcProvider, resource: str, scope: str = "mcp:tools") -> str:
    return str(op.client_credentials_token(SVC["client_id"], SVC["client_secret"], resource, scope)["access_token"])


def call(up: ProtectedServer, token: str | None, name: str = "echo", arguments: dict[str, Any] | None = None) -> httpx.Response:
    """A stateless-era tools/call over raw HTTP (``token`` None: no Authorization header)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": name}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": arguments if arguments is not None else {"text": "hi"}, "_meta": META}}
    return httpx.post(up.url, headers=headers, json=body, timeout=GUARD)


def assert_refused(r: httpx.Response, up: ProtectedServer) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == CHALLENGE.format(up.metadata_url)
    assert r.json() == {"error": "invalid_token", "error_description": "Authentication required"}


async def whoami(url: str, token: str, mode: str) -> dict[str, Any]:
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as c):
        r = await asyncio.wait_for(c.call_tool("whoami", {}), GUARD)
        assert not r.is_error, r
        echoed = await asyncio.wait_for(c.call_tool("echo", {"text": f"hello {mode}"}), GUARD)
        assert text_of(echoed) == f"hello {mode}"
        return dict(json.loads(text_of(r)))


def wait_past(exp: int) -> None:
    """Sleep until the clock is past ``exp`` (seconds since the epoch)."""
    while time.time() <= exp:
        time.sleep(min(0.25, max(0.01, exp + 0.05 - time.time())))


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[OidcProvider]:
    require_oidc_provider()
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), clients=[SVC], resources=[protected_url(port), OTHER]) as provider:
        yield provider


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, op: OidcProvider, port: int) -> Iterator[ProtectedServer]:
    with run_protected_server(op.issuer, tmp_path_factory.mktemp("protected"), port=port) as server:
        yield server


def test_without_a_token_the_challenge_names_the_metadata_and_the_issuer(up: ProtectedServer, op: OidcProvider) -> None:
    r = call(up, None)
    assert_refused(r, up)
    metadata_url = r.headers["www-authenticate"].split('resource_metadata="', 1)[1].split('"', 1)[0]
    assert metadata_url == f"{up.base_url}/.well-known/oauth-protected-resource/mcp"
    meta = httpx.get(metadata_url, timeout=GUARD)
    assert meta.status_code == 200, meta.text
    assert meta.json() == {"resource": up.url, "authorization_servers": [op.issuer], "scopes_supported": ["mcp:tools"],
                           "bearer_methods_supported": ["header"]}
    # the SDK serves only the path-inserted form (RFC 9728 §3.1), not the bare well-known path
    assert httpx.get(up.base_url + "/.well-known/oauth-protected-resource", timeout=GUARD).status_code == 404
    # a session-era initialize is refused the same way
    init = httpx.post(up.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers={"Accept": "application/json, text/event-stream"}, timeout=GUARD)
    assert_refused(init, up)
    seen = [(x["method"], x["path"], x["authorization"]) for x in up.records()]
    assert ("POST", "/mcp", None) in seen and ("GET", "/.well-known/oauth-protected-resource/mcp", None) in seen


def test_tokens_not_for_this_server_are_refused(up: ProtectedServer, op: OidcProvider, tmp_path: Path) -> None:
    other_audience = token_for(op, OTHER)
    assert claims_of(other_audience)["aud"] == OTHER
    assert_refused(call(up, other_audience), up)
    assert "token refused: InvalidClaimError" in up.log() and "aud" in up.log()
    assert_refused(call(up, "not-a-jwt"), up)
    assert_refused(call(up, other_audience.rsplit(".", 1)[0] + ".AAAA"), up)  # a broken signature
    with run_oidc_provider(tmp_path, clients=[SVC]) as other_issuer:  # right audience, another issuer's key
        foreign = token_for(other_issuer, up.url)
    assert claims_of(foreign)["aud"] == up.url
    assert_refused(call(up, foreign), up)
    # the refused tokens reached the server exactly as sent (and only the server's log says why)
    assert f"Bearer {other_audience}" in up.authorizations() and f"Bearer {foreign}" in up.authorizations()
    assert other_audience not in up.log()


def test_a_token_without_the_required_scope_gets_403(up: ProtectedServer, op: OidcProvider) -> None:
    token = token_for(op, up.url, scope="mcp:read")
    assert claims_of(token)["scope"] == "mcp:read"
    r = call(up, token)
    assert r.status_code == 403, r.text
    assert r.headers["www-authenticate"] == ('Bearer error="insufficient_scope", error_description="Required scope: '
                                             f'mcp:tools", resource_metadata="{up.metadata_url}"')


async def test_a_client_credentials_token_calls_whoami_in_both_eras(up: ProtectedServer, op: OidcProvider) -> None:
    token = token_for(op, up.url, scope="mcp:tools mcp:read")
    before = len(up.records())
    for mode in ("legacy", "auto"):
        who = await whoami(up.url, token, mode)
        assert who == {"sub": SVC["client_id"], "client_id": SVC["client_id"], "scopes": ["mcp:tools", "mcp:read"],
                       "iss": op.issuer, "aud": up.url}, who
    mine = up.records()[before:]
    assert mine and all(x["path"] == "/mcp" and x["authorization"] == f"Bearer {token}" for x in mine), mine
    eras = {x["mcp_protocol_version"] for x in mine}
    assert {"2025-11-25", S} <= eras, eras  # a session in one, stateless requests in the other
    assert any(x["mcp_session_id"] for x in mine if x["mcp_protocol_version"] == "2025-11-25")
    assert not any(x["mcp_session_id"] for x in mine if x["mcp_protocol_version"] == S)
    # the received tool tells the same story over MCP
    r = call(up, token, "received", {})
    assert r.status_code == 200, r.text
    body = r.json() if r.headers["content-type"].startswith("application/json") else _sse_json(r.text)
    received = json.loads(body["result"]["content"][0]["text"])
    assert received[-1] == {"method": "POST", "path": "/mcp", "authorization": f"Bearer {token}",
                            "mcp_protocol_version": S, "mcp_session_id": None}
    assert up.bearer_tokens()[-1] == token


def test_a_token_from_a_browser_login_names_the_user(up: ProtectedServer, op: OidcProvider) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"  # nothing listens: the redirect is still seen
    client = op.register_client(redirect_uris=[redirect], token_endpoint_auth_method="none")
    with launch_chromium() as browser:  # (Playwright's sync API: outside any event loop)
        tokens = op.login(client, redirect, resource=up.url, scope="mcp:tools", username="carol", browser=browser)
    who = asyncio.run(whoami(up.url, tokens["access_token"], "auto"))
    assert who["sub"] == "carol" and who["client_id"] == client["client_id"] and who["scopes"] == ["mcp:tools"], who


def test_an_expired_token_is_refused(tmp_path: Path) -> None:
    port = free_port()
    with (run_oidc_provider(tmp_path / "oidc", clients=[SVC], access_ttl=2, resources=[protected_url(port)]) as short,
          run_protected_server(short.issuer, tmp_path / "protected", port=port) as server):
        token = token_for(short, server.url)
        claims = claims_of(token)
        assert claims["exp"] - claims["iat"] == 2
        wait_past(claims["exp"])
        assert_refused(call(server, token), server)
        assert "token refused: ExpiredTokenError" in server.log()
        # a fresh token from the same issuer passes, so the refusal was the expiry
        assert call(server, token_for(short, server.url)).status_code == 200


def test_a_key_the_issuer_rotated_in_is_fetched(tmp_path: Path) -> None:
    k1, k2 = new_signing_key("k1"), new_signing_key("k2")
    port = free_port()
    with (run_oidc_provider(tmp_path / "oidc", clients=[SVC], keys=[k1], resources=[protected_url(port)]) as rot,
          run_protected_server(rot.issuer, tmp_path / "protected", port=port) as server):
        assert call(server, token_for(rot, server.url)).status_code == 200  # the JWKS (k1) is now cached
        rot.restart(new_keys=[k2, k1])  # k2 signs from now on
        t2 = token_for(rot, server.url)
        assert claims_of(t2, 0)["kid"] == "k2"
        assert "unknown kid" not in server.log()
        assert call(server, t2).status_code == 200
        assert "unknown kid: fetching the JWKS again" in server.log()


def _sse_json(text: str) -> dict[str, Any]:
    """The JSON-RPC message of a one-event SSE answer."""
    data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return dict(json.loads(data[-1]))
