"""``runtimectl import`` then ``runtimectl bootstrap --replace-imported`` as real processes against a
real daemon, with HOME and CODEX_HOME in temp dirs: the labels import puts on each service, the hint
it prints per file, the dry run (nothing written), an entry edited after import kept with a message,
the removals listed, the files left with the gateway entry plus what was not imported (Codex comments,
Claude's other keys kept), a backup, and a second run that does nothing. Claude Code's entries are
stdio servers (tests/upstreams/stdio_server.py), one of them project-local; Codex's are HTTP servers
(tests/upstreams/echo_server.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.runtimectl.test_import import cli, write
from tests.support.daemon import DaemonProc
from tests.support.foundation import closed_port
from tests.support.upstream import run_upstream, stdio_argv


def _bak(d: DaemonProc, path: Path) -> list[Path]:
    """The file's backup: one, in the daemon's state dir (``backups/`` + the file's absolute path)."""
    backup = d.state_dir.resolve() / "backups" / str(path).lstrip("/")
    return [backup] if backup.exists() else []


def test_import_then_bootstrap_replace_imported(make_daemon, tmp_path: Path) -> None:
    d = make_daemon()
    home, codex_home, project = tmp_path / "home", tmp_path / "home" / ".codex", tmp_path / "proj"
    project.mkdir(parents=True)
    env = {"HOME": str(home), "CODEX_HOME": str(codex_home)}
    alpha_argv, beta_argv = stdio_argv("stdio_server", "--name", "alpha"), stdio_argv("stdio_server", "--name", "beta")
    alpha = {"type": "stdio", "command": alpha_argv[0], "args": alpha_argv[1:], "env": {}}
    beta = {"type": "stdio", "command": beta_argv[0], "args": beta_argv[1:]}
    claude_path = write(home / ".claude.json", {
        "numStartups": 7,
        "mcpServers": {"alpha": alpha, "broken": {"type": "http"}},
        "projects": {str(project): {"allowedTools": ["Bash"], "mcpServers": {"beta": beta}}},
        "oauthAccount": {"emailAddress": "me@example.com"},
    })

    with run_upstream("echo_server", "--name", "crm") as crm, run_upstream("echo_server", "--name", "docs") as docs:
        codex_path = write(codex_home / "config.toml", textwrap.dedent(f'''\
            # my Codex settings
            model = "o3"

            # the CRM, imported
            [mcp_servers.crm]
            url = "{crm.url}"
            tool_timeout_sec = 30

            # off for now: not imported, stays
            [mcp_servers.off]
            url = "http://127.0.0.1:9/mcp"
            enabled = false

            [mcp_servers.docs]
            url = "{docs.url}"

            [tui]
            notifications = true  # keep
            '''))
        codex_before = codex_path.read_text()

        # -- import: labels, and the hint per file ----------------------------------------------------
        res = cli(d, "import", "--from", "claude", "--project", str(project), env=env)
        lines = res.stdout.splitlines()
        assert "added alpha (stdio: " + " ".join(alpha_argv) + ")" in lines
        assert lines[-1] == ("run `runtimectl bootstrap --replace-imported --clients claude` to replace these "
                             "entries in the client with the single gateway entry")
        res = cli(d, "import", "--from", "codex", env=env)
        assert res.stdout.splitlines()[-1] == ("run `runtimectl bootstrap --replace-imported --clients codex` to "
                                               "replace these entries in the client with the single gateway entry")
        labels = {n: d.service(n)["manifest"]["metadata"]["labels"] for n in ("alpha", "beta", "crm", "docs")}
        assert labels["alpha"] == {"runtimed/imported-from": "claude", "runtimed/imported-file": str(claude_path),
                                   "runtimed/imported-key": "alpha"}
        assert labels["beta"] == {"runtimed/imported-from": "claude", "runtimed/imported-file": str(claude_path),
                                  "runtimed/imported-key": "beta", "runtimed/imported-project": str(project)}
        assert labels["docs"] == {"runtimed/imported-from": "codex", "runtimed/imported-file": str(codex_path),
                                  "runtimed/imported-key": "docs"}

        # -- the dry run writes nothing and shows the removals -------------------------------------------
        claude_before = claude_path.read_bytes()
        dry = cli(d, "bootstrap", "--replace-imported", "--dry-run", "--project-dir", str(project), env=env)
        assert claude_path.read_bytes() == claude_before and codex_path.read_text() == codex_before
        assert not _bak(d, claude_path) and not _bak(d, codex_path)
        out = dry.stdout.splitlines()
        assert "would remove crm from ~/.codex/config.toml: now served by the gateway as service crm" in out
        assert "would remove docs from ~/.codex/config.toml: now served by the gateway as service docs" in out
        assert "would remove alpha from ~/.claude.json: now served by the gateway as service alpha" in out
        assert (f'would remove beta (projects["{project}"]) from ~/.claude.json: now served by the gateway '
                "as service beta") in out
        assert "-[mcp_servers.crm]" in dry.stdout and out[-1] == "dry run: nothing written"

        # -- an entry edited since it was imported is kept, and the output says so -----------------------
        edited = json.loads(claude_before)
        edited["projects"][str(project)]["mcpServers"]["beta"]["args"].append("--session-only")
        claude_path.write_text(json.dumps(edited, indent=2))
        run = cli(d, "bootstrap", "--replace-imported", "--project-dir", str(project), env=env)
        out = run.stdout.splitlines()
        assert [ln for ln in out if ln.startswith("removed ")] == [
            "removed crm from ~/.codex/config.toml: now served by the gateway as service crm",
            "removed docs from ~/.codex/config.toml: now served by the gateway as service docs",
            "removed alpha from ~/.claude.json: now served by the gateway as service alpha",
        ]
        assert (f'note: kept projects["{project}"].mcpServers.beta in {claude_path}: it no longer matches what '
                "service beta runs: its args differ; edit or remove it by hand") in out

        assert codex_path.read_text() == textwrap.dedent(f'''\
            # my Codex settings
            model = "o3"

            # off for now: not imported, stays
            [mcp_servers.off]
            url = "http://127.0.0.1:9/mcp"
            enabled = false

            [tui]
            notifications = true  # keep

            [mcp_servers.runtime]
            url = "{d.mcp_url}"
            ''')
        claude: dict[str, Any] = json.loads(claude_path.read_text())
        assert list(claude) == ["numStartups", "mcpServers", "projects", "oauthAccount"]
        assert claude["mcpServers"] == {"broken": {"type": "http"}, "runtime": {"type": "http", "url": d.mcp_url}}
        assert claude["projects"][str(project)] == edited["projects"][str(project)]
        assert claude["numStartups"] == 7 and claude["oauthAccount"] == {"emailAddress": "me@example.com"}
        (codex_bak,), (claude_bak,) = _bak(d, codex_path), _bak(d, claude_path)
        assert codex_bak.read_text() == codex_before and json.loads(claude_bak.read_text()) == edited
        assert f"backup    {codex_path} -> {codex_bak}" in out

        # -- put the entry back as it was: now it goes too ---------------------------------------------------
        claude["projects"][str(project)]["mcpServers"]["beta"] = beta
        claude_path.write_text(json.dumps(claude, indent=2) + "\n")
        run = cli(d, "bootstrap", "--replace-imported", "--clients", "claude", "--project-dir", str(project),
                  "--json", env=env)
        data = json.loads(run.stdout)
        (removed,) = data["files"][0]["removed"]
        assert removed == {"path": str(claude_path), "key": "beta", "project": str(project), "service": "beta",
                           "entry": f'projects["{project}"].mcpServers.beta'}
        assert json.loads(claude_path.read_text())["projects"][str(project)] == {"allowedTools": ["Bash"],
                                                                                 "mcpServers": {}}

        # -- twice is a no-op -----------------------------------------------------------------------------
        codex_after, claude_after = codex_path.read_bytes(), claude_path.read_bytes()
        backups = _bak(d, codex_path) + _bak(d, claude_path)
        again = cli(d, "bootstrap", "--replace-imported", "--project-dir", str(project), "--json", env=env)
        data = json.loads(again.stdout)
        assert data["changed"] is False and data["result"]["written"] == []
        assert all(f["removed"] == [] for f in data["files"])
        assert codex_path.read_bytes() == codex_after and claude_path.read_bytes() == claude_after
        assert _bak(d, codex_path) + _bak(d, claude_path) == backups

        # every service is still served by the gateway
        assert {s["name"] for s in d.api("GET", "/api/services").json()["services"]} == {"alpha", "beta", "crm", "docs"}


def test_entries_of_other_scopes_and_clients(make_daemon, tmp_path: Path) -> None:
    """A project's .mcp.json entry is replaced only by a project-scope bootstrap (a user-scope run says how);
    Cursor's entries are never touched: import names the file and keys to remove by hand."""
    d = make_daemon()
    home, project = tmp_path / "home", tmp_path / "proj"
    env = {"HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    argv = stdio_argv("stdio_server", "--name", "tools")
    mcp_json = write(project / ".mcp.json", {"mcpServers": {"tools": {"type": "stdio", "command": argv[0],
                                                                      "args": argv[1:]}}})
    cursor = write(home / ".cursor" / "mcp.json", {"mcpServers": {"pages": {"url": "http://127.0.0.1:9/mcp"},
                                                                  "wiki": {"url": "http://127.0.0.1:9/wiki"}}})
    res = cli(d, "import", "--from", "claude", "--project", str(project), "--no-start", env=env)
    command = f"runtimectl bootstrap --replace-imported --clients claude --scope project --project-dir {project}"
    assert res.stdout.splitlines()[-1] == (f"run `{command}` to replace these entries in the client with the "
                                           "single gateway entry")
    res = cli(d, "import", "--from", "cursor", "--project", str(tmp_path), "--no-start", env=env)
    assert res.stdout.splitlines()[-1].startswith(
        f"remove pages, wiki from {cursor} (mcpServers) by hand: the gateway serves them now; "
        "`runtimectl bootstrap` does not write Cursor's config: add the gateway to it yourself")
    cursor_before = cursor.read_bytes()

    user = cli(d, "bootstrap", "--replace-imported", "--clients", "claude", "--project-dir", str(project), env=env)
    assert f"note: also imported: tools in {mcp_json}; `{command}` replaces them" in user.stdout.splitlines()
    assert "tools" in json.loads(mcp_json.read_text())["mcpServers"]

    proj = cli(d, "bootstrap", "--replace-imported", "--clients", "claude", "--scope", "project",
               "--project-dir", str(project), env=env)
    assert f"removed tools from {mcp_json}: now served by the gateway as service tools" in proj.stdout.splitlines()
    assert json.loads(mcp_json.read_text()) == {"mcpServers": {"runtime": {"type": "http", "url": d.mcp_url}}}
    assert cursor.read_bytes() == cursor_before


def test_replace_imported_needs_the_daemon(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "CODEX_HOME": str(tmp_path / ".codex"),
           "RUNTIMED_URL": f"http://127.0.0.1:{closed_port()}"}
    res = cli(None, "bootstrap", "--replace-imported", env=env, code=1)
    assert "--replace-imported asks the daemon which services were imported: runtimed is not running" in res.stderr
    assert not (tmp_path / ".claude.json").exists() and not (tmp_path / ".codex").exists()
