"""Resolving a remote service's ``authRef`` into HTTP headers, at call time.

Owns the three reference forms: ``env:VAR`` (sent as ``Authorization: Bearer``),
``file:relative/path`` (a file under ``<state_dir>/secrets/``; absolute paths,
``..`` and symlinks leading outside that directory are refused) and
``header_env:Header-Name:VAR``; and ``credential_values``, the secret parts of
resolved headers (for the backend's ``SecretMask``). Must not: cache secret
values, log them, or put them in any message; errors name the variable or the
path, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runtimed.backends.secrets import read_secret_file, relative_secret_path
from runtimed.errors import SecretError

OAUTH = "oauth"  # the MCP authorization flow: tokens come from the service's sign-in


def check_auth_ref(auth_ref: str) -> None:
    """Static checks, usable at registration: the form and, for files, the path shape."""
    if auth_ref == OAUTH:
        return
    kind, _, rest = auth_ref.partition(":")
    if kind == "env":
        if not rest:
            raise SecretError("authRef env: needs a variable name (env:VAR)")
    elif kind == "header_env":
        header, _, var = rest.partition(":")
        if not header or not var:
            raise SecretError("authRef header_env: needs a header and a variable (header_env:Header-Name:VAR)")
    elif kind == "file":
        relative_secret_path(rest)
    else:
        raise SecretError(f"authRef must be oauth or start with env:, file: or header_env: (got {kind!r})")


def _header_safe(value: str, where: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise SecretError(f"{where}: the secret contains a line break or NUL and cannot be sent as a header")
    return value


def resolve_auth_headers(
    auth_ref: str | None, state_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The headers an ``authRef`` stands for, read now (env and files may change). ``oauth`` stands
    for none here: the backend adds its sign-in's token (``auth.upstream``)."""
    if not auth_ref or auth_ref == OAUTH:
        return {}
    env = os.environ if environ is None else environ
    kind, _, rest = auth_ref.partition(":")
    if kind == "env":
        value = env.get(rest)
        if not value:
            raise SecretError(f"authRef env:{rest}: the environment variable {rest} is not set (or empty)")
        return {"Authorization": "Bearer " + _header_safe(value, f"authRef env:{rest}")}
    if kind == "header_env":
        header, _, var = rest.partition(":")
        value = env.get(var)
        if not value:
            raise SecretError(f"authRef header_env:{header}:{var}: the environment variable {var} is not set (or empty)")
        return {header: _header_safe(value, f"authRef header_env:{header}:{var}")}
    if kind == "file":
        value = read_secret_file(state_dir, rest)
        return {"Authorization": "Bearer " + _header_safe(value, f"authRef file:{rest}")}
    raise SecretError(f"authRef must be oauth or start with env:, file: or header_env: (got {kind!r})")


def credential_values(headers: Mapping[str, str]) -> set[str]:
    """The secret parts of resolved auth headers: the credential of ``Bearer <credential>`` (so a
    masked echo still reads "Bearer [secret]"), a custom header's whole value."""
    out: set[str] = set()
    for value in headers.values():
        scheme, sep, rest = value.partition(" ")
        out.add(rest.strip() if sep and scheme.lower() in ("bearer", "basic", "token") and rest.strip() else value)
    return out
