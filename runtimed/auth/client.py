"""The OAuth 2.1 client mechanics the gateway uses to sign in to a protected remote MCP server.

Owns the stateless steps of the MCP authorization flow (2025-11-25, with the 2026-07-28 changes):

- ``pkce``: a PKCE S256 verifier and challenge (RFC 7636; ``plain`` is never used);
- ``register``: the client identity, in the spec's order of preference: the configured client
  (pre-registration), a Client ID Metadata Document (when the authorization server says
  ``client_id_metadata_document_supported`` and this daemon has an https URL to serve it at), else
  dynamic client registration (RFC 7591); ``Registration``;
- ``authorize_url``: the authorization request (``response_type=code``, PKCE, ``state``, ``scope``
  and ``resource``, RFC 8707);
- ``check_issuer``: the authorization response's ``iss`` (RFC 9207) against the issuer the flow
  began with;
- ``token_request``: the token endpoint (code exchange, refresh, client credentials), with the
  client authentication the registration says, and ``resource``; ``Tokens``;
- ``revoke``: RFC 7009, best effort.

Every failure is an ``OAuthError`` whose message names the server and step and the OAuth
``error``/``error_description`` it answered, never a token, code or secret. Must not: persist
anything, log a token, or accept an insecure endpoint (``metadata.check_endpoint``).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from runtimed.auth.metadata import check_endpoint
from runtimed.errors import OAuthError
from runtimed.protocol.types import JSON

TIMEOUT_S = 15.0


def pkce() -> tuple[str, str]:
    """(code_verifier, its S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Registration:
    """Who the gateway is at one authorization server. ``method``: ``configured``, ``cimd`` or ``dcr``;
    ``auth_method``: the token endpoint authentication (``none``, ``client_secret_basic``,
    ``client_secret_post``)."""

    client_id: str
    method: str
    auth_method: str = "none"
    client_secret: str | None = None
    redirect_uri: str | None = None

    def to_json(self) -> JSON:
        return {"client_id": self.client_id, "method": self.method, "auth_method": self.auth_method,
                "client_secret": self.client_secret, "redirect_uri": self.redirect_uri}

    @classmethod
    def from_json(cls, data: JSON) -> Registration:
        return cls(client_id=str(data["client_id"]), method=str(data.get("method", "dcr")),
                   auth_method=str(data.get("auth_method", "none")), client_secret=data.get("client_secret"),
                   redirect_uri=data.get("redirect_uri"))


@dataclass
class Tokens:
    """A token response: the access token, when it expires (wall clock; None: not said), the refresh
    token and the scope granted."""

    access_token: str
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None
    obtained_at: float = field(default_factory=time.time)

    def to_json(self) -> JSON:
        return {"access_token": self.access_token, "expires_at": self.expires_at, "refresh_token": self.refresh_token,
                "scope": self.scope, "obtained_at": self.obtained_at}

    @classmethod
    def from_json(cls, data: JSON) -> Tokens:
        return cls(access_token=str(data["access_token"]), expires_at=data.get("expires_at"),
                   refresh_token=data.get("refresh_token"), scope=data.get("scope"),
                   obtained_at=float(data.get("obtained_at") or time.time()))

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """Expired, or expiring within ``seconds`` (a token without ``expires_in`` never is)."""
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) + seconds >= self.expires_at

    def refresh_margin(self) -> float:
        """How long before expiry to refresh: a tenth of the lifetime, between 2 s and 60 s."""
        if self.expires_at is None:
            return 0.0
        return max(2.0, min(60.0, (self.expires_at - self.obtained_at) / 10))


def _authenticate(registration: Registration, data: dict[str, str]) -> httpx.Auth | None:
    """The registration's client authentication at a token or revocation endpoint: HTTP Basic (returned),
    or ``client_id`` (and ``client_secret`` for ``client_secret_post``) added to the form ``data``."""
    if registration.auth_method == "client_secret_basic" and registration.client_secret:
        return _basic(registration)
    data["client_id"] = registration.client_id
    if registration.auth_method == "client_secret_post" and registration.client_secret:
        data["client_secret"] = registration.client_secret
    return None


def _basic(registration: Registration) -> httpx.Auth:
    """client_secret_basic: id and secret form-urlencoded before base64 (RFC 6749 §2.3.1)."""
    return httpx.BasicAuth(quote(registration.client_id, safe=""), quote(registration.client_secret or "", safe=""))


def _oauth_error(r: httpx.Response, what: str) -> OAuthError:
    error = description = None
    try:
        body: Any = r.json()
        if isinstance(body, dict):
            error = body.get("error") if isinstance(body.get("error"), str) else None
            description = body.get("error_description") if isinstance(body.get("error_description"), str) else None
    except ValueError:
        pass
    detail = f"{error}" + (f": {description}" if description else "") if error else f"HTTP {r.status_code}"
    return OAuthError(f"{what} was refused ({detail[:300]})", error=error, status=502)


async def register(http: httpx.AsyncClient, server: JSON, redirect_uri: str, *, client_name: str,
                   configured_id: str | None = None, configured_secret: str | None = None,
                   metadata_url: str | None = None, grant: str = "authorization_code",
                   scope: str | None = None) -> Registration:
    """The client identity to use with the authorization server ``server`` (its metadata)."""
    if configured_id:
        method = ("client_secret_basic" if "client_secret_basic" in server.get("token_endpoint_auth_methods_supported",
                                                                           ["client_secret_basic"])
                  else "client_secret_post") if configured_secret else "none"
        return Registration(configured_id, "configured", method, configured_secret, redirect_uri)
    if grant == "client_credentials":
        raise OAuthError("the client-credentials grant needs a client registered with the authorization server: "
                         "give --oauth-client-id and --oauth-client-secret-ref", status=400)
    if metadata_url and server.get("client_id_metadata_document_supported") is True:
        return Registration(metadata_url, "cimd", "none", None, redirect_uri)
    endpoint = server.get("registration_endpoint")
    if not endpoint:
        raise OAuthError(f"the authorization server {server.get('issuer')} offers neither Client ID Metadata Documents "
                         "(reachable over https) nor dynamic client registration: register a client there and give "
                         "--oauth-client-id (and --oauth-client-secret-ref)", status=400)
    check_endpoint(endpoint, "the registration endpoint")
    body: JSON = {"client_name": client_name, "redirect_uris": [redirect_uri], "application_type": "native",
                  "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                  "token_endpoint_auth_method": "none"}
    if scope:
        body["scope"] = scope
    r = await _post_registration(http, endpoint, body)
    if r.status_code == 400 and scope and _error_code(r) == "invalid_client_metadata":
        # The registration's ``scope`` is optional (RFC 7591 §2), and some servers accept there only their own
        # scopes, not a resource server's (oidc-provider: "scope must only contain Authorization Server supported
        # scope values"): registered without it, the client still asks for the scopes in the authorization request.
        r = await _post_registration(http, endpoint, {k: v for k, v in body.items() if k != "scope"})
    if r.status_code not in (200, 201):
        raise _oauth_error(r, f"dynamic client registration at {endpoint}")
    try:
        data = r.json()
        client_id = data["client_id"]
    except (ValueError, KeyError, TypeError):
        raise OAuthError(f"dynamic client registration at {endpoint} answered no client_id") from None
    auth_method = str(data.get("token_endpoint_auth_method") or "none")
    return Registration(str(client_id), "dcr", auth_method, data.get("client_secret"), redirect_uri)


async def _post_registration(http: httpx.AsyncClient, endpoint: str, body: JSON) -> httpx.Response:
    try:
        return await http.post(endpoint, json=body, follow_redirects=False)
    except httpx.HTTPError as e:
        raise OAuthError(f"dynamic client registration at {endpoint} failed ({type(e).__name__})") from None


def _error_code(r: httpx.Response) -> str | None:
    try:
        body: Any = r.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None


def authorize_url(server: JSON, registration: Registration, *, redirect_uri: str, state: str, challenge: str,
                  resource: str, scope: str | None) -> str:
    endpoint = check_endpoint(server.get("authorization_endpoint"), "the authorization endpoint")
    methods = server.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise OAuthError(f"the authorization server {server.get('issuer')} does not support PKCE S256 "
                         "(the MCP authorization spec requires it): refused", status=400)
    query = {"response_type": "code", "client_id": registration.client_id, "redirect_uri": redirect_uri,
             "state": state, "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource}
    if scope:
        query["scope"] = scope
    sep = "&" if "?" in endpoint else "?"
    return endpoint + sep + urlencode(query)


def check_issuer(server: JSON, issuer: str, iss: str | None) -> None:
    """RFC 9207: an ``iss`` in the authorization response must be the flow's issuer; a server that
    says it sends one (``authorization_response_iss_parameter_supported``) must have sent it."""
    if iss is None:
        if server.get("authorization_response_iss_parameter_supported") is True:
            raise OAuthError(f"the authorization response has no iss parameter although {issuer} says it sends one "
                             "(RFC 9207: a mix-up attack is possible; refused)", status=400)
        return
    if iss != issuer:
        raise OAuthError(f"the authorization response came from the issuer {iss!r}, not {issuer!r} (RFC 9207: refused)",
                         status=400)


async def token_request(http: httpx.AsyncClient, server: JSON, registration: Registration, form: dict[str, str],
                        what: str) -> Tokens:
    """POST ``form`` to the token endpoint with the registration's client authentication."""
    endpoint = check_endpoint(server.get("token_endpoint"), "the token endpoint")
    data = dict(form)
    auth = _authenticate(registration, data)
    try:
        r = await http.post(endpoint, data=data, auth=auth or httpx.USE_CLIENT_DEFAULT, headers={"Accept": "application/json"},
                            follow_redirects=False)
    except httpx.HTTPError as e:
        raise OAuthError(f"{what} at {endpoint} failed ({type(e).__name__})") from None
    if r.status_code != 200:
        raise _oauth_error(r, f"{what} at {endpoint}")
    try:
        body: Any = r.json()
    except ValueError:
        raise OAuthError(f"{what} at {endpoint} did not answer JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise OAuthError(f"{what} at {endpoint} answered no access_token")
    if str(body.get("token_type", "bearer")).lower() != "bearer":
        raise OAuthError(f"{what} at {endpoint} answered a {body.get('token_type')!r} token, not a Bearer token")
    now = time.time()
    expires_in = body.get("expires_in")
    expires_at = now + float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else None
    refresh = body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None
    scope = body.get("scope") if isinstance(body.get("scope"), str) else None
    return Tokens(body["access_token"], expires_at, refresh, scope, now)


async def revoke(http: httpx.AsyncClient, server: JSON, registration: Registration, token: str, hint: str) -> bool:
    """RFC 7009; True when the server accepted it. Never raises."""
    endpoint = server.get("revocation_endpoint")
    if not isinstance(endpoint, str):
        return False
    data = {"token": token, "token_type_hint": hint}
    auth = _authenticate(registration, data)
    try:
        check_endpoint(endpoint, "the revocation endpoint")
        r = await http.post(endpoint, data=data, auth=auth or httpx.USE_CLIENT_DEFAULT, follow_redirects=False)
    except (httpx.HTTPError, OAuthError):
        return False
    return r.status_code == 200


def new_client(timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    """The HTTP client of one OAuth step (no redirects followed, no cookies kept)."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
