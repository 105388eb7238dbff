"""Discovery documents of the MCP authorization specification, shared by both sides.

Owns reading what a server publishes about its authorization:

- ``parse_challenge``: the parameters of a ``WWW-Authenticate: Bearer ...`` header
  (``resource_metadata``, ``scope``, ``error``...), RFC 6750 §3 / RFC 9728 §5.1;
- ``protected_resource``: a protected MCP server's Protected Resource Metadata (RFC 9728), from
  the URL a 401 named, else at the well-known paths (path-inserted first, then the root), whose
  ``resource`` must be the server's own URL (§3.3);
- ``authorization_server``: an issuer's metadata, RFC 8414 then OpenID discovery in the order the
  MCP spec gives (path insertion first), whose ``issuer`` must be exactly the one asked for
  (RFC 8414 §3.3).

Every failure is an ``OAuthError`` naming the URL and what was wrong. Must not: hold state, send a
token, or follow a redirect to another origin (none are followed).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from runtimed.errors import OAuthError
from runtimed.protocol.types import JSON

TIMEOUT_S = 10.0
MAX_DOCUMENT = 256 * 1024
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> dict[str, str]:
    """The auth-params of the ``Bearer`` challenge in a ``WWW-Authenticate`` value ({} if none)."""
    at = header.lower().find("bearer")
    if at < 0:
        return {}
    out: dict[str, str] = {}
    for m in _PARAM.finditer(header[at + 6:]):
        name = m.group(1).lower()
        value = m.group(2) if m.group(2) is not None else m.group(3)
        out.setdefault(name, re.sub(r"\\(.)", r"\1", value))
    return out


def canonical(uri: str) -> str:
    """A resource URI as compared: scheme and host lower-cased, no trailing slash, no fragment."""
    try:
        p = urlsplit(uri.strip())
    except ValueError:
        return uri
    path = p.path.rstrip("/")
    return f"{p.scheme.lower()}://{p.netloc.lower()}{path}" + (f"?{p.query}" if p.query else "")


def check_endpoint(url: Any, what: str) -> str:
    """An endpoint a document names: an absolute https URL (http only on a loopback host)."""
    if not isinstance(url, str) or not url:
        raise OAuthError(f"{what} is missing")
    try:
        p = urlsplit(url)
    except ValueError:
        raise OAuthError(f"{what} is not a URL: {url!r}") from None
    host = (p.hostname or "").lower()
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if p.scheme != "https" and not (p.scheme == "http" and loopback):
        raise OAuthError(f"{what} {url!r} must use https (http only on a loopback address)")
    return url


async def get_json(http: httpx.AsyncClient, url: str, what: str) -> tuple[int, JSON | None]:
    """(status, the JSON object) of a GET; (status, None) when not 200; OAuthError when unreachable
    or not a JSON object."""
    try:
        r = await http.get(url, headers={"Accept": "application/json"}, follow_redirects=False)
    except httpx.HTTPError as e:
        raise OAuthError(f"{what}: {url} cannot be reached ({type(e).__name__})") from None
    if r.status_code != 200:
        return r.status_code, None
    if len(r.content) > MAX_DOCUMENT:
        raise OAuthError(f"{what}: {url} answered a document over {MAX_DOCUMENT} bytes")
    try:
        doc = r.json()
    except ValueError:
        raise OAuthError(f"{what}: {url} did not answer JSON") from None
    if not isinstance(doc, dict):
        raise OAuthError(f"{what}: {url} did not answer a JSON object")
    return 200, doc


def _well_known(url: str, name: str) -> list[str]:
    p = urlsplit(url)
    base, path = f"{p.scheme}://{p.netloc}", p.path.rstrip("/")
    return [f"{base}/.well-known/{name}{path}", f"{base}/.well-known/{name}"] if path else [f"{base}/.well-known/{name}"]


async def protected_resource(http: httpx.AsyncClient, server_url: str, metadata_url: str | None = None) -> JSON:
    """The Protected Resource Metadata of the MCP server at ``server_url``: at ``metadata_url`` (what
    its 401 named) or at the well-known paths. Its ``resource`` must name ``server_url`` and it must
    name at least one authorization server."""
    candidates = [metadata_url] if metadata_url else _well_known(server_url, "oauth-protected-resource")
    tried: list[str] = []
    for url in candidates:
        check_endpoint(url, "the protected resource metadata URL")
        status, doc = await get_json(http, url, "protected resource metadata")
        if doc is None:
            tried.append(f"{url}: HTTP {status}")
            continue
        resource = doc.get("resource")
        if not isinstance(resource, str) or canonical(resource) != canonical(server_url):
            raise OAuthError(f"the protected resource metadata at {url} is for {resource!r}, not {server_url!r} "
                             "(RFC 9728: refused)")
        servers = doc.get("authorization_servers")
        if not isinstance(servers, list) or not servers or not all(isinstance(s, str) for s in servers):
            raise OAuthError(f"the protected resource metadata at {url} names no authorization server")
        return doc
    raise OAuthError(f"{server_url} publishes no protected resource metadata ({'; '.join(tried)}); it may not "
                     "support the MCP authorization flow")


async def authorization_server(http: httpx.AsyncClient, issuer: str) -> JSON:
    """The metadata of the authorization server ``issuer``: RFC 8414 then OpenID discovery, path
    insertion first; its ``issuer`` must be exactly ``issuer``."""
    check_endpoint(issuer, "the authorization server")
    p = urlsplit(issuer)
    base, path = f"{p.scheme}://{p.netloc}", p.path.rstrip("/")
    candidates = ([f"{base}/.well-known/oauth-authorization-server{path}", f"{base}/.well-known/openid-configuration{path}",
                   f"{issuer.rstrip('/')}/.well-known/openid-configuration"] if path else
                  [f"{base}/.well-known/oauth-authorization-server", f"{base}/.well-known/openid-configuration"])
    tried: list[str] = []
    for url in candidates:
        try:
            status, doc = await get_json(http, url, "authorization server metadata")
        except OAuthError as e:
            tried.append(str(e))
            continue
        if doc is None:
            tried.append(f"{url}: HTTP {status}")
            continue
        if doc.get("issuer") != issuer:
            raise OAuthError(f"{url} names the issuer {doc.get('issuer')!r}, not {issuer!r} (RFC 8414: refused)")
        return doc
    raise OAuthError(f"no authorization server metadata for {issuer} ({'; '.join(tried)})")
