"""Which hosts a remote service may reach (SSRF guard).

Owns matching a URL's host against the daemon-wide ``remote_allowed_hosts``
and a service's own ``origin.allowedHosts``: exact names, ``*.example.com``
globs (subdomains only) and IP literals or CIDR ranges. Used at registration
and before every connect (redirects and SSE endpoints included). Must not
resolve names or open connections.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from runtimed.errors import InvalidOrigin


def _norm(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def host_matches(host: str, pattern: str) -> bool:
    host, pattern = _norm(host), _norm(pattern)
    if not pattern:
        return False
    if pattern == "*":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        try:
            if "/" in pattern:
                return ip in ipaddress.ip_network(pattern, strict=False)
            return ip == ipaddress.ip_address(pattern)
        except ValueError:
            return False
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def host_allowed(host: str, patterns: Iterable[str] | None) -> bool:
    """``None`` means any host."""
    if patterns is None:
        return True
    return any(host_matches(host, p) for p in patterns)


def check_url_host(url: str, daemon_hosts: list[str] | None, service_hosts: list[str] | None, service: str = "") -> None:
    """Raise ``InvalidOrigin`` unless the URL's host passes both lists."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    who = f"service {service!r}: " if service else ""
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidOrigin(f"{who}{url!r} is not an http(s) URL with a host")
    if not host_allowed(host, daemon_hosts):
        raise InvalidOrigin(
            f"{who}host {host!r} is not in the daemon's allowed remote hosts "
            f"(RUNTIMED_REMOTE_ALLOWED_HOSTS = {', '.join(daemon_hosts or []) or '(empty)'})"
        )
    if service_hosts is not None and not host_allowed(host, service_hosts):
        raise InvalidOrigin(
            f"{who}host {host!r} is not in the service's origin.allowedHosts ({', '.join(service_hosts) or '(empty)'})"
        )
