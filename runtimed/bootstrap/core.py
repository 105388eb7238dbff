"""Client bootstrap: wire Codex and Claude Code to this gateway, undo it, and
report how they are wired. The one implementation behind ``runtimectl
bootstrap ...``, ``runtimectl doctor`` and the API's bootstrap status.

Owns which file each client and scope uses, what entry is written for each
transport, planning (content, action, summary, notes, diff) and applying a
plan all-or-nothing. File formats live in ``bootstrap_codex`` /
``bootstrap_claude`` / ``bootstrap_agents``, disk safety in
``bootstrap_files``, data shapes in ``bootstrap_model``. Must not talk to the
daemon (the caller passes the endpoint and whether a token is configured),
print, or ever put a token value into a plan summary, note or diff.
See docs/spec/bootstrap.md for the exact formats.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from runtimed.bootstrap import agents as bootstrap_agents, claude as bootstrap_claude, codex as bootstrap_codex
from runtimed.bootstrap.files import FileOpError, Snapshot, Write, apply_writes, read_snapshot, write_target
from runtimed.bootstrap.model import (
    Action,
    BootstrapError,
    ConfigParseError,
    EntryStatus,
    FileChange,
    Plan,
    Result,
)
from runtimed.config.settings import DEFAULT_PORT

__all__ = [
    "CLIENTS",
    "BootstrapError",
    "ConfigParseError",
    "EntryStatus",
    "FileChange",
    "Locations",
    "Plan",
    "Result",
    "apply_plan",
    "config_path",
    "default_runtimectl_path",
    "desired_entry",
    "plan_bootstrap",
    "plan_remove",
    "status",
]

CLIENTS = ("codex", "claude")
TRANSPORTS = ("http", "stdio")
SCOPES = ("user", "project")
TOKEN_ENV = "RUNTIMED_AUTH_TOKEN"
URL_ENV = "RUNTIMED_URL"
STDIO_ARGS = ("gateway", "serve", "--stdio")
DEFAULT_BASE_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Transport = Literal["http", "stdio"]
Scope = Literal["user", "project"]


# --------------------------------------------------------------- locations


@dataclass(frozen=True)
class Locations:
    """Where the clients' files are: the user's home, Codex's home, the project."""

    home: Path
    codex_home: Path
    project_dir: Path

    @classmethod
    def resolve(
        cls, home: Path | None = None, codex_home: Path | None = None, project_dir: Path | None = None
    ) -> Locations:
        h = Path(home).expanduser() if home is not None else Path.home()
        if codex_home is not None:
            ch = Path(codex_home).expanduser()
        elif os.environ.get("CODEX_HOME"):
            ch = Path(os.environ["CODEX_HOME"]).expanduser()
        else:
            ch = h / ".codex"
        p = Path(project_dir).expanduser() if project_dir is not None else Path.cwd()
        return cls(h.absolute(), ch.absolute(), p.absolute())


def config_path(client: str, scope: str, loc: Locations) -> Path:
    """The file a client reads its MCP servers from, for a scope."""
    if client == "codex":
        return loc.codex_home / "config.toml" if scope == "user" else loc.project_dir / ".codex" / "config.toml"
    if client == "claude":
        return loc.home / ".claude.json" if scope == "user" else loc.project_dir / ".mcp.json"
    raise BootstrapError(f"unknown client {client!r}; expected one of: {', '.join(CLIENTS)}")


def default_runtimectl_path() -> str | None:
    """Absolute path of the ``runtimectl`` executable: next to this Python
    (the venv's bin) first, then on PATH; None when there is none."""
    beside = Path(sys.executable).parent / "runtimectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("runtimectl")
    return str(Path(found).absolute()) if found else None


# ---------------------------------------------------------------- validation


def _clients(clients: Iterable[str]) -> list[str]:
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


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise BootstrapError(
            f"invalid server name {name!r}: use 1-64 letters, digits, '_' or '-' (Codex rejects other names)"
        )


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise BootstrapError(f"invalid {what} {value!r}; expected one of: {', '.join(allowed)}")


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BootstrapError(f"invalid endpoint {endpoint!r}: expected an http(s) URL such as {DEFAULT_BASE_URL}/mcp")
    if parts.query or parts.fragment:
        raise BootstrapError(f"invalid endpoint {endpoint!r}: no query or fragment expected")


def base_url(endpoint: str) -> str:
    """The daemon's base URL for an ``.../mcp`` endpoint (what ``RUNTIMED_URL`` holds)."""
    trimmed = endpoint.rstrip("/")
    if not trimmed.endswith("/mcp"):
        raise BootstrapError(f"invalid endpoint {endpoint!r}: the stdio bridge needs the gateway's URL ending in /mcp")
    return trimmed[: -len("/mcp")]


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


# ------------------------------------------------------------------ entries


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
        entry = {"command": runtimectl_path, "args": list(STDIO_ARGS), "env": env}
        if token_configured:
            entry["env_vars"] = [TOKEN_ENV]
        return entry
    if token_configured:
        env[TOKEN_ENV] = f"${{{TOKEN_ENV}}}"
    return {"type": "stdio", "command": runtimectl_path, "args": list(STDIO_ARGS), "env": env}


def _managed(entry: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: entry[k] for k in keys if k in entry}


# ----------------------------------------------------------------- planning


def _snapshot(path: Path) -> Snapshot:
    try:
        return read_snapshot(write_target(path))
    except FileOpError as e:
        raise BootstrapError(str(e)) from None


def _change(
    path: Path,
    client: str,
    scope: str,
    snap: Snapshot,
    new: bytes,
    mode: int,
    summary: str,
    notes: list[str],
    secrets: tuple[str, ...] = (),
) -> FileChange:
    action: Action
    if snap.data is None:
        action = "create"
    elif snap.data == new and snap.mode == mode:
        action = "unchanged"
    else:
        action = "update"
    return FileChange(
        path=path,
        client=client,
        scope=scope,
        action=action,
        old=snap.data,
        new=new,
        mode=mode,
        old_mode=snap.mode,
        summary=summary if action != "unchanged" else f"{summary.split(':')[0]}: already up to date",
        notes=tuple(notes),
        secrets=secrets,
    )


def _new_file_mode(scope: str) -> int:
    return 0o600 if scope == "user" else 0o644


def plan_bootstrap(
    clients: Iterable[str],
    *,
    endpoint: str,
    transport: str = "http",
    name: str = "runtime",
    scope: str = "user",
    project_dir: Path | None = None,
    token_configured: bool = False,
    runtimectl_path: str | None = None,
    update_agents_md: bool = False,
    home: Path | None = None,
    codex_home: Path | None = None,
    inline_token: str | None = None,
) -> Plan:
    """Plan adding (or updating) the ``name`` entry for each client. Reads
    files, writes nothing. Raises ``BootstrapError`` (``ConfigParseError``
    for an unreadable file) naming the file."""
    chosen = _clients(clients)
    _check_choice("transport", transport, TRANSPORTS)
    _check_choice("scope", scope, SCOPES)
    _check_name(name)
    _check_endpoint(endpoint)
    if inline_token is not None and not inline_token:
        inline_token = None
    loc = Locations.resolve(home, codex_home, project_dir)
    changes: list[FileChange] = []
    plan_notes: list[str] = []
    for client in chosen:
        path = config_path(client, scope, loc)
        token_here = inline_token if (client == "claude" and transport == "http") else None
        desired = desired_entry(
            client,
            transport,
            endpoint,
            token_configured=token_configured or inline_token is not None,
            runtimectl_path=runtimectl_path,
            inline_token=token_here,
        )
        changes.append(_plan_client_set(client, scope, path, name, desired, transport, endpoint, token_here))
    if transport == "stdio" and runtimectl_path and not os.access(runtimectl_path, os.X_OK):
        plan_notes.append(f"{runtimectl_path} is not an executable file (yet); the clients will fail to start it")
    if (token_configured or inline_token) and transport == "http" and inline_token is None:
        plan_notes.append(
            f"the daemon requires a token: export {TOKEN_ENV} in the environment the clients start from; "
            "the files reference it by name and never contain it"
        )
    if (token_configured or inline_token) and transport == "stdio":
        plan_notes.append(f"the stdio bridge reads the token from {TOKEN_ENV} in the client's environment")
    if update_agents_md:
        changes.append(_plan_agents_set(loc, endpoint, name))
    if any(c.changed for c in changes if c.client != "agents-md"):
        plan_notes.append("restart the clients (or start a new session) to pick up the change")
    return Plan("bootstrap", tuple(changes), tuple(plan_notes))


def _plan_client_set(
    client: str,
    scope: str,
    path: Path,
    name: str,
    desired: dict[str, Any],
    transport: str,
    endpoint: str,
    inline_token: str | None,
) -> FileChange:
    snap = _snapshot(path)
    notes: list[str] = []
    where = f"{client} {scope}"
    try:
        if client == "codex":
            doc = bootstrap_codex.parse(path, snap.data)
            current = bootstrap_codex.get_entry(doc, name, path)
            if current is not None and _managed(current, bootstrap_codex.MANAGED_KEYS) == desired:
                new = snap.data or b""
            else:
                new = bootstrap_codex.set_entry(doc, name, desired, path).encode("utf-8")
            label = f"[mcp_servers.{name}]"
            if scope == "project":
                notes.append(
                    f"Codex reads {path} only when the project is trusted "
                    f'(trust_level = "trusted" for {path.parent.parent} in the user config.toml)'
                )
        else:
            doc = bootstrap_claude.parse(path, snap.data)
            current = bootstrap_claude.get_entry(doc, name, path)
            if current is not None and _managed(current, bootstrap_claude.MANAGED_KEYS) == desired:
                new = snap.data or b""
            else:
                if snap.data is not None and bootstrap_claude.dumps(doc) != snap.data:
                    notes.append(
                        f"{path} is rewritten in standard JSON layout; every key and value is kept, "
                        "only whitespace outside the entry may change"
                    )
                bootstrap_claude.set_entry(doc, name, desired, path)
                new = bootstrap_claude.dumps(doc)
            label = f"mcpServers.{name}"
            if scope == "user" and "headers" in desired and inline_token is None:
                notes.append(
                    "Claude Code documents ${VAR} expansion for .mcp.json; if your version sends the "
                    f"literal ${{{TOKEN_ENV}}} from {path.name}, use project scope or write the token inline"
                )
            if scope == "project":
                notes.append(f"Claude Code asks each user to approve the project server in {path.name} on first use")
    except ConfigParseError as e:
        raise e.untouched() from None
    mode = snap.mode if snap.mode is not None else _new_file_mode(scope)
    secrets: tuple[str, ...] = ()
    if inline_token is not None:
        secrets = (inline_token,)
        if mode & 0o077:
            if snap.mode is not None:
                notes.append(f"{path} holds the token: its mode is tightened from {snap.mode:o} to {mode & 0o700:o}")
            mode &= 0o700
        notes.append(f"{path} contains the token written out; the file is kept at mode {mode:o}")
    verb = "add" if current is None else "update"
    target = endpoint if transport == "http" else f"{desired['command']} {' '.join(STDIO_ARGS)}"
    summary = f"{where}: {verb} {label} ({transport} -> {target})"
    return _change(path, client, scope, snap, new, mode, summary, notes, secrets)


def _agents_path(loc: Locations) -> Path:
    return loc.project_dir / "AGENTS.md"


def _plan_agents_set(loc: Locations, endpoint: str, name: str) -> FileChange:
    path = _agents_path(loc)
    snap = _snapshot(path)
    try:
        text = bootstrap_agents.decode(path, snap.data)
        new = bootstrap_agents.with_block(text, bootstrap_agents.render_block(endpoint, name), path)
    except ConfigParseError as e:
        raise e.untouched() from None
    mode = snap.mode if snap.mode is not None else 0o644
    return _change(path, "agents-md", "project", snap, new.encode("utf-8"), mode, "AGENTS.md: managed gateway block", [])


def plan_remove(
    clients: Iterable[str],
    *,
    name: str = "runtime",
    scope: str = "user",
    project_dir: Path | None = None,
    update_agents_md: bool = False,
    home: Path | None = None,
    codex_home: Path | None = None,
) -> Plan:
    """Plan removing the ``name`` entry from each client's file (and the
    AGENTS.md block with ``update_agents_md``). A missing file or entry is
    "unchanged"; files are never deleted."""
    chosen = _clients(clients)
    _check_choice("scope", scope, SCOPES)
    _check_name(name)
    loc = Locations.resolve(home, codex_home, project_dir)
    changes: list[FileChange] = []
    for client in chosen:
        path = config_path(client, scope, loc)
        snap = _snapshot(path)
        where = f"{client} {scope}"
        new: bytes | None = None
        try:
            if snap.data is not None:
                if client == "codex":
                    text = bootstrap_codex.remove_entry(bootstrap_codex.parse(path, snap.data), name)
                    new = text.encode("utf-8") if text is not None else None
                else:
                    doc = bootstrap_claude.parse(path, snap.data)
                    if bootstrap_claude.remove_entry(doc, name):
                        new = bootstrap_claude.dumps(doc)
        except ConfigParseError as e:
            raise e.untouched() from None
        label = f"[mcp_servers.{name}]" if client == "codex" else f"mcpServers.{name}"
        if new is None:
            changes.append(_unchanged(path, client, scope, snap, f"{where}: no {label} entry"))
        else:
            changes.append(_change(path, client, scope, snap, new, snap.mode or 0o600, f"{where}: remove {label}", []))
    if update_agents_md:
        path = _agents_path(loc)
        snap = _snapshot(path)
        try:
            text = bootstrap_agents.without_block(bootstrap_agents.decode(path, snap.data), path)
        except ConfigParseError as e:
            raise e.untouched() from None
        if text is None:
            changes.append(_unchanged(path, "agents-md", "project", snap, "AGENTS.md: no managed block"))
        else:
            changes.append(
                _change(path, "agents-md", "project", snap, text.encode("utf-8"), snap.mode or 0o644,
                        "AGENTS.md: remove managed gateway block", [])
            )
    return Plan("remove", tuple(changes))


def _unchanged(path: Path, client: str, scope: str, snap: Snapshot, summary: str) -> FileChange:
    return FileChange(
        path=path, client=client, scope=scope, action="unchanged", old=snap.data, new=snap.data or b"",
        mode=snap.mode or 0, old_mode=snap.mode, summary=summary,
    )


# ------------------------------------------------------------------- apply


def apply_plan(plan: Plan, backup_dir: Path | None = None) -> Result:
    """Write every changed file of ``plan`` or none of them.

    Each changed file that existed is first copied to a timestamped backup
    (next to it, or into ``backup_dir``), then replaced atomically keeping
    its mode. A file that changed since the plan was made, or any write
    failure, restores the files already written and raises
    ``BootstrapError``. Unchanged files are not touched at all.
    """
    writes = [
        Write(
            path=c.path,
            expected=c.old,
            data=c.new,
            mode=c.mode,
            label=c.client,
            dir_mode=0o700 if c.scope == "user" else 0o755,
        )
        for c in plan.changes
        if c.changed
    ]
    try:
        applied = apply_writes(writes, backup_dir)
    except FileOpError as e:
        raise BootstrapError(str(e)) from None
    return Result(
        plan=plan,
        written=tuple(applied.written),
        unchanged=tuple(c.path for c in plan.changes if not c.changed),
        backups=dict(applied.backups),
    )


# ------------------------------------------------------------------ status


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
) -> list[EntryStatus]:
    """For each client and scope: the file, whether the entry exists, its
    transport and endpoint, and whether it points at ``endpoint`` (drift is
    listed in ``EntryStatus.drift``). Never raises for a bad file: the
    problem is reported in ``EntryStatus.error``."""
    chosen = _clients(clients)
    for s in scopes:
        _check_choice("scope", s, SCOPES)
    _check_name(name)
    loc = Locations.resolve(home, codex_home, project_dir)
    out: list[EntryStatus] = []
    for client in chosen:
        for scope in scopes:
            out.append(_status_one(client, scope, config_path(client, scope, loc), name, endpoint, token_configured))
    return out


def _status_one(client: str, scope: str, path: Path, name: str, endpoint: str, token: bool) -> EntryStatus:
    base = {"client": client, "scope": scope, "path": path}
    try:
        snap = read_snapshot(write_target(path))
    except FileOpError as e:
        return EntryStatus(**base, file_exists=path.exists(), entry_present=False, error=str(e))
    if snap.data is None:
        return EntryStatus(**base, file_exists=False, entry_present=False)
    try:
        if client == "codex":
            entry = bootstrap_codex.get_entry(bootstrap_codex.parse(path, snap.data), name, path)
        else:
            entry = bootstrap_claude.get_entry(bootstrap_claude.parse(path, snap.data), name, path)
    except ConfigParseError as e:
        return EntryStatus(**base, file_exists=True, entry_present=False, error=str(e))
    if entry is None:
        return EntryStatus(**base, file_exists=True, entry_present=False)
    transport, found, drift = _describe(client, entry, token)
    here = found is not None and normalize_url(found) == normalize_url(endpoint)
    if found is not None and not here:
        drift.insert(0, f"points at {found}, this daemon is at {endpoint}")
    return EntryStatus(
        **base, file_exists=True, entry_present=True, transport=transport, endpoint=found,
        points_here=here, drift=tuple(drift),
    )


def _describe(client: str, entry: dict[str, Any], token: bool) -> tuple[str | None, str | None, list[str]]:
    """(transport, endpoint, drift) of an entry as a client would read it."""
    drift: list[str] = []
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
        endpoint = (base.rstrip("/") if isinstance(base, str) else DEFAULT_BASE_URL) + "/mcp"
        if token:
            forwarded = TOKEN_ENV in (entry.get("env_vars") or []) or (isinstance(env, dict) and TOKEN_ENV in env)
            if client == "codex" and not forwarded:
                drift.append(f"the daemon requires a token but {TOKEN_ENV} is not forwarded (env_vars)")
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
