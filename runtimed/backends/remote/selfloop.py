"""Whether a remote service's URL is this daemon itself: registering the gateway
into itself would make it its own upstream (its tools multiply as
``self__self__...`` until the payload limits give out).

Owns ``check_not_daemon``, applied at registration and at every start. A URL is
the daemon when it reaches the daemon's listening socket (its port, and an
address it accepts: its bind address; for a wildcard bind any address of this
machine; the unspecified address, which connects locally), given as an IP
literal or as a name that resolves to one (looked up only when the port is the
daemon's, for at most ``RESOLVE_TIMEOUT_S``; an unresolvable name is left to
fail at connect), whatever the path; or when its host is one of
``allowed_hosts`` (the names a proxy serves the daemon under, whose public port
the daemon cannot know) and its path is ``/mcp`` or under it. Other addresses
and ports of the loopback interface stay allowed. Must not: open connections,
or refuse anything that could be another server.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import socket
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from runtimed.errors import InvalidOrigin

RESOLVE_TIMEOUT_S = 2.0
_WILDCARDS = ("0.0.0.0", "::", "")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_not_daemon(url: str, settings: Any, service: str = "") -> None:
    """Raise ``InvalidOrigin`` when ``url`` is this daemon's own endpoint (see the module)."""
    port = getattr(settings, "port", None)
    bind = str(getattr(settings, "host", "") or "").strip("[]").lower()
    if not isinstance(port, int) or port <= 0:
        return  # not bound yet (a settings object of a test or a tool): nothing to compare
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        url_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # the manifest's own validation says what is wrong with it
    where = f"service {service!r}: " if service else ""
    loop = service or "name"
    if host in {h.strip().rstrip(".").lower() for h in getattr(settings, "allowed_hosts", None) or ()} \
            and _is_mcp_path(parts.path):
        raise InvalidOrigin(f"{where}{url} is this daemon's own MCP endpoint ({host} is one of its allowed_hosts, "
                            "the names it is served under): the gateway cannot be added to itself. Give the URL "
                            "of the MCP server you mean to add")
    if url_port != port:
        return
    for address in _addresses(host, url_port):
        if _reaches_daemon(address, bind):
            listens = f"{bind or '*'}:{port}" if ":" not in bind else f"[{bind}]:{port}"
            raise InvalidOrigin(f"{where}{url} is this daemon itself (it listens on {listens}; {host} is "
                                f"{address}): the gateway cannot be added to itself (its own tools would come back "
                                f"as {loop}__{loop}__... without end). Give the URL of the MCP server you mean to add")


def _is_mcp_path(path: str) -> bool:
    p = posixpath.normpath(re.sub(r"/+", "/", "/" + unquote(path or "/")))
    return p == "/mcp" or p.startswith("/mcp/")


def _addresses(host: str, port: int) -> list[IP]:
    """``host`` as addresses: itself if an IP literal, else what it resolves to (bounded; [] if
    it does not resolve in time)."""
    literal = _ip(host)
    if literal is not None:
        return [literal]
    found: list[list[str]] = []

    def resolve() -> None:
        try:
            found.append([str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)])
        except (OSError, UnicodeError):
            found.append([])

    worker = threading.Thread(target=resolve, name="runtimed-selfloop-resolve", daemon=True)
    worker.start()
    worker.join(RESOLVE_TIMEOUT_S)
    return [ip for a in (found[0] if found else []) if (ip := _ip(a)) is not None]


def _ip(text: str) -> IP | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _reaches_daemon(address: IP, bind: str) -> bool:
    """Whether connecting to ``address`` at the daemon's port reaches the daemon bound to ``bind``."""
    if bind in _WILDCARDS:
        if address.is_unspecified:
            return True
        if bind == "0.0.0.0" and address.version != 4:
            return False  # an IPv4-only listener
        return _is_local(address)
    if address.is_unspecified:
        # Connecting to 0.0.0.0 / :: reaches this machine's loopback.
        return any(ip.is_loopback for ip in _bind_addresses(bind))
    return address in _bind_addresses(bind)


def _bind_addresses(bind: str) -> list[IP]:
    literal = _ip(bind)
    if literal is not None:
        return [literal]
    return _addresses(bind, 0)  # a bind by name (``localhost``): what the name stands for


def _is_local(address: IP) -> bool:
    """An address of this machine: one a socket can be bound to."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(address), 0))
        return True
    except OSError:
        return False
