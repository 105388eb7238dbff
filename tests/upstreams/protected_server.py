"""A remote MCP server protected by the official ``mcp`` SDK's own OAuth resource-server support,
accepting only JWT access tokens from one issuer (the real ``oidc-provider`` of
``tests/support/oauth.py``) issued for this server's resource URL: the upstream the gateway signs
in to as an OAuth client (issue 16).

    python tests/upstreams/protected_server.py --port P --issuer ISSUER_URL --record FILE \
        [--scopes "mcp:tools"] [--resource URL] [--name NAME]

The SDK does the HTTP side (``MCPServer(token_verifier=..., auth=AuthSettings(...))``): a request
to ``/mcp`` without a valid token gets ``401`` with ``WWW-Authenticate: Bearer
error="invalid_token", error_description="Authentication required",
resource_metadata="http://127.0.0.1:P/.well-known/oauth-protected-resource/mcp"``, a token without
every ``--scopes`` entry ``403`` ``insufficient_scope``, and RFC 9728 Protected Resource Metadata
is served (without a token) at that path-inserted well-known URL only (``resource``,
``authorization_servers: [ISSUER]``, ``scopes_supported``, ``bearer_methods_supported``); the bare
``/.well-known/oauth-protected-resource`` is a 404. Both protocol eras are served on ``/mcp`` as
``MCPServer`` serves them (2025-11-25 sessions, 2026-07-28 stateless).

This module owns ``JwtVerifier``, the SDK ``TokenVerifier``: the token must be a JWS signed by a
key of the issuer's JWKS (``jwks_uri`` from its RFC 8414 metadata or, failing that, its OpenID
discovery document, whose ``issuer`` must equal ``--issuer`` exactly; the key set fetched again
when a token names a ``kid`` it does not hold), asymmetric algorithms only, header ``typ``
``at+jwt`` (RFC 9068), ``iss`` equal to the issuer, ``exp`` in the future (no leeway), ``nbf``/
``iat`` not in the future, ``aud`` naming the resource URL (RFC 8707; default
``http://127.0.0.1:P/mcp``). The ``scope`` claim gives the scopes. Why a token is refused is
written to stderr (never the token).

Recording: every HTTP request received (before the SDK sees it) appends one JSON line to
``--record``: ``{"method", "path", "authorization"}`` (the ``Authorization`` header exactly as
received, ``null`` when absent) plus ``mcp_protocol_version`` and ``mcp_session_id``.

Tools: ``whoami`` (JSON text: ``sub``, ``client_id``, ``scopes``, ``iss``, ``aud``), ``echo(text)``,
``received`` (the records so far, JSON text).

Test code only: never imported by the product, and it mocks nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_S = 0  # strict: a token is refused from its exp second on
HTTP_TIMEOUT_S = 10.0


def log(message: str) -> None:
    print(f"protected_server: {message}", file=sys.stderr, flush=True)


class Refused(Exception):
    """Why a token does not verify (logged; the client only sees the SDK's 401)."""


class JwtVerifier:
    """The SDK ``TokenVerifier`` (``mcp.server.auth.provider.TokenVerifier``) for ``issuer``'s JWT
    access tokens issued for ``resource``."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self._verify(token)
        except Refused as e:
            log(f"token refused: {e}")
            return None
        aud = claims["aud"]
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else [s for s in claims.get("scp") or [] if isinstance(s, str)]
        return AccessToken(token=token, client_id=str(claims.get("client_id") or claims.get("azp") or ""),
                           scopes=scopes, expires_at=int(claims["exp"]),
                           resource=aud if isinstance(aud, str) else self.resource,  # the SDK compares it again
                           subject=str(claims["sub"]) if "sub" in claims else None, claims=claims)

    async def _verify(self, token: str) -> dict[str, Any]:
        if token.count(".") != 2:
            raise Refused("not a JWS compact serialization (opaque tokens are not accepted here)")
        try:
            try:
                decoded = jwt.decode(token, await self._key_set(), algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # a key the issuer rotated in since the set was fetched
                log("unknown kid: fetching the JWKS again")
                decoded = jwt.decode(token, await self._key_set(refresh=True), algorithms=ALGORITHMS)
            typ = str(decoded.header.get("typ", "")).lower()
            if typ not in ("at+jwt", "application/at+jwt"):
                raise Refused(f"header typ is {typ!r}, not at+jwt (RFC 9068)")
            jwt.JWTClaimsRegistry(leeway=LEEWAY_S, iss={"essential": True, "value": self.issuer},
                                  aud={"essential": True, "value": self.resource},
                                  exp={"essential": True}).validate(decoded.claims)
        except JoseError as e:
            raise Refused(f"{type(e).__name__}: {e}") from None
        except (ValueError, httpx.HTTPError) as e:
            raise Refused(f"{type(e).__name__}: {e}") from None
        return dict(decoded.claims)

    async def _key_set(self, refresh: bool = False) -> KeySet:
        async with self._lock:
            if self._keys is not None and not refresh:
                return self._keys
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                if self._jwks_uri is None:
                    self._jwks_uri = await self._discover(http)
                r = await http.get(self._jwks_uri)
                r.raise_for_status()
                self._keys = KeySet.import_key_set(r.json())
            return self._keys

    async def _discover(self, http: httpx.AsyncClient) -> str:
        """``jwks_uri`` from the issuer's RFC 8414 metadata, else its OpenID discovery document."""
        problems = []
        for suffix in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            r = await http.get(self.issuer.rstrip("/") + suffix)
            if r.status_code != 200:
                problems.append(f"{suffix}: HTTP {r.status_code}")
                continue
            meta = r.json()
            if meta.get("issuer") != self.issuer:
                raise Refused(f"{suffix} names issuer {meta.get('issuer')!r}, not {self.issuer!r}")
            if not isinstance(meta.get("jwks_uri"), str):
                raise Refused(f"{suffix} has no jwks_uri")
            return str(meta["jwks_uri"])
        raise Refused("no authorization server metadata: " + "; ".join(problems))


class Record:
    """ASGI wrapper: append one JSON line per HTTP request to ``path``, then hand it to ``app``."""

    def __init__(self, app: Any, path: Path) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers: dict[str, str] = {}
            for k, v in scope["headers"]:
                headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
            line = {"method": scope["method"], "path": scope["path"], "authorization": headers.get("authorization"),
                    "mcp_protocol_version": headers.get("mcp-protocol-version"),
                    "mcp_session_id": headers.get("mcp-session-id")}
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        await self.app(scope, receive, send)


def read_records(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def current_token(ctx: Context) -> AccessToken | None:
    """The verified token of the request being handled (the SDK's auth context, else the request's user)."""
    token = get_access_token()
    if token is not None:
        return token
    request = getattr(ctx.request_context, "request", None)
    user = getattr(request, "scope", {}).get("user") if request is not None else None
    return getattr(user, "access_token", None)


def build(args: argparse.Namespace, resource: str) -> MCPServer:
    scopes = args.scopes.split()
    # validated from strings, as the model's own config keeps a path-less issuer without a trailing
    # slash (an AnyHttpUrl built outside it would add one, and the PRM would name another issuer)
    auth = AuthSettings.model_validate({"issuer_url": args.issuer, "resource_server_url": resource,
                                        "required_scopes": scopes or None, "validate_token_resource": True})
    mcp = MCPServer(name=args.name, version="1.0.0", instructions="an OAuth-protected test upstream",
                    token_verifier=JwtVerifier(args.issuer, resource), auth=auth)
    record = Path(args.record)

    @mcp.tool(description="Who the access token of this request says the caller is.")
    def whoami(ctx: Context) -> str:
        token = current_token(ctx)
        if token is None:
            raise ValueError("no verified access token in this request's context")
        claims = token.claims or {}
        return json.dumps({"sub": token.subject, "client_id": token.client_id, "scopes": token.scopes,
                           "iss": claims.get("iss"), "aud": claims.get("aud")})

    @mcp.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Every HTTP request this server received: method, path, Authorization header.")
    def received() -> str:
        return json.dumps(read_records(record))

    return mcp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--issuer", required=True, help="the authorization server (compared exactly with iss)")
    ap.add_argument("--record", required=True, help="append one JSON line per HTTP request received")
    ap.add_argument("--scopes", default="mcp:tools", help="space-separated scopes every token must carry ('' for none)")
    ap.add_argument("--resource", default=None, help="this server's resource URL (the required aud); "
                                                     "default http://127.0.0.1:PORT/mcp")
    ap.add_argument("--name", default="protected")
    args = ap.parse_args()
    resource = args.resource or f"http://127.0.0.1:{args.port}/mcp"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the JWKS fetches; refusals are logged by log()
    mcp = build(args, resource)
    app = Record(mcp.streamable_http_app(host="127.0.0.1"), Path(args.record))
    log(f"serving {resource} for tokens of {args.issuer}")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
