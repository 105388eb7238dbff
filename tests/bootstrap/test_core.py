"""Client bootstrap: exact file contents per client x transport x scope,
preservation of unrelated content, idempotency, rollback, unparseable files,
remove, status and drift. Real files in temp dirs; HOME and CODEX_HOME point
there."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from runtimed.bootstrap import (
    BootstrapError,
    ConfigParseError,
    apply_plan,
    endpoint_profile,
    entry_name,
    plan_bootstrap,
    plan_remove,
    profile_endpoint,
    status,
)
from runtimed.bootstrap.entries import base_url, stdio_args, stdio_endpoint

EP = "http://127.0.0.1:4707/mcp"
RTCTL = "/opt/runtimed/bin/runtimectl"

CODEX_EXISTING = """\
# Codex configuration, edited by hand
model = "gpt-5-codex"  # the default model
approval_policy = "on-request"

[projects."/home/me/work/app"]
trust_level = "trusted"

# documentation lookup
[mcp_servers.context7]
command = "npx"
args = ["-y", "@upstash/context7-mcp"]
startup_timeout_sec = 20  # slow npm

[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
bearer_token_env_var = "FIGMA_OAUTH_TOKEN"

[tui]
notifications = true
"""

CLAUDE_EXISTING = {
    "numStartups": 42,
    "installMethod": "npm-global",
    "autoUpdates": True,
    "tipsHistory": {"new-user-warmup": 7, "memory-command": 3},
    "userID": "0123abcd",
    "projects": {
        "/home/me/work/app": {
            "allowedTools": [],
            "history": [{"display": "fix the tests ünïcode", "pastedContents": {}}],
            "mcpServers": {"local-db": {"type": "stdio", "command": "pg-mcp", "args": [], "env": {}}},
            "hasTrustDialogAccepted": True,
            "lastCost": 0.1234,
        }
    },
    "mcpServers": {
        "github": {
            "type": "http",
            "url": "https://api.githubcopilot.com/mcp/",
            "headers": {"Authorization": "Bearer ${GITHUB_PAT}"},
        }
    },
    "oauthAccount": {"emailAddress": "me@example.com"},
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home = tmp_path / "home"
    codex_home = tmp_path / "codex-home"
    project = tmp_path / "project"
    for d in (home, project):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    monkeypatch.chdir(project)
    return {"home": home, "codex_home": codex_home, "project": project}


def _files(env: dict[str, Path]) -> dict[str, Path]:
    return {
        "codex-user": env["codex_home"] / "config.toml",
        "claude-user": env["home"] / ".claude.json",
        "codex-project": env["project"] / ".codex" / "config.toml",
        "claude-project": env["project"] / ".mcp.json",
    }


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _bak(path: Path) -> list[Path]:
    """Backups next to the file (without a backup dir): one, ``<file>.runtimed-bak``."""
    return sorted(path.parent.glob(path.name + ".runtimed-bak*"))


# ------------------------------------------------------------ exact contents

CODEX_HTTP_TOKEN = """\
[mcp_servers.runtime]
url = "http://127.0.0.1:4707/mcp"
bearer_token_env_var = "RUNTIMED_AUTH_TOKEN"
"""
CODEX_HTTP = """\
[mcp_servers.runtime]
url = "http://127.0.0.1:4707/mcp"
"""
CODEX_STDIO_TOKEN = """\
[mcp_servers.runtime]
command = "/opt/runtimed/bin/runtimectl"
args = ["gateway", "serve", "--stdio"]
env = {RUNTIMED_URL = "http://127.0.0.1:4707"}
env_vars = ["RUNTIMED_AUTH_TOKEN"]
"""
CODEX_STDIO = """\
[mcp_servers.runtime]
command = "/opt/runtimed/bin/runtimectl"
args = ["gateway", "serve", "--stdio"]
env = {RUNTIMED_URL = "http://127.0.0.1:4707"}
"""
CLAUDE_HTTP_TOKEN = """\
{
  "mcpServers": {
    "runtime": {
      "type": "http",
      "url": "http://127.0.0.1:4707/mcp",
      "headers": {
        "Authorization": "Bearer ${RUNTIMED_AUTH_TOKEN}"
      }
    }
  }
}
"""
CLAUDE_HTTP = """\
{
  "mcpServers": {
    "runtime": {
      "type": "http",
      "url": "http://127.0.0.1:4707/mcp"
    }
  }
}
"""
CLAUDE_STDIO_TOKEN = """\
{
  "mcpServers": {
    "runtime": {
      "type": "stdio",
      "command": "/opt/runtimed/bin/runtimectl",
      "args": [
        "gateway",
        "serve",
        "--stdio"
      ],
      "env": {
        "RUNTIMED_URL": "http://127.0.0.1:4707",
        "RUNTIMED_AUTH_TOKEN": "${RUNTIMED_AUTH_TOKEN}"
      }
    }
  }
}
"""
CLAUDE_STDIO = """\
{
  "mcpServers": {
    "runtime": {
      "type": "stdio",
      "command": "/opt/runtimed/bin/runtimectl",
      "args": [
        "gateway",
        "serve",
        "--stdio"
      ],
      "env": {
        "RUNTIMED_URL": "http://127.0.0.1:4707"
      }
    }
  }
}
"""

EXPECTED = {
    ("codex", "http", True): CODEX_HTTP_TOKEN,
    ("codex", "http", False): CODEX_HTTP,
    ("codex", "stdio", True): CODEX_STDIO_TOKEN,
    ("codex", "stdio", False): CODEX_STDIO,
    ("claude", "http", True): CLAUDE_HTTP_TOKEN,
    ("claude", "http", False): CLAUDE_HTTP,
    ("claude", "stdio", True): CLAUDE_STDIO_TOKEN,
    ("claude", "stdio", False): CLAUDE_STDIO,
}


@pytest.mark.parametrize("client", ["codex", "claude"])
@pytest.mark.parametrize("transport", ["http", "stdio"])
@pytest.mark.parametrize("scope", ["user", "project"])
@pytest.mark.parametrize("token", [True, False])
def test_exact_contents_new_file(env, client, transport, scope, token):
    plan = plan_bootstrap(
        [client], endpoint=EP, transport=transport, scope=scope, token_configured=token, runtimectl_path=RTCTL
    )
    path = _files(env)[f"{client}-{scope}"]
    assert [c.path for c in plan.changes] == [path]
    assert plan.changes[0].action == "create"
    assert not path.exists()  # planning writes nothing
    result = apply_plan(plan)
    assert result.written == (path,)
    assert path.read_text() == EXPECTED[(client, transport, token)]
    assert _mode(path) == (0o600 if scope == "user" else 0o644)
    assert result.backups == {}
    notes = " ".join(plan.all_notes())
    if client == "codex" and scope == "project":
        assert "only when the project is trusted" in notes
    if client == "claude" and scope == "project":
        assert "approve" in notes


def test_codex_home_defaults_to_dot_codex(env, monkeypatch):
    monkeypatch.delenv("CODEX_HOME")
    apply_plan(plan_bootstrap(["codex"], endpoint=EP))
    assert (env["home"] / ".codex" / "config.toml").read_text() == CODEX_HTTP
    assert _mode(env["home"] / ".codex") == 0o700


def test_explicit_locations_override_environment(tmp_path, env):
    other_home, other_codex, proj = tmp_path / "h2", tmp_path / "c2", tmp_path / "p2"
    other_home.mkdir()
    proj.mkdir()
    plan = plan_bootstrap(
        ["codex", "claude"], endpoint=EP, home=other_home, codex_home=other_codex, project_dir=proj,
        update_agents_md=True,
    )
    assert [c.path for c in plan.changes] == [
        other_codex / "config.toml", other_home / ".claude.json", proj / "AGENTS.md"
    ]


# ------------------------------------------------------ preserving content


def test_codex_preserves_comments_and_other_tables(env):
    path = _files(env)["codex-user"]
    path.parent.mkdir()
    path.write_text(CODEX_EXISTING)
    os.chmod(path, 0o640)
    plan = plan_bootstrap(["codex"], endpoint=EP, token_configured=True)
    assert plan.changes[0].action == "update"
    diff = plan.diff()
    body = diff.splitlines()[2:]
    assert [ln for ln in body if ln.startswith("+")] == ["+", *("+" + ln for ln in CODEX_HTTP_TOKEN.splitlines())]
    assert not [ln for ln in body if ln.startswith("-")]
    result = apply_plan(plan)
    assert path.read_text() == CODEX_EXISTING + "\n" + CODEX_HTTP_TOKEN
    assert _mode(path) == 0o640
    (backup,) = _bak(path)
    assert result.backups == {path: backup}
    assert backup.read_text() == CODEX_EXISTING
    assert _mode(backup) == 0o640


def test_codex_update_in_place_keeps_position_comments_and_user_keys(env):
    path = _files(env)["codex-user"]
    path.parent.mkdir()
    before = """\
model = "o3"

[mcp_servers.runtime]
# pointed at the old port
url = "http://127.0.0.1:9999/mcp"  # old
tool_timeout_sec = 120
command = "leftover"

[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
"""
    path.write_text(before)
    apply_plan(plan_bootstrap(["codex"], endpoint=EP, token_configured=True))
    assert path.read_text() == """\
model = "o3"

[mcp_servers.runtime]
# pointed at the old port
url = "http://127.0.0.1:4707/mcp"  # old
tool_timeout_sec = 120
bearer_token_env_var = "RUNTIMED_AUTH_TOKEN"

[mcp_servers.figma]
url = "https://mcp.figma.com/mcp"
"""


def test_claude_user_preserves_every_other_key_and_order(env):
    path = _files(env)["claude-user"]
    original = json.dumps(CLAUDE_EXISTING, indent=2, ensure_ascii=False)  # as Claude Code writes it
    path.write_text(original)
    os.chmod(path, 0o600)
    plan = plan_bootstrap(["claude"], endpoint=EP, token_configured=True)
    apply_plan(plan)
    after = json.loads(path.read_text())
    expected = json.loads(original)
    expected["mcpServers"]["runtime"] = {
        "type": "http",
        "url": EP,
        "headers": {"Authorization": "Bearer ${RUNTIMED_AUTH_TOKEN}"},
    }
    assert after == expected
    assert list(after) == list(CLAUDE_EXISTING)
    assert list(after["mcpServers"]) == ["github", "runtime"]
    assert list(after["projects"]["/home/me/work/app"]["mcpServers"]) == ["local-db"]
    assert _mode(path) == 0o600
    # byte-exact: removing the entry gives back the original file
    apply_plan(plan_remove(["claude"]))
    assert path.read_text() == original


def test_claude_keeps_indentation_and_missing_trailing_newline(env):
    path = _files(env)["claude-project"]
    path.write_text('{\n    "mcpServers": {\n        "x": {"type": "stdio", "command": "x"}\n    }\n}')
    apply_plan(plan_bootstrap(["claude"], endpoint=EP, scope="project"))
    text = path.read_text()
    assert text == (
        '{\n    "mcpServers": {\n        "x": {\n            "type": "stdio",\n            "command": "x"\n'
        '        },\n        "runtime": {\n            "type": "http",\n'
        '            "url": "http://127.0.0.1:4707/mcp"\n        }\n    }\n}'
    )


def test_claude_updates_entry_keeping_extra_keys(env):
    path = _files(env)["claude-project"]
    path.write_text(json.dumps({"mcpServers": {"runtime": {"url": "http://old/mcp", "timeout": 5}}}, indent=2))
    apply_plan(plan_bootstrap(["claude"], endpoint=EP, scope="project"))
    assert json.loads(path.read_text())["mcpServers"]["runtime"] == {"url": EP, "timeout": 5, "type": "http"}


# ------------------------------------------------------------- idempotency


def test_second_run_is_unchanged_and_writes_nothing(env):
    files = _files(env)
    files["codex-user"].parent.mkdir()
    files["codex-user"].write_text(CODEX_EXISTING)
    files["claude-user"].write_text(json.dumps(CLAUDE_EXISTING, indent=2))
    kwargs = dict(endpoint=EP, token_configured=True, update_agents_md=True)
    apply_plan(plan_bootstrap(["codex", "claude"], **kwargs))
    watched = [files["codex-user"], files["claude-user"], env["project"] / "AGENTS.md"]
    stamps = {p: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in watched}
    backups = sorted(env["home"].rglob("*.runtimed-bak*")) + sorted(env["codex_home"].rglob("*.runtimed-bak*"))
    stamps_bak = {p: p.stat().st_mtime_ns for p in backups}

    again = plan_bootstrap(["codex", "claude"], **kwargs)
    assert [c.action for c in again.changes] == ["unchanged"] * 3
    assert not again.changed and again.diff() == ""
    result = apply_plan(again)
    assert result.written == () and result.backups == {}
    assert result.unchanged == tuple(watched)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in watched} == stamps
    assert sorted(env["home"].rglob("*.runtimed-bak*")) + sorted(env["codex_home"].rglob("*.runtimed-bak*")) == backups
    assert {p: p.stat().st_mtime_ns for p in backups} == stamps_bak  # not rewritten either


def test_unchanged_entry_is_not_reformatted(env):
    # a hand-formatted .mcp.json that already holds the right entry stays byte-identical
    path = _files(env)["claude-project"]
    text = '{"mcpServers": {"runtime": {"type": "http", "url": "http://127.0.0.1:4707/mcp"}},\n "other": [1,2]}\n'
    path.write_text(text)
    plan = plan_bootstrap(["claude"], endpoint=EP, scope="project")
    assert plan.changes[0].action == "unchanged"
    apply_plan(plan)
    assert path.read_text() == text


# ----------------------------------------------------------------- rollback


def test_failure_on_second_file_restores_the_first(env):
    files = _files(env)
    files["codex-user"].parent.mkdir()
    files["codex-user"].write_text(CODEX_EXISTING)
    os.chmod(files["codex-user"], 0o644)
    plan = plan_bootstrap(["codex", "claude"], endpoint=EP, token_configured=True)
    assert [c.action for c in plan.changes] == ["update", "create"]
    files["claude-user"].mkdir()  # the second target turns into a directory after planning
    with pytest.raises(BootstrapError) as exc:
        apply_plan(plan)
    msg = str(exc.value)
    assert str(files["claude-user"]) in msg and "nothing was changed" in msg
    assert files["codex-user"].read_text() == CODEX_EXISTING
    assert _mode(files["codex-user"]) == 0o644
    assert _bak(files["codex-user"]) == []  # the backup made by the failed run is gone too


def test_failure_removes_files_and_dirs_it_created(env, tmp_path):
    files = _files(env)
    plan = plan_bootstrap(["codex", "claude"], endpoint=EP, scope="project")
    assert [c.action for c in plan.changes] == ["create", "create"]
    blocker = files["claude-project"]
    blocker.mkdir()
    with pytest.raises(BootstrapError):
        apply_plan(plan)
    assert not (env["project"] / ".codex").exists()
    assert sorted(p.name for p in env["project"].iterdir()) == [".mcp.json"]


def test_write_failure_mid_way_rolls_back(env):
    # the first file is written, then the second file's directory cannot be created
    files = _files(env)
    files["claude-project"].write_text(CLAUDE_HTTP)
    plan = plan_bootstrap(["claude", "codex"], endpoint=EP, scope="project", token_configured=True)
    (env["project"] / ".codex").write_text("not a directory")
    with pytest.raises(BootstrapError) as exc:
        apply_plan(plan)
    assert ".codex" in str(exc.value)
    assert files["claude-project"].read_text() == CLAUDE_HTTP
    assert _bak(files["claude-project"]) == []


def test_file_changed_since_plan_is_refused(env):
    path = _files(env)["claude-user"]
    path.write_text("{}")
    plan = plan_bootstrap(["claude"], endpoint=EP)
    path.write_text('{"numStartups": 1}')
    with pytest.raises(BootstrapError, match="changed since the plan"):
        apply_plan(plan)
    assert path.read_text() == '{"numStartups": 1}'


# -------------------------------------------------------- unparseable files


def test_unparseable_toml_left_untouched(env):
    path = _files(env)["codex-user"]
    path.parent.mkdir()
    bad = 'model = "o3"\n\n[mcp_servers.a]\ncommand = \n'
    path.write_text(bad)
    claude = _files(env)["claude-user"]
    with pytest.raises(ConfigParseError) as exc:
        plan_bootstrap(["claude", "codex"], endpoint=EP)
    msg = str(exc.value)
    assert str(path) in msg and "line 4" in msg and "column" in msg and "untouched" in msg
    assert exc.value.line == 4
    assert path.read_text() == bad and not claude.exists()


def test_toml_duplicate_key_is_reported_with_line(env):
    path = _files(env)["codex-project"]
    path.parent.mkdir()
    path.write_text('[mcp_servers.a]\ncommand = "a"\ncommand = "b"\n')
    with pytest.raises(ConfigParseError) as exc:
        plan_bootstrap(["codex"], endpoint=EP, scope="project")
    assert exc.value.line == 3 and str(path) in str(exc.value)


def test_unparseable_json_left_untouched(env):
    path = _files(env)["claude-user"]
    bad = '{\n  "numStartups": 3,\n  "projects": {,}\n}\n'
    path.write_text(bad)
    with pytest.raises(ConfigParseError) as exc:
        plan_bootstrap(["codex", "claude"], endpoint=EP)
    assert str(path) in str(exc.value) and "line 3, column 16" in str(exc.value)
    assert path.read_text() == bad
    assert not _files(env)["codex-user"].exists()


def test_json_of_wrong_shape_is_refused(env):
    path = _files(env)["claude-project"]
    path.write_text('{"mcpServers": []}')
    with pytest.raises(ConfigParseError, match="mcpServers` is not an object"):
        plan_bootstrap(["claude"], endpoint=EP, scope="project")
    path.write_text("[1, 2]")
    with pytest.raises(ConfigParseError, match="top level is not a JSON object"):
        plan_bootstrap(["claude"], endpoint=EP, scope="project")


def test_agents_md_with_broken_markers_is_refused(env):
    path = env["project"] / "AGENTS.md"
    path.write_text("# Agents\n\n<!-- runtimed:begin -->\nhalf a block\n")
    with pytest.raises(ConfigParseError) as exc:
        plan_bootstrap(["codex"], endpoint=EP, update_agents_md=True)
    assert exc.value.line == 3 and str(path) in str(exc.value)


# -------------------------------------------------------------- AGENTS.md


def test_agents_md_block_is_appended_replaced_and_removed(env):
    path = env["project"] / "AGENTS.md"
    original = "# Agents\n\nRun `make test` before committing.\n"
    path.write_text(original)
    apply_plan(plan_bootstrap(["codex"], endpoint=EP, update_agents_md=True))
    text = path.read_text()
    assert text.startswith(original + "\n<!-- runtimed:begin -->\n")
    assert text.endswith("<!-- runtimed:end -->\n")
    for tool in ("runtime__status_summary", "runtime__list_services", "runtime__get_service",
                 "runtime__get_logs", "runtime__refresh_interface"):
        assert f"`{tool}`" in text
    assert EP in text
    # the endpoint changes: the block is replaced in place, the rest kept
    path.write_text(text + "\n## More notes\n")
    apply_plan(plan_bootstrap(["codex"], endpoint="http://127.0.0.1:5000/mcp", update_agents_md=True))
    text2 = path.read_text()
    assert text2.count("runtimed:begin") == 1 and "127.0.0.1:5000/mcp" in text2 and EP not in text2
    assert text2.endswith("<!-- runtimed:end -->\n\n## More notes\n")
    apply_plan(plan_remove(["codex"], update_agents_md=True))
    assert path.read_text() == original + "\n\n## More notes\n"


# ------------------------------------------------------------------ remove


def test_remove_restores_original_files(env):
    files = _files(env)
    files["codex-user"].parent.mkdir()
    files["codex-user"].write_text(CODEX_EXISTING)
    claude_original = json.dumps(CLAUDE_EXISTING, indent=2, ensure_ascii=False)
    files["claude-user"].write_text(claude_original)
    apply_plan(plan_bootstrap(["codex", "claude"], endpoint=EP, token_configured=True))
    plan = plan_remove(["codex", "claude"])
    assert [c.action for c in plan.changes] == ["update", "update"]
    apply_plan(plan)
    assert files["codex-user"].read_text() == CODEX_EXISTING
    assert files["claude-user"].read_text() == claude_original
    again = plan_remove(["codex", "claude"])
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]
    assert apply_plan(again).written == ()


def test_remove_when_nothing_there(env):
    plan = plan_remove(["codex", "claude"], scope="project")
    assert [c.action for c in plan.changes] == ["unchanged", "unchanged"]
    apply_plan(plan)
    assert list(env["project"].iterdir()) == []


def test_remove_keeps_other_servers(env):
    path = _files(env)["codex-project"]
    path.parent.mkdir()
    path.write_text('[mcp_servers.a]\ncommand = "a"\n')
    apply_plan(plan_bootstrap(["codex"], endpoint=EP, scope="project", transport="stdio", runtimectl_path=RTCTL))
    apply_plan(plan_remove(["codex"], scope="project"))
    assert path.read_text() == '[mcp_servers.a]\ncommand = "a"\n'


# ------------------------------------------------------------------ status


def test_status_reports_entries_and_drift(env):
    files = _files(env)
    apply_plan(plan_bootstrap(["codex"], endpoint=EP, token_configured=True))
    files["claude-user"].write_text(json.dumps({"mcpServers": {"runtime": {"type": "http", "url": "http://127.0.0.1:9000/mcp"}}}))
    files["claude-project"].write_text(json.dumps({"mcpServers": {"runtime": {"url": EP + "/"}}}))
    report = {(s.client, s.scope): s for s in status(endpoint=EP, token_configured=True, scopes=("user", "project"))}

    codex = report[("codex", "user")]
    assert (codex.entry_present, codex.transport, codex.endpoint, codex.points_here, codex.drift) == (
        True, "http", EP, True, ())
    assert codex.ok

    drifted = report[("claude", "user")]
    assert drifted.entry_present and not drifted.points_here and not drifted.ok
    assert drifted.endpoint == "http://127.0.0.1:9000/mcp"
    assert any("points at http://127.0.0.1:9000/mcp" in d for d in drifted.drift)
    assert any("requires a token" in d for d in drifted.drift)

    untyped = report[("claude", "project")]
    assert untyped.points_here  # trailing slash is the same URL
    assert any('no "type"' in d for d in untyped.drift)

    missing = report[("codex", "project")]
    assert (missing.file_exists, missing.entry_present, missing.ok) == (False, False, False)
    assert json.dumps([s.to_dict() for s in report.values()])  # JSON-ready for the API


def test_status_stdio_entry(env, tmp_path):
    exe = tmp_path / "bin" / "runtimectl"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    apply_plan(plan_bootstrap(["codex", "claude"], endpoint=EP, transport="stdio", runtimectl_path=str(exe),
                              token_configured=True))
    for s in status(endpoint=EP, token_configured=True):
        assert (s.transport, s.endpoint, s.points_here, s.drift) == ("stdio", EP, True, ()), s
    other = status(endpoint="http://127.0.0.1:5555/mcp")
    assert all(not s.points_here and s.drift for s in other)


def test_status_reports_unparseable_file_without_raising(env):
    path = _files(env)["claude-user"]
    path.write_text("{oops")
    (s,) = status(["claude"], endpoint=EP)
    assert s.file_exists and not s.entry_present and s.error and str(path) in s.error and "line 1" in s.error


# ------------------------------------------------------- tokens and modes


def test_inline_token_is_written_0600_and_never_shown(env):
    token = "s3cr3t-token-0123456789abcdef"
    path = _files(env)["claude-project"]
    path.write_text("{}\n")
    os.chmod(path, 0o644)
    plan = plan_bootstrap(["claude", "codex"], endpoint=EP, scope="project", inline_token=token)
    shown = plan.diff() + plan.describe() + json.dumps(plan.to_dict())
    assert token not in shown and "<redacted>" in plan.diff()
    assert any("tightened from 644 to 600" in n for n in plan.all_notes())
    assert any("contains the token" in n for n in plan.all_notes())
    result = apply_plan(plan)
    assert json.loads(path.read_text())["mcpServers"]["runtime"]["headers"] == {"Authorization": f"Bearer {token}"}
    assert _mode(path) == 0o600
    assert token not in json.dumps(result.to_dict())
    # Codex never gets an inline token: it reads it from the environment
    codex = (env["project"] / ".codex" / "config.toml").read_text()
    assert token not in codex and 'bearer_token_env_var = "RUNTIMED_AUTH_TOKEN"' in codex


def test_symlinked_config_is_written_through(env, tmp_path):
    real = tmp_path / "dotfiles" / "claude.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = _files(env)["claude-user"]
    link.symlink_to(real)
    apply_plan(plan_bootstrap(["claude"], endpoint=EP))
    assert link.is_symlink()
    assert json.loads(real.read_text())["mcpServers"]["runtime"]["url"] == EP


def test_backup_dir_option(env, tmp_path):
    path = _files(env)["claude-user"]
    path.write_text("{}")
    backups = tmp_path / "state" / "backups"
    result = apply_plan(plan_bootstrap(["claude"], endpoint=EP), backup_dir=backups)
    b = backups / str(path).lstrip("/")  # the file's absolute path, under the backup dir
    assert result.backups == {path: b} and b.read_text() == "{}"
    assert _mode(backups) == 0o700


# -------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(clients=["cursor"]), "unknown client 'cursor'"),
        (dict(clients=[]), "no client given"),
        (dict(transport="ws"), "invalid transport 'ws'"),
        (dict(scope="local"), "invalid scope 'local'"),
        (dict(name="my server"), "invalid server name"),
        (dict(endpoint="127.0.0.1:4707/mcp"), "invalid endpoint"),
        (dict(transport="stdio", runtimectl_path="runtimectl"), "absolute path of runtimectl"),
        (dict(transport="stdio", runtimectl_path=RTCTL, endpoint="http://127.0.0.1:4707/"), "ending in /mcp"),
    ],
)
def test_bad_input_is_a_clear_error(env, kwargs, message):
    args = dict(clients=["codex"], endpoint=EP)
    args.update(kwargs)
    clients = args.pop("clients")
    with pytest.raises(BootstrapError, match=message):
        plan_bootstrap(clients, **args)


# -- issue 14, item 15: one backup per file, in the backup dir (the state dir), not one per run -----

def _all_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file())


def test_backups_are_one_per_file_in_the_backup_dir(env, tmp_path):
    files = _files(env)
    files["claude-user"].write_text('{"numStartups": 1}')
    files["codex-user"].parent.mkdir()
    files["codex-user"].write_text(CODEX_EXISTING)
    backups = tmp_path / "state" / "backups"
    first = apply_plan(plan_bootstrap(["codex", "claude"], endpoint=EP), backup_dir=backups)
    claude_bak = backups / str(files["claude-user"]).lstrip("/")
    codex_bak = backups / str(files["codex-user"]).lstrip("/")
    assert first.backups == {files["codex-user"]: codex_bak, files["claude-user"]: claude_bak}
    assert claude_bak.read_text() == '{"numStartups": 1}' and codex_bak.read_text() == CODEX_EXISTING

    # the user's client changes the file, then the gateway entry changes: the backup is the file as it
    # was right before this write, and there is still one per file
    before_second = files["claude-user"].read_text().replace('"numStartups": 1', '"numStartups": 2')
    files["claude-user"].write_text(before_second)
    second = apply_plan(plan_bootstrap(["codex", "claude"], endpoint=EP.replace("4707", "4708")), backup_dir=backups)
    assert second.backups[files["claude-user"]] == claude_bak and claude_bak.read_text() == before_second
    assert _all_files(backups) == sorted([claude_bak, codex_bak])
    assert _mode(claude_bak) == _mode(files["claude-user"]) and _mode(claude_bak.parent) == 0o700
    # nothing is left next to the files
    assert [p for p in env["home"].rglob("*") if "runtimed-bak" in p.name] == []
    assert [p for p in env["codex_home"].rglob("*") if "runtimed-bak" in p.name] == []


def test_a_failed_run_keeps_the_previous_backup(env, tmp_path):
    files = _files(env)
    files["codex-user"].parent.mkdir()
    files["codex-user"].write_text(CODEX_EXISTING)
    backups = tmp_path / "state" / "backups"
    apply_plan(plan_bootstrap(["codex"], endpoint=EP), backup_dir=backups)
    codex_bak = backups / str(files["codex-user"]).lstrip("/")
    assert codex_bak.read_text() == CODEX_EXISTING
    written = files["codex-user"].read_text()

    plan = plan_bootstrap(["codex", "claude"], endpoint=EP.replace("4707", "4708"))
    files["claude-user"].mkdir()  # the second target turns into a directory after planning
    with pytest.raises(BootstrapError):
        apply_plan(plan, backup_dir=backups)
    assert files["codex-user"].read_text() == written
    assert codex_bak.read_text() == CODEX_EXISTING  # the last good backup is still there, and only it
    assert _all_files(backups) == [codex_bak]


# -- issue 17: a profile's endpoint, /mcp/@NAME, as its own entry (runtimed-NAME), side by side ------------------

PROFILE_EP = EP + "/@dev"

CODEX_PROFILES = """\
# Codex configuration, edited by hand
model = "gpt-5-codex"

[mcp_servers.runtime]
url = "http://127.0.0.1:4707/mcp"

[mcp_servers.runtimed-dev]
url = "http://127.0.0.1:4707/mcp/@dev"
bearer_token_env_var = "RUNTIMED_AUTH_TOKEN"

[mcp_servers.runtimed-ops]
command = "/opt/runtimed/bin/runtimectl"
args = ["gateway", "serve", "--stdio", "--profile", "ops"]
env = {RUNTIMED_URL = "http://127.0.0.1:4707"}
env_vars = ["RUNTIMED_AUTH_TOKEN"]
"""

CLAUDE_PROFILES = {
    "numStartups": 42,
    "mcpServers": {
        "runtime": {"type": "http", "url": "http://127.0.0.1:4707/mcp"},
        "runtimed-dev": {"type": "http", "url": "http://127.0.0.1:4707/mcp/@dev",
                         "headers": {"Authorization": "Bearer ${RUNTIMED_AUTH_TOKEN}"}},
        "runtimed-ops": {"type": "stdio", "command": "/opt/runtimed/bin/runtimectl",
                         "args": ["gateway", "serve", "--stdio", "--profile", "ops"],
                         "env": {"RUNTIMED_URL": "http://127.0.0.1:4707", "RUNTIMED_AUTH_TOKEN": "${RUNTIMED_AUTH_TOKEN}"}},
    },
}


def test_profile_helpers() -> None:
    assert entry_name() == "runtime" and entry_name("dev") == "runtimed-dev"
    assert profile_endpoint(EP, "dev") == profile_endpoint(EP + "/", "dev") == PROFILE_EP
    assert profile_endpoint(PROFILE_EP, "dev") == PROFILE_EP  # given the profile's endpoint itself
    assert endpoint_profile(PROFILE_EP) == "dev" and endpoint_profile(EP) is None
    assert endpoint_profile("http://127.0.0.1:4707/mcp/svc") is None
    assert base_url(PROFILE_EP) == base_url(EP) == "http://127.0.0.1:4707"
    assert stdio_args(PROFILE_EP) == ["gateway", "serve", "--stdio", "--profile", "dev"]
    assert stdio_args(EP) == ["gateway", "serve", "--stdio"]
    assert stdio_endpoint("http://127.0.0.1:4707", stdio_args(PROFILE_EP)) == PROFILE_EP
    assert stdio_endpoint("http://127.0.0.1:4707/", ["gateway", "serve", "--stdio"]) == EP
    with pytest.raises(BootstrapError, match="ending in /mcp, then /@dev"):
        profile_endpoint("http://127.0.0.1:4707/", "dev")
    with pytest.raises(BootstrapError, match="invalid profile name"):
        profile_endpoint(EP, "Dev Team")


def test_profiles_are_written_side_by_side_in_the_real_formats(env):
    """The gateway's entry and two profiles' (http and stdio) in one file per client, each exactly as the
    client reads it; then one profile removed, the others untouched."""
    files = _files(env)
    files["codex-user"].parent.mkdir()
    files["codex-user"].write_text('# Codex configuration, edited by hand\nmodel = "gpt-5-codex"\n')
    files["claude-user"].write_text(json.dumps({"numStartups": 42}, indent=2) + "\n")
    apply_plan(plan_bootstrap(["codex", "claude"], endpoint=EP))
    plan = plan_bootstrap(["codex", "claude"], endpoint=PROFILE_EP, name="runtimed-dev", token_configured=True)
    assert [c.summary for c in plan.changes] == [
        f"codex user: add [mcp_servers.runtimed-dev] (http -> {PROFILE_EP})",
        f"claude user: add mcpServers.runtimed-dev (http -> {PROFILE_EP})"]
    apply_plan(plan)
    plan = plan_bootstrap(["codex", "claude"], endpoint=EP + "/@ops", name="runtimed-ops", transport="stdio",
                          runtimectl_path=RTCTL, token_configured=True)
    assert plan.changes[0].summary == (f"codex user: add [mcp_servers.runtimed-ops] (stdio -> {RTCTL} gateway serve "
                                       "--stdio --profile ops)")
    apply_plan(plan)
    assert files["codex-user"].read_text() == CODEX_PROFILES
    assert json.loads(files["claude-user"].read_text()) == CLAUDE_PROFILES
    assert tomllib.loads(CODEX_PROFILES)["mcp_servers"]["runtimed-dev"]["url"] == PROFILE_EP

    # Status reads each entry's endpoint back, the stdio one from its --profile.
    by_name = {n: status(endpoint=ep, name=n, token_configured=True)
               for n, ep in (("runtimed-dev", PROFILE_EP), ("runtimed-ops", EP + "/@ops"))}
    for name, rows in by_name.items():
        for s in rows:
            assert s.entry_present and s.points_here and s.endpoint == (PROFILE_EP if name == "runtimed-dev"
                                                                          else EP + "/@ops"), s
    # An entry of one profile does not point at another's endpoint.
    (wrong,) = status(["codex"], endpoint=EP + "/@ops", name="runtimed-dev", token_configured=True)
    assert not wrong.points_here and any(f"points at {PROFILE_EP}" in d for d in wrong.drift)

    apply_plan(plan_remove(["codex", "claude"], name="runtimed-dev"))
    assert "runtimed-dev" not in files["codex-user"].read_text()
    assert set(json.loads(files["claude-user"].read_text())["mcpServers"]) == {"runtime", "runtimed-ops"}


def test_agents_md_block_for_a_profile_names_it(env):
    path = env["project"] / "AGENTS.md"
    apply_plan(plan_bootstrap(["codex"], endpoint=PROFILE_EP, name="runtimed-dev", update_agents_md=True))
    text = path.read_text()
    assert f"Its profile `dev` is at `{PROFILE_EP}`" in text and "the server `runtimed-dev`" in text
    assert "runtime__list_services" not in text and "runtimectl profile show dev" in text
    assert text.startswith("<!-- runtimed:begin -->\n") and text.endswith("<!-- runtimed:end -->\n")
