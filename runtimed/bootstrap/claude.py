"""Claude Code config editing: ``mcpServers.<name>`` in ``~/.claude.json``
(user scope) or a project's ``.mcp.json``, and the project-local servers of
``~/.claude.json`` (``projects["<dir>"].mcpServers``) for removing an
imported entry.

Owns parsing (with line/column on errors), reading one entry back, and
setting or removing one entry while every other key keeps its value and
order, and the file keeps its indentation and trailing newline. Must not
decide what the entry should contain (or whether one may go) or touch the disk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimed.bootstrap.model import ConfigParseError

MANAGED_KEYS = ("type", "url", "headers", "command", "args", "env")


@dataclass
class JsonDoc:
    data: dict[str, Any]
    indent: int | str | None  # None: the file was on one line
    trailing_newline: bool


def parse(path: Path, raw: bytes | None) -> JsonDoc:
    """Parse a JSON config file; a missing or empty file is ``{}``."""
    if raw is None or not raw.strip():
        return JsonDoc({}, 2, True)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigParseError(path, f"not valid UTF-8 (byte {e.start})", line, None) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigParseError(path, f"not valid JSON: {e.msg}", e.lineno, e.colno) from None
    if not isinstance(data, dict):
        raise ConfigParseError(path, "the top level is not a JSON object", 1, 1)
    servers = data.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise ConfigParseError(path, "`mcpServers` is not an object", None, None)
    return JsonDoc(data, _indent_of(text), text.endswith("\n"))


def _indent_of(text: str) -> int | str | None:
    m = re.search(r"\n([ \t]+)\S", text)
    if m is None:
        return 2 if "\n" in text.strip() else None
    ws = m.group(1)
    return ws if "\t" in ws else len(ws)


def dumps(doc: JsonDoc) -> bytes:
    if doc.indent is None:
        text = json.dumps(doc.data, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(doc.data, ensure_ascii=False, indent=doc.indent)
    if doc.trailing_newline:
        text += "\n"
    return text.encode("utf-8")


def _servers(doc: JsonDoc, project: str | None) -> Any:
    """The top-level ``mcpServers``, or ``projects[project].mcpServers``; None when missing."""
    if project is None:
        return doc.data.get("mcpServers")
    projects = doc.data.get("projects")
    proj = projects.get(project) if isinstance(projects, dict) else None
    return proj.get("mcpServers") if isinstance(proj, dict) else None


def label(name: str, project: str | None = None) -> str:
    """How output names an entry: ``mcpServers.x`` or ``projects["/dir"].mcpServers.x``."""
    return f"mcpServers.{name}" if project is None else f"projects[{json.dumps(project)}].mcpServers.{name}"


def get_entry(doc: JsonDoc, name: str, path: Path, project: str | None = None) -> dict[str, Any] | None:
    servers = _servers(doc, project)
    if not isinstance(servers, dict) or name not in servers:
        return None
    entry = servers[name]
    if not isinstance(entry, dict):
        raise ConfigParseError(path, f"`{label(name, project)}` is not an object", None, None)
    return entry


def set_entry(doc: JsonDoc, name: str, desired: dict[str, Any], path: Path) -> None:
    """Make the managed keys of ``mcpServers.<name>`` equal ``desired``:
    existing keys keep their position, managed keys not in ``desired`` are
    removed, other keys of the entry are kept; a new entry goes last."""
    servers = doc.data.setdefault("mcpServers", {})
    entry = servers.get(name)
    if entry is None:
        servers[name] = dict(desired)
        return
    if not isinstance(entry, dict):
        raise ConfigParseError(path, f"`mcpServers.{name}` is not an object", None, None)
    for key in MANAGED_KEYS:
        if key in entry and key not in desired:
            del entry[key]
    for key, value in desired.items():
        entry[key] = value


def remove_entry(doc: JsonDoc, name: str, project: str | None = None) -> bool:
    """Delete ``mcpServers.<name>`` (``projects[project].mcpServers.<name>``
    with ``project``); False when there was none. An emptied ``mcpServers``
    object is kept (Claude Code writes one itself)."""
    servers = _servers(doc, project)
    if not isinstance(servers, dict) or name not in servers:
        return False
    del servers[name]
    return True
