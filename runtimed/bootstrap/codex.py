"""Codex CLI config editing: ``[mcp_servers.<name>]`` in a ``config.toml``.

Owns parsing (with line/column on errors), reading one entry back as plain
data, and setting or removing one entry with ``tomlkit`` so every other
table, key, comment and blank line survives as it was; removing an imported
entry by its lines (``without_entry``) so the comments of its neighbours stay
with them. Must not decide what the entry should contain (or whether one may
go) or touch the disk.
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


def dumps(doc: TOMLDocument) -> str:
    """The document's text (as parsed: byte for byte)."""
    return tomlkit.dumps(doc)


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


def without_entry(text: str, name: str) -> tuple[str, bool] | None:
    """``text`` without ``[mcp_servers.<name>]`` (and its sub-tables), or None
    when there is no such entry; the flag is False when the entry was not laid
    out as its own tables and ``remove_entry`` (tomlkit) took it out instead,
    which may take a neighbour's comment with it.

    By lines: the entry's headers up to the next other header go, with the
    comment lines right above its first header (not a comment block opening
    the file); a trailing comment block after a blank line, or right above
    the next header, stays (it introduces what follows). Every other line is
    kept byte for byte; the result is checked with ``tomllib`` to hold exactly
    the old data minus the entry, else tomlkit does it."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    servers = before.get("mcp_servers")
    if not isinstance(servers, dict) or name not in servers:
        return None
    expected = dict(before)
    expected["mcp_servers"] = {k: v for k, v in servers.items() if k != name}
    by_lines = _without_tables(text, name)
    if by_lines is not None:
        try:
            if _no_empty_servers(tomllib.loads(by_lines)) == _no_empty_servers(expected):
                return by_lines, True
        except tomllib.TOMLDecodeError:
            pass
    out = remove_entry(tomlkit.parse(text), name)
    return (out if out is not None else text), False


def _no_empty_servers(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not (k == "mcp_servers" and v == {})}


def _header_path(line: str) -> list[str] | None:
    """The key path of a table header line (``[a."b.c"]`` -> ``["a", "b.c"]``), else None."""
    if not line.lstrip().startswith("["):
        return None
    try:
        node: Any = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while True:
        if isinstance(node, list) and len(node) == 1:
            node = node[0]
        if not isinstance(node, dict) or len(node) != 1:
            break
        key, node = next(iter(node.items()))
        path.append(key)
    return path if path and node == {} else None


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _is_blank(line: str) -> bool:
    return not line.strip()


def _without_tables(text: str, name: str) -> str | None:
    lines = text.splitlines(keepends=True)
    headers = [(i, p) for i, line in enumerate(lines) if (p := _header_path(line)) is not None]
    mine = [p[:2] == ["mcp_servers", name] for _, p in headers]
    if not any(mine):
        return None
    drop: set[int] = set()
    n = 0
    while n < len(headers):
        if not mine[n]:
            n += 1
            continue
        first = headers[n][0]
        while n < len(headers) and mine[n]:
            n += 1
        next_header = headers[n][0] if n < len(headers) else None
        end = next_header if next_header is not None else len(lines)
        tail = end  # the comments and blank lines closing the entry
        while tail > first + 1 and (_is_comment(lines[tail - 1]) or _is_blank(lines[tail - 1])):
            tail -= 1
        blank = next((j for j in range(tail, end) if _is_blank(lines[j])), None)
        if blank is not None:
            cut = blank  # what follows the blank line introduces the next table (or ends the file)
        elif next_header is not None:
            cut = tail  # comments right above the next header are its own
        else:
            cut = end
        start = first
        while start > 0 and _is_comment(lines[start - 1]):
            start -= 1
        if start == 0 and first > 0:
            start = first  # a comment block opening the file is the file's, not the entry's
        if (start == 0 or _is_blank(lines[start - 1])) and cut < len(lines) and _is_blank(lines[cut]):
            cut += 1  # one blank line between what stays, not two
        drop.update(range(start, cut))
    out = "".join(line for i, line in enumerate(lines) if i not in drop)
    if out.endswith("\n\n") or (out and not out.strip()):
        stripped = out.rstrip("\n")
        out = stripped + "\n" if stripped.strip() else ""
    return out
