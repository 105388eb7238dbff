"""``runtimectl.importers``: every client's config format read from files the tests write into temp
dirs, turned into manifests the daemon's own model accepts, with secrets as references and never
as values; the gateway's own entry, disabled and unusable entries skipped with their reason; broken
files refused with a clear error. (The command against a real daemon: test_import.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtimectl import importers
from runtimectl.importers import Plan, contains_secret, looks_like_token, service_name, strip_jsonc
from runtimed.bootstrap.entries import desired_entry
from runtimed.bootstrap.locations import Locations
from runtimed.config.manifest import parse_manifest
from runtimed.errors import ClientError

SECRET = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"  # a GitHub-token-shaped value
OPAQUE = "Xq7Lm2Vb9Tz4Kp8Rw3Ny6Hd1"  # random-looking, under an innocent name
BEARER = "sk-live-4f9a8b7c6d5e4f3a2b1c"


@pytest.fixture
def loc(tmp_path: Path) -> Locations:
    (tmp_path / "home").mkdir()
    (tmp_path / "proj").mkdir()
    return Locations.resolve(home=tmp_path / "home", codex_home=tmp_path / "home" / ".codex",
                             project_dir=tmp_path / "proj")


def write(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def run(origin: str, loc: Locations, gateway: tuple[str, ...] = ("http://127.0.0.1:4707",)) -> dict[str, Plan]:
    """Read and plan; every manifest must pass the daemon's own model, and no secret may appear anywhere."""
    found = importers.read(origin, loc)
    plans = importers.plan(found.entries, loc, gateway)
    dumped = json.dumps([p.to_dict() for p in plans]) + "".join(e.hint() for p in plans for e in p.exports)
    for secret in (SECRET, OPAQUE, BEARER, "hunter2"):
        assert secret not in dumped
    for p in plans:
        if p.manifest is not None:
            parse_manifest(p.manifest)  # raises if the daemon would refuse its shape
    return {p.key: p for p in plans}


def origin(p: Plan) -> dict[str, Any]:
    assert p.manifest is not None, p.skipped
    return p.manifest["spec"]["origin"]


def exported(p: Plan) -> dict[str, bool]:
    return {e.var: e.literal for e in p.exports}


# -- Claude Code -----------------------------------------------------------------------------------

def test_claude_code_user_local_and_project_scopes(loc: Locations) -> None:
    proj = str(loc.project_dir)
    write(loc.home / ".claude.json", {
        "numStartups": 3,
        "mcpServers": {
            "github": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                       "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": SECRET, "LOG_LEVEL": "info"}},
            "crm": {"type": "http", "url": "https://crm.example.com/mcp",
                    "headers": {"Authorization": f"Bearer {BEARER}"}},
            "legacy": {"type": "sse", "url": "https://old.example.com/sse",
                       "headers": {"Authorization": "Bearer ${LEGACY_TOKEN}"}},
            "untyped": {"command": "uvx", "args": ["mcp-server-time"]},
        },
        "projects": {proj: {"mcpServers": {"local-db": {"type": "stdio", "command": "./bin/db-mcp", "args": ["."]}},
                            "disabledMcpjsonServers": ["noisy"]}},
    })
    write(loc.project_dir / ".mcp.json", {"mcpServers": {
        "docs": {"type": "stdio", "command": "node", "args": ["server.js"], "env": {"API_URL": "${API_URL}"}},
        "noisy": {"type": "stdio", "command": "noisy-mcp"},
    }})
    plans = run("claude", loc)

    gh = origin(plans["github"])
    assert gh == {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                  "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "env:GITHUB_PERSONAL_ACCESS_TOKEN", "LOG_LEVEL": "info"}}
    assert "cwd" not in gh, "user-scope servers get the daemon's default working directory"
    assert exported(plans["github"]) == {"GITHUB_PERSONAL_ACCESS_TOKEN": True}
    assert plans["github"].summary == "stdio: npx -y @modelcontextprotocol/server-github"

    assert origin(plans["crm"]) == {"type": "remote_mcp", "url": "https://crm.example.com/mcp",
                                    "transport": "streamable_http", "authRef": "env:CRM_TOKEN"}
    assert exported(plans["crm"]) == {"CRM_TOKEN": True}
    assert origin(plans["legacy"])["transport"] == "sse" and origin(plans["legacy"])["authRef"] == "env:LEGACY_TOKEN"
    assert exported(plans["legacy"]) == {"LEGACY_TOKEN": False}
    assert origin(plans["untyped"])["command"] == "uvx"
    assert any('no "type"' in n for n in plans["untyped"].notes)

    local = origin(plans["local-db"])  # projects["<dir>"].mcpServers: ran in the project
    assert local["command"] == f"{proj}/bin/db-mcp" and local["cwd"] == proj and local["args"] == ["."]
    assert plans["local-db"].source.section == f'projects["{proj}"].mcpServers'
    docs = origin(plans["docs"])
    assert docs["env"] == {"API_URL": "env:API_URL"} and docs["cwd"] == proj
    assert plans["noisy"].skipped and "disabledMcpjsonServers" in plans["noisy"].skipped


def test_missing_files_are_not_an_error(loc: Locations) -> None:
    for client in importers.CLIENTS:
        found = importers.read(client, loc)
        assert found.sources == [] and found.entries == [] and found.looked_at


# -- Claude Desktop, Cursor ----------------------------------------------------------------------------

def test_claude_desktop_linux_path(loc: Locations) -> None:
    write(loc.home / ".config" / "Claude" / "claude_desktop_config.json", {"mcpServers": {
        "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/u/docs"]},
        "off": {"command": "x", "disabled": True},
    }})
    plans = run("claude-desktop", loc)
    assert origin(plans["filesystem"])["args"][-1] == "/home/u/docs"
    assert plans["filesystem"].notes == [], "only Claude Code ignores an entry without type"
    assert plans["off"].skipped == 'disabled in the client ("disabled": true)'


def test_cursor_user_and_project(loc: Locations) -> None:
    write(loc.home / ".cursor" / "mcp.json", {"mcpServers": {
        "linear": {"url": "https://mcp.linear.app/sse", "type": "sse"},
        "search": {"command": "search-mcp", "env": {"SEARCH_SESSION": OPAQUE, "REGION": "eu-west-1"}},
    }})
    write(loc.project_dir / ".cursor" / "mcp.json", {"mcpServers": {
        "search": {"command": "search-mcp", "env": {"SEARCH_SESSION": OPAQUE, "REGION": "eu-west-1"}},
        "tool": {"command": "tool-mcp", "envFile": ".env"},
    }})
    plans = importers.plan(importers.read("cursor", loc).entries, loc)
    by_source = [(p.key, p.source.project, p.name, p.skipped) for p in plans]
    assert by_source[:2] == [("linear", False, "linear", None), ("search", False, "search", None)]
    # A value that looks like a token is a secret whatever its variable's name.
    search = plans[1].manifest["spec"]["origin"]  # type: ignore[index]
    assert search["env"] == {"SEARCH_SESSION": "env:SEARCH_SESSION", "REGION": "eu-west-1"}
    # The project's copy of the same server is the same server (only its working directory differs).
    assert plans[2].skipped and "the same server as search" in plans[2].skipped
    assert any("envFile" in n for n in plans[3].notes)


# -- Codex -------------------------------------------------------------------------------------------

def test_codex_stdio_and_http(loc: Locations) -> None:
    write(loc.codex_home / "config.toml", f'''
model = "o3"

[mcp_servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "."]
cwd = "work"
env = {{ DEBUG = "1", OPENAI_API_KEY = "{SECRET}" }}
env_vars = ["HTTPS_PROXY"]

[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
bearer_token_env_var = "FIGMA_OAUTH_TOKEN"
http_headers = {{ "X-Client" = "codex" }}

[mcp_servers.keyed]
url = "https://keyed.example.com/mcp"
env_http_headers = {{ "X-Api-Key" = "KEYED_API_KEY" }}

[mcp_servers.two]
url = "https://two.example.com/mcp"
bearer_token_env_var = "A_TOKEN"
env_http_headers = {{ "X-Team-Token" = "TEAM_TOKEN" }}

[mcp_servers.off]
command = "x"
enabled = false

[mcp_servers.both]
command = "x"
url = "https://x.example.com/mcp"
''')
    plans = run("codex", loc)
    fs = origin(plans["fs"])
    assert fs["env"] == {"DEBUG": "1", "OPENAI_API_KEY": "env:OPENAI_API_KEY", "HTTPS_PROXY": "env:HTTPS_PROXY"}
    assert fs["cwd"] == str(loc.project_dir / "work")
    assert exported(plans["fs"]) == {"OPENAI_API_KEY": True, "HTTPS_PROXY": False}

    figma = origin(plans["figma"])
    assert figma["authRef"] == "env:FIGMA_OAUTH_TOKEN" and figma["transport"] == "streamable_http"
    assert exported(plans["figma"]) == {"FIGMA_OAUTH_TOKEN": False}
    assert any("header X-Client not imported" in n for n in plans["figma"].notes)
    assert origin(plans["keyed"])["authRef"] == "header_env:X-Api-Key:KEYED_API_KEY"
    assert plans["two"].skipped and "2 credentials" in plans["two"].skipped and "one authRef" in plans["two"].skipped
    assert plans["off"].skipped == "disabled in the client (enabled = false)"
    assert plans["both"].skipped and "both command and url" in plans["both"].skipped


def test_codex_project_config_too(loc: Locations) -> None:
    write(loc.project_dir / ".codex" / "config.toml", '[mcp_servers.proj]\ncommand = "proj-mcp"\n')
    plans = run("codex", loc)
    assert origin(plans["proj"])["cwd"] == str(loc.project_dir)


# -- VS Code -------------------------------------------------------------------------------------------

def test_vscode_jsonc_inputs_and_variables(loc: Locations) -> None:
    write(loc.project_dir / ".vscode" / "mcp.json", '''{
  // Servers for this workspace
  "inputs": [{"type": "promptString", "id": "gh-token", "description": "GitHub token", "password": true}],
  "servers": {
    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/",
               "headers": {"Authorization": "Bearer ${input:gh-token}"}},
    "files": {
      "type": "stdio", "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "${workspaceFolder}/docs"],
      "env": {"TOKEN_URL": "https://example.com//x", "NOTION_TOKEN": "${env:NOTION_TOKEN}"}, /* trailing comma: */
    },
    "events": {"type": "sse", "url": "http://localhost:9000/sse"},
    "grpc": {"type": "grpc", "url": "http://localhost:9000"},
    "nothing": {"type": "stdio"},
  },
}''')
    write(loc.home / ".config" / "Code" / "User" / "mcp.json", {"servers": {"time": {"command": "uvx",
                                                                                      "args": ["mcp-server-time"]}}})
    plans = run("vscode", loc)
    assert plans["github"].skipped and "${input:gh-token}" in plans["github"].skipped
    assert "nothing to import" in plans["github"].skipped
    files = origin(plans["files"])
    assert files["args"][-1] == f"{loc.project_dir}/docs" and files["cwd"] == str(loc.project_dir)
    # NOTION_TOKEN looks like a secret name: its ${env:...} value becomes the reference; TOKEN_URL too
    # (a name with TOKEN in it must be a reference, the manifest refuses a literal there).
    assert files["env"] == {"TOKEN_URL": "env:TOKEN_URL", "NOTION_TOKEN": "env:NOTION_TOKEN"}
    assert origin(plans["events"]) == {"type": "remote_mcp", "url": "http://localhost:9000/sse", "transport": "sse"}
    assert plans["grpc"].skipped == "unknown type 'grpc' (expected stdio, http or sse)"
    assert plans["nothing"].skipped == "no command"
    assert "cwd" not in origin(plans["time"]), "the user's own file is not the project's"


def test_strip_jsonc_keeps_strings_and_positions() -> None:
    text = '{"a": "// not a comment", /* c */ "b": "x/*y*/", "c": [1, 2,],}\n'
    assert json.loads(strip_jsonc(text)) == {"a": "// not a comment", "b": "x/*y*/", "c": [1, 2]}
    assert len(strip_jsonc(text)) == len(text)


# -- a file given by path -----------------------------------------------------------------------------

def test_from_file_detects_the_format_by_content(loc: Locations, tmp_path: Path) -> None:
    toml = write(tmp_path / "codex-config", '[mcp_servers.a]\ncommand = "a-mcp"\n')
    assert origin(run(str(toml), loc)["a"])["command"] == "a-mcp"
    claude = write(tmp_path / "servers.json", {"mcpServers": {"b": {"command": "b-mcp"}}})
    assert origin(run(str(claude), loc)["b"])["command"] == "b-mcp"
    vscode = write(tmp_path / "mcp.txt", {"servers": {"c": {"type": "http", "url": "https://c.example.com/mcp"}}})
    assert origin(run(str(vscode), loc)["c"])["url"] == "https://c.example.com/mcp"
    other = write(tmp_path / "other.json", {"editor.fontSize": 12})
    with pytest.raises(ClientError, match="no MCP servers in it"):
        importers.read(str(other), loc)
    with pytest.raises(ClientError, match="no such file"):
        importers.read(str(tmp_path / "missing.json"), loc)


# -- broken files -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("client", "relpath", "content", "message"), [
    ("claude", "home/.claude.json", '{"mcpServers": {"a": {,}}', "(line 1, column 23): not valid JSON"),
    ("claude", "proj/.mcp.json", '{"mcpServers": [1]}', "`mcpServers` is not an object"),
    ("cursor", "home/.cursor/mcp.json", "[]", "the top level is not a JSON object"),
    ("codex", "home/.codex/config.toml", "[mcp_servers.a\ncommand = 1", "not valid TOML"),
    ("codex", "home/.codex/config.toml", "mcp_servers = 3", "`[mcp_servers]` is not a table"),
    ("vscode", "proj/.vscode/mcp.json", '{"servers": {"a": }', "(line 1, column 19): not valid JSON"),
])
def test_broken_files_are_one_clear_error(loc: Locations, tmp_path: Path, client: str, relpath: str, content: str,
                                          message: str) -> None:
    path = write(tmp_path / relpath, content)
    with pytest.raises(ClientError) as e:
        importers.read(client, loc)
    assert str(e.value).startswith(str(path)) and message in str(e.value), str(e.value)


def test_not_utf8(loc: Locations) -> None:
    (loc.home / ".claude.json").write_bytes(b'{"mcpServers": {}}\n\xff')
    with pytest.raises(ClientError, match=r"\(line 2\): not valid UTF-8"):
        importers.read("claude", loc)


# -- the gateway's own entry -------------------------------------------------------------------------------

@pytest.mark.parametrize("client", ["claude", "codex"])
@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_the_entry_bootstrap_writes_is_skipped(loc: Locations, client: str, transport: str) -> None:
    entry = desired_entry(client, transport, "http://127.0.0.1:4800/mcp", token_configured=True,
                          runtimectl_path="/opt/venv/bin/runtimectl")
    if client == "codex":
        lines = [f"{k} = {json.dumps(v)}" for k, v in entry.items() if not isinstance(v, dict)]
        lines += [f"{k} = {{ {', '.join(f'{kk} = {json.dumps(vv)}' for kk, vv in v.items())} }}"
                  for k, v in entry.items() if isinstance(v, dict)]
        write(loc.codex_home / "config.toml", "[mcp_servers.runtime]\n" + "\n".join(lines) + "\n")
    else:
        write(loc.home / ".claude.json", {"mcpServers": {"runtime": entry}})
    plans = run(client, loc, gateway=("http://127.0.0.1:4800",))
    assert plans["runtime"].skipped == "this is the gateway itself"


@pytest.mark.parametrize("url", ["http://localhost:4800/mcp", "http://127.0.0.1:4800/mcp/", "http://127.0.0.1:4800/mcp/crm",
                                 "http://127.0.0.1:4707/mcp"])
def test_urls_pointing_at_the_daemon_are_the_gateway(loc: Locations, url: str) -> None:
    write(loc.home / ".claude.json", {"mcpServers": {"gw": {"type": "http", "url": url},
                                                     "other": {"type": "http", "url": "http://127.0.0.1:4801/mcp"}}})
    plans = run("claude", loc, gateway=("http://127.0.0.1:4800",))
    assert plans["gw"].skipped == importers.GATEWAY_ITSELF
    assert plans["other"].skipped is None


# -- secrets ---------------------------------------------------------------------------------------------------

def test_env_values_become_references(loc: Locations) -> None:
    write(loc.home / ".claude.json", {"mcpServers": {"s": {"type": "stdio", "command": "s-mcp", "env": {
        "GITHUB_TOKEN": "short",  # the name says secret
        "SESSION": OPAQUE,  # the value says secret
        "BRACED": "${UPSTREAM_VAR}", "ENVFORM": "${env:OTHER_VAR}", "BARE": "$BARE_VAR", "DEFAULTED": "${D:-x}",
        "MIXED": "prefix-${PART}", "DATABASE_URL": "postgres://app:hunter2@db.internal:5432/app",
        "DSN": "Server=db;User Id=app;Password=hunter2;",
        "PLAIN": "hello world", "PORT": 8080, "DEBUG": True,
    }}}})
    plans = run("claude", loc)
    assert origin(plans["s"])["env"] == {
        "GITHUB_TOKEN": "env:GITHUB_TOKEN", "SESSION": "env:SESSION", "BRACED": "env:UPSTREAM_VAR",
        "ENVFORM": "env:OTHER_VAR", "BARE": "env:BARE_VAR", "DEFAULTED": "env:D", "MIXED": "env:MIXED",
        "DATABASE_URL": "env:DATABASE_URL", "DSN": "env:DSN",
        "PLAIN": "hello world", "PORT": "8080", "DEBUG": "true"}
    assert exported(plans["s"]) == {"GITHUB_TOKEN": True, "SESSION": True, "UPSTREAM_VAR": False, "OTHER_VAR": False,
                                    "BARE_VAR": False, "D": False, "MIXED": False, "DATABASE_URL": True, "DSN": True}
    hints = "\n".join(e.hint() for e in plans["s"].exports)
    assert "export GITHUB_TOKEN=..." in hints and "short" not in hints


def test_literal_credential_headers(loc: Locations) -> None:
    write(loc.home / ".cursor" / "mcp.json", {"mcpServers": {
        "Acme CRM": {"url": "https://crm.example.com/mcp", "headers": {"X-API-Key": OPAQUE, "Accept-Language": "fr"}},
        "basic": {"url": "https://b.example.com/mcp", "headers": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}},
        "ref": {"url": "https://r.example.com/mcp", "headers": {"X-Api-Key": "${R_KEY}"}},
        "two": {"url": "https://t.example.com/mcp", "headers": {"Authorization": f"Bearer {BEARER}", "X-Api-Key": OPAQUE}},
    }})
    plans = run("cursor", loc)
    assert origin(plans["Acme CRM"])["authRef"] == "header_env:X-API-Key:ACME_CRM_API_KEY"
    assert any("Accept-Language not imported" in n for n in plans["Acme CRM"].notes)
    assert origin(plans["basic"])["authRef"] == "header_env:Authorization:BASIC_AUTHORIZATION"
    assert origin(plans["ref"])["authRef"] == "header_env:X-Api-Key:R_KEY" and exported(plans["ref"]) == {"R_KEY": False}
    assert plans["two"].skipped and "2 credentials (Authorization, X-Api-Key)" in plans["two"].skipped


def test_secrets_in_args_or_url_are_not_imported(loc: Locations) -> None:
    write(loc.home / ".claude.json", {"mcpServers": {
        "flag": {"type": "stdio", "command": "x", "args": ["--api-key", "abc"]},
        "inline": {"type": "stdio", "command": "x", "args": ["--token=abc"]},
        "token": {"type": "stdio", "command": "x", "args": [SECRET]},
        "keyfile": {"type": "stdio", "command": "x", "args": ["--api-key-file", "/run/key"]},
        "pg": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-postgres",
                                                          "postgresql://app:hunter2@localhost/app"]},
        "remote": {"type": "stdio", "command": "npx", "args": ["mcp-remote", "https://r.example.com/mcp", "--header",
                                                              f"Authorization: Bearer {BEARER}"]},
        "var": {"type": "stdio", "command": "x", "args": ["--user", "${USER_NAME}"]},
        "home": {"type": "stdio", "command": "${HOME}/bin/x", "args": ["$HOME/data"]},
        "query": {"type": "http", "url": f"https://q.example.com/mcp?api_key={SECRET}"},
        "userinfo": {"type": "http", "url": "https://me:pw@u.example.com/mcp"},
        "urlvar": {"type": "http", "url": "https://${HOST}/mcp"},
    }})
    plans = run("claude", loc)
    for key in ("flag", "inline", "token", "pg", "remote"):
        assert plans[key].skipped and "looks like a credential" in plans[key].skipped, key
    assert origin(plans["keyfile"])["args"] == ["--api-key-file", "/run/key"]
    assert plans["var"].skipped and "args[1] uses ${USER_NAME}" in plans["var"].skipped
    home = origin(plans["home"])
    assert home["command"] == f"{loc.home}/bin/x" and home["args"] == [f"{loc.home}/data"]
    assert plans["query"].skipped and "'api_key' looks like a credential" in plans["query"].skipped
    assert plans["userinfo"].skipped and "user name or password" in plans["userinfo"].skipped
    assert plans["urlvar"].skipped and "variable" in plans["urlvar"].skipped


@pytest.mark.parametrize(("value", "secret"), [
    (SECRET, True), (OPAQUE, True), (BEARER, True), ("xoxb-1234567890-abcdefghij", True),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", True), ("AKIAIOSFODNN7EXAMPLE", True),
    ("550e8400-e29b-41d4-a716-446655440000", True),
    ("info", False), ("production-us-east-1-cluster", False), ("my_database_name_2024", False),
    ("/usr/local/bin/python3.11", False), ("https://example.com/mcp?x=1", False),
    ("@modelcontextprotocol/server-github", False), ("hf_transfer", False), ("en_US.UTF-8", False),
])
def test_looks_like_token(value: str, secret: bool) -> None:
    assert looks_like_token(value) is secret


@pytest.mark.parametrize(("value", "secret"), [
    ("postgres://app:hunter2@db/app", True), ("Authorization: Bearer abc", True), ("user=x;password=y", True),
    (f"--key {SECRET}", True), ("postgres://db.internal/app", False), ("--max-tokens=1000", False),
    ("Server=db;Database=app", False), ("hello world", False),
])
def test_contains_secret(value: str, secret: bool) -> None:
    assert contains_secret(value) is secret


# -- names -----------------------------------------------------------------------------------------------

def test_service_names_and_clashes(loc: Locations) -> None:
    long = "A Very Long Server Name That Goes On And On"
    write(loc.home / ".claude.json", {"mcpServers": {
        "My Server!": {"type": "stdio", "command": "a"}, "my_server": {"type": "stdio", "command": "b"},
        "my-server": {"type": "stdio", "command": "c"}, "MY SERVER": {"type": "stdio", "command": "d"},
        "__x": {"type": "stdio", "command": "e"}, "€€": {"type": "stdio", "command": "f"},
        long: {"type": "stdio", "command": "g"}, long + "!": {"type": "stdio", "command": "h"},
    }})
    plans = run("claude", loc)
    names = [p.name for p in plans.values()]
    assert names == ["my-server", "my_server", "my-server-2", "my-server-3", "x", "service",
                     "a-very-long-server-name-that-goe", "a-very-long-server-name-that-g-2"]
    assert service_name("GitHub (personal)") == "github-personal"


def test_plan_dicts_are_json_ready(loc: Locations) -> None:
    write(loc.home / ".claude.json", {"mcpServers": {"a": {"type": "stdio", "command": "a", "env": {"A_KEY": "v"}},
                                                     "b": {"type": "carrier-pigeon"}}})
    found = importers.read("claude", loc)
    dicts = [p.to_dict() for p in importers.plan(found.entries, loc)]
    assert dicts[0]["name"] == "a" and dicts[0]["exports"][0]["var"] == "A_KEY" and "skipped" not in dicts[0]
    assert dicts[1] == {"key": "b", "source": str(loc.home / ".claude.json"), "section": "mcpServers",
                        "skipped": "unknown type 'carrier-pigeon' (expected stdio, http or sse)"}
    json.dumps(dicts)


def test_one_variable_one_value(loc: Locations) -> None:
    other = "ghp_" + "Zx9" * 12
    write(loc.home / ".cursor" / "mcp.json", {"mcpServers": {
        "gh-work": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": SECRET}},
        "gh-same": {"command": "gh-mcp", "args": ["--same"], "env": {"GITHUB_TOKEN": SECRET}},
        "gh-home": {"command": "gh-mcp", "args": ["--home"], "env": {"GITHUB_TOKEN": other}},
        "gh-shell": {"command": "gh-mcp", "args": ["--shell"], "env": {"GH": "${SHELL_TOKEN}"}},
        "gh-lit": {"command": "gh-mcp", "args": ["--lit"], "env": {"SHELL_TOKEN": OPAQUE}},
    }})
    plans = run("cursor", loc)
    assert origin(plans["gh-work"])["env"] == {"GITHUB_TOKEN": "env:GITHUB_TOKEN"}
    assert origin(plans["gh-same"])["env"] == {"GITHUB_TOKEN": "env:GITHUB_TOKEN"}, "the same value: the same variable"
    assert origin(plans["gh-home"])["env"] == {"GITHUB_TOKEN": "env:GH_HOME_GITHUB_TOKEN"}
    assert exported(plans["gh-home"]) == {"GH_HOME_GITHUB_TOKEN": True}
    # A name the client read from its environment is not reused for a value written in a config.
    assert origin(plans["gh-lit"])["env"] == {"SHELL_TOKEN": "env:GH_LIT_SHELL_TOKEN"}
    assert other not in json.dumps([p.to_dict() for p in plans.values()])


def test_a_file_is_read_once_when_the_project_is_the_home_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    loc = Locations.resolve(home=home, codex_home=home / ".codex", project_dir=home)
    write(home / ".cursor" / "mcp.json", {"mcpServers": {"a": {"command": "a"}}})
    write(home / ".codex" / "config.toml", '[mcp_servers.b]\ncommand = "b"\n')
    assert [e.key for e in importers.read("cursor", loc).entries] == ["a"]
    assert [e.key for e in importers.read("codex", loc).entries] == ["b"]


# -- where an entry came from, and whether it still is what was imported ----------------------------------

def test_labels_say_where_each_entry_was(loc: Locations, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claude = write(loc.home / ".claude.json", {
        "mcpServers": {"Git Hub": {"type": "http", "url": "https://gh.example.com/mcp"}},
        "projects": {str(loc.project_dir): {"mcpServers": {"db": {"type": "stdio", "command": "pg-mcp"}}}},
    })
    plans = run("claude", loc)
    assert plans["Git Hub"].manifest["metadata"] == {"name": "git-hub", "labels": {  # type: ignore[index]
        "runtimed/imported-from": "claude", "runtimed/imported-file": str(claude), "runtimed/imported-key": "Git Hub"}}
    assert plans["db"].manifest["metadata"]["labels"] == {  # type: ignore[index]
        "runtimed/imported-from": "claude", "runtimed/imported-file": str(claude), "runtimed/imported-key": "db",
        "runtimed/imported-project": str(loc.project_dir)}
    ref = importers.ImportedRef.from_labels(plans["db"].manifest["metadata"]["labels"])  # type: ignore[index]
    assert ref == importers.ImportedRef("claude", claude, "db", str(loc.project_dir))
    assert importers.ImportedRef.from_labels({"team": "x"}) is None
    assert importers.ImportedRef.from_labels(None) is None

    relative = write(tmp_path / "servers.json", {"mcpServers": {"x": {"url": "https://x.example.com/mcp"}}})
    monkeypatch.chdir(tmp_path)
    plans = run("servers.json", loc)  # a relative --from FILE: the label holds the absolute path
    assert plans["x"].manifest["metadata"]["labels"]["runtimed/imported-file"] == str(relative)  # type: ignore[index]
    assert plans["x"].manifest["metadata"]["labels"]["runtimed/imported-from"] == "file"  # type: ignore[index]


def test_bootstrap_target(loc: Locations) -> None:
    target = importers.bootstrap_target
    assert target(loc.codex_home / "config.toml", loc) == importers.BootstrapTarget("codex", "user")
    assert target(loc.home / ".claude.json", loc) == importers.BootstrapTarget("claude", "user")
    assert target(loc.project_dir / ".mcp.json", loc) == importers.BootstrapTarget("claude", "project", loc.project_dir)
    assert target(loc.project_dir / ".codex" / "config.toml", loc) == importers.BootstrapTarget(
        "codex", "project", loc.project_dir)
    assert target(loc.home / ".cursor" / "mcp.json", loc) is None
    assert target(loc.home / ".config" / "Claude" / "claude_desktop_config.json", loc) is None
    assert importers.BootstrapTarget("claude", "project", Path("/a b")).command() == (
        "runtimectl bootstrap --replace-imported --clients claude --scope project --project-dir '/a b'")


def test_still_imported_compares_command_args_or_url(loc: Locations) -> None:
    claude = loc.home / ".claude.json"
    ref = importers.ImportedRef("claude", claude, "tools")
    registered = {"type": "stdio", "command": "/usr/bin/tools-mcp", "args": ["--ro"], "env": {}}
    entry = {"type": "stdio", "command": "/usr/bin/tools-mcp", "args": ["--ro"]}
    assert importers.still_imported(ref, "tools", registered, entry, loc) is None
    assert importers.still_imported(ref, "tools", registered, {**entry, "env": {"DEBUG": "1"}}, loc) is None
    assert importers.still_imported(ref, "tools", registered, {**entry, "args": ["--rw"]}, loc) == (
        "it no longer matches what service tools runs: its args differ")
    assert importers.still_imported(ref, "tools", registered, {**entry, "command": "x", "args": []}, loc) == (
        "it no longer matches what service tools runs: its command and args differ")
    assert importers.still_imported(ref, "tools", registered, {"type": "http", "url": "https://a.example/mcp"},
                                    loc) == ("it no longer matches service tools: the entry is an http server, "
                                             "the service a stdio one")
    assert importers.still_imported(ref, "tools", registered, {**entry, "disabled": True}, loc) == (
        'it changed since it was imported as service tools: it would not be imported now (disabled in the client '
        '("disabled": true))')

    codex = importers.ImportedRef("codex", loc.codex_home / "config.toml", "docs")
    remote = {"type": "remote_mcp", "url": "https://docs.example.com/mcp", "transport": "streamable_http"}
    assert importers.still_imported(codex, "docs", remote, {"url": "https://docs.example.com/mcp"}, loc) is None
    assert importers.still_imported(codex, "docs", remote, {"url": "https://docs.example.com/v2"}, loc) == (
        "it no longer matches what service docs runs: its url differs")

    # a project's relative command is taken from the project it was imported from, wherever bootstrap runs
    mcp = importers.ImportedRef("claude", Path("/srv/app/.mcp.json"), "local")
    registered = {"type": "stdio", "command": "/srv/app/bin/local", "args": []}
    assert importers.still_imported(mcp, "local", registered, {"command": "./bin/local"}, loc) is None
