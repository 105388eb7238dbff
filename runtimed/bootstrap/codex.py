"""Codex CLI config editing: ``[mcp_servers.<name>]`` in a ``config.toml``.

Owns parsing (with line/column on errors), reading one entry back as plain
data, and setting or removing one entry with ``tomlkit`` so every other
table, key, comment and blank line survives as it was. Must not decide what
the entry should contain (``bootstrap`` does) or touch the disk.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError, TOMLKitError
from tomlkit.items import AoT, InlineTable, Table
from tomlkit.toml_document import TOMLDocument

from runtimed.bootstrap.model import ConfigParseError

# Keys bootstrap owns inside the entry; all others (startup_timeout_sec,
# tool_timeout_sec, enabled, enabled_tools, ...) are left alone.
MANAGED_KEYS = (
    "url",
    "bearer_token_env_var",
    "http_headers",
    "env_http_headers",
    "command",
    "args",
    "env",
    "env_vars",
    "cwd",
)


def parse(path: Path, data: bytes | None) -> TOMLDocument:
    """Parse a config file's bytes; a missing file is an empty document."""
    if data is None:
        return tomlkit.document()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad_line = data[: e.start].count(b"\n") + 1
        raise ConfigParseError(path, f"not valid UTF-8 (byte {e.start})", bad_line, None) from None
    try:
        tomllib.loads(text)  # strict, and says where: tomlkit misses some errors
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        raise ConfigParseError(path, f"not valid TOML: {_reason(str(e))}", line, col) from None
    try:
        doc = tomlkit.parse(text)
    except ParseError as e:
        raise ConfigParseError(path, f"not valid TOML: {_reason(str(e))}", e.line, e.col + 1) from None
    except TOMLKitError as e:
        raise ConfigParseError(path, f"cannot be edited safely: {e}", None, None) from None
    servers = doc.get("mcp_servers")
    if servers is not None and not isinstance(servers, dict):
        raise ConfigParseError(path, "`mcp_servers` is not a table", None, None)
    return doc


def _reason(msg: str) -> str:
    msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
    return re.sub(r"\s*at line \d+ col \d+$", "", msg).rstrip(".")


def get_entry(doc: TOMLDocument, name: str, path: Path) -> dict[str, Any] | None:
    """The entry ``[mcp_servers.<name>]`` as plain data, or None."""
    servers = doc.get("mcp_servers")
    if servers is None or name not in servers:
        return None
    entry = servers[name]
    if not isinstance(entry, dict):
        raise ConfigParseError(path, f"`mcp_servers.{name}` is not a table", None, None)
    plain: dict[str, Any] = _plain(entry)
    return plain


def _plain(value: Any) -> Any:
    if hasattr(value, "unwrap"):
        return value.unwrap()
    return value


def set_entry(doc: TOMLDocument, name: str, desired: dict[str, Any], path: Path) -> str:
    """Return the document's text with the managed keys of
    ``[mcp_servers.<name>]`` equal to ``desired``.

    A new entry is appended as its own table at the end of the file (after a
    blank line), leaving every byte before it as it was. An existing entry is
    edited in place: keys keep their position and comments, managed keys not
    in ``desired`` are removed, other keys are kept.
    """
    servers = doc.get("mcp_servers")
    existing = servers.get(name) if servers is not None else None
    if existing is None:
        text = tomlkit.dumps(doc)
        appended = _append_table(text, name, desired)
        try:
            tomllib.loads(appended)
            return appended
        except tomllib.TOMLDecodeError:
            pass  # e.g. `mcp_servers = {...}` inline: insert through tomlkit
        table = tomlkit.inline_table() if isinstance(servers, InlineTable) else tomlkit.table()
        for key, value in desired.items():
            table.add(key, _item(value))
        if servers is None:
            servers = tomlkit.table(is_super_table=True)
            doc["mcp_servers"] = servers
            servers = doc["mcp_servers"]
        servers[name] = table
        return tomlkit.dumps(doc)
    if not isinstance(existing, (Table, dict)) or isinstance(existing, AoT):
        raise ConfigParseError(path, f"`mcp_servers.{name}` is not a table", None, None)
    for key in MANAGED_KEYS:
        if key in existing and key not in desired:
            del existing[key]
    for key, value in desired.items():
        if key in existing and _plain(existing[key]) == value:
            continue
        existing[key] = _item(value)
    return tomlkit.dumps(doc)


def _append_table(text: str, name: str, desired: dict[str, Any]) -> str:
    table = tomlkit.table()
    for key, value in desired.items():
        table.add(key, _item(value))
    block = tomlkit.document()
    servers = tomlkit.table(is_super_table=True)
    servers.add(name, table)
    block.add("mcp_servers", servers)
    rendered = tomlkit.dumps(block)
    if not text.strip():
        return text + ("" if not text or text.endswith("\n") else "\n") + rendered
    if not text.endswith("\n"):
        text += "\n"
    if not text.endswith("\n\n"):
        text += "\n"
    return text + rendered


def _item(value: Any) -> Any:
    if isinstance(value, dict):
        t = tomlkit.inline_table()
        for k, v in value.items():
            t[k] = v
        return t
    return value


def remove_entry(doc: TOMLDocument, name: str) -> str | None:
    """The document's text without ``[mcp_servers.<name>]``, or None when
    there is no such entry. An ``mcp_servers`` table left empty is removed
    too, and blank lines left dangling at the end of the file are trimmed."""
    servers = doc.get("mcp_servers")
    if servers is None or name not in servers:
        return None
    del servers[name]
    if len(servers) == 0:
        del doc["mcp_servers"]
    text = tomlkit.dumps(doc)
    stripped = text.rstrip("\n")
    if text.endswith("\n\n"):
        text = stripped + "\n" if stripped else ""
    return text
