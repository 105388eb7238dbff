"""Client bootstrap with ``replace``: imported entries taken out of the files
bootstrap writes, in the same plan and write as the gateway entry. Codex
tables removed by their lines (every comment of the neighbours kept, the
result checked against the data), Claude's top-level and project-local
servers, an entry whose check fails kept with a note, the gateway's own key
never removed, files bootstrap does not write ignored, dry run (plan only),
backups, idempotency. Real files in temp dirs; HOME and CODEX_HOME point
there. (Against a real daemon: tests/runtimectl/test_bootstrap_replace.py.)"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from runtimed.bootstrap import Imported, apply_plan, plan_bootstrap
from runtimed.bootstrap.codex import without_entry

EP = "http://127.0.0.1:4707/mcp"

CODEX = """\
# Codex configuration, edited by hand
model = "gpt-5-codex"  # the default model

[projects."/home/me/work/app"]
trust_level = "trusted"

# GitHub, imported
[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
startup_timeout_sec = 20  # slow npm

[mcp_servers.github.env]
GITHUB_TOKEN_FILE = "/home/me/.gh"

# figma: keep me, it stays
[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
# note inside figma

# documentation lookup, imported
[mcp_servers.docs]
url = "https://docs.example.com/mcp"

[tui]
notifications = true  # a comment after the last server
"""

CODEX_AFTER = """\
# Codex configuration, edited by hand
model = "gpt-5-codex"  # the default model

[projects."/home/me/work/app"]
trust_level = "trusted"

# figma: keep me, it stays
[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
# note inside figma

[tui]
notifications = true  # a comment after the last server

[mcp_servers.runtime]
url = "http://127.0.0.1:4707/mcp"
"""

CLAUDE: dict[str, Any] = {
    "numStartups": 42,
    "tipsHistory": {"memory-command": 3},
    "projects": {
        "/home/me/work/app": {
            "allowedTools": [],
            "mcpServers": {"local-db": {"type": "stdio", "command": "pg-mcp", "args": ["--ro"]},
                           "mine": {"type": "stdio", "command": "mine"}},
            "hasTrustDialogAccepted": True,
        },
    },
    "mcpServers": {
        "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"},
        "notes": {"type": "stdio", "command": "notes-mcp", "args": []},
        "kept": {"type": "stdio", "command": "other"},
    },
    "oauthAccount": {"emailAddress": "me@example.com"},
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home, codex_home, project = tmp_path / "home", tmp_path / "codex-home", tmp_path / "project"
    for d in (home, codex_home, project):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    monkeypatch.chdir(project)
    return {"home": home, "codex_home": codex_home, "project": project}


def same(expected: dict[str, Any]):
    """A check that passes when the entry equals ``expected`` (the CLI's compares command, args, url)."""
    return lambda entry: None if entry == expected else "it changed"


def _bak(path: Path) -> list[Path]:
    """Backups next to the file (without a backup dir): one, ``<file>.runtimed-bak``."""
    return sorted(path.parent.glob(path.name + ".runtimed-bak*"))


def test_codex_entries_removed_with_their_comments_only(env):
    path = env["codex_home"] / "config.toml"
    path.write_text(CODEX)
    data = tomllib.loads(CODEX)["mcp_servers"]
    replace = [Imported(path, "github", "github", same(data["github"])),
               Imported(path, "docs", "docs", same(data["docs"]))]
    plan = plan_bootstrap(["codex"], endpoint=EP, replace=replace)
    (change,) = plan.changes
    assert change.summary == ("codex user: add [mcp_servers.runtime] (http -> http://127.0.0.1:4707/mcp); "
                              "remove [mcp_servers.github], [mcp_servers.docs]")
    assert [(r.key, r.service, r.label) for r in plan.removed] == [
        ("github", "github", "[mcp_servers.github]"), ("docs", "docs", "[mcp_servers.docs]")]
    assert path.read_text() == CODEX, "planning writes nothing"
    assert "-[mcp_servers.github]" in plan.diff() and "+[mcp_servers.runtime]" in plan.diff()

    result = apply_plan(plan)
    assert path.read_text() == CODEX_AFTER
    assert result.backups[path].read_text() == CODEX and _bak(path) == [result.backups[path]]
    assert plan.removed[0].describe(done=True, path="~/.codex/config.toml") == (
        "removed github from ~/.codex/config.toml: now served by the gateway as service github")

    again = plan_bootstrap(["codex"], endpoint=EP, replace=replace)
    assert not again.changed and again.removed == [] and again.changes[0].summary == "codex user: already up to date"
    apply_plan(again)
    assert _bak(path) == [result.backups[path]], "nothing to do: no write, no new backup"


def test_claude_top_level_and_project_local_entries(env):
    path = env["home"] / ".claude.json"
    raw = json.dumps(CLAUDE, indent=2) + "\n"
    path.write_text(raw)
    local = CLAUDE["projects"]["/home/me/work/app"]["mcpServers"]
    replace = [
        Imported(path, "github", "github", same(CLAUDE["mcpServers"]["github"])),
        Imported(path, "notes", "notes", same(CLAUDE["mcpServers"]["notes"])),
        Imported(path, "local-db", "local-db", same(local["local-db"]), project="/home/me/work/app"),
        Imported(path, "gone", "gone", same({})),  # imported, since removed by hand: nothing to do
    ]
    plan = plan_bootstrap(["claude"], endpoint=EP, replace=replace)
    assert [r.label for r in plan.removed] == [
        "mcpServers.github", "mcpServers.notes", 'projects["/home/me/work/app"].mcpServers.local-db']
    assert plan.removed[2].describe(done=False, path="~/.claude.json") == (
        'would remove local-db (projects["/home/me/work/app"]) from ~/.claude.json: '
        "now served by the gateway as service local-db")
    apply_plan(plan)
    after = json.loads(path.read_text())
    expected = json.loads(raw)
    expected["mcpServers"] = {"kept": {"type": "stdio", "command": "other"},
                              "runtime": {"type": "http", "url": EP}}
    expected["projects"]["/home/me/work/app"]["mcpServers"] = {"mine": {"type": "stdio", "command": "mine"}}
    assert after == expected and list(after) == list(expected), "every other key, in its order"
    assert path.read_text() == json.dumps(expected, indent=2) + "\n", "the layout Claude Code writes"


def test_changed_entry_is_kept_with_a_note(env):
    path = env["home"] / ".claude.json"
    path.write_text(json.dumps(CLAUDE, indent=2))
    replace = [Imported(path, "notes", "notes", lambda entry: "its args differ"),
               Imported(path, "github", "github", same(CLAUDE["mcpServers"]["github"]))]
    plan = plan_bootstrap(["claude"], endpoint=EP, replace=replace)
    assert [r.key for r in plan.removed] == ["github"]
    assert f"kept mcpServers.notes in {path}: its args differ; edit or remove it by hand" in plan.all_notes()
    apply_plan(plan)
    assert set(json.loads(path.read_text())["mcpServers"]) == {"notes", "kept", "runtime"}


def test_only_the_files_this_plan_writes(env):
    """An entry imported from a file bootstrap does not write here (another scope, another client, Claude
    Desktop...) is never touched, and the gateway's own key is never taken out."""
    codex, claude = env["codex_home"] / "config.toml", env["home"] / ".claude.json"
    codex.write_text(CODEX)
    claude.write_text(json.dumps(CLAUDE))
    desktop = env["home"] / ".config" / "Claude" / "claude_desktop_config.json"
    everything = lambda entry: None  # noqa: E731
    replace = [Imported(codex, "github", "github", everything), Imported(desktop, "github", "gh", everything),
               Imported(env["project"] / ".mcp.json", "notes", "notes", everything),
               Imported(claude, "runtime", "runtime", everything)]
    plan = plan_bootstrap(["claude"], endpoint=EP, replace=replace)
    assert plan.removed == []
    apply_plan(plan)
    assert codex.read_text() == CODEX
    assert set(json.loads(claude.read_text())["mcpServers"]) == {"github", "notes", "kept", "runtime"}


def test_project_scope_and_a_gateway_entry_already_there(env):
    project = env["project"]
    path = project / ".mcp.json"
    path.write_text(json.dumps({"mcpServers": {"runtime": {"type": "http", "url": EP},
                                               "db": {"type": "stdio", "command": "db"}}}, indent=2))
    plan = plan_bootstrap(["claude"], endpoint=EP, scope="project",
                          replace=[Imported(path, "db", "db", same({"type": "stdio", "command": "db"}))])
    assert plan.changes[0].summary == "claude project: mcpServers.runtime already up to date; remove mcpServers.db"
    apply_plan(plan)
    assert json.loads(path.read_text()) == {"mcpServers": {"runtime": {"type": "http", "url": EP}}}


@pytest.mark.parametrize(("text", "name", "expected", "exact"), [
    # the comment block above the next table is that table's; the file's opening comment is the file's
    ("# head\n[mcp_servers.a]\ncommand = \"a\"\n# about b\n[mcp_servers.b]\ncommand = \"b\"\n", "a",
     "# head\n# about b\n[mcp_servers.b]\ncommand = \"b\"\n", True),
    ("[mcp_servers.a]\ncommand = \"a\"\n\n# about b\n[mcp_servers.b]\ncommand = \"b\"\n", "b",
     "[mcp_servers.a]\ncommand = \"a\"\n", True),
    # the last table: blank lines left at the end are trimmed
    ("x = 1\n\n[mcp_servers.a]\ncommand = \"a\"\n\n# the end\n", "a", "x = 1\n\n# the end\n", True),
    # not laid out as tables: tomlkit takes it out
    ("[mcp_servers]\na = {command = \"a\"}\nb = {command = \"b\"}\n", "a", "[mcp_servers]\nb = {command = \"b\"}\n",
     False),
    # a header-looking line inside a multi-line string: the line cut is refused by the check, tomlkit does it
    ("x = \"\"\"\n[mcp_servers.a]\n\"\"\"\n[mcp_servers.a]\ncommand = \"a\"\n", "a",
     "x = \"\"\"\n[mcp_servers.a]\n\"\"\"\n", False),
])
def test_codex_without_entry(text, name, expected, exact):
    assert without_entry(text, name) == (expected, exact)
    assert without_entry(text, "absent") is None
