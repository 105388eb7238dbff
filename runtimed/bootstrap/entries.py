"""What bootstrap writes: the clients, transports and scopes it knows, the
names it uses (``RUNTIMED_AUTH_TOKEN``, ``RUNTIMED_URL``, the stdio bridge's
arguments), checking its inputs, and the entry each client gets.

Owns ``desired_entry`` (the managed keys per client and transport, see
docs/spec/bootstrap.md), input validation (client list, server name, scope,
transport, endpoint), a profile's endpoint (``/mcp/@NAME``: ``profile_endpoint``,
``endpoint_profile``), its default entry name (``entry_name``: ``runtimed-NAME``)
and its stdio bridge arguments (``--profile NAME``), and URL helpers (the
daemon's base URL for an endpoint, comparable URLs). Must not: read or write files, know a file format, or ever
hold a token value except the one ``inline_token`` the caller asks for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from runtimed.bootstrap.model import BootstrapError
from runtimed.config.manifest import NAME_PATTERN
from runtimed.config.settings import DEFAULT_PORT

CLIENTS = ("codex", "claude")
TRANSPORTS = ("http", "stdio")
SCOPES = ("user", "project")
TOKEN_ENV = "RUNTIMED_AUTH_TOKEN"
URL_ENV = "RUNTIMED_URL"
STDIO_ARGS = ("gateway", "serve", "--stdio")
PROFILE_FLAG = "--profile"  # the bridge's option that relays to a profile's endpoint
PROFILE_PATH = "/mcp/@"  # a profile NAME is served at <base>/mcp/@NAME
DEFAULT_NAME = "runtime"
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PROFILE_RE = re.compile(NAME_PATTERN)  # a profile's name, as a service's

Transport = Literal["http", "stdio"]
Scope = Literal["user", "project"]


def check_clients(clients: Iterable[str]) -> list[str]:
    """The clients asked for, lower-cased, each once, in order; raises for an unknown one or none."""
    out: list[str] = []
    for c in clients:
        c = c.strip().lower()
        if c not in CLIENTS:
            raise BootstrapError(f"unknown client {c!r}; expected one of: {', '.join(CLIENTS)}")
        if c not in out:
            out.append(c)
    if not out:
        raise BootstrapError(f"no client given; expected one or more of: {', '.join(CLIENTS)}")
    return out


def check_name(name: str) -> None:
    """The server's name in the client configs: 1-64 of ``[A-Za-z0-9_-]``."""
    if not _NAME_RE.match(name):
        raise BootstrapError(
            f"invalid server name {name!r}: use 1-64 letters, digits, '_' or '-' (Codex rejects other names)"
        )


def check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    """``value`` is one of ``allowed`` (a transport or a scope)."""
    if value not in allowed:
        raise BootstrapError(f"invalid {what} {value!r}; expected one of: {', '.join(allowed)}")


def check_endpoint(endpoint: str) -> None:
    """An http(s) URL with a host and no query or fragment."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BootstrapError(f"invalid endpoint {endpoint!r}: expected an http(s) URL such as {DEFAULT_BASE_URL}/mcp")
    if parts.query or parts.fragment:
        raise BootstrapError(f"invalid endpoint {endpoint!r}: no query or fragment expected")


def entry_name(profile: str | None = None) -> str:
    """The server's default name in the client configs: ``runtime`` for the gateway's ``/mcp``,
    ``runtimed-NAME`` for profile NAME's endpoint (so that several profiles sit side by side)."""
    return DEFAULT_NAME if profile is None else f"{DEFAULT_NAME}d-{profile}"


def profile_endpoint(endpoint: str, profile: str) -> str:
    """Profile ``profile``'s endpoint, ``<base>/mcp/@NAME``, from the gateway's ``.../mcp`` (or the
    profile's endpoint itself)."""
    if not _PROFILE_RE.match(profile):
        raise BootstrapError(f"invalid profile name {profile!r}: lowercase letters, digits, '-' and '_', at most 32")
    trimmed = endpoint.rstrip("/")
    if trimmed.endswith(f"{PROFILE_PATH}{profile}"):
        return trimmed
    if not trimmed.endswith("/mcp"):
        raise BootstrapError(f"invalid endpoint {endpoint!r}: a profile's endpoint is the gateway's URL ending in "
                             f"/mcp, then /@{profile}")
    return f"{trimmed}/@{profile}"


def endpoint_profile(endpoint: str) -> str | None:
    """The profile an endpoint ``.../mcp/@NAME`` serves, or None (the gateway's ``/mcp``, or another URL)."""
    trimmed = endpoint.rstrip("/")
    head, sep, name = trimmed.rpartition(PROFILE_PATH)
    return name if sep and head and _PROFILE_RE.match(name) else None


def base_url(endpoint: str) -> str:
    """The daemon's base URL for an ``.../mcp`` or ``.../mcp/@NAME`` endpoint (what ``RUNTIMED_URL`` holds)."""
    trimmed = endpoint.rstrip("/")
    profile = endpoint_profile(trimmed)
    if profile is not None:
        trimmed = trimmed[: -len(f"/@{profile}")]
    if not trimmed.endswith("/mcp"):
        raise BootstrapError(f"invalid endpoint {endpoint!r}: the stdio bridge needs the gateway's URL ending in /mcp "
                             "(or /mcp/@PROFILE)")
    return trimmed[: -len("/mcp")]


def stdio_args(endpoint: str) -> list[str]:
    """The stdio bridge's arguments for ``endpoint``: ``gateway serve --stdio``, and ``--profile NAME``
    for a profile's endpoint."""
    profile = endpoint_profile(endpoint)
    return [*STDIO_ARGS, *((PROFILE_FLAG, profile) if profile is not None else ())]


def stdio_endpoint(base: str, args: Sequence[Any]) -> str:
    """The endpoint a stdio entry's bridge relays to: ``<base>/mcp``, or ``<base>/mcp/@NAME`` with
    ``--profile NAME`` in its arguments."""
    words = [str(a) for a in args]
    endpoint = base.rstrip("/") + "/mcp"
    if PROFILE_FLAG in words[:-1]:
        return f"{endpoint}/@{words[words.index(PROFILE_FLAG) + 1]}"
    return endpoint


def normalize_url(url: str) -> str:
    """Comparable form of a URL: lower-case scheme and host, default port and
    trailing slash dropped."""
    try:
        p = urlsplit(url.strip())
        host = (p.hostname or "").lower()
        port = p.port
    except ValueError:
        return url.strip()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and not ((p.scheme == "http" and port == 80) or (p.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return f"{p.scheme.lower()}://{host}{p.path.rstrip('/')}"



def desired_entry(
    client: str,
    transport: str,
    endpoint: str,
    *,
    token_configured: bool,
    runtimectl_path: str | None = None,
    inline_token: str | None = None,
) -> dict[str, Any]:
    """The managed keys of the entry bootstrap writes (see docs/spec/bootstrap.md)."""
    if transport == "http":
        if client == "codex":
            entry: dict[str, Any] = {"url": endpoint}
            if token_configured:
                entry["bearer_token_env_var"] = TOKEN_ENV
            return entry
        entry = {"type": "http", "url": endpoint}
        if inline_token is not None:
            entry["headers"] = {"Authorization": f"Bearer {inline_token}"}
        elif token_configured:
            entry["headers"] = {"Authorization": f"Bearer ${{{TOKEN_ENV}}}"}
        return entry
    if not runtimectl_path or not os.path.isabs(runtimectl_path):
        raise BootstrapError(
            f"the stdio transport needs the absolute path of runtimectl (got {runtimectl_path!r}); "
            "is runtimectl installed?"
        )
    env = {URL_ENV: base_url(endpoint)}
    if client == "codex":
        entry = {"command": runtimectl_path, "args": stdio_args(endpoint), "env": env}
        if token_configured:
            entry["env_vars"] = [TOKEN_ENV]
        return entry
    if token_configured:
        env[TOKEN_ENV] = f"${{{TOKEN_ENV}}}"
    return {"type": "stdio", "command": runtimectl_path, "args": stdio_args(endpoint), "env": env}


def managed(entry: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The keys of ``entry`` that bootstrap owns (a format module's ``MANAGED_KEYS``)."""
    return {k: entry[k] for k in keys if k in entry}

