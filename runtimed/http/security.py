"""Who may talk to the daemon: bearer token, loopback-only, Host and Origin.

Owns one pure-ASGI middleware applied to every HTTP request before routing.
Rules: ``/healthz`` and the static assets are open; every other path
(``/api``, ``/mcp``, ``/metrics``, ``/status``) needs, when a token is
configured, ``Authorization: Bearer <token>`` (compared in constant time), and
when none is, a loopback client. ``/status`` HTML itself is served without the
token (the page asks for it and sends it with its API calls), and so are the
OAuth sign-in callback ``/oauth/callback`` (the one-time ``state`` it carries is
the proof; the browser back from an authorization server has no token) and the
gateway's Client ID Metadata Document. Any request
whose ``Host`` names something other than this daemon is refused (DNS
rebinding), token or not; an ``Origin`` must be this daemon's whole origin
(``http``, one of its names, its port), or the very origin the request was
sent to (the host and port of its ``Host``: a proxy, a port forward; ``https``
only for an ``allowed_hosts`` name). A
request that can change something (``/api`` with a method other than GET/HEAD,
POST on ``/mcp``) must say ``Content-Type: application/json``, body or not:
no web page can send that across sites without a CORS preflight, which the
daemon never grants, so no simple cross-site request can mutate.
With an OAuth issuer (``oauth_issuer``), ``/mcp`` takes OAuth access tokens instead
(``runtimed.auth.resource``: on loopback too): a missing or refused token is a 401
whose ``WWW-Authenticate`` names the Protected Resource Metadata, served here at
``/.well-known/oauth-protected-resource`` (and ``…/mcp``) to anyone; a token
without the required scopes is a 403 ``insufficient_scope``; the static token
still passes, as the admin. The ``Principal`` goes on in ``scope["state"]``. A
token whose ``oauth_profile_claim`` claim names a profile reaches only that
profile's endpoint ``/mcp/@NAME`` (403 elsewhere).
A scoped token (``rtk_…``, ``runtimed.auth.tokens``), in every mode and ahead of
OAuth validation, reaches its profile's endpoint ``/mcp/@NAME`` and nothing else:
elsewhere a 403 that names the one endpoint it reaches; unknown, revoked or
expired, a 401 that says which (its id only). A loopback client without a token
keeps full access; with a scoped token it is held to that token's profile.
Must not: route, parse bodies, or log tokens.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from runtimed.auth.resource import ADMIN, AuthFailure, ResourceServer
from runtimed.auth.tokens import TokenRegistry, looks_scoped
from runtimed.config.settings import Settings, is_loopback_host
from runtimed.protocol.jsonrpc import INVALID_REQUEST, UNAUTHORIZED

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]]

OPEN_PATHS = ("/healthz", "/static/")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_PORTS = {"http": 80, "https": 443}
# The page shell (its data comes from /api with the token); the OAuth callback (its one-time state is
# the proof: the browser coming back from an authorization server has no token) and the gateway's
# Client ID Metadata Document (an authorization server fetches it).
TOKEN_FREE_PATHS = ("/status", "/oauth/callback", "/oauth/client-metadata.json")
WELL_KNOWN = "/.well-known/oauth-protected-resource"


def _wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "[::]", "")


def proxy_host_names(settings: Settings) -> set[str]:
    """Names a proxy in front of the daemon uses: ``allowed_hosts`` and the host of ``public_url``."""
    names = {h.lower() for h in settings.allowed_hosts}
    if settings.public_url:
        names.add((urlsplit(settings.public_url).hostname or "").lower())
    return names - {""}


def allowed_host_names(settings: Settings) -> set[str]:
    """Host names (without port) this daemon answers to: its own, ``allowed_hosts`` and ``public_url``'s."""
    return own_host_names(settings) | proxy_host_names(settings)


def own_host_names(settings: Settings) -> set[str]:
    """The names of this daemon's own addresses (bind address, loopback names, the machine's names on a
    wildcard bind), without ``allowed_hosts``."""
    names: set[str] = set()
    bind = settings.host.strip("[]").lower()
    names.add(bind)
    if settings.is_loopback or _wildcard(settings.host):
        names.update({"127.0.0.1", "localhost", "::1"})
    if _wildcard(settings.host):
        try:
            hostname = socket.gethostname().lower()
            names.update({hostname, socket.getfqdn().lower()})
        except OSError:
            pass
    return names


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, tokens: TokenRegistry | None = None) -> None:
        self.app = app
        self.settings = settings
        self.tokens = tokens
        self.token = settings.auth_token.encode() if settings.auth_token else None
        self.resource: ResourceServer | None = None
        if settings.oauth_issuer:
            self.resource = ResourceServer(settings.oauth_issuer, settings.resource_uri, settings.oauth_scopes,
                                           settings.oauth_client_id, settings.oauth_client_secret,
                                           settings.oauth_profile_claim)
            parts = urlsplit(settings.resource_uri)
            self.metadata_paths = (WELL_KNOWN, WELL_KNOWN + parts.path.rstrip("/"))
            self.metadata_url = f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"
        self.names = allowed_host_names(settings)
        self.own_names = own_host_names(settings)
        self.proxy_names = proxy_host_names(settings)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        headers = _wanted_headers(scope.get("headers", ()))
        if self.resource is not None and path.startswith(WELL_KNOWN):
            await self._metadata(scope, path, headers, send)
            return
        scoped = self._scoped_bearer(headers)
        if scoped is not None:
            problem = await self._scoped(scope, path, headers, scoped)
            if problem is None:
                await self.app(scope, receive, send)
                return
            status, message = problem
            await _deny(send, path, status, message,
                        challenge='Bearer realm="runtimed", error="invalid_token"' if status == 401 else None)
            return
        problem = self._check(scope, path, headers)
        if problem is None and self.resource is not None and _is_mcp(path):
            failure = await self._oauth(scope, headers)
            if failure is not None:
                await _deny(send, path, failure.status, failure.description,
                            challenge=self.resource.challenge(self.metadata_url, failure if failure.error else None))
                return
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        await _deny(send, path, status, message, challenge='Bearer realm="runtimed"' if status == 401 else None)

    async def _oauth(self, scope: Scope, headers: dict[str, str]) -> AuthFailure | None:
        """``/mcp`` with an issuer: the static token (the admin) or a valid access token; the principal
        goes on in the request's state."""
        assert self.resource is not None
        scheme, _, value = headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else ""
        if self.token is not None and token and hmac.compare_digest(token.encode(), self.token):
            principal = ADMIN
        else:
            try:
                principal = await self.resource.authenticate(token or None)
            except AuthFailure as e:
                return e
            # A token whose profile claim (oauth_profile_claim) names a profile reaches that profile only.
            endpoint = f"/mcp/@{principal.profile}" if principal.profile is not None else None
            if endpoint is not None and scope.get("path") != endpoint:
                return AuthFailure(403, f"this token's {self.resource.profile_claim} claim limits it to {endpoint} (the "
                                        f"endpoint of profile {principal.profile}), not {scope.get('path')}", error=None)
        scope.setdefault("state", {})["principal"] = principal
        return None

    async def _metadata(self, scope: Scope, path: str, headers: dict[str, str], send: Any) -> None:
        """RFC 9728 Protected Resource Metadata (no token: it says where to get one)."""
        assert self.resource is not None
        host, _ = _split_host(headers.get("host", ""))
        if not host or host not in self.names:
            await _deny(send, path, 403, f"Host {headers.get('host', '')!r} is not this daemon's address")
            return
        if path.rstrip("/") not in self.metadata_paths or scope.get("method") not in SAFE_METHODS:
            await _deny(send, path, 404, f"no metadata at {path} (see {self.metadata_url})")
            return
        data = json.dumps(self.resource.metadata()).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"max-age=300")]})
        await send({"type": "http.response.body", "body": data})

    def _scoped_bearer(self, headers: dict[str, str]) -> str | None:
        """The bearer value when it is meant as a scoped token (``rtk_``…) and is not the admin's token."""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        token = value.strip()
        if scheme.lower() != "bearer" or not looks_scoped(token):
            return None
        if self.token is not None and hmac.compare_digest(token.encode(), self.token):
            return None
        return token

    async def _scoped(self, scope: Scope, path: str, headers: dict[str, str], token: str) -> tuple[int, str] | None:
        """A scoped token: valid (401 if not: unknown, revoked, expired) and presented on its profile's
        endpoint ``/mcp/@NAME`` and nowhere else (403), whatever the mode (static token, loopback only, an
        OAuth issuer); its principal goes on in the request's state."""
        problem = self._place(headers)
        if problem is not None:
            return problem
        method = scope.get("method", "GET")
        if path.startswith(TOKEN_FREE_PATHS) and method == "GET":
            return None if self.token or self._loopback_client(scope) else (403, "only loopback clients are served without a token")
        if self.tokens is None:
            return 401, "this daemon serves no scoped tokens"
        try:
            principal = await self.tokens.authenticate(token)
        except AuthFailure as e:
            return 401, e.description
        endpoint = f"/mcp/@{principal.profile}"
        if path != endpoint:
            return 403, (f"scoped token {principal.token_id} only reaches {endpoint} (the endpoint of profile "
                         f"{principal.profile}), not {path}")
        scope.setdefault("state", {})["principal"] = principal
        return self._content_type(method, path, headers)

    def _place(self, headers: dict[str, str]) -> tuple[int, str] | None:
        """Where the request is addressed and from which page: ``Host`` and ``Origin`` (DNS rebinding,
        cross-site requests)."""
        host_header = headers.get("host", "")
        host, _ = _split_host(host_header)
        if not host or host not in self.names:
            return 403, f"Host {host_header!r} is not this daemon's address (allowed: {', '.join(sorted(self.names))}; add names with allowed_hosts)"
        origin = headers.get("origin")
        if origin is not None and not self._origin_ok(origin, host_header):
            return 403, (f"Origin {origin!r} is not allowed: only pages served by this daemon itself "
                         f"(http://{host_header or '<its address>'}) may call it (cross-site request refused)")
        return None

    def _check(self, scope: Scope, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        problem = self._place(headers)
        if problem is not None:
            return problem
        method = scope.get("method", "GET")
        if path.startswith(TOKEN_FREE_PATHS) and method == "GET":
            return None if self.token or self._loopback_client(scope) else (403, "only loopback clients are served without a token")
        if self.resource is not None and _is_mcp(path):
            pass  # the access token is checked by _oauth (loopback or not)
        elif self.token is not None:
            auth = headers.get("authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token):
                return 401, "missing or wrong bearer token (send Authorization: Bearer <token>)"
        elif not self._loopback_client(scope):
            return 403, "only loopback clients are served when no token is configured"
        return self._content_type(method, path, headers)

    @staticmethod
    def _content_type(method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        if _mutating(method, path) and not _is_json(headers.get("content-type", "")):
            sent = headers.get("content-type")
            area = "/mcp" if path.startswith("/mcp") else "/api"
            return 415, (f"send Content-Type: application/json with every {method} to {area}, body or not "
                         f"(got {'none' if sent is None else repr(sent)}): requests a web page could send across "
                         "sites without asking are refused")
        return None

    def _origin_ok(self, origin: str, host_header: str) -> bool:
        """The daemon's own origin: ``http``, one of its names, its port; or, as the request addressed
        it (a proxy, an SSH port forward), the very host and port of ``Host`` (``https`` too for an
        ``allowed_hosts`` name, where a proxy may terminate TLS)."""
        scheme, host, port = _origin_parts(origin)
        if scheme not in DEFAULT_PORTS or not host:
            return False  # "null", unparseable, or not a web origin
        if scheme == "http" and host in self.own_names and port == self.settings.port:
            return True
        if scheme != "http" and host not in self.proxy_names:
            return False
        h_host, h_port = _split_host(host_header)
        return h_host == host and (h_port if h_port is not None else DEFAULT_PORTS[scheme]) == port

    @staticmethod
    def _loopback_client(scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return True  # in-process transports (tests with ASGI transport) have no peer
        return _is_loopback_peer(client[0])


# The few headers the checks read, decoded; like a dict of all of them, the last occurrence wins.
_WANTED = {b"host": "host", b"origin": "origin", b"authorization": "authorization", b"content-type": "content-type"}


def _wanted_headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in raw:
        name = _WANTED.get(k) or _WANTED.get(k.lower())
        if name is not None:
            out[name] = v.decode("latin-1")
    return out


# Parsing results per distinct value (clients send the same few values on every request); bounded.
@functools.lru_cache(maxsize=256)
def _split_host(value: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", None


@functools.lru_cache(maxsize=256)
def _origin_parts(origin: str) -> tuple[str, str, int]:
    """(scheme, lower-cased host name, port or the scheme's default) of an Origin header value;
    ("", "", 0) if unparseable or not a bare origin (refused)."""
    try:
        o = urlsplit(origin)
        scheme = o.scheme.lower()
        if o.path or o.query or o.fragment or o.username is not None or o.password is not None:
            return "", "", 0
        port = o.port if o.port is not None else DEFAULT_PORTS.get(scheme, 0)
        return scheme, (o.hostname or "").lower(), port
    except ValueError:
        return "", "", 0


def _mutating(method: str, path: str) -> bool:
    """A request that can change something: any ``/api`` method but GET/HEAD/OPTIONS, POST on ``/mcp``."""
    if path.startswith("/api/") or path == "/api":
        return method not in SAFE_METHODS
    return method == "POST" and (path == "/mcp" or path.startswith("/mcp/"))


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@functools.lru_cache(maxsize=256)
def _is_loopback_peer(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return is_loopback_host(host)


def _is_mcp(path: str) -> bool:
    return path == "/mcp" or path.startswith("/mcp/")


async def _deny(send: Any, path: str, status: int, message: str, challenge: str | None = None) -> None:
    if path.startswith("/mcp"):
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": UNAUTHORIZED if status == 401 else INVALID_REQUEST,
                                                         "message": message}}
    else:
        body = {"error": message}
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
