"""A real OAuth 2.1 authorization server for tests: the npm ``oidc-provider`` (a certified OpenID
provider) run by ``tests/thirdparty/oidc_provider.mjs`` on a free loopback port, and the client
side of its endpoints (registration, token, introspection, revocation, the browser login).

Owns starting and restarting that process (with the signing keys this module generates, written
to a file in the test's directory), waiting until it serves its discovery document, and speaking
to it as a real OAuth client would: every helper is a real HTTP request, the login is a real
headless chromium (``tests/support/browser.py``) on the provider's own login and consent pages.
Must not mock anything and must not install anything: a missing ``oidc-provider`` skips the
tests (fails them under CI), naming ``npm ci --prefix tests/thirdparty``.

    with run_oidc_provider(tmp_path, access_ttl=5) as op:
        op.issuer                        # http://127.0.0.1:P
        client = op.register_client(redirect_uris=[redirect], token_endpoint_auth_method="none")
        verifier, challenge = pkce_pair()
        url = op.authorize_url(client, redirect, resource=RS, scope="mcp:tools", challenge=challenge)
        landed = browser_login(url)      # the redirect URL with code, state and iss
        tokens = op.exchange_code(client, code_of(landed), verifier, redirect, resource=RS)
        op.verify_jwt(tokens["access_token"], audience=RS)
        op.restart(new_keys=[new_signing_key()])   # old JWTs no longer verify against op.jwks()

What the provider does (oidc-provider 9.13.3, see tests/thirdparty/oidc_provider.mjs for the env):
- open dynamic client registration at ``/reg`` (clients that name no grant types get
  authorization_code and refresh_token; the default auth method is client_secret_basic);
- PKCE S256 required for every authorization-code flow, public or confidential (S256 only);
- the RFC 9207 ``iss`` parameter in every authorization response, errors included (always on in
  this version, advertised as ``authorization_response_iss_parameter_supported``);
- resource indicators (RFC 8707): any absolute resource URL (or only those in ``resources``:
  others get ``invalid_target``) gets an RFC 9068 JWT access token (header ``typ: at+jwt``, ``kid``;
  claims ``iss``, ``aud`` = the resource, ``sub`` = the login name or the client id,
  ``client_id``, ``scope`` = the requested ones among ``scopes``, ``exp`` = ``iat`` +
  ``access_ttl``), or an opaque one with ``token_format="opaque"`` or for the URLs in
  ``opaque_resources``. JWT access tokens are not stored: introspecting one is refused
  (``unsupported_token_type``); opaque ones are introspected (RFC 7662, by a confidential client);
- refresh tokens for every authorization-code flow, with or without ``offline_access``
  (rotated on each use for public clients; a reused one, or a replayed code, revokes the grant);
- client credentials, revocation (RFC 7009), the login and consent pages of ``devInteractions``
  (any username, any password: ``browser_login`` drives them);
- metadata at both ``/.well-known/openid-configuration`` and ``/.well-known/oauth-authorization-server``
  (``no_rfc8414=True`` hides the latter, so a client must fall back to OpenID discovery);
- loopback redirect URIs: ``http://127.0.0.1`` or ``localhost``, matched exactly for ``web``
  clients (the default), on any port for ``application_type: native`` (RFC 8252);
- the first key in ``keys`` that fits RS256 signs; all are published at ``jwks_url``;
- with ``cimd=True``, Client ID Metadata Documents (draft-02: an https URL as the ``client_id``, its
  document fetched by the provider; ``client_id_metadata_document_supported: true`` in its metadata),
  fetched from loopback addresses too (the provider's SSRF guard is dropped for the test: see
  ``OIDC_FETCH_LOOPBACK`` in the script); ``extra_ca``: a PEM file Node trusts besides its own roots
  (``NODE_EXTRA_CA_CERTS``), e.g. the test's self-signed certificate of the document's https server.
State (clients, grants, refresh tokens) is kept in a file across ``restart`` unless
``keep_state=False``; the browser session is not (its cookie key is new on each start).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.support.browser import launch_chromium
from tests.support.thirdparty import THIRDPARTY, node_binary, require_package
from tests.support.upstream import ServerProcess

PACKAGE = "oidc-provider"
SCRIPT = THIRDPARTY / "oidc_provider.mjs"
DEFAULT_SCOPES = "mcp:tools mcp:read"
HTTP_TIMEOUT_S = 30.0  # a hang guard, not a speed assertion


class OAuthError(Exception):
    """An error answer of the authorization server (``error``, ``error_description``, HTTP status)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.error = body.get("error") if isinstance(body, dict) else None
        self.description = body.get("error_description") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {self.error}: {self.description}" if self.error else f"HTTP {status}: {body!r}")


def require_oidc_provider() -> None:
    """Skip (fail under CI) when ``oidc-provider`` is not installed as the lockfile pins it."""
    require_package(PACKAGE, "lib/index.js")


def new_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A fresh RSA-2048 private JWK for RS256 signing (``kid`` random unless given)."""
    key = RSAKey.generate_key(2048, parameters={"kid": kid or f"k-{secrets.token_hex(6)}", "use": "sig", "alg": "RS256"},
                              private=True)
    return dict(key.as_dict(private=True))


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` for the S256 method (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def callback_params(url: str) -> dict[str, str]:
    """The query parameters of a redirect (``code``, ``state``, ``iss`` or ``error``...)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def code_of(url: str) -> str:
    """The authorization code of a redirect URL; an ``OAuthError`` when it carries an error instead."""
    params = callback_params(url)
    if "code" not in params:
        raise OAuthError(302, params)
    return params["code"]


# -- the browser login ------------------------------------------------------------------------------
def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def _same_endpoint(url: str, redirect_uri: str) -> bool:
    a, b = urlsplit(url), urlsplit(redirect_uri)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


_WHICH_PAGE = """() => {
  const prompt = document.querySelector('form input[name="prompt"]');
  if (prompt) return prompt.value;
  const h1 = document.querySelector('h1');
  if (h1 && h1.textContent.includes('oops')) return 'error:' + document.body.innerText;
  return null;
}"""


def browser_login(authorize_url: str, *, username: str = "alice", password: str = "any-password",
                  browser: Any = None, timeout_s: float = 30.0) -> str:
    """Open ``authorize_url`` in headless chromium, sign in on the provider's login page as
    ``username`` (any password is accepted), approve its consent page, and return the URL the
    provider redirected to (``redirect_uri?code=...&state=...&iss=...``, or ``?error=...``).

    The redirect is seen as the browser's request to ``redirect_uri``: whatever listens there (a
    daemon's callback) gets it, and nothing needs to listen (the connection is then refused, the
    URL is still returned). Requests to non-loopback hosts (the pages' web fonts) are aborted.
    Certificate errors are ignored (a loopback https callback has a test's self-signed certificate).
    ``browser``: a Playwright ``Browser`` to reuse (a new chromium for this login otherwise).
    Raises ``OAuthError`` when the provider shows its error page instead (a bad request)."""
    redirect_uri = callback_params(authorize_url).get("redirect_uri")
    if not redirect_uri:
        raise ValueError("the authorization URL has no redirect_uri")
    if browser is None:
        with launch_chromium() as b:
            return _login(b, authorize_url, redirect_uri, username, password, timeout_s)
    return _login(browser, authorize_url, redirect_uri, username, password, timeout_s)


def _login(browser: Any, authorize_url: str, redirect_uri: str, username: str, password: str, timeout_s: float) -> str:
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context(ignore_https_errors=True)
    try:
        context.route(lambda url: not _is_loopback(url), lambda route: route.abort())
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        landed: list[str] = []

        def seen(request: Any) -> None:
            # requestfinished / requestfailed: the request went out (answered, or refused when nothing listens)
            if not landed and _same_endpoint(request.url, redirect_uri):
                landed.append(request.url)

        page.on("requestfinished", seen)
        page.on("requestfailed", seen)
        try:
            page.goto(authorize_url, wait_until="domcontentloaded")
        except PlaywrightError:
            pass  # a redirect straight to a redirect_uri nobody listens on; seen() has it
        acted: set[tuple[str, str]] = set()
        deadline = time.monotonic() + timeout_s
        while not landed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no redirect to {redirect_uri} within {timeout_s} s; the browser is at {page.url}")
            try:
                which = page.evaluate(_WHICH_PAGE)
            except PlaywrightError:
                which = None  # navigating: the document went away under evaluate
            if isinstance(which, str) and which.startswith("error:"):
                raise OAuthError(400, {"error": "error_page", "error_description": which[len("error:"):].strip()})
            if which in ("login", "consent") and (page.url, which) not in acted:
                acted.add((page.url, which))
                try:
                    if which == "login":
                        page.fill('input[name="login"]', username)
                        page.fill('input[name="password"]', password)
                    page.click('form button[type="submit"]', no_wait_after=True)
                except PlaywrightError:
                    pass  # the page moved on meanwhile; the loop looks again
            page.wait_for_timeout(50)
        return landed[0]
    finally:
        context.close()


# -- the server -------------------------------------------------------------------------------------
class OidcProvider(ServerProcess):
    """One ``oidc-provider`` process on a loopback port (``tests.support.upstream.ServerProcess``)."""

    stop_wait_s = 3.0

    def __init__(self, tmp_dir: str | Path, *, access_ttl: int = 3600, refresh_ttl: int | None = None,
                 keys: list[dict[str, Any]] | None = None, scopes: str = DEFAULT_SCOPES,
                 resources: list[str] | None = None, token_format: str = "jwt", opaque_resources: list[str] | None = None,
                 clients: list[dict[str, Any]] | None = None, persist: bool = True, no_rfc8414: bool = False,
                 extra_claims: dict[str, dict[str, Any]] | None = None,
                 port: int | None = None, cimd: bool = False, extra_ca: Path | None = None) -> None:
        require_oidc_provider()
        super().__init__("oidc-provider", port)
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        self.log_path = self.dir / f"oidc-provider-{self.port}.log"
        self.keys_file = self.dir / f"oidc-provider-{self.port}-jwks.json"
        self.state_file = self.dir / f"oidc-provider-{self.port}-state.json" if persist else None
        self.keys: list[dict[str, Any]] = keys if keys is not None else [new_signing_key()]
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.scopes = scopes
        self.resources = resources
        self.token_format = token_format
        self.opaque_resources = opaque_resources or []
        self.clients = clients or []
        self.no_rfc8414 = no_rfc8414
        self.extra_claims = extra_claims or {}  # client id -> claims added to its JWT access tokens
        self.cimd = cimd
        self.extra_ca = extra_ca
        self.http = httpx.Client(timeout=HTTP_TIMEOUT_S)
        self._discovery: dict[str, Any] | None = None

    # -- process --
    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        self.keys_file.write_text(json.dumps({"keys": self.keys}))
        self.keys_file.chmod(0o600)
        env = {
            "PATH": str(Path(node_binary()).parent),
            "OIDC_JWKS_FILE": str(self.keys_file),
            "OIDC_ACCESS_TTL": str(self.access_ttl),
            "OIDC_SCOPES": self.scopes,
            "OIDC_ACCESS_TOKEN_FORMAT": self.token_format,
            "OIDC_OPAQUE_RESOURCES": " ".join(self.opaque_resources),
            "OIDC_CLIENTS": json.dumps(self.clients),
        }
        if self.refresh_ttl is not None:
            env["OIDC_REFRESH_TTL"] = str(self.refresh_ttl)
        if self.resources is not None:
            env["OIDC_RESOURCES"] = " ".join(self.resources)
        if self.state_file is not None:
            env["OIDC_STATE_FILE"] = str(self.state_file)
        if self.extra_claims:
            env["OIDC_EXTRA_CLAIMS"] = json.dumps(self.extra_claims)
        if self.no_rfc8414:
            env["OIDC_NO_RFC8414"] = "1"
        if self.cimd:
            env["OIDC_CIMD"] = "1"
            env["OIDC_FETCH_LOOPBACK"] = "1"  # the documents of the tests are served on loopback
        if self.extra_ca is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(self.extra_ca)
        return [node_binary(), str(SCRIPT), str(self.port)], env, THIRDPARTY

    def start(self) -> OidcProvider:
        super().start()
        self._discovery = None
        deadline = time.monotonic() + 30
        while True:  # listening means ready; this proves it serves its metadata
            try:
                self.discovery()
                return self
            except (httpx.HTTPError, OAuthError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"oidc-provider serves no discovery document; its log ends with:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def restart(self, new_keys: list[dict[str, Any]] | None = None, *, keep_state: bool = True) -> None:
        """Stop and start on the same port; ``new_keys`` replaces the signing keys (the first that
        fits signs, all are published); ``keep_state=False`` forgets clients, grants and tokens."""
        if new_keys is not None:
            self.keys = new_keys
        self.stop()
        if not keep_state and self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        super().restart()

    def close(self) -> None:
        self.stop()
        self.http.close()

    # -- metadata --
    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks"

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document (fetched once per start)."""
        if self._discovery is None:
            self._discovery = self._json(self.http.get(self.discovery_url))
        return self._discovery

    def endpoint(self, name: str) -> str:
        """A metadata endpoint: ``token``, ``registration``, ``introspection``, ``revocation``, ``authorization``."""
        return str(self.discovery()[f"{name}_endpoint"])

    def jwks(self) -> dict[str, Any]:
        """The published (public) JWKS, fetched now."""
        return self._json(self.http.get(self.jwks_url))

    # -- clients and tokens --
    def register_client(self, **metadata: Any) -> dict[str, Any]:
        """Dynamic client registration (RFC 7591): POST the metadata, return the registered client
        (``client_id``, ``client_secret`` unless ``token_endpoint_auth_method="none"``, ...)."""
        return self._json(self.http.post(self.endpoint("registration"), json=metadata), expect=201)

    def authorize_url(self, client: dict[str, Any], redirect_uri: str, *, resource: str | None, scope: str = DEFAULT_SCOPES,
                      challenge: str, state: str | None = None, **extra: str) -> str:
        """The authorization request URL (code flow, PKCE S256, the ``resource`` indicator)."""
        params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": redirect_uri, "scope": scope,
                  "code_challenge": challenge, "code_challenge_method": "S256", "state": state or secrets.token_urlsafe(12),
                  **extra}
        if resource is not None:
            params["resource"] = resource
        return self.endpoint("authorization") + "?" + urlencode(params)

    def token(self, client: dict[str, Any], **form: str) -> dict[str, Any]:
        """A token request with ``client``'s authentication; the token response, or ``OAuthError``."""
        auth, extra = _client_auth(client)
        return self._json(self.http.post(self.endpoint("token"), data={**form, **extra}, **auth))

    def exchange_code(self, client: dict[str, Any], code: str, verifier: str, redirect_uri: str, *,
                      resource: str | None) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": redirect_uri}
        if resource is not None:
            form["resource"] = resource
        return self.token(client, **form)

    def refresh(self, client: dict[str, Any], refresh_token: str, *, resource: str | None = None,
                scope: str | None = None) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        return self.token(client, **form)

    def client_credentials_token(self, client_id: str, secret: str, resource: str | None, scope: str = DEFAULT_SCOPES) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "scope": scope}
        if resource is not None:
            form["resource"] = resource
        return self.token({"client_id": client_id, "client_secret": secret}, **form)

    def login(self, client: dict[str, Any], redirect_uri: str, *, resource: str | None, scope: str = DEFAULT_SCOPES,
              username: str = "alice", browser: Any = None) -> dict[str, Any]:
        """The whole authorization-code flow with PKCE through the browser: the token response."""
        verifier, challenge = pkce_pair()
        landed = browser_login(self.authorize_url(client, redirect_uri, resource=resource, scope=scope, challenge=challenge),
                               username=username, browser=browser)
        return self.exchange_code(client, code_of(landed), verifier, redirect_uri, resource=resource)

    def introspect(self, token: str, client: dict[str, Any], token_type_hint: str | None = None) -> dict[str, Any]:
        """RFC 7662 introspection as ``client`` (a confidential client: a public one may only ask about its own tokens)."""
        auth, extra = _client_auth(client)
        form = {"token": token, **extra}
        if token_type_hint:
            form["token_type_hint"] = token_type_hint
        return self._json(self.http.post(self.endpoint("introspection"), data=form, **auth))

    def revoke(self, token: str, client: dict[str, Any], token_type_hint: str | None = None) -> None:
        """RFC 7009 revocation as ``client`` (the token's own client)."""
        auth, extra = _client_auth(client)
        form = {"token": token, **extra}
        if token_type_hint:
            form["token_type_hint"] = token_type_hint
        r = self.http.post(self.endpoint("revocation"), data=form, **auth)
        if r.status_code != 200:
            raise OAuthError(r.status_code, _body(r))

    def verify_jwt(self, token: str, *, audience: str, jwks: dict[str, Any] | None = None, now: int | None = None) -> dict[str, Any]:
        """The claims of a JWT access token verified with joserfc against the published JWKS
        (or ``jwks``): signature (RS256), ``iss`` = this issuer, ``aud`` = ``audience``, ``exp``/``nbf``
        at ``now`` (default: the clock; no leeway). Raises joserfc's errors (``BadSignatureError``,
        ``ExpiredTokenError``, ``InvalidClaimError``, ``InvalidKeyIdError`` for an unknown ``kid``...) when
        it does not verify."""
        keys = KeySet.import_key_set(jwks or self.jwks())  # type: ignore[arg-type]
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(now=now, leeway=0, iss={"essential": True, "value": self.issuer},
                              aud={"essential": True, "value": audience}, exp={"essential": True}).validate(decoded.claims)
        return dict(decoded.claims)

    def _json(self, r: httpx.Response, expect: int = 200) -> dict[str, Any]:
        body = _body(r)
        if r.status_code != expect or not isinstance(body, dict):
            raise OAuthError(r.status_code, body)
        return body


def _body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def _client_auth(client: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """How ``client`` authenticates at the token, introspection and revocation endpoints: the
    keyword arguments of the request (its ``auth``) and the form fields to add."""
    method = client.get("token_endpoint_auth_method") or ("client_secret_basic" if client.get("client_secret") else "none")
    if method == "client_secret_basic":
        return {"auth": httpx.BasicAuth(client["client_id"], client["client_secret"])}, {}
    if method == "client_secret_post":
        return {}, {"client_id": client["client_id"], "client_secret": client["client_secret"]}
    if method == "none":
        return {}, {"client_id": client["client_id"]}
    raise ValueError(f"token_endpoint_auth_method {method} is not supported by this helper")


@contextlib.contextmanager
def run_oidc_provider(tmp_dir: str | Path, **options: Any) -> Iterator[OidcProvider]:
    """Run an ``OidcProvider`` (options as its constructor's) for the block."""
    op = OidcProvider(tmp_dir, **options)
    op.start()
    try:
        yield op
    finally:
        op.close()
