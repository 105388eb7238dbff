"""``runtimectl import`` as a real process against a real daemon, with HOME and CODEX_HOME in temp dirs:
HTTP entries registered and reachable with their credentials taken from the daemon's environment (the
values never stored, never printed), the gateway's own entry skipped, a refused entry failing alone
(exit 1), ``--dry-run`` without any daemon, ``--json``, broken files and bad usage. The stdio end to
end is ``test_import_stdio_end_to_end`` (it waits for the stdio backend; see its docstring).
(The format readers in detail: test_importers.py.)
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.support.daemon import DaemonProc, run_cli
from tests.support.foundation import closed_port, read_registry, register_remote, temp_homes
from tests.support.upstream import run_upstream

HINT = ("run `runtimectl bootstrap --replace-imported --clients claude` to replace these entries in the client "
        "with the single gateway entry")


def cli(d: DaemonProc | None, *args: str, code: int = 0, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def write(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def call(d: DaemonProc, tool: str, *args: str) -> Any:
    """A tool's result through the gateway (``runtimectl call``): structured content's ``result``, or the text."""
    out = cli(d, "call", tool, *args).stdout.strip()
    try:
        return json.loads(out)["result"]
    except (ValueError, KeyError, TypeError):
        return out


def no_secret_anywhere(d: DaemonProc, outputs: list[subprocess.CompletedProcess[str]], *values: str) -> None:
    registry = (d.state_dir / "registry.json").read_text()
    for v in values:
        assert v not in registry
        for res in outputs:
            assert v not in res.stdout and v not in res.stderr


# -- HTTP entries against a real daemon ------------------------------------------------------------------

def test_import_claude_http_entries_with_their_credentials(make_daemon, tmp_path: Path) -> None:
    crm_secret = "sk-" + secrets.token_hex(16)
    docs_secret = secrets.token_urlsafe(24)
    d = make_daemon(env={"CRM_TOKEN": crm_secret, "DOCS_TOKEN": docs_secret})
    env = temp_homes(tmp_path)
    home = Path(env["HOME"])
    cli(d, "bootstrap", "--clients", "claude", env=env)  # the gateway's own entry, as bootstrap writes it
    with run_upstream("echo_server", "--name", "crm", "--require-header", f"Authorization: Bearer {crm_secret}") as crm, \
            run_upstream("echo_server", "--name", "docs", "--require-header", f"Authorization: Bearer {docs_secret}") as docs:
        config = json.loads((home / ".claude.json").read_text())
        config["mcpServers"].update({
            "crm": {"type": "http", "url": crm.url, "headers": {"Authorization": f"Bearer {crm_secret}"}},
            "Docs": {"type": "http", "url": docs.url, "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}},
            "broken": {"type": "http"},
        })
        write(home / ".claude.json", config)

        res = cli(d, "import", "--from", "claude", "--project", str(tmp_path), env=env)
        lines = res.stdout.splitlines()
        assert f"added crm (http: {crm.url})" in lines
        assert f"added docs (http: {docs.url}) [from Docs]" in lines
        assert "skipped runtime: this is the gateway itself" in lines
        assert "skipped broken: no url" in lines
        assert any(ln.strip().startswith("export CRM_TOKEN=...") for ln in lines)
        assert any(ln.strip().startswith("export DOCS_TOKEN=...") for ln in lines)
        assert lines[-1] == HINT

        assert d.service("crm")["state"] == "RUNNING" and d.service("docs")["state"] == "RUNNING"
        on_disk = {i["manifest"]["metadata"]["name"]: i["manifest"]["spec"]["origin"]
                   for i in read_registry(d.state_dir)["services"].values()}
        assert on_disk["crm"]["authRef"] == "env:CRM_TOKEN" and on_disk["docs"]["authRef"] == "env:DOCS_TOKEN"
        assert set(on_disk) == {"crm", "docs"}
        assert call(d, "crm__echo", "--arg", "text=through the gateway") == "through the gateway"

        again = cli(d, "import", "--from", "claude", "--project", str(tmp_path), "--json", env=env)
        data = json.loads(again.stdout)
        assert {r["key"]: r["status"] for r in data["results"]} == {
            "runtime": "skipped", "crm": "updated", "Docs": "updated", "broken": "skipped"}
        assert data["counts"] == {"added": 0, "updated": 2, "would-add": 0, "skipped": 2, "failed": 0}
        no_secret_anywhere(d, [res, again], crm_secret, docs_secret)


def test_import_codex_bearer_token_env_var_and_env_http_headers(make_daemon, tmp_path: Path) -> None:
    figma_secret, key_secret = secrets.token_hex(20), secrets.token_hex(20)
    d = make_daemon(env={"FIGMA_OAUTH_TOKEN": figma_secret, "KEYED_API_KEY": key_secret})
    env = temp_homes(tmp_path)
    with run_upstream("echo_server", "--name", "figma", "--require-header", f"Authorization: Bearer {figma_secret}") as a, \
            run_upstream("echo_server", "--name", "keyed", "--require-header", f"X-Api-Key: {key_secret}") as b:
        write(Path(env["CODEX_HOME"]) / "config.toml", textwrap.dedent(f'''\
            model = "o3"

            [mcp_servers.runtime]
            url = "{d.mcp_url}"

            [mcp_servers.figma]
            url = "{a.url}"
            bearer_token_env_var = "FIGMA_OAUTH_TOKEN"

            [mcp_servers.keyed]
            url = "{b.url}"
            env_http_headers = {{ "X-Api-Key" = "KEYED_API_KEY" }}

            [mcp_servers.off]
            url = "{b.url}"
            enabled = false
            '''))
        res = cli(d, "import", "--from", "codex", env=env)
        assert f"added figma (http: {a.url})" in res.stdout and f"added keyed (http: {b.url})" in res.stdout
        assert "skipped runtime: this is the gateway itself" in res.stdout
        assert "skipped off: disabled in the client (enabled = false)" in res.stdout
        assert d.service("figma")["state"] == "RUNNING" and d.service("keyed")["state"] == "RUNNING"
        assert call(d, "keyed__add", "--arg", "a=2", "--arg", "b=3") == 5
        no_secret_anywhere(d, [res], figma_secret, key_secret)


def test_a_refused_entry_fails_alone_and_exits_1(daemon: DaemonProc, tmp_path: Path) -> None:
    d = daemon
    register_remote(d, "alpha", f"http://127.0.0.1:{closed_port()}/mcp", autostart=False)
    beta = f"http://127.0.0.1:{closed_port()}/mcp"
    config = write(tmp_path / "servers.json", {"mcpServers": {
        "alpha": {"url": f"http://127.0.0.1:{closed_port()}/other"},  # the name is taken by another server
        "beta": {"url": beta},
        "gamma": {"command": "x", "args": ["--token", "abc"]},
    }})
    res = cli(d, "import", "--from", str(config), "--no-start", code=1)
    lines = res.stdout.splitlines()
    assert any(ln.startswith("failed alpha: ") for ln in lines), res.stdout
    assert f"added beta (http: {beta})" in lines
    assert any(ln.startswith("skipped gamma: args[1] looks like a credential") for ln in lines)
    assert d.service("beta")["state"] == "REGISTERED"

    data = json.loads(cli(d, "import", "--from", str(config), "--no-start", "--json", code=1).stdout)
    by_key = {r["key"]: r for r in data["results"]}
    assert by_key["alpha"]["status"] == "failed" and by_key["alpha"]["error"]
    assert by_key["beta"]["status"] == "updated" and by_key["beta"]["state"] == "REGISTERED"
    assert by_key["beta"]["manifest"]["spec"]["origin"] == {"type": "remote_mcp", "url": beta,
                                                           "transport": "streamable_http"}
    assert data["counts"]["failed"] == 1 and data["sources"] == [
        {"path": str(config), "section": "mcpServers", "client": "file", "entries": 3}]


# -- without a daemon ----------------------------------------------------------------------------------------

def test_dry_run_contacts_no_daemon(tmp_path: Path) -> None:
    secret = "sk-" + secrets.token_hex(16)
    env = {**temp_homes(tmp_path), "RUNTIMED_URL": f"http://127.0.0.1:{closed_port()}"}
    project = tmp_path / "proj"
    write(project / ".vscode" / "mcp.json", '''{
      // written by hand
      "servers": {
        "api": {"type": "http", "url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer SECRET"}},
        "fs": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
               "env": {"FS_API_KEY": "SECRET"}},
        "asks": {"type": "stdio", "command": "x", "env": {"KEY": "${input:key}"}},
      },
    }'''.replace("SECRET", secret))
    res = cli(None, "import", "--from", "vscode", "--project", str(project), "--dry-run", env=env)
    lines = res.stdout.splitlines()
    assert "would add api (http: https://api.example.com/mcp)" in lines
    assert "would add fs (stdio: npx -y @modelcontextprotocol/server-filesystem .)" in lines
    assert any(ln.startswith("skipped asks: env KEY uses ${input:key}") for ln in lines)
    manifests = [json.loads(ln.split("manifest: ", 1)[1]) for ln in lines if ln.strip().startswith("manifest: ")]
    assert [m["spec"]["origin"].get("authRef") for m in manifests] == ["env:API_TOKEN", None]
    assert manifests[1]["spec"]["origin"]["env"] == {"FS_API_KEY": "env:FS_API_KEY"}
    assert manifests[1]["spec"]["origin"]["cwd"] == str(project)
    assert "dry run: 2 to register, 1 skipped; nothing sent to the daemon" in lines
    assert lines[-1].startswith(f"remove api, fs from {project / '.vscode' / 'mcp.json'} (servers) by hand: the "
                                "gateway serves them now; `runtimectl bootstrap` does not write VS Code's config")
    assert secret not in res.stdout + res.stderr

    data = json.loads(cli(None, "import", "--from", "vscode", "--project", str(project), "--dry-run", "--json",
                          env=env).stdout)
    assert data["dryRun"] is True and data["counts"]["would-add"] == 2
    assert [e["var"] for e in data["exports"]] == ["API_TOKEN", "FS_API_KEY"]
    assert data["replace"] == [{"path": str(project / ".vscode" / "mcp.json"), "section": "servers",
                                "client": "VS Code", "keys": ["api", "fs"], "command": None}]
    assert secret not in json.dumps(data)


def test_broken_files_missing_files_and_usage(tmp_path: Path) -> None:
    env = {**temp_homes(tmp_path), "RUNTIMED_URL": f"http://127.0.0.1:{closed_port()}"}
    home = Path(env["HOME"])
    res = cli(None, "import", "--from", "cursor", "--project", str(tmp_path), env=env)
    assert res.stdout.startswith("nothing to import: no Cursor MCP servers found (looked at ")

    write(home / ".claude.json", '{"mcpServers": {"a": {"type": "stdio",, "command": "x"}}}')
    res = cli(None, "import", "--from", "claude", "--project", str(tmp_path), env=env, code=1)
    assert res.stderr.strip() == (f"runtimectl: {home / '.claude.json'} (line 1, column 39): not valid JSON: "
                                  "Expecting property name enclosed in double quotes; nothing was imported")
    assert res.stdout == ""

    res = cli(None, "import", "--from", str(tmp_path / "nope.json"), env=env, code=2)
    assert "--from takes claude, claude-desktop, codex, cursor, vscode or the path of a config file" in res.stderr
    res = cli(None, "import", "--from", "codex", "--project", str(tmp_path / "nope"), env=env, code=2)
    assert "not a folder" in res.stderr
    cli(None, "import", env=env, code=2)  # --from is required


# -- stdio, end to end (needs the stdio backend) ------------------------------------------------------------

STDIO_SERVER = '''
import os
from mcp.server import MCPServer

mcp = MCPServer(name="imported")


@mcp.tool(name="whoami")
def whoami() -> str:
    """What the child was given: its greeting, whether its token arrived, its working directory."""
    token_ok = os.environ.get("API_TOKEN") == os.environ.get("EXPECTED_TOKEN_VIA_DAEMON_ENV")
    return f"{os.environ.get('GREETING')} token={'ok' if token_ok else 'missing'} cwd={os.getcwd()}"


mcp.run(transport="stdio")
'''


def test_import_stdio_end_to_end(make_daemon, tmp_path: Path) -> None:
    """A Claude Code project's stdio server imported, started by the daemon with its secret env given as
    env:API_TOKEN (the value from the daemon's environment), in the project directory, and called."""
    token = "sk-" + secrets.token_hex(16)
    d = make_daemon(env={"API_TOKEN": token, "EXPECTED_TOKEN_VIA_DAEMON_ENV": token})
    env = temp_homes(tmp_path)
    project = tmp_path / "proj"
    write(project / "server.py", STDIO_SERVER)
    write(project / ".mcp.json", {"mcpServers": {"local-tools": {
        "type": "stdio", "command": sys.executable, "args": ["server.py"],
        "env": {"API_TOKEN": token, "GREETING": "hello", "EXPECTED_TOKEN_VIA_DAEMON_ENV": "${EXPECTED_TOKEN_VIA_DAEMON_ENV}"},
    }}})
    res = cli(d, "import", "--from", "claude", "--project", str(project), env=env)
    assert f"added local-tools (stdio: {sys.executable} server.py)" in res.stdout.splitlines(), res.stdout
    assert "export API_TOKEN=..." in res.stdout and token not in res.stdout + res.stderr
    svc = d.wait_state("local-tools", "RUNNING", timeout=60)
    origin = svc["manifest"]["spec"]["origin"]
    assert origin["env"]["API_TOKEN"] == "env:API_TOKEN" and origin["cwd"] == str(project)
    assert token not in (d.state_dir / "registry.json").read_text()
    assert call(d, "local-tools__whoami") == f"hello token=ok cwd={project}"
