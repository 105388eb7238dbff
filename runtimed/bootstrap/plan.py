"""Planning: what bootstrap would write to each client's file (and the
project's ``AGENTS.md``) to add, update or remove the gateway entry, and, with
``replace``, to take the imported entries the gateway now serves out of the
same files in the same write.

Owns reading each file as it is now, computing its new content through the
client's format module (``codex``, ``claude``, ``agents``), the action
(create, update, unchanged), the summary and the notes. Reads files, writes
nothing (``apply`` does). Must not: put a token value into a summary, note or
diff (an inline token is listed in ``FileChange.secrets`` to be redacted);
decide itself whether an imported entry still matches its service (the
caller's ``Imported.check`` does), or remove one from a file it does not
write anyway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runtimed.bootstrap import agents as bootstrap_agents, claude as bootstrap_claude, codex as bootstrap_codex
from runtimed.bootstrap.entries import (
    SCOPES,
    TOKEN_ENV,
    TRANSPORTS,
    check_choice,
    check_clients,
    check_endpoint,
    check_name,
    check_token_env,
    desired_entry,
    managed,
)
from runtimed.bootstrap.files import Snapshot, read_snapshot, write_target
from runtimed.bootstrap.locations import Locations, agents_path, config_path, same_file
from runtimed.bootstrap.model import Action, ConfigParseError, FileChange, Imported, Plan, RemovedEntry
from runtimed.errors import BootstrapError, FileOpError


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
    removed: tuple[RemovedEntry, ...] = (),
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
        removed=removed,
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
    replace: Sequence[Imported] = (),
    token_env: str | None = None,
) -> Plan:
    """Plan adding (or updating) the ``name`` entry for each client. Reads
    files, writes nothing. Raises ``BootstrapError`` (``ConfigParseError``
    for an unreadable file) naming the file.

    ``replace``: imported entries to take out of the files this plan writes
    (an entry in another file is ignored, one whose ``check`` fails is kept
    with a note); they are listed in ``FileChange.removed``.

    ``token_env``: the environment variable the entries send the token from
    (default ``RUNTIMED_AUTH_TOKEN``); naming one means a token is sent, as
    with ``token_configured``."""
    chosen = check_clients(clients)
    check_choice("transport", transport, TRANSPORTS)
    check_choice("scope", scope, SCOPES)
    check_name(name)
    check_endpoint(endpoint)
    if token_env is not None:
        token_configured = True
    var = check_token_env(token_env if token_env is not None else TOKEN_ENV)
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
            token_env=var,
        )
        mine = [imp for imp in replace if same_file(imp.path, path)]
        changes.append(_plan_client_set(client, scope, path, name, desired, transport, endpoint, token_here, mine,
                                        var))
    if transport == "stdio" and runtimectl_path and not os.access(runtimectl_path, os.X_OK):
        plan_notes.append(f"{runtimectl_path} is not an executable file (yet); the clients will fail to start it")
    if (token_configured or inline_token) and transport == "http" and inline_token is None:
        plan_notes.append(
            f"the daemon requires a token: export {var} in the environment the clients start from; "
            "the files reference it by name and never contain it"
        )
    if (token_configured or inline_token) and transport == "stdio":
        plan_notes.append(f"the stdio bridge reads the token from {var} in the client's environment")
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
    imported: Sequence[Imported] = (),
    token_env: str = TOKEN_ENV,
) -> FileChange:
    snap = _snapshot(path)
    notes: list[str] = []
    removed: list[RemovedEntry] = []
    where = f"{client} {scope}"

    def goes(imp: Imported, entry: dict[str, Any] | None, entry_label: str) -> bool:
        """Whether ``imp`` goes: it is there and still what its service runs (else a note says why not)."""
        if entry is None or (imp.key == name and imp.project is None):  # gone already, or it is the gateway's
            return False
        why = imp.check(entry)
        if why is not None:
            notes.append(f"kept {entry_label} in {path}: {why}; edit or remove it by hand")
            return False
        return True

    try:
        if client == "codex":
            toml_doc = bootstrap_codex.parse(path, snap.data)
            text: str | None = None  # the file's text once imported entries are out
            for imp in imported:
                entry_label = f"[mcp_servers.{imp.key}]"
                if imp.project is not None or not goes(imp, bootstrap_codex.get_entry(toml_doc, imp.key, path),
                                                       entry_label):
                    continue
                out = bootstrap_codex.without_entry(bootstrap_codex.dumps(toml_doc), imp.key)
                if out is None:
                    continue
                text, exact = out
                if not exact:
                    notes.append(f"{entry_label} in {path} is not laid out as its own tables: "
                                 "a comment next to it may have gone with it")
                toml_doc = bootstrap_codex.parse(path, text.encode("utf-8"))
                removed.append(RemovedEntry(path, imp.key, imp.service, entry_label))
            current = bootstrap_codex.get_entry(toml_doc, name, path)
            entry_ok = current is not None and managed(current, bootstrap_codex.MANAGED_KEYS) == desired
            if entry_ok:
                new = text.encode("utf-8") if text is not None else (snap.data or b"")
            else:
                new = bootstrap_codex.set_entry(toml_doc, name, desired, path).encode("utf-8")
            label = f"[mcp_servers.{name}]"
            if scope == "project":
                notes.append(
                    f"Codex reads {path} only when the project is trusted "
                    f'(trust_level = "trusted" for {path.parent.parent} in the user config.toml)'
                )
        else:
            json_doc = bootstrap_claude.parse(path, snap.data)
            relaid = snap.data is not None and bootstrap_claude.dumps(json_doc) != snap.data
            for imp in imported:
                entry_label = bootstrap_claude.label(imp.key, imp.project)
                if goes(imp, bootstrap_claude.get_entry(json_doc, imp.key, path, imp.project), entry_label):
                    bootstrap_claude.remove_entry(json_doc, imp.key, imp.project)
                    removed.append(RemovedEntry(path, imp.key, imp.service, entry_label, imp.project))
            current = bootstrap_claude.get_entry(json_doc, name, path)
            entry_ok = current is not None and managed(current, bootstrap_claude.MANAGED_KEYS) == desired
            if entry_ok and not removed:
                new = snap.data or b""
            else:
                if relaid:
                    notes.append(
                        f"{path} is rewritten in standard JSON layout; every key and value is kept, "
                        "only whitespace outside the changed entries may change"
                    )
                if not entry_ok:
                    bootstrap_claude.set_entry(json_doc, name, desired, path)
                new = bootstrap_claude.dumps(json_doc)
            label = f"mcpServers.{name}"
            if scope == "user" and "headers" in desired and inline_token is None:
                notes.append(
                    "Claude Code documents ${VAR} expansion for .mcp.json; if your version sends the "
                    f"literal ${{{token_env}}} from {path.name}, use project scope or write the token inline"
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
    target = endpoint if transport == "http" else f"{desired['command']} {' '.join(desired['args'])}"
    summary = f"{where}: " + (f"{label} already up to date" if entry_ok else f"{verb} {label} ({transport} -> {target})")
    if removed:
        summary += "; remove " + ", ".join(r.label for r in removed)
    return _change(path, client, scope, snap, new, mode, summary, notes, secrets, tuple(removed))


def _plan_agents_set(loc: Locations, endpoint: str, name: str) -> FileChange:
    path = agents_path(loc)
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
    chosen = check_clients(clients)
    check_choice("scope", scope, SCOPES)
    check_name(name)
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
        path = agents_path(loc)
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

