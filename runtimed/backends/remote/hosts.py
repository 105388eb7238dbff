"""Which hosts a remote service may reach (SSRF guard).

Owns matching a URL's host against the daemon-wide ``remote_allowed_hosts``
and a service's own ``origin.allowedHosts``: exact names, ``*.example.com``
globs (subdomains only) and IP literals or CIDR ranges. Used at registration
and before every connect (redirects and SSE endpoints included). Also owns the
rule for the addresses a name resolves to (``check_address``, DNS rebinding),
applied by ``http.make_resolver`` when a new connection is opened:

- No list set (both ``None``): no address check; names are resolved by the
  connection as usual.
- A list set: the name must match by name (above) AND every address it
  resolves to must be acceptable. A public (globally routable) address is;
  a loopback, private, link-local, shared, reserved or unspecified one is only
  when each list that is set admits it with an IP literal or CIDR entry (or
  ``*``), except that a loopback address is acceptable for a loopback-bound
  name (``localhost``, ``*.localhost``). One unacceptable address refuses the
  name (a rebinding answer may mix addresses); the connection then goes to
  the checked addresses, never to a second resolution.

Must not: resolve names or open connections (``http`` does, at connect time).
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


def _loopback_name(host: str) -> bool:
    host = _norm(host)
    return host == "localhost" or host.endswith(".localhost")


def _address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """None for a public address, else what kind of non-public address it is."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if ip.is_global and not ip.is_multicast:
        return None
    return "non-public"


def _admits(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, patterns: Iterable[str]) -> bool:
    """Whether an IP literal, CIDR or ``*`` entry of a list admits the address (names never do)."""
    for p in patterns:
        p = _norm(p)
        if p == "*":
            return True
        try:
            if ip in ipaddress.ip_network(p, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_address(host: str, address: str, daemon_hosts: list[str] | None, service_hosts: list[str] | None,
                  service: str = "") -> None:
    """Raise ``InvalidOrigin`` unless ``host`` may be reached at ``address`` (see the module's rule)."""
    if daemon_hosts is None and service_hosts is None:
        return
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise InvalidOrigin(f"{'service ' + repr(service) + ': ' if service else ''}host {host!r} resolved to "
                            f"{address!r}, which is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    kind = _address_kind(ip)
    if kind is None or (kind == "loopback" and _loopback_name(host)):
        return
    for patterns, where in ((daemon_hosts, "RUNTIMED_REMOTE_ALLOWED_HOSTS"), (service_hosts, "origin.allowedHosts")):
        if patterns is not None and not _admits(ip, patterns):
            who = f"service {service!r}: " if service else ""
            raise InvalidOrigin(
                f"{who}host {host!r} resolves to {ip}, a {kind} address, which {where} does not admit "
                f"(the name is allowed, the address is not: refused as a possible DNS rebinding; "
                f"add {ip} or its range to {where} if this upstream is meant to be there)"
            )
