"""``runtimed.auth.metadata`` against real servers: the protected upstream written with the official
``mcp`` SDK (its Protected Resource Metadata, found from its 401 and at the well-known path when no
challenge names it) and ``oidc-provider`` (RFC 8414, and OpenID discovery when RFC 8414 is not
served); documents that must be refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtimed.auth.metadata import authorization_server, parse_challenge, protected_resource
from runtimed.errors import OAuthError
from tests.support.oauth import OidcProvider, run_oidc_provider
from tests.support.protected import ProtectedServer, run_protected_server


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), no_rfc8414=True) as provider:
        yield provider


@pytest.fixture(scope="module")
def up(op: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtectedServer]:
    with run_protected_server(op.issuer, tmp_path_factory.mktemp("protected")) as server:
        yield server


def run(coro):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with httpx.AsyncClient(timeout=10) as http:
            return await coro(http)
    return asyncio.run(go())


def test_the_challenge_of_a_real_401_names_the_metadata(up: ProtectedServer) -> None:
    r = httpx.post(up.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10,
                   headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401
    challenge = parse_challenge(r.headers["www-authenticate"])
    assert challenge["resource_metadata"] == up.metadata_url and challenge["error"] == "invalid_token", challenge
    assert parse_challenge('Basic realm="x"') == {}
    assert parse_challenge('Bearer scope="a b", resource_metadata="https://x/y\\"z"') == {
        "scope": "a b", "resource_metadata": 'https://x/y"z'}


def test_protected_resource_metadata_from_the_401_or_the_well_known_path(up: ProtectedServer, op: OidcProvider) -> None:
    named = run(lambda http: protected_resource(http, up.url, up.metadata_url))
    found = run(lambda http: protected_resource(http, up.url, None))  # path-inserted well-known, then the root
    assert named == found and found["authorization_servers"] == [op.issuer], found
    # Metadata for another resource is refused (RFC 9728 §3.3).
    with pytest.raises(OAuthError, match="RFC 9728"):
        run(lambda http: protected_resource(http, up.url.replace("/mcp", "/other"), up.metadata_url))
    # A server with none says so.
    with pytest.raises(OAuthError, match="publishes no protected resource metadata"):
        run(lambda http: protected_resource(http, op.issuer + "/mcp", None))


def test_authorization_server_metadata_falls_back_to_openid_discovery(op: OidcProvider) -> None:
    assert httpx.get(op.issuer + "/.well-known/oauth-authorization-server", timeout=10).status_code == 404
    doc = run(lambda http: authorization_server(http, op.issuer))
    assert doc["issuer"] == op.issuer and doc["token_endpoint"].startswith(op.issuer), doc
    # The issuer a document names must be exactly the one asked for (RFC 8414 §3.3).
    with pytest.raises(OAuthError, match="RFC 8414"):
        run(lambda http: authorization_server(http, op.issuer + "/"))
    with pytest.raises(OAuthError, match="must use https"):
        run(lambda http: authorization_server(http, "http://auth.example.com"))


def test_no_metadata_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OAuthError, match=r"cannot be reached|no authorization server metadata"):
        run(lambda http: authorization_server(http, "http://127.0.0.1:9"))
