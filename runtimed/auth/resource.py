"""The gateway as an OAuth 2.1 resource server (MCP authorization, 2025-11-25 and 2026-07-28).

Owns, for ``runtimed --oauth-issuer URL --oauth-audience URL [--oauth-scopes ...]``:

- ``ResourceServer.authenticate(token)``: the ``Principal`` an access token names, or an
  ``AuthFailure`` saying why not. A JWT is verified against the issuer's JWKS (found through its
  RFC 8414 / OpenID discovery document, whose ``issuer`` must be the configured one, RFC 8414 §3.3);
  a ``kid`` the cached key set lacks makes it fetched again (key rotation; at most once per
  ``JWKS_REFRESH_S``). Checked: signature (asymmetric algorithms only), ``iss``, ``exp``/``nbf``
  (``LEEWAY_S``), ``aud`` naming this resource (RFC 8707: a token for another resource is refused,
  and none is ever passed on), and the required scopes (403 ``insufficient_scope``). A token that is
  not a JWT is asked about at the issuer's introspection endpoint (RFC 7662) with the configured
  client credentials. Verified tokens are remembered until they expire (at most ``CACHE_S``), so a
  client's every request does not cost a signature check.
- ``metadata()``: the Protected Resource Metadata (RFC 9728) served at
  ``/.well-known/oauth-protected-resource`` (and ``…/mcp``), and ``challenge()``: the
  ``WWW-Authenticate`` value of a 401/403 (``resource_metadata``, ``scope``, ``error``).

Must not: log or return a token (messages name the problem only), accept symmetric or ``none``
algorithms, or serve HTTP (``runtimed.http.security`` applies it).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import httpx
from joserfc import jwt
from joserfc.errors import DecodeError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from runtimed.auth.metadata import authorization_server, canonical
from runtimed.errors import OAuthError
from runtimed.protocol.types import JSON

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_S = 5  # clock skew allowed on exp/nbf/iat (issuer and gateway clocks)
JWKS_REFRESH_S = 5.0  # an unknown kid fetches the key set again at most this often
CACHE_S = 60.0  # a verified token is trusted this long at most (and never past its exp)
CACHE_MAX = 4096
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Principal:
    """Who a request is from: an OAuth token's subject and client, the daemon's own static token, or a
    scoped token (``runtimed.auth.tokens``: its id and the one profile it reaches)."""

    kind: str  # "oauth" | "token" (the admin) | "profile-token"
    subject: str | None = None
    client_id: str | None = None
    issuer: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None  # a scoped token's id (never the token)
    profile: str | None = None  # the profile a scoped token reaches

    @property
    def key(self) -> str:
        """What binds a session or a ``requestState`` to this principal."""
        key = f"{self.kind}|{self.issuer or ''}|{self.subject or ''}|{self.client_id or ''}"
        return key + f"|{self.token_id}" if self.token_id is not None else key

    def to_json(self) -> JSON:
        """As call records and events show it (never a token)."""
        out: JSON = {"kind": self.kind}
        if self.subject is not None:
            out["sub"] = self.subject
        if self.client_id is not None:
            out["clientId"] = self.client_id
        if self.token_id is not None:
            out["tokenId"] = self.token_id
        if self.profile is not None:
            out["profile"] = self.profile
        return out


ADMIN = Principal("token")


class AuthFailure(Exception):
    """A token refused: ``status`` 401 (``invalid_token``, or no token) or 403 (``insufficient_scope``)."""

    def __init__(self, status: int, description: str, error: str | None = "invalid_token") -> None:
        super().__init__(description)
        self.status, self.description, self.error = status, description, error


class ResourceServer:
    def __init__(self, issuer: str, audience: str, scopes: list[str] | None = None,
                 client_id: str | None = None, client_secret: str | None = None,
                 profile_claim: str | None = None) -> None:
        self.issuer = issuer  # compared exactly (RFC 8414 §3.3, RFC 9207)
        # A claim naming the one profile a token reaches (like a scoped token), when configured.
        self.profile_claim = profile_claim
        self.audience = audience
        self.scopes = list(scopes or [])
        self._client_auth = (client_id, client_secret or "") if client_id else None
        self._server: JSON | None = None
        self._keys: KeySet | None = None
        self._refreshed_at = -JWKS_REFRESH_S  # monotonic time of the last fetch made for an unknown kid
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    # -- what clients read -------------------------------------------------------------------
    def metadata(self) -> JSON:
        """RFC 9728 Protected Resource Metadata."""
        out: JSON = {"resource": self.audience, "authorization_servers": [self.issuer],
                     "bearer_methods_supported": ["header"], "resource_name": "runtimed MCP gateway"}
        if self.scopes:
            out["scopes_supported"] = self.scopes
        return out

    def challenge(self, metadata_url: str, failure: AuthFailure | None = None) -> str:
        """The ``WWW-Authenticate`` value: where the metadata is, the scopes needed, what went wrong."""
        parts = [f'resource_metadata="{metadata_url}"']
        if self.scopes:
            parts.append(f'scope="{" ".join(self.scopes)}"')
        if failure is not None and failure.error:
            parts.append(f'error="{failure.error}"')
            parts.append('error_description="{}"'.format(failure.description.replace('"', "'")))
        return "Bearer " + ", ".join(parts)

    # -- checking a token ----------------------------------------------------------------------
    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthFailure(401, "this gateway needs an OAuth access token from "
                                   f"{self.issuer} (send Authorization: Bearer <token>)", error=None)
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        if token.count(".") == 2:
            claims = await self._verify_jwt(token)
        else:
            claims = await self._introspect(token)
        principal = self._principal(claims)
        exp = claims.get("exp")
        until = min(now + CACHE_S, float(exp)) if isinstance(exp, (int, float)) else now + CACHE_S
        self._cache[digest] = (until, principal)
        while len(self._cache) > CACHE_MAX:
            self._cache.popitem(last=False)
        return principal

    def _principal(self, claims: JSON) -> Principal:
        """The checks every token passes whatever its form: audience, then scopes."""
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
        if canonical(self.audience) not in {canonical(a) for a in auds}:
            raise AuthFailure(401, f"the token was not issued for this resource ({self.audience}): its audience is "
                                   f"{', '.join(auds) or 'missing'}; ask {self.issuer} for a token with "
                                   f"resource={self.audience}")
        raw = claims.get("scope")
        granted = set(raw.split()) if isinstance(raw, str) else set()
        scp = claims.get("scp")
        if isinstance(scp, list):
            granted |= {s for s in scp if isinstance(s, str)}
        missing = [s for s in self.scopes if s not in granted]
        if missing:
            raise AuthFailure(403, f"the token lacks the scope{'s' if len(missing) > 1 else ''} "
                                   f"{' '.join(missing)}", error="insufficient_scope")
        client = claims.get("client_id") or claims.get("azp")
        sub = claims.get("sub")
        profile: str | None = None
        if self.profile_claim is not None and self.profile_claim in claims:
            value = claims[self.profile_claim]
            if not isinstance(value, str) or not value:
                raise AuthFailure(401, f"the token's {self.profile_claim} claim must name one profile")
            profile = value
        return Principal("oauth", subject=sub if isinstance(sub, str) else None,
                         client_id=client if isinstance(client, str) else None, issuer=self.issuer,
                         scopes=frozenset(granted), profile=profile)

    async def _verify_jwt(self, token: str) -> JSON:
        keys = await self._key_set()
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # a key the issuer rotated in since the set was fetched
                decoded = jwt.decode(token, await self._key_set(refresh=True), algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            raise AuthFailure(401, f"the token is signed with a key {self.issuer} does not publish") from None
        except DecodeError:
            raise AuthFailure(401, "the token is not a well-formed JWT") from None
        except JoseError as e:
            raise AuthFailure(401, f"the token does not verify against {self.issuer}'s keys "
                                   f"({getattr(e, 'error', type(e).__name__)})") from None
        except ValueError:
            raise AuthFailure(401, "the token is not a well-formed JWT") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_S, iss={"essential": True, "value": self.issuer},
                                         exp={"essential": True})
        try:
            registry.validate(claims)
        except JoseError as e:
            what = {"expired_token": "the token has expired", "invalid_claim": "a claim is wrong",
                    "missing_claim": "a required claim is missing"}.get(getattr(e, "error", ""), str(e))
            detail = getattr(e, "description", None) or ""
            raise AuthFailure(401, f"{what}{f' ({detail})' if detail and detail not in what else ''}") from None
        return claims

    async def _introspect(self, token: str) -> JSON:
        server = await self._server_metadata()
        endpoint = server.get("introspection_endpoint")
        if not isinstance(endpoint, str) or self._client_auth is None:
            raise AuthFailure(401, "the token is not a JWT, and introspection is not configured "
                                   "(oauth_client_id / oauth_client_secret, and an introspection endpoint)")
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
                r = await http.post(endpoint, data={"token": token, "token_type_hint": "access_token"},
                                    auth=self._client_auth)
            data = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as e:
            raise AuthFailure(401, f"the issuer's introspection endpoint could not be asked ({type(e).__name__})",
                              ) from None
        if not isinstance(data, dict):
            raise AuthFailure(401, f"the issuer's introspection endpoint answered {r.status_code}")
        if data.get("active") is not True:
            raise AuthFailure(401, "the token is not active (expired, revoked or unknown to the issuer)")
        iss = data.get("iss")
        if iss is not None and iss != self.issuer:
            raise AuthFailure(401, "the token was issued by another issuer")
        return data

    # -- the issuer's documents ----------------------------------------------------------------
    async def _server_metadata(self) -> JSON:
        if self._server is not None:
            return self._server
        async with self._lock:
            if self._server is None:
                self._server = await discover(self.issuer)
        return self._server

    async def _key_set(self, refresh: bool = False) -> KeySet:
        """The issuer's keys, fetched once; ``refresh`` (a key id not in the set): again, unless such a
        fetch was made in the last ``JWKS_REFRESH_S`` (a stream of tokens with unknown key ids must not
        become a stream of fetches)."""
        if self._keys is not None and not refresh:
            return self._keys
        server = await self._server_metadata()
        uri = server.get("jwks_uri")
        if not isinstance(uri, str):
            raise AuthFailure(401, f"{self.issuer} publishes no jwks_uri: its tokens cannot be verified")
        async with self._lock:
            if self._keys is not None and (not refresh or time.monotonic() - self._refreshed_at < JWKS_REFRESH_S):
                return self._keys
            if refresh:
                self._refreshed_at = time.monotonic()
            try:
                async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
                    r = await http.get(uri)
                    r.raise_for_status()
                    self._keys = KeySet.import_key_set(r.json())
            except (httpx.HTTPError, ValueError, JoseError) as e:
                if self._keys is None:
                    raise AuthFailure(401, f"the keys of {self.issuer} could not be fetched "
                                           f"({type(e).__name__})") from None
        assert self._keys is not None
        return self._keys


async def discover(issuer: str) -> JSON:
    """The authorization server's metadata (``metadata.authorization_server``); a failure is a 401."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
            return await authorization_server(http, issuer)
    except OAuthError as e:
        raise AuthFailure(401, str(e)) from None
