"""Reporting: how each client is wired now (``runtimectl bootstrap status``,
``runtimectl doctor``, the API's bootstrap status).

Owns reading each client's entry back, what transport and endpoint a client
would use from it, and drift (points elsewhere, no token sent while the
daemon requires one, the token sent from another variable than the one asked
for, a stdio command that is not ``runtimectl``). Never
raises for a bad file: the problem goes into ``EntryStatus.error``. Must not:
write anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runtimed.bootstrap import claude as bootstrap_claude, codex as bootstrap_codex
from runtimed.bootstrap.entries import (
    CLIENTS,
    DEFAULT_BASE_URL,
    SCOPES,
    STDIO_ARGS,
    TOKEN_ENV,
    TRANSPORTS,
    URL_ENV,
    check_choice,
    check_clients,
    check_name,
    check_token_env,
    entry_token_env,
    normalize_url,
    stdio_endpoint,
)
from runtimed.bootstrap.files import read_snapshot, write_target
from runtimed.bootstrap.locations import Locations, config_path
from runtimed.bootstrap.model import ConfigParseError, EntryStatus
from runtimed.errors import FileOpError


def status(
    clients: Iterable[str] = CLIENTS,
    *,
    endpoint: str,
    name: str = "runtime",
    scopes: Sequence[str] = ("user",),
    project_dir: Path | None = None,
    token_configured: bool = False,
    home: Path | None = None,
    codex_home: Path | None = None,
    token_env: str | None = None,
) -> list[EntryStatus]:
    """For each client and scope: the file, whether the entry exists, its
    transport and endpoint, and whether it points at ``endpoint`` (drift is
    listed in ``EntryStatus.drift``). ``token_env``: the variable the entry
    should send the token from (another one is drift); None accepts any.
    Never raises for a bad file: the problem is reported in ``EntryStatus.error``."""
    chosen = check_clients(clients)
    if token_env is not None:
        check_token_env(token_env)
    for s in scopes:
        check_choice("scope", s, SCOPES)
    check_name(name)
    loc = Locations.resolve(home, codex_home, project_dir)
    out: list[EntryStatus] = []
    for client in chosen:
        for scope in scopes:
            out.append(_status_one(client, scope, config_path(client, scope, loc), name, endpoint, token_configured,
                                   token_env))
    return out


def _status_one(client: str, scope: str, path: Path, name: str, endpoint: str, token: bool,
                token_env: str | None) -> EntryStatus:
    def at(**fields: Any) -> EntryStatus:
        return EntryStatus(client=client, scope=scope, path=path, **fields)

    try:
        snap = read_snapshot(write_target(path))
    except FileOpError as e:
        return at(file_exists=path.exists(), entry_present=False, error=str(e))
    if snap.data is None:
        return at(file_exists=False, entry_present=False)
    try:
        if client == "codex":
            entry = bootstrap_codex.get_entry(bootstrap_codex.parse(path, snap.data), name, path)
        else:
            entry = bootstrap_claude.get_entry(bootstrap_claude.parse(path, snap.data), name, path)
    except ConfigParseError as e:
        return at(file_exists=True, entry_present=False, error=str(e))
    if entry is None:
        return at(file_exists=True, entry_present=False)
    transport, found, drift = _describe(client, entry, token, token_env)
    here = found is not None and normalize_url(found) == normalize_url(endpoint)
    if found is not None and not here:
        drift.insert(0, f"points at {found}, this daemon is at {endpoint}")
    return at(
        file_exists=True, entry_present=True, transport=transport, endpoint=found,
        points_here=here, drift=tuple(drift),
    )


def _describe(client: str, entry: dict[str, Any], token: bool,
              token_env: str | None) -> tuple[str | None, str | None, list[str]]:
    """(transport, endpoint, drift) of an entry as a client would read it."""
    drift: list[str] = []
    var = entry_token_env(client, entry)
    if token_env is not None and var is not None and var != token_env:
        drift.append(f"sends the token from {var}, not {token_env}")
    if client == "claude":
        kind = entry.get("type")
        if kind is None:
            drift.append('no "type": Claude Code ignores this entry')
            kind = "http" if "url" in entry else ("stdio" if "command" in entry else None)
        elif kind not in TRANSPORTS:
            drift.append(f'type "{kind}" is not what bootstrap writes (http or stdio)')
    else:
        kind = "http" if "url" in entry else ("stdio" if "command" in entry else None)
    if kind in ("http", "sse"):
        url = entry.get("url")
        endpoint = url if isinstance(url, str) else None
        if token and not _has_auth(client, entry):
            drift.append("the daemon requires a token but the entry sends none")
        return kind, endpoint, drift
    if kind == "stdio":
        command = entry.get("command")
        args = entry.get("args") or []
        env = entry.get("env") or {}
        if not isinstance(command, str) or os.path.basename(command) != "runtimectl" or "--stdio" not in args:
            drift.append(f"runs {command!r} {args!r}, not runtimectl {' '.join(STDIO_ARGS)}")
        elif not os.path.isabs(command) or not os.access(command, os.X_OK):
            drift.append(f"{command} is not an executable file")
        base = env.get(URL_ENV) if isinstance(env, dict) else None
        endpoint = stdio_endpoint(base if isinstance(base, str) else DEFAULT_BASE_URL,
                                  args if isinstance(args, list) else [])
        read = var or TOKEN_ENV  # the variable the bridge reads the token from
        if token or read != TOKEN_ENV:
            forwarded = read in (entry.get("env_vars") or []) or (isinstance(env, dict) and read in env)
            if client == "codex" and not forwarded:
                drift.append(f"the bridge reads the token from {read} but it is not forwarded (env_vars)")
        return "stdio", endpoint, drift
    drift.append("neither a url nor a command")
    return None, None, drift


def _has_auth(client: str, entry: dict[str, Any]) -> bool:
    if client == "codex":
        if entry.get("bearer_token_env_var"):
            return True
        headers = {**(entry.get("http_headers") or {}), **(entry.get("env_http_headers") or {})}
    else:
        headers = entry.get("headers") or {}
    return isinstance(headers, dict) and any(k.lower() == "authorization" for k in headers)
