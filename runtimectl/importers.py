"""The MCP servers users already configured in their clients, read and turned
into service manifests for ``runtimectl import``.

Owns where each client keeps its servers (Claude Code, Claude Desktop, Codex,
Cursor, VS Code, on top of ``runtimed.bootstrap.locations``), reading those
files (JSON, JSON with comments, TOML) into entries, recognising a file given
by path from its content, and the plan for each entry: its service name, its
manifest (``stdio`` or ``remote_mcp``) with every secret turned into a
reference (``env:VAR``, ``header_env:Header:VAR``) and the variables the user
must export where the daemon runs, or why it is skipped (the gateway's own
entry, no command and no url, ``${input:...}``, disabled...).

Must not: talk to the daemon, print, or write any file; never put a secret
value into a manifest, a summary, a note or an error (they name files, keys,
headers and variables, never values). Validating what the daemon validates
(the schema) is the daemon's job.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from runtimed.bootstrap.entries import DEFAULT_BASE_URL, URL_ENV
from runtimed.bootstrap.locations import Locations, same_file
from runtimed.config.manifest import API_VERSION, KIND, looks_like_secret_name, looks_like_secret_query_name
from runtimed.errors import ClientError

# What --from takes besides a file, and how the output names each client.
CLIENT_LABELS = {
    "claude": "Claude Code",
    "claude-desktop": "Claude Desktop",
    "codex": "Codex",
    "cursor": "Cursor",
    "vscode": "VS Code",
}
CLIENTS = tuple(CLIENT_LABELS)
GATEWAY_NAME = "runtime"  # the server name `runtimectl bootstrap` writes by default
GATEWAY_ITSELF = "this is the gateway itself"

Flavour = Literal["mcpServers", "vscode", "codex"]


# -- what was read ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One table of servers in one file: ``mcpServers`` of ``~/.claude.json``, ``[mcp_servers]`` of a Codex config..."""

    path: Path
    section: str  # as shown: mcpServers, servers, [mcp_servers], projects["/dir"].mcpServers
    flavour: Flavour
    client: str  # as shown: Claude Code, Codex, ..., or "file"
    project: bool  # project-scoped: the client ran these servers in the project directory
    project_key: str | None = None  # ~/.claude.json's projects["<dir>"].mcpServers: that <dir>

    def describe(self) -> str:
        return f"{self.path} ({self.section})"

    @property
    def via(self) -> str:
        """What ``--from`` named: a client (``claude``, ``codex``...) or ``file``."""
        return next((k for k, v in CLIENT_LABELS.items() if v == self.client), "file")


@dataclass(frozen=True)
class Entry:
    """One server entry as the client wrote it."""

    key: str
    source: Source
    data: Any
    disabled: str | None = None  # why the client does not use it, when known from elsewhere in its config


@dataclass
class Found:
    """What ``read`` found: the tables of servers, their entries, and every file it looked at."""

    sources: list[Source] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    looked_at: list[Path] = field(default_factory=list)

    def count(self, source: Source) -> int:
        return sum(1 for e in self.entries if e.source is source)


# -- what will be registered ----------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    """A variable the daemon's environment must hold for a service: its value was not copied."""

    var: str
    service: str
    origin: str  # where the value is today, e.g. "env GITHUB_TOKEN of mcpServers.github in /home/u/.claude.json"
    literal: bool  # True: the value is written in the client config; False: the client read it from its environment

    def hint(self) -> str:
        if self.literal:
            return f"export {self.var}=...   # {self.service}: {self.origin}"
        return f"export {self.var}=...   # {self.service}: {self.origin} (the client read it from its environment)"

    def to_dict(self) -> dict[str, Any]:
        return {"var": self.var, "service": self.service, "origin": self.origin, "literal": self.literal}


@dataclass
class Plan:
    """What import does with one entry: register ``manifest`` as ``name``, or skip it for ``skipped``."""

    key: str
    source: Source
    name: str | None = None
    manifest: dict[str, Any] | None = None
    summary: str = ""  # "stdio: npx -y pkg" or "http: https://..." (never a secret)
    skipped: str | None = None
    exports: list[Export] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "source": str(self.source.path), "section": self.source.section}
        if self.skipped is not None:
            d["skipped"] = self.skipped
        else:
            d.update(name=self.name, summary=self.summary, manifest=self.manifest)
        if self.exports:
            d["exports"] = [e.to_dict() for e in self.exports]
        if self.notes:
            d["notes"] = list(self.notes)
        return d


class _Skip(Exception):
    """An entry that cannot be imported; the message says why."""


# -- reading files ---------------------------------------------------------------------------------


def read(origin: str, loc: Locations) -> Found:
    """The servers of a client (``claude``, ``claude-desktop``, ``codex``, ``cursor``, ``vscode``) or of a
    file. Raises ``ClientError`` for a file that cannot be read or parsed, naming the file (and line and
    column); a client's missing files are not an error (``Found.sources`` is then empty)."""
    found = Found()
    readers = {"claude": _claude, "claude-desktop": _claude_desktop, "codex": _codex, "cursor": _cursor,
               "vscode": _vscode}
    if origin in readers:
        readers[origin](loc, found)
    else:
        _file(Path(origin).expanduser().absolute(), loc, found)
    return found


def _claude(loc: Locations, found: Found) -> None:
    label = CLIENT_LABELS["claude"]
    user = loc.home / ".claude.json"
    doc = _json_doc(user, found)
    disabled: set[str] = set()
    if doc is not None:
        _section(found, doc, "mcpServers", Source(user, "mcpServers", "mcpServers", label, project=False))
        local = _claude_project(doc, loc.project_dir)
        if local is not None:
            key, proj = local
            _section(found, proj, "mcpServers",
                     Source(user, f"projects[{json.dumps(key)}].mcpServers", "mcpServers", label, project=True,
                            project_key=key))
            names = proj.get("disabledMcpjsonServers")
            if isinstance(names, list):
                disabled = {n for n in names if isinstance(n, str)}
    mcp = loc.project_dir / ".mcp.json"
    doc = _json_doc(mcp, found)
    if doc is not None:
        _section(found, doc, "mcpServers", Source(mcp, "mcpServers", "mcpServers", label, project=True),
                 disabled=disabled, disabled_reason="disabled for this project in Claude Code (disabledMcpjsonServers)")


def _claude_project(doc: dict[str, Any], project_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """``projects["<dir>"]`` of ``~/.claude.json`` for the project (as given, or with symlinks resolved)."""
    projects = doc.get("projects")
    if not isinstance(projects, dict):
        return None
    for key in dict.fromkeys((str(project_dir), str(project_dir.resolve()))):
        proj = projects.get(key)
        if isinstance(proj, dict):
            return key, proj
    return None


def _claude_desktop(loc: Locations, found: Found) -> None:
    linux = loc.home / ".config" / "Claude" / "claude_desktop_config.json"
    macos = loc.home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    for path in (macos, linux) if sys.platform == "darwin" else (linux, macos):
        doc = _json_doc(path, found)
        if doc is not None:
            _section(found, doc, "mcpServers",
                     Source(path, "mcpServers", "mcpServers", CLIENT_LABELS["claude-desktop"], project=False))
            return


def _codex(loc: Locations, found: Found) -> None:
    label = CLIENT_LABELS["codex"]
    for path, project in ((loc.codex_home / "config.toml", False), (loc.project_dir / ".codex" / "config.toml", True)):
        doc = _toml_doc(path, found)
        if doc is not None:
            _section(found, doc, "mcp_servers", Source(path, "[mcp_servers]", "codex", label, project=project))


def _cursor(loc: Locations, found: Found) -> None:
    label = CLIENT_LABELS["cursor"]
    for path, project in ((loc.home / ".cursor" / "mcp.json", False), (loc.project_dir / ".cursor" / "mcp.json", True)):
        doc = _json_doc(path, found)
        if doc is not None:
            _section(found, doc, "mcpServers", Source(path, "mcpServers", "mcpServers", label, project=project))


def _vscode(loc: Locations, found: Found) -> None:
    label = CLIENT_LABELS["vscode"]
    user = (loc.home / "Library" / "Application Support" / "Code" / "User" / "mcp.json" if sys.platform == "darwin"
            else loc.home / ".config" / "Code" / "User" / "mcp.json")
    for path, project in ((loc.project_dir / ".vscode" / "mcp.json", True), (user, False)):
        doc = _json_doc(path, found, comments=True)
        if doc is not None:
            _section(found, doc, "servers", Source(path, "servers", "vscode", label, project=project))


def _file(path: Path, loc: Locations, found: Found) -> None:
    """A file given by path: TOML with ``[mcp_servers]``, or JSON with ``mcpServers`` or ``servers``."""
    if not path.is_file():
        raise ClientError(f"{path}: no such file (--from takes {', '.join(CLIENTS)} or the path of a client's config)")
    project = _inside_project(path, loc)
    found.looked_at.append(path)
    text = _read_text(path) or ""
    doc: dict[str, Any]
    if path.suffix == ".toml":
        doc = _parse_toml(path, text)
    elif path.suffix in (".json", ".jsonc") or text.lstrip().startswith("{"):
        doc = _parse_json(path, text, comments=True) if text.strip() else {}
    else:
        try:
            doc = _parse_toml(path, text)
        except ClientError:
            raise ClientError(f"{path}: neither JSON nor TOML; nothing was imported") from None
    if isinstance(doc.get("mcp_servers"), dict):
        _section(found, doc, "mcp_servers", Source(path, "[mcp_servers]", "codex", "file", project=project))
    elif isinstance(doc.get("mcpServers"), dict) or isinstance(doc.get("projects"), dict):
        _section(found, doc, "mcpServers", Source(path, "mcpServers", "mcpServers", "file", project=project))
        local = _claude_project(doc, loc.project_dir)
        if local is not None:  # a ~/.claude.json: the project's own servers too
            key, proj = local
            _section(found, proj, "mcpServers",
                     Source(path, f"projects[{json.dumps(key)}].mcpServers", "mcpServers", "file", project=True,
                            project_key=key))
    elif isinstance(doc.get("servers"), dict):
        _section(found, doc, "servers", Source(path, "servers", "vscode", "file", project=project))
    else:
        raise ClientError(f"{path}: no MCP servers in it (expected `mcpServers` or `servers` in JSON, "
                          "`[mcp_servers.NAME]` tables in TOML)")


def _inside_project(path: Path, loc: Locations) -> bool:
    """A project's config file: ``<project>/.mcp.json``, ``<project>/.vscode/mcp.json``, ``<project>/.cursor/...``."""
    parent = path.absolute().parent
    if path.name == ".claude.json":
        return False
    return loc.project_dir in (parent, parent.parent)


def _section(found: Found, doc: dict[str, Any], key: str, source: Source, *, disabled: set[str] | None = None,
             disabled_reason: str = "") -> None:
    table = doc.get(key)
    if table is None:
        return
    if not isinstance(table, dict):
        raise ClientError(f"{source.path}: `{source.section}` is not {'a table' if source.flavour == 'codex' else 'an object'}"
                          "; nothing was imported")
    found.sources.append(source)
    for name, data in table.items():
        reason = disabled_reason if disabled and name in disabled else None
        found.entries.append(Entry(str(name), source, data, reason))


def _read_text(path: Path) -> str | None:
    """The file's text; None when it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ClientError(f"{path}: is a folder, not a config file") from None
    except OSError as e:
        raise ClientError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ClientError(f"{path} (line {line}): not valid UTF-8; nothing was imported") from None


def _already_read(path: Path, found: Found) -> bool:
    """The same file twice (the project is the home folder): read once."""
    real = path.resolve()
    seen = any(p.resolve() == real for p in found.looked_at)
    found.looked_at.append(path)
    return seen


def _json_doc(path: Path, found: Found, comments: bool = False) -> dict[str, Any] | None:
    if _already_read(path, found):
        return None
    text = _read_text(path)
    if text is None:
        return None
    if not text.strip():
        return {}
    return _parse_json(path, text, comments)


def _parse_json(path: Path, text: str, comments: bool) -> dict[str, Any]:
    """A JSON object; with ``comments``, JSON with comments and trailing commas too (VS Code's files)."""
    data: Any = None
    error: json.JSONDecodeError | None = None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        error = e
    if error is not None and comments:
        try:
            data, error = json.loads(strip_jsonc(text)), None
        except json.JSONDecodeError as e:
            error = e
    if error is not None:
        raise ClientError(f"{path} (line {error.lineno}, column {error.colno}): not valid JSON: {error.msg}; "
                          "nothing was imported")
    if not isinstance(data, dict):
        raise ClientError(f"{path}: the top level is not a JSON object; nothing was imported")
    return data


def _toml_doc(path: Path, found: Found) -> dict[str, Any] | None:
    if _already_read(path, found):
        return None
    text = _read_text(path)
    return None if text is None else _parse_toml(path, text)


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ClientError(f"{path}: not valid TOML: {e}; nothing was imported") from None


def strip_jsonc(text: str) -> str:
    """JSON with comments (``//``, ``/* */``) and trailing commas, as VS Code writes it, made plain JSON.
    Comments become spaces (line and column numbers stay right); strings are left alone."""
    out: list[str] = []
    i, n, in_str = 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            in_str = c != '"'
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    chars = out
    in_str = False
    k = 0
    while k < len(chars):  # trailing commas: a comma followed (past spaces) by } or ]
        c = chars[k]
        if in_str:
            if c == "\\":
                k += 2
                continue
            in_str = c != '"'
        elif c == '"':
            in_str = True
        elif c == ",":
            j = k + 1
            while j < len(chars) and chars[j].isspace():
                j += 1
            if j < len(chars) and chars[j] in "}]":
                chars[k] = " "
        k += 1
    return "".join(chars)


# -- recognising secrets ----------------------------------------------------------------------------

_TOKEN_PREFIX = re.compile(
    r"^(sk-|sk_|rk_|pk_live_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox[abposr]-|xapp-|AKIA[0-9A-Z]{12}|AIza|"
    r"ya29\.|npm_|hf_|pypi-|dop_v1_|lin_api_|secret_|ntn_)")
_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*$")
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_\-+/=]+$")


def looks_like_token(value: str) -> bool:
    """A value that looks like a credential whatever its name: a known token prefix (``sk-``, ``ghp_``,
    ``xoxb-``, ``AKIA``...), a JWT, a private key, or a long random-looking string."""
    v = value.strip()
    if len(v) < 16:
        return False
    if _TOKEN_PREFIX.match(v) or _JWT.match(v) or "-----BEGIN" in v or v.lower().startswith(("bearer ", "basic ")):
        return True
    if len(v) < 20 or not _TOKEN_CHARS.match(v) or v.startswith(("/", "-")):
        return False
    core = re.sub(r"[-_+/=]", "", v)
    if len(core) < 20 or not any(ch.isdigit() for ch in core) or not any(ch.isalpha() for ch in core):
        return False
    switches = sum(1 for a, b in pairwise(core) if _char_class(a) != _char_class(b))
    counts = Counter(core)
    entropy = -sum(c / len(core) * math.log2(c / len(core)) for c in counts.values())
    # Random tokens switch between digits, lower and upper case often; words with a year do not.
    return switches / len(core) >= 0.2 and entropy >= 3.0


_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@")
_KEYWORD_SECRET = re.compile(r"(?i)(\bbearer\s+\S|\b(password|passwd|pwd|secret|token|api_?key)\s*=\s*[^\s;&]+)")


def contains_secret(value: str) -> bool:
    """``looks_like_token`` for the value or any of its words, a URL with a password
    (``postgres://user:pw@host/db``), ``Bearer xyz`` or ``password=xyz`` inside it."""
    if looks_like_token(value) or _URL_PASSWORD.match(value.strip()) or _KEYWORD_SECRET.search(value):
        return True
    return any(looks_like_token(part) for part in re.split(r"[\s=:,;&?\"']+", value) if part != value)


def _char_class(ch: str) -> int:
    return 0 if ch.isdigit() else 1 if ch.islower() else 2


def _secret_name(name: str) -> bool:
    """A variable or header name that carries a credential (``GITHUB_TOKEN``, ``X-API-Key``...)."""
    return looks_like_secret_name(name.replace("-", "_"))


def _secret_flag(arg: str) -> bool:
    """A command-line flag that takes a credential (``--api-key``, ``--token``), not a file holding one."""
    if not arg.startswith("--"):
        return False
    name = arg[2:].split("=", 1)[0].replace("-", "_")
    return _secret_name(name) and not re.search(r"(?i)(file|path|dir|name|id|url|env|var|header)$", name)


# -- variable references -----------------------------------------------------------------------------

_VAR = r"[A-Za-z_][A-Za-z0-9_]*"
_WHOLE_REF = re.compile(rf"^(?:\$\{{(?:env:)?({_VAR})(?::-[^}}]*)?\}}|\$({_VAR}))$")
_BRACED_REF = re.compile(r"\$\{[^}]*\}")
_ANY_REF = re.compile(rf"\$\{{[^}}]*\}}|\${_VAR}")
_INPUT_REF = re.compile(r"\$\{input:([^}]*)\}")
_ENV_NAME = re.compile(rf"^{_VAR}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")


def whole_reference(value: str) -> str | None:
    """``VAR`` when the value is only a reference to it: ``${VAR}``, ``${env:VAR}``, ``${VAR:-default}``, ``$VAR``."""
    m = _WHOLE_REF.match(value.strip())
    return (m.group(1) or m.group(2)) if m else None


def _expand_known(value: str, loc: Locations) -> str:
    """The variables whose value is known here and is no secret: the home and the project folder
    (``${userHome}``, ``${HOME}``, ``$HOME``, ``${workspaceFolder}``...)."""
    home, project = str(loc.home), str(loc.project_dir)
    for ref, val in (("${userHome}", home), ("${HOME}", home), ("${env:HOME}", home), ("${workspaceFolder}", project),
                     ("${workspaceRoot}", project), ("${workspaceFolderBasename}", loc.project_dir.name),
                     ("${pathSeparator}", "/"), ("${/}", "/")):
        value = value.replace(ref, val)
    return re.sub(r"\$HOME(?![A-Za-z0-9_])", lambda _m: home, value)


# -- the common shape of an entry --------------------------------------------------------------------


@dataclass
class _Server:
    kind: Literal["stdio", "http", "sse"]
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    forward: list[str] = field(default_factory=list)  # Codex env_vars: names passed through from the client's env
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # literal (or ${VAR}-templated) header values
    header_env: dict[str, str] = field(default_factory=dict)  # header -> variable (Codex env_http_headers)
    bearer_env: str | None = None  # Codex bearer_token_env_var
    bearer: str | None = None  # an inline bearer token (Codex refuses it, but it may be there)
    notes: list[str] = field(default_factory=list)

    def strings(self) -> Iterable[tuple[str, str]]:
        """(where, value) of every string that could hold a variable reference."""
        yield "command", self.command
        for i, a in enumerate(self.args):
            yield f"args[{i}]", a
        for k, v in self.env.items():
            yield f"env {k}", v
        if self.cwd:
            yield "cwd", self.cwd
        if self.url:
            yield "url", self.url
        for k, v in self.headers.items():
            yield f"header {k}", v


_TYPES: dict[str, Literal["stdio", "http", "sse"]] = {
    "stdio": "stdio", "http": "http", "streamable-http": "http", "streamable_http": "http", "streamablehttp": "http",
    "sse": "sse",
}


def _server(entry: Entry) -> _Server:
    """The entry in the common shape; raises ``_Skip`` when it cannot be imported."""
    if entry.disabled:
        raise _Skip(entry.disabled)
    data = entry.data
    if not isinstance(data, dict):
        raise _Skip(f"not {'a table' if entry.source.flavour == 'codex' else 'an object'}")
    for key, value in (("disabled", True), ("enabled", False)):
        if data.get(key) is value:
            written = (f"{key} = {json.dumps(value)}" if entry.source.flavour == "codex"
                       else f'"{key}": {json.dumps(value)}')
            raise _Skip(f"disabled in the client ({written})")
    if entry.source.flavour == "codex":
        return _codex_server(data)
    return _json_server(data, entry)


def _json_server(data: dict[str, Any], entry: Entry) -> _Server:
    raw_type = data.get("type")
    command, url = data.get("command"), data.get("url") or data.get("serverUrl")
    notes: list[str] = []
    if raw_type is None:
        if command is None and url is None:
            raise _Skip("no command and no url")
        kind: Literal["stdio", "http", "sse"] = "stdio" if command is not None else "http"
        if entry.source.client == CLIENT_LABELS["claude"]:
            notes.append(f'no "type" (Claude Code ignores such an entry): imported as {kind} from its '
                         f'{"command" if kind == "stdio" else "url"}')
    else:
        if not isinstance(raw_type, str) or raw_type.lower() not in _TYPES:
            raise _Skip(f"unknown type {raw_type!r} (expected stdio, http or sse)")
        kind = _TYPES[raw_type.lower()]
    if kind == "stdio":
        if not isinstance(command, str) or not command.strip():
            raise _Skip("no command" if command is None else "command is not a string" if not isinstance(command, str)
                        else "the command is empty")
        s = _Server("stdio", command=command.strip(), args=_str_list(data.get("args"), "args"),
                    env=_str_map(data.get("env"), "env"), cwd=_opt_str(data.get("cwd"), "cwd"), notes=notes)
        if data.get("envFile"):
            s.notes.append("envFile not read: put what it sets in the manifest's env (values as env:VAR references) "
                           "and export those variables where runtimed runs")
        return s
    if not isinstance(url, str) or not url.strip():
        raise _Skip("no url" if url is None else "url is not a string")
    return _Server(kind, url=url.strip(), headers=_str_map(data.get("headers"), "headers"), notes=notes)


def _codex_server(data: dict[str, Any]) -> _Server:
    command, url = data.get("command"), data.get("url")
    if command is not None and url is not None:
        raise _Skip("it has both command and url (Codex refuses such an entry)")
    if command is None and url is None:
        raise _Skip("no command and no url")
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise _Skip("command is not a non-empty string")
        forward = _str_list(data.get("env_vars"), "env_vars")
        for name in forward:
            if not _ENV_NAME.match(name):
                raise _Skip(f"env_vars: {name!r} is not a variable name")
        return _Server("stdio", command=command.strip(), args=_str_list(data.get("args"), "args"),
                       env=_str_map(data.get("env"), "env"), forward=forward, cwd=_opt_str(data.get("cwd"), "cwd"))
    if not isinstance(url, str) or not url.strip():
        raise _Skip("url is not a non-empty string")
    bearer_env = _opt_str(data.get("bearer_token_env_var"), "bearer_token_env_var")
    if bearer_env is not None and not _ENV_NAME.match(bearer_env):
        raise _Skip(f"bearer_token_env_var {bearer_env!r} is not a variable name")
    header_env = _str_map(data.get("env_http_headers"), "env_http_headers")
    for header, var in header_env.items():
        if not _ENV_NAME.match(var):
            raise _Skip(f"env_http_headers {header}: {var!r} is not a variable name")
    return _Server("http", url=url.strip(), headers=_str_map(data.get("http_headers"), "http_headers"),
                   header_env=header_env, bearer_env=bearer_env, bearer=_opt_str(data.get("bearer_token"), "bearer_token"))


def _str_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise _Skip(f"{what} is not a list of strings")
    return [str(v) for v in value]


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Skip(f"{what} is not {'a table' if what in ('env_http_headers', 'http_headers') else 'an object'}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, (str, int, float)):
            raise _Skip(f"{what} {k}: the value is not a string")
        out[str(k)] = str(v)
    return out


def _opt_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Skip(f"{what} is not a string")
    return value


# -- the plan -------------------------------------------------------------------------------------------


def service_name(key: str) -> str:
    """An entry's key as a service name (``[a-z0-9][a-z0-9_-]{0,31}``): lower case, other characters
    become ``-``, at most 32."""
    name = re.sub(r"[^a-z0-9_-]+", "-", key.lower()).strip("-_")
    return name[:32].rstrip("-_") or "service"


def _unique(base: str, used: set[str]) -> str:
    if base not in used:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: 32 - len(suffix)] + suffix
        if candidate not in used:
            return candidate
        n += 1


class _Vars:
    """The variables chosen for values written in the client configs: one value per name in one import.
    A different value under a name already taken (two servers with their own ``GITHUB_TOKEN``) gets the
    service's prefix (``GITHUB_WORK_GITHUB_TOKEN``). Values stay in memory, never in any output."""

    _FROM_ENVIRONMENT = "\0environment"

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.pending: dict[str, str] = {}

    def claim(self, var: str, value: str, service: str) -> str:
        prefixed = var if var.startswith(_env_var_for(service, "")) else _env_var_for(service, var)
        n = 1
        candidate = var
        while True:
            have = self.pending.get(candidate, self.held.get(candidate))
            if have is None or have == value:
                self.pending[candidate] = value
                return candidate
            n += 1
            candidate = prefixed if n == 2 else f"{prefixed}_{n - 1}"

    def reference(self, var: str) -> str:
        """A variable the client read from its own environment: its name stays."""
        if var not in self.held:
            self.pending.setdefault(var, self._FROM_ENVIRONMENT)
        return var

    def commit(self) -> None:
        self.held.update(self.pending)
        self.pending.clear()


def plan(entries: Sequence[Entry], loc: Locations, gateway_urls: Sequence[str] = ()) -> list[Plan]:
    """One ``Plan`` per entry, in order. ``gateway_urls`` are the daemon's base URLs (``http://host:port``):
    entries pointing at them (or running the stdio bridge) are the gateway itself and are skipped."""
    bases = [*gateway_urls, DEFAULT_BASE_URL]
    used: set[str] = set()
    seen: dict[str, Plan] = {}
    plans: list[Plan] = []
    chosen = _Vars()
    for entry in entries:
        chosen.pending.clear()
        p = Plan(entry.key, entry.source)
        plans.append(p)
        try:
            server = _server(entry)
            _refuse_inputs(server)
            if _is_gateway(server, entry.key, bases):
                raise _Skip(GATEWAY_ITSELF)
            name = _unique(service_name(entry.key), used)
            origin, summary, exports, notes = _origin(server, name, entry, loc, chosen)
            # The same server listed twice (user and project scope): what it runs or reaches, whatever its cwd.
            identity = json.dumps([origin.get(k) for k in ("command", "args", "env", "url", "authRef")])
            if identity in seen:
                first = seen[identity]
                raise _Skip(f"the same server as {first.key} in {first.source.describe()} (imported as {first.name})")
        except _Skip as e:
            p.skipped = str(e)
            continue
        used.add(name)
        chosen.commit()
        seen[identity] = p
        p.name, p.summary, p.exports, p.notes = name, summary, exports, [*server.notes, *notes]
        p.manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "labels": labels(entry)},
                      "spec": {"origin": origin}}
    return plans


def _refuse_inputs(server: _Server) -> None:
    for where, value in server.strings():
        m = _INPUT_REF.search(value)
        if m:
            raise _Skip(f"{where} uses ${{input:{m.group(1)}}}: VS Code asks for that value when the server starts, "
                        "so there is nothing to import; register it by hand (runtimectl apply -f) with the value "
                        "as an env:VAR reference")


def _is_gateway(server: _Server, key: str, bases: Sequence[str]) -> bool:
    """The entry ``runtimectl bootstrap`` writes: a URL at the daemon's ``/mcp`` (or ``/mcp/<service>``),
    or a stdio entry running ``runtimectl gateway serve --stdio`` (the bridge)."""
    if server.kind == "stdio":
        words = [Path(server.command).name, *server.args[:2]]
        runs_runtimectl = any(w in ("runtimectl", "runtimectl.exe") for w in words)
        bridge = "--stdio" in server.args or "bridge" in server.args or URL_ENV in server.env
        return runs_runtimectl and (bridge or key == GATEWAY_NAME)
    target = _url_key(server.url)
    if target is None:
        return False
    for base in bases:
        mine = _url_key(base.rstrip("/") + "/mcp")
        if mine is not None and target[:3] == mine[:3] and (target[3] == mine[3] or target[3].startswith(mine[3] + "/")):
            return True
    return key == GATEWAY_NAME and target[1] == "loopback" and target[3] == "/mcp"


def _url_key(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) with every loopback name as one host."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if host in ("localhost", "::1", "0.0.0.0") or host.startswith("127."):
        host = "loopback"
    return parts.scheme.lower(), host, port, parts.path.rstrip("/") or "/"


def _origin(server: _Server, name: str, entry: Entry, loc: Locations, chosen: _Vars
            ) -> tuple[dict[str, Any], str, list[Export], list[str]]:
    if server.kind == "stdio":
        return _stdio_origin(server, name, entry, loc, chosen)
    return _remote_origin(server, name, entry, loc, chosen)


def _where(entry: Entry) -> str:
    section = entry.source.section.strip("[]")
    return f"{section}.{entry.key} in {entry.source.path}"


def _stdio_origin(server: _Server, name: str, entry: Entry, loc: Locations, chosen: _Vars
                  ) -> tuple[dict[str, Any], str, list[Export], list[str]]:
    notes: list[str] = []
    exports: list[Export] = []
    command = _literal(_expand_known(server.command, loc), "the command")
    args = [_literal(_expand_known(a, loc), f"args[{i}]") for i, a in enumerate(server.args)]
    for i, a in enumerate(args):
        flag_before = i > 0 and _secret_flag(args[i - 1]) and "=" not in args[i - 1] and not a.startswith("-")
        inline = _secret_flag(a) and "=" in a
        if contains_secret(a) or flag_before or inline:
            raise _Skip(f"args[{i}] looks like a credential, and a manifest's args are shown by the API and the "
                        "status page: make the server read it from an environment variable, then register it "
                        "by hand with the variable as env:VAR")
    cwd: str | None = None
    if server.cwd:
        cwd = _literal(_expand_known(server.cwd, loc), "cwd")
        cwd = str(_absolute(cwd, loc))
    elif entry.source.project:
        cwd = str(loc.project_dir)  # where the client ran it; relative arguments keep their meaning
    if "/" in command and not command.startswith("/"):
        command = str(_absolute(command, loc, Path(cwd) if cwd else None))
    env: dict[str, str] = {}
    for var, value in server.env.items():
        if not _ENV_NAME.match(var):
            raise _Skip(f"env {var!r} is not a variable name")
        ref = whole_reference(value)
        if ref is not None:
            env[var] = f"env:{chosen.reference(ref)}"
            exports.append(Export(ref, name, f"env {var} of {_where(entry)} is ${{{ref}}}", literal=False))
        elif _ANY_REF.search(value):
            to = chosen.claim(var, value, name)
            env[var] = f"env:{to}"
            exports.append(Export(to, name, f"env {var} of {_where(entry)} combines variables: set it to what "
                                  "it expands to", literal=False))
        elif _secret_name(var) or contains_secret(value) or value.startswith(("env:", "file:")):
            to = chosen.claim(var, value, name)
            env[var] = f"env:{to}"
            exports.append(Export(to, name, f"the value of env {var} in {_where(entry)}", literal=True))
        else:
            env[var] = value
    for var in server.forward:
        if var not in env:
            env[var] = f"env:{chosen.reference(var)}"
            exports.append(Export(var, name, f"env_vars of {_where(entry)} passes {var} through", literal=False))
    origin: dict[str, Any] = {"type": "stdio", "command": command, "args": args, "env": env}
    if cwd:
        origin["cwd"] = cwd
    return origin, "stdio: " + shlex.join([command, *args]), exports, notes


def _literal(value: str, what: str) -> str:
    """A string that goes into the manifest as it is: no variable left in it."""
    m = _BRACED_REF.search(value)
    if m:
        raise _Skip(f"{what} uses {m.group(0)}: the daemon runs commands as written (no variable expansion); "
                    "register it by hand with that value written out, or passed through env as env:VAR")
    return value


def _absolute(path: str, loc: Locations, base: Path | None = None) -> Path:
    p = Path(path)
    if path == "~" or path.startswith("~/"):
        p = loc.home / path[2:]
    if not p.is_absolute():
        p = (base or loc.project_dir) / p
    return p


def _env_var_for(service: str, suffix: str) -> str:
    """The variable a literal credential goes to: ``<SERVICE>_<SUFFIX>`` (``CRM_TOKEN``, ``CRM_API_KEY``)."""
    base = re.sub(r"[^A-Z0-9_]", "_", service.upper())
    var = f"{base}_{suffix}"
    return var if var[0].isalpha() else f"MCP_{var}"


def _remote_origin(server: _Server, name: str, entry: Entry, loc: Locations, chosen: _Vars
                   ) -> tuple[dict[str, Any], str, list[Export], list[str]]:
    url = _expand_known(server.url, loc)
    if _ANY_REF.search(url):
        raise _Skip("the url uses a variable: a manifest's url is written out; register it by hand with its value")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises for a bad port
    except ValueError:
        raise _Skip("the url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Skip("the url is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise _Skip("the url holds a user name or password; a manifest holds no secrets: register it by hand "
                    "with the credential as an authRef")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if looks_like_secret_query_name(key) or _secret_name(key) or contains_secret(value):
            raise _Skip(f"the url's query parameter {key!r} looks like a credential; a manifest holds no secrets: "
                        "register it by hand with an authRef (header_env:Header-Name:VAR) if the server takes a header")
    auth_ref, exports, notes = _auth_ref(server, name, entry, chosen)
    origin: dict[str, Any] = {"type": "remote_mcp", "url": url,
                              "transport": "sse" if server.kind == "sse" else "streamable_http"}
    if auth_ref:
        origin["authRef"] = auth_ref
    return origin, f"{'sse' if server.kind == 'sse' else 'http'}: {url}", exports, notes


def _auth_ref(server: _Server, name: str, entry: Entry, chosen: _Vars) -> tuple[str | None, list[Export], list[str]]:
    """The one credential an HTTP entry sends, as an authRef; its other fixed headers are dropped with a note."""
    where = _where(entry)
    found: list[tuple[str, str, Export]] = []  # (header, authRef, what to export)
    notes: list[str] = []
    if server.bearer_env:
        var = chosen.reference(server.bearer_env)
        found.append(("Authorization", f"env:{var}",
                      Export(var, name, f"bearer_token_env_var of {where}", literal=False)))
    if server.bearer:
        var = chosen.claim(_env_var_for(name, "TOKEN"), server.bearer, name)
        found.append(("Authorization", f"env:{var}", Export(var, name, f"the bearer_token in {where}", literal=True)))
    for header, var in server.header_env.items():
        chosen.reference(var)
        found.append((header, f"header_env:{header}:{var}",
                      Export(var, name, f"env_http_headers {header} of {where}", literal=False)))
    for header, value in server.headers.items():
        lower, value = header.lower(), value.strip()
        bearer = re.match(r"(?i)^bearer\s+(.+)$", value)
        if lower == "authorization" and bearer:
            token = bearer.group(1).strip()
            ref = whole_reference(token)
            if ref is not None:
                chosen.reference(ref)
                found.append((header, f"env:{ref}", Export(ref, name, f"header {header} of {where} is "
                                                                      f"'Bearer ${{{ref}}}'", literal=False)))
            else:
                var = chosen.claim(_env_var_for(name, "TOKEN"), token, name)
                expands = " (it combines variables: set it to what they expand to)" if _ANY_REF.search(token) else ""
                found.append((header, f"env:{var}", Export(
                    var, name, f"the token after 'Bearer ' in header {header} of {where}{expands}",
                    literal=not expands)))
            continue
        ref = whole_reference(value)
        if ref is not None:
            chosen.reference(ref)
            found.append((header, f"header_env:{header}:{ref}",
                          Export(ref, name, f"header {header} of {where} is ${{{ref}}}", literal=False)))
        elif (_ANY_REF.search(value) or lower in ("authorization", "proxy-authorization", "cookie")
              or _secret_name(header) or contains_secret(value)):
            var = chosen.claim(_env_var_for(name, re.sub(r"^X_", "", header.upper().replace("-", "_"))), value, name)
            expands = " (it combines variables: set it to what they expand to)" if _ANY_REF.search(value) else ""
            found.append((header, f"header_env:{header}:{var}",
                          Export(var, name, f"the value of header {header} in {where}{expands}", literal=not expands)))
        else:
            notes.append(f"header {header} not imported: a manifest sends no fixed headers (only one credential, "
                         "its authRef)")
    if len(found) > 1:
        headers = ", ".join(dict.fromkeys(h for h, _, _ in found))
        raise _Skip(f"it sends {len(found)} credentials ({headers}) and a service has one authRef: register it "
                    "by hand (runtimectl add URL --auth-ref ...)")
    if not found:
        return None, [], notes
    header, ref, export = found[0]
    if ref.startswith("header_env:") and not _HEADER_NAME.match(header):
        raise _Skip(f"header {header!r} cannot be an authRef (letters, digits and '-' only)")
    return ref, [export], notes


# -- where a service came from, and which bootstrap can take its entry out ------------------------------

# The labels `import` puts on each service it registers (metadata.labels), so that `runtimectl bootstrap
# --replace-imported` can find the entry again. Paths are absolute; none of them holds a secret.
LABEL_FROM = "runtimed/imported-from"  # what --from named: claude, claude-desktop, codex, cursor, vscode or file
LABEL_FILE = "runtimed/imported-file"  # the file the entry was in
LABEL_KEY = "runtimed/imported-key"  # the entry's key in that file (mcpServers.<key>, [mcp_servers.<key>]...)
LABEL_PROJECT = "runtimed/imported-project"  # ~/.claude.json only: <dir> when it was under projects["<dir>"]


def labels(entry: Entry) -> dict[str, str]:
    """The labels saying where ``entry`` came from."""
    out = {LABEL_FROM: entry.source.via, LABEL_FILE: str(entry.source.path), LABEL_KEY: entry.key}
    if entry.source.project_key is not None:
        out[LABEL_PROJECT] = entry.source.project_key
    return out


@dataclass(frozen=True)
class ImportedRef:
    """Where a registered service's entry was, read back from its labels."""

    via: str
    path: Path
    key: str
    project_key: str | None = None

    @classmethod
    def from_labels(cls, found: Any) -> ImportedRef | None:
        """None for a service ``import`` did not register (or whose labels were edited away)."""
        if not isinstance(found, dict):
            return None
        path, key = found.get(LABEL_FILE), found.get(LABEL_KEY)
        if not isinstance(path, str) or not isinstance(key, str) or not Path(path).is_absolute() or not key:
            return None
        project = found.get(LABEL_PROJECT)
        return cls(str(found.get(LABEL_FROM) or "file"), Path(path), key, project if isinstance(project, str) else None)

    def where(self) -> str:
        """``github`` or ``github (projects["/dir"])``: the entry, as output names it."""
        return self.key if self.project_key is None else f"{self.key} (projects[{json.dumps(self.project_key)}])"


@dataclass(frozen=True)
class BootstrapTarget:
    """The ``runtimectl bootstrap`` that writes a given file, so the one that can replace its entries."""

    client: Literal["codex", "claude"]
    scope: Literal["user", "project"]
    project_dir: Path | None = None

    def command(self) -> str:
        cmd = f"runtimectl bootstrap --replace-imported --clients {self.client}"
        if self.scope == "project":
            cmd += f" --scope project --project-dir {shlex.quote(str(self.project_dir))}"
        return cmd


def bootstrap_target(path: Path, loc: Locations) -> BootstrapTarget | None:
    """Which bootstrap writes ``path`` (Codex's and Claude Code's files, user or project scope); None for
    the clients bootstrap does not write (Claude Desktop, Cursor, VS Code) and for other files."""
    if same_file(path, loc.codex_home / "config.toml"):
        return BootstrapTarget("codex", "user")
    if same_file(path, loc.home / ".claude.json"):
        return BootstrapTarget("claude", "user")
    if path.name == ".mcp.json":
        return BootstrapTarget("claude", "project", path.parent)
    if path.name == "config.toml" and path.parent.name == ".codex":
        return BootstrapTarget("codex", "project", path.parent.parent)
    return None


def still_imported(ref: ImportedRef, service: str, registered: dict[str, Any], data: Any, loc: Locations
                   ) -> str | None:
    """None when ``data`` (the entry as it is in its file now) still runs what ``service`` runs: the same
    command and args (stdio), or the same url. Otherwise why not, naming what differs, never a value."""
    target = bootstrap_target(ref.path, loc)
    project_dir = Path(ref.project_key) if ref.project_key else target.project_dir if target else None
    if project_dir is not None:
        loc = Locations(loc.home, loc.codex_home, project_dir)  # where the client ran it: relative paths
    flavour: Flavour = "codex" if ref.path.suffix == ".toml" else "mcpServers"
    source = Source(ref.path, "", flavour, CLIENT_LABELS.get(ref.via, "file"), project=project_dir is not None,
                    project_key=ref.project_key)
    now = plan([Entry(ref.key, source, data)], loc)[0]
    if now.manifest is None:
        return f"it changed since it was imported as service {service}: it would not be imported now ({now.skipped})"
    origin = now.manifest["spec"]["origin"]
    if origin.get("type") != registered.get("type"):
        kinds = {"stdio": "a stdio", "remote_mcp": "an http"}
        return (f"it no longer matches service {service}: the entry is "
                f"{kinds.get(origin.get('type', ''), 'another kind of')} server, the service "
                f"{kinds.get(registered.get('type', ''), 'another kind of')} one")
    keys = ("command", "args") if origin["type"] == "stdio" else ("url",)
    differ = [k for k in keys if origin.get(k) != registered.get(k, [] if k == "args" else None)]
    if differ:
        verb = "differs" if differ in (["url"], ["command"]) else "differ"
        return f"it no longer matches what service {service} runs: its {' and '.join(differ)} {verb}"
    return None
