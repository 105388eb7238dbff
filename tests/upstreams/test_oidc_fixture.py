"""The authorization server the OAuth tests run (``tests/support/oauth.py``: the npm
``oidc-provider`` started by ``tests/thirdparty/oidc_provider.mjs``), spoken to directly, without
the gateway: proof that it does what that module's docstring says.

Discovery, dynamic registration, client credentials with a JWT access token for the requested
resource (verified with joserfc against the published JWKS), a static client from the
environment, introspection and revocation of an opaque token, the authorization-code flow with
PKCE and a resource indicator through a real headless chromium on the provider's login and
consent pages (the redirect reaching a real loopback listener, and reaching nothing), refresh and
its rotation, a revoked refresh token refused, short-lived tokens expiring, key rotation across a
restart, and state kept (or not) across one.

Waits are for the clock to pass a token's ``exp``; nothing asserts how fast anything is.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, InvalidKeyIdError

from tests.support.browser import launch_chromium
from tests.support.oauth import (
    OAuthError,
    OidcProvider,
    browser_login,
    callback_params,
    code_of,
    new_signing_key,
    pkce_pair,
    require_oidc_provider,
    run_oidc_provider,
)
from tests.support.upstream import free_port

RS = "http://127.0.0.1:9/mcp"  # a resource URL: the provider never connects to it
RS_OPAQUE = "http://127.0.0.1:9/opaque-mcp"
RS_OTHER = "http://127.0.0.1:9/other-mcp"
SVC: dict[str, Any] = {"client_id": "svc-m2m", "client_secret": "svc-secret-0123456789abcdef", "grant_types": ["client_credentials"],
       "redirect_uris": [], "response_types": []}


def _part(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or payload (1), unverified."""
    part = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def _header(token: str) -> dict[str, Any]:
    return _part(token, 0)


def _wait_past(exp: int) -> None:
    """Sleep until the clock is past ``exp`` (seconds since the epoch)."""
    while time.time() <= exp:
        time.sleep(min(0.25, max(0.01, exp + 0.05 - time.time())))


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    require_oidc_provider()
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), clients=[SVC], resources=[RS, RS_OPAQUE, RS_OTHER],
                           opaque_resources=[RS_OPAQUE]) as provider:
        yield provider


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_oidc_provider()
    with launch_chromium() as b:
        yield b


class Listener:
    """A loopback HTTP server standing in for a client's redirect target: records each request's path."""

    def __init__(self) -> None:
        seen = self.seen = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = b"signed in"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_discovery_names_what_an_mcp_client_needs(op: OidcProvider) -> None:
    meta = op.discovery()
    assert meta["issuer"] == op.issuer == f"http://127.0.0.1:{op.port}"
    assert meta["registration_endpoint"] == op.issuer + "/reg"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(meta["grant_types_supported"])
    assert meta["introspection_endpoint"] and meta["revocation_endpoint"] and meta["jwks_uri"] == op.jwks_url
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    # RFC 8414's path serves the same document
    assert httpx.get(op.issuer + "/.well-known/oauth-authorization-server").json() == meta
    # the JWKS publishes the public half of the key the harness generated, never the private one
    (key,) = op.jwks()["keys"]
    assert key["kid"] == op.keys[0]["kid"] and key["n"] == op.keys[0]["n"] and "d" not in key


def test_the_rfc8414_path_can_be_hidden(tmp_path: Path) -> None:
    with run_oidc_provider(tmp_path, no_rfc8414=True) as hidden:
        assert httpx.get(hidden.issuer + "/.well-known/oauth-authorization-server").status_code == 404
        assert hidden.discovery()["issuer"] == hidden.issuer


def test_registration_and_client_credentials_give_a_jwt_for_the_resource(op: OidcProvider) -> None:
    client = op.register_client(client_name="m2m", grant_types=["client_credentials"], redirect_uris=[], response_types=[])
    assert client["client_id"] and client["client_secret"] and client["token_endpoint_auth_method"] == "client_secret_basic"
    tokens = op.client_credentials_token(client["client_id"], client["client_secret"], RS, "mcp:tools")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600 and tokens["scope"] == "mcp:tools"
    assert "refresh_token" not in tokens
    token = tokens["access_token"]
    assert _header(token) == {"alg": "RS256", "typ": "at+jwt", "kid": op.keys[0]["kid"]}
    claims = op.verify_jwt(token, audience=RS)
    assert claims["iss"] == op.issuer and claims["aud"] == RS
    assert claims["sub"] == claims["client_id"] == client["client_id"] and claims["scope"] == "mcp:tools"
    assert claims["exp"] - claims["iat"] == 3600
    # the verification can fail: another audience, or a token whose payload was changed
    with pytest.raises(InvalidClaimError):
        op.verify_jwt(token, audience=RS_OTHER)
    head, _, sig = token.split(".")
    forged = {**_part(token, 1), "aud": RS_OTHER}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        op.verify_jwt(f"{head}.{forged_payload}.{sig}", audience=RS_OTHER)
    # a scope no resource server knows is dropped; a resource the provider does not serve is refused
    assert op.client_credentials_token(client["client_id"], client["client_secret"], RS, "mcp:read admin")["scope"] == "mcp:read"
    with pytest.raises(OAuthError) as e:
        op.client_credentials_token(client["client_id"], client["client_secret"], "http://127.0.0.1:9/unknown", "mcp:tools")
    assert e.value.error == "invalid_target"
    with pytest.raises(OAuthError) as e:
        op.client_credentials_token(client["client_id"], "wrong-secret", RS, "mcp:tools")
    assert e.value.error == "invalid_client"


def test_a_static_client_introspects_and_revokes_an_opaque_token(op: OidcProvider) -> None:
    tokens = op.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS_OPAQUE, "mcp:tools mcp:read")
    token = tokens["access_token"]
    assert token.count(".") == 0  # opaque, not a JWT
    info = op.introspect(token, SVC)
    assert info["active"] is True and info["aud"] == RS_OPAQUE and info["iss"] == op.issuer
    assert info["client_id"] == SVC["client_id"] and info["scope"] == "mcp:tools mcp:read"
    op.revoke(token, SVC)
    assert op.introspect(token, SVC) == {"active": False}
    # JWT access tokens are not stored: the provider refuses to introspect them
    jwt_token = op.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS, "mcp:tools")["access_token"]
    with pytest.raises(OAuthError) as e:
        op.introspect(jwt_token, SVC)
    assert e.value.error == "unsupported_token_type"


def test_pkce_is_required_even_of_a_confidential_client(op: OidcProvider) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    client = op.register_client(redirect_uris=[redirect])  # client_secret_basic: oidc-provider's default would not ask
    assert client["client_secret"]
    _, challenge = pkce_pair()
    url = op.authorize_url(client, redirect, resource=RS, challenge=challenge, state="s1")
    no_pkce = url.replace("code_challenge_method=S256", "").replace(f"code_challenge={challenge}", "")
    r = httpx.get(no_pkce, follow_redirects=False)
    assert r.status_code == 303
    params = callback_params(r.headers["location"])
    assert r.headers["location"].startswith(redirect)
    assert params["error"] == "invalid_request" and "PKCE" in params["error_description"]
    assert params["iss"] == op.issuer and params["state"] == "s1"


def test_login_in_the_browser_then_refresh_and_revoke(op: OidcProvider, browser: Any) -> None:
    listener = Listener()
    try:
        client = op.register_client(client_name="mcp gateway", redirect_uris=[listener.url], token_endpoint_auth_method="none")
        verifier, challenge = pkce_pair()
        url = op.authorize_url(client, listener.url, resource=RS, scope="mcp:tools mcp:read", challenge=challenge, state="st-1")
        landed = browser_login(url, username="bob", browser=browser)
    finally:
        listener.close()
    params = callback_params(landed)
    assert landed.startswith(listener.url + "?") and set(params) == {"code", "state", "iss"}
    assert params["state"] == "st-1" and params["iss"] == op.issuer
    assert [p.split("?")[0] for p in listener.seen] == ["/callback"]  # the browser delivered it to the listener
    assert callback_params(listener.seen[0]) == params

    # a wrong verifier is refused (and the code stays usable: PKCE is checked first)
    with pytest.raises(OAuthError) as e:
        op.exchange_code(client, params["code"], pkce_pair()[0], listener.url, resource=RS)
    assert e.value.error == "invalid_grant"
    tokens = op.exchange_code(client, params["code"], verifier, listener.url, resource=RS)
    assert tokens["refresh_token"] and tokens["scope"] == "mcp:tools mcp:read"
    claims = op.verify_jwt(tokens["access_token"], audience=RS)
    assert claims["sub"] == "bob" and claims["client_id"] == client["client_id"] and claims["scope"] == "mcp:tools mcp:read"

    # refresh: a new access token and, for a public client, a new refresh token (rotation)
    refreshed = op.refresh(client, tokens["refresh_token"], resource=RS)
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    new_claims = op.verify_jwt(refreshed["access_token"], audience=RS)
    assert new_claims["sub"] == "bob" and new_claims["jti"] != claims["jti"]
    # a narrower scope on refresh
    narrower = op.refresh(client, refreshed["refresh_token"], resource=RS, scope="mcp:read")
    assert op.verify_jwt(narrower["access_token"], audience=RS)["scope"] == "mcp:read"

    # a revoked refresh token is refused
    op.revoke(narrower["refresh_token"], client, "refresh_token")
    with pytest.raises(OAuthError) as e:
        op.refresh(client, narrower["refresh_token"], resource=RS)
    assert e.value.error == "invalid_grant"

    with pytest.raises(OAuthError) as e:  # a code is used once (a replay also revokes what it gave)
        op.exchange_code(client, params["code"], verifier, listener.url, resource=RS)
    assert e.value.error == "invalid_grant"


def test_a_rotated_refresh_token_reused_revokes_the_grant(op: OidcProvider, browser: Any) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"  # nothing listens: the redirect is still seen
    client = op.register_client(redirect_uris=[redirect], token_endpoint_auth_method="none", application_type="native")
    tokens = op.login(client, redirect, resource=RS, browser=browser)
    first = tokens["refresh_token"]
    second = op.refresh(client, first, resource=RS)["refresh_token"]
    with pytest.raises(OAuthError) as e:
        op.refresh(client, first, resource=RS)
    assert e.value.error == "invalid_grant"
    with pytest.raises(OAuthError):  # the reuse revoked the whole grant
        op.refresh(client, second, resource=RS)


def test_a_native_client_may_use_any_loopback_port(op: OidcProvider, browser: Any) -> None:
    client = op.register_client(redirect_uris=["http://127.0.0.1/callback"], token_endpoint_auth_method="none",
                                application_type="native")
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    verifier, challenge = pkce_pair()
    landed = browser_login(op.authorize_url(client, redirect, resource=RS, challenge=challenge), browser=browser)
    assert landed.startswith(redirect + "?")
    assert op.exchange_code(client, code_of(landed), verifier, redirect, resource=RS)["access_token"]
    # a web client's redirect URI must match exactly: the provider shows its error page, no redirect
    web = op.register_client(redirect_uris=["http://127.0.0.1:1/callback"], token_endpoint_auth_method="none")
    with pytest.raises(OAuthError) as e:
        browser_login(op.authorize_url(web, redirect, resource=RS, challenge=challenge), browser=browser)
    assert "redirect_uri" in str(e.value.description)


def test_short_lived_tokens_expire_and_refresh_replaces_them(tmp_path: Path, browser: Any) -> None:
    ttl = 3
    with run_oidc_provider(tmp_path, access_ttl=ttl, clients=[SVC], opaque_resources=[RS_OPAQUE]) as short:
        redirect = f"http://127.0.0.1:{free_port()}/callback"
        client = short.register_client(redirect_uris=[redirect], token_endpoint_auth_method="none")
        tokens = short.login(client, redirect, resource=RS, browser=browser)
        assert tokens["expires_in"] == ttl
        # verified as of its issue time (not the clock: a slow machine may already be past its exp)
        claims = short.verify_jwt(tokens["access_token"], audience=RS, now=_part(tokens["access_token"], 1)["iat"])
        assert claims["exp"] - claims["iat"] == ttl
        opaque = short.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS_OPAQUE, "mcp:tools")
        assert opaque["expires_in"] == ttl
        _wait_past(max(claims["exp"], claims["iat"] + opaque["expires_in"]))
        with pytest.raises(ExpiredTokenError):
            short.verify_jwt(tokens["access_token"], audience=RS)
        assert short.introspect(opaque["access_token"], SVC) == {"active": False}
        # the refresh token outlives it
        refreshed = short.refresh(client, tokens["refresh_token"], resource=RS)
        new_claims = short.verify_jwt(refreshed["access_token"], audience=RS, now=claims["exp"] + 1)
        assert new_claims["exp"] > claims["exp"] and new_claims["sub"] == "alice"


def test_key_rotation_across_restarts(tmp_path: Path) -> None:
    k1, k2, k3 = new_signing_key("k1"), new_signing_key("k2"), new_signing_key("k3")
    with run_oidc_provider(tmp_path, keys=[k1], clients=[SVC]) as rot:
        dynamic = rot.register_client(grant_types=["client_credentials"], redirect_uris=[], response_types=[])
        t1 = rot.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS)["access_token"]
        assert _header(t1)["kid"] == "k1"
        old_jwks = rot.jwks()
        rot.verify_jwt(t1, audience=RS)

        rot.restart(new_keys=[k2])  # k1 retired: its tokens no longer verify against the new JWKS
        assert [k["kid"] for k in rot.jwks()["keys"]] == ["k2"]
        with pytest.raises(InvalidKeyIdError):  # no key with kid k1 any more
            rot.verify_jwt(t1, audience=RS)
        rot.verify_jwt(t1, audience=RS, jwks=old_jwks)  # (while the old key set still verifies it)
        t2 = rot.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS)["access_token"]
        assert _header(t2)["kid"] == "k2"
        rot.verify_jwt(t2, audience=RS)
        with pytest.raises(InvalidKeyIdError):
            rot.verify_jwt(t2, audience=RS, jwks=old_jwks)
        # the dynamically registered client survived the restart (state file)
        assert rot.client_credentials_token(dynamic["client_id"], dynamic["client_secret"], RS)["access_token"]

        rot.restart(new_keys=[k3, k2])  # both published, the newer (first) signs
        assert [k["kid"] for k in rot.jwks()["keys"]] == ["k3", "k2"]
        rot.verify_jwt(t2, audience=RS)
        t3 = rot.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS)["access_token"]
        assert _header(t3)["kid"] == "k3"
        rot.verify_jwt(t3, audience=RS)

        rot.restart(keep_state=False)  # forgets registered clients; static ones come from the environment again
        with pytest.raises(OAuthError) as e:
            rot.client_credentials_token(dynamic["client_id"], dynamic["client_secret"], RS)
        assert e.value.error == "invalid_client"
        assert rot.client_credentials_token(SVC["client_id"], SVC["client_secret"], RS)["access_token"]
