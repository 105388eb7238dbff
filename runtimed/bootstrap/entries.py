"""What bootstrap writes: the clients, transports and scopes it knows, the
names it uses (``RUNTIMED_AUTH_TOKEN`` or the variable ``--token-env`` names,
``RUNTIMED_URL``, the stdio bridge's arguments), checking its inputs, and the
entry each client gets.

Owns ``desired_entry`` (the managed keys per client and transport, see
docs/spec/bootstrap.md), input validation (client list, server name, scope,
transport, endpoint), a profile's endpoint (``/mcp/@NAME``: ``profile_endpoint``,
``endpoint_profile``), its default entry name (``entry_name``: ``runtimed-NAME``)
and its stdio bridge arguments (``--profile NAME``, ``--token-env VAR`` for a
variable other than ``RUNTIMED_AUTH_TOKEN``), which variable an entry sends the
token from (``entry_token_env``), and URL helpers (the
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
TOKEN_ENV_FLAG = "--token-env"  # the bridge's option naming the variable it reads the token from
PROFILE_PATH = "/mcp/@"  # a profile NAME is served at <base>/mcp/@NAME
DEFAULT_NAME = "runtime"
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PROFILE_RE = re.compile(NAME_PATTERN)  # a profile's name, as a service's
TOKEN_ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_TOKEN_ENV_RE = re.compile(TOKEN_ENV_PATTERN)
_BEARER_REF_RE = re.compile(r"^Bearer \$\{([A-Za-z_][A-Za-z0-9_]*)\}$")  # Claude Code's "Bearer ${VAR}"

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


def check_token_env(var: str) -> str:
    """``var`` as the name of the environment variable entries send the token from: a letter or ``_``,
    then up to 127 letters, digits or ``_`` (what every shell and both clients accept)."""
    if not _TOKEN_ENV_RE.fullmatch(var):
        raise BootstrapError(
            f"invalid token variable {var!r}: an environment variable name is a letter or '_' followed by "
            "at most 127 letters, digits or '_' (such as RUNTIMED_TOKEN_DEV)"
        )
    return var


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


def stdio_args(endpoint: str, token_env: str = TOKEN_ENV) -> list[str]:
    """The stdio bridge's arguments for ``endpoint``: ``gateway serve --stdio``, ``--profile NAME``
    for a profile's endpoint, and ``--token-env VAR`` when the token is in a variable other than
    ``RUNTIMED_AUTH_TOKEN`` (which the bridge reads by default)."""
    profile = endpoint_profile(endpoint)
    return [*STDIO_ARGS, *((PROFILE_FLAG, profile) if profile is not None else ()),
            *((TOKEN_ENV_FLAG, token_env) if token_env != TOKEN_ENV else ())]


def _flag_value(words: Sequence[str], flag: str) -> str | None:
    """The value after ``flag`` in ``words`` (``--flag VALUE`` or ``--flag=VALUE``), or None."""
    for i, w in enumerate(words):
        if w == flag and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(flag + "="):
            return w[len(flag) + 1:]
    return None


def entry_token_env(client: str, entry: dict[str, Any]) -> str | None:
    """The environment variable an entry (as written in the client's file) sends the token from: Codex's
    ``bearer_token_env_var``, the ``${VAR}`` of Claude Code's ``Authorization: Bearer ${VAR}`` header, or
    for a stdio bridge the variable it reads (``--token-env VAR``, else ``RUNTIMED_AUTH_TOKEN``). None
    when the entry names no variable (no token, or one written inline)."""
    if "command" in entry and "url" not in entry:
        args = entry.get("args")
        words = [str(a) for a in args] if isinstance(args, list) else []
        return _flag_value(words, TOKEN_ENV_FLAG) or TOKEN_ENV
    if client == "codex":
        var = entry.get("bearer_token_env_var")
        return var if isinstance(var, str) and var else None
    headers = entry.get("headers")
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == "authorization" and isinstance(value, str):
            m = _BEARER_REF_RE.match(value.strip())
            return m.group(1) if m else None
    return None


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
    token_env: str = TOKEN_ENV,
) -> dict[str, Any]:
    """The managed keys of the entry bootstrap writes (see docs/spec/bootstrap.md); ``token_env``: the
    variable the entry sends the token from (the stdio bridge is told to read it with ``--token-env``)."""
    check_token_env(token_env)
    if transport == "http":
        if client == "codex":
            entry: dict[str, Any] = {"url": endpoint}
            if token_configured:
                entry["bearer_token_env_var"] = token_env
            return entry
        entry = {"type": "http", "url": endpoint}
        if inline_token is not None:
            entry["headers"] = {"Authorization": f"Bearer {inline_token}"}
        elif token_configured:
            entry["headers"] = {"Authorization": f"Bearer ${{{token_env}}}"}
        return entry
    if not runtimectl_path or not os.path.isabs(runtimectl_path):
        raise BootstrapError(
            f"the stdio transport needs the absolute path of runtimectl (got {runtimectl_path!r}); "
            "is runtimectl installed?"
        )
    env = {URL_ENV: base_url(endpoint)}
    args = stdio_args(endpoint, token_env if token_configured else TOKEN_ENV)
    if client == "codex":
        entry = {"command": runtimectl_path, "args": args, "env": env}
        if token_configured:
            entry["env_vars"] = [token_env]
        return entry
    if token_configured:
        env[token_env] = f"${{{token_env}}}"
    return {"type": "stdio", "command": runtimectl_path, "args": args, "env": env}


def managed(entry: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The keys of ``entry`` that bootstrap owns (a format module's ``MANAGED_KEYS``)."""
    return {k: entry[k] for k in keys if k in entry}

