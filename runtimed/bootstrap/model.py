"""The data of client bootstrap: errors, planned file changes, plans, apply
results and status reports, the imported entries a plan may take out of a
client's file, with their JSON-ready forms for the API.

Owns these shapes and how a change is shown (summary, unified diff, secrets
redacted). Must not read or write files or know any client's file format.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runtimed.errors import (  # re-exported: defined in the one error tree
    BootstrapError as BootstrapError,
    ConfigParseError as ConfigParseError,
)

Action = Literal["create", "update", "unchanged"]


REDACTED = "<redacted>"


@dataclass(frozen=True)
class Imported:
    """An entry of a client's file that ``runtimectl import`` registered as a
    service. ``plan_bootstrap(..., replace=[...])`` removes it from the file
    it writes when ``check(entry)`` (the entry as the file holds it now)
    returns None; otherwise it is kept and the returned reason is a note."""

    path: Path  # the file it was imported from
    key: str  # its key in the file's servers (mcpServers, [mcp_servers])
    service: str  # the service that serves it now
    check: Callable[[dict[str, Any]], str | None] = field(compare=False, repr=False)
    project: str | None = None  # ~/.claude.json: under projects["<project>"].mcpServers, not the top level


@dataclass(frozen=True)
class RemovedEntry:
    """An imported entry a plan takes out of a client's file."""

    path: Path
    key: str
    service: str
    label: str  # the entry as the file spells it: [mcp_servers.x], mcpServers.x, projects["/d"].mcpServers.x
    project: str | None = None

    def describe(self, done: bool = True, path: str | None = None) -> str:
        """``removed github from ~/.claude.json: now served by the gateway as service github``."""
        where = self.key if self.project is None else f"{self.key} (projects[{json.dumps(self.project)}])"
        verb = "removed" if done else "would remove"
        return f"{verb} {where} from {path or self.path}: now served by the gateway as service {self.service}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "key": self.key, "project": self.project, "service": self.service,
                "entry": self.label}


@dataclass(frozen=True)
class FileChange:
    """What bootstrap will do to one file."""

    path: Path
    client: str  # "codex" | "claude" | "agents-md"
    scope: str  # "user" | "project"
    action: Action
    old: bytes | None  # None: the file does not exist
    new: bytes
    mode: int  # permission bits the file will have
    old_mode: int | None
    summary: str
    notes: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)  # redacted from every display
    removed: tuple[RemovedEntry, ...] = ()  # imported entries taken out (bootstrap with replace)

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"

    def _redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, REDACTED)
        return text

    def diff(self) -> str:
        """Unified diff of the change (secrets redacted); empty when unchanged."""
        if not self.changed:
            return ""
        old = self._redact((self.old or b"").decode("utf-8", "replace")).splitlines(keepends=True)
        new = self._redact(self.new.decode("utf-8", "replace")).splitlines(keepends=True)
        lines = list(
            difflib.unified_diff(
                old,
                new,
                fromfile=str(self.path) if self.old is not None else "/dev/null",
                tofile=str(self.path),
            )
        )
        out = []
        for line in lines:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        text = "".join(out)
        if self.old_mode is not None and self.old_mode != self.mode:
            text += f"mode {self.old_mode:o} -> {self.mode:o}\n"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "client": self.client,
            "scope": self.scope,
            "action": self.action,
            "mode": f"{self.mode:o}",
            "summary": self.summary,
            "notes": list(self.notes),
            "removed": [r.to_dict() for r in self.removed],
            "diff": self.diff(),
        }


@dataclass(frozen=True)
class Plan:
    """Every file a bootstrap (or remove) would touch, in write order."""

    operation: Literal["bootstrap", "remove"]
    changes: tuple[FileChange, ...]
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.changes)

    @property
    def removed(self) -> list[RemovedEntry]:
        """Every imported entry this plan takes out, in file order."""
        return [r for c in self.changes for r in c.removed]

    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    def all_notes(self) -> list[str]:
        seen: list[str] = []
        for n in [*self.notes, *(n for c in self.changes for n in c.notes)]:
            if n not in seen:
                seen.append(n)
        return seen

    def describe(self) -> str:
        """Human-readable lines: one per file, then the notes."""
        lines = [f"{c.action:<9} {c.path}  ({c.summary})" for c in self.changes]
        lines += [f"note: {n}" for n in self.all_notes()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "changed": self.changed,
            "files": [c.to_dict() for c in self.changes],
            "notes": self.all_notes(),
        }


@dataclass(frozen=True)
class Result:
    """What ``apply_plan`` did."""

    plan: Plan
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    backups: dict[Path, Path]

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.plan.operation,
            "written": [str(p) for p in self.written],
            "unchanged": [str(p) for p in self.unchanged],
            "backups": {str(k): str(v) for k, v in self.backups.items()},
            "notes": self.plan.all_notes(),
        }


@dataclass(frozen=True)
class EntryStatus:
    """One client's entry as found on disk, compared with this daemon."""

    client: str
    scope: str
    path: Path
    file_exists: bool
    entry_present: bool
    transport: str | None = None  # "http" | "stdio" | other type found | None
    endpoint: str | None = None
    points_here: bool = False
    drift: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.entry_present and self.points_here and not self.drift and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "scope": self.scope,
            "path": str(self.path),
            "fileExists": self.file_exists,
            "entryPresent": self.entry_present,
            "transport": self.transport,
            "endpoint": self.endpoint,
            "pointsHere": self.points_here,
            "drift": list(self.drift),
            "error": self.error,
            "ok": self.ok,
        }
