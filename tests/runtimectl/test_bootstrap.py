"""``runtimectl bootstrap`` as a real process against a real daemon, with HOME and CODEX_HOME
in temp dirs. (File formats in detail: tests/bootstrap/test_core.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.support.daemon import REPO, DaemonProc, run_cli
from tests.support.foundation import temp_homes


def test_bootstrap_writes_both_clients_pointing_at_the_daemon(daemon: DaemonProc, tmp_path: Path) -> None:
    env = temp_homes(tmp_path)
    codex = Path(env["CODEX_HOME"]) / "config.toml"
    codex.parent.mkdir(parents=True)
    codex.write_text('# my settings\nmodel = "o3"\n\n[mcp_servers.other]\ncommand = "x"\n')
    r = run_cli(daemon, "bootstrap", "--clients", "codex,claude", env=env)
    assert r.returncode == 0, r.stderr
    doc = tomllib.loads(codex.read_text())
    assert doc["mcp_servers"]["runtime"] == {"url": daemon.mcp_url}
    assert doc["mcp_servers"]["other"] == {"command": "x"} and doc["model"] == "o3"
    assert codex.read_text().startswith("# my settings\n")
    claude = json.loads((Path(env["HOME"]) / ".claude.json").read_text())
    assert claude["mcpServers"]["runtime"] == {"type": "http", "url": daemon.mcp_url}

    again = run_cli(daemon, "bootstrap", "--clients", "codex,claude", "--json", env=env)
    assert again.returncode == 0
    assert json.loads(again.stdout)["result"]["written"] == []

    st = run_cli(daemon, "bootstrap", "status", "--json", env=env)
    assert st.returncode == 0, st.stdout + st.stderr
    rows = [e for e in json.loads(st.stdout)["entries"] if e["scope"] == "user"]
    assert all(e["entryPresent"] and e["pointsHere"] for e in rows)

    doctor = run_cli(daemon, "doctor", "--json", env=env)
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["bootstrap codex"]["status"] == "ok" and checks["bootstrap claude"]["status"] == "ok"
    assert doctor.returncode == 0, doctor.stdout

    rm = run_cli(daemon, "bootstrap", "remove", "--clients", "codex", env=env)
    assert rm.returncode == 0
    assert "runtime" not in tomllib.loads(codex.read_text())["mcp_servers"]


def test_bootstrap_with_token_references_the_variable(make_daemon, tmp_path: Path) -> None:
    token = "t" * 24
    d = make_daemon(token=token)
    env = temp_homes(tmp_path)
    r = run_cli(d, "bootstrap", "--clients", "codex,claude", env=env)
    assert r.returncode == 0, r.stderr
    codex_text = (Path(env["CODEX_HOME"]) / "config.toml").read_text()
    claude_text = (Path(env["HOME"]) / ".claude.json").read_text()
    assert 'bearer_token_env_var = "RUNTIMED_AUTH_TOKEN"' in codex_text
    assert token not in codex_text and token not in claude_text and token not in r.stdout + r.stderr
    assert json.loads(claude_text)["mcpServers"]["runtime"]["headers"] == {
        "Authorization": "Bearer ${RUNTIMED_AUTH_TOKEN}"}


def test_bootstrap_stdio_points_at_runtimectl(daemon: DaemonProc, tmp_path: Path) -> None:
    env = temp_homes(tmp_path)
    r = run_cli(daemon, "bootstrap", "--clients", "claude", "--transport", "stdio", "--scope", "project",
                "--project-dir", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    entry = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["runtime"]
    assert entry["type"] == "stdio" and entry["args"] == ["gateway", "serve", "--stdio"]
    assert os.path.isabs(entry["command"]) and entry["command"].endswith("runtimectl")


def test_bootstrap_refuses_unparseable_file_and_bad_flags(daemon: DaemonProc, tmp_path: Path) -> None:
    env = temp_homes(tmp_path)
    claude = Path(env["HOME"]) / ".claude.json"
    claude.write_text('{"mcpServers": {,}')
    r = run_cli(daemon, "bootstrap", "--clients", "codex,claude", env=env)
    assert r.returncode == 1
    assert ".claude.json" in r.stderr and "line 1" in r.stderr
    assert claude.read_text() == '{"mcpServers": {,}'
    assert not (Path(env["CODEX_HOME"]) / "config.toml").exists(), "all clients or none"
    bad = run_cli(daemon, "bootstrap", "--clients", "vim", env=env)
    assert bad.returncode == 2 and "--clients" in bad.stderr
    bad = run_cli(daemon, "bootstrap", "--transport", "carrier-pigeon", env=env)
    assert bad.returncode == 2


def test_bootstrap_keeps_one_backup_per_file_in_the_state_dir(daemon: DaemonProc, tmp_path: Path) -> None:
    env = temp_homes(tmp_path)
    home = Path(env["HOME"])
    claude = home / ".claude.json"
    claude.write_text('{"numStartups": 1}\n')
    (home / ".claude.json.20250101T000000Z.runtimed-bak").write_text("{}")  # left by an earlier version
    backup = daemon.state_dir.resolve() / "backups" / str(claude).lstrip("/")
    for run, endpoint in enumerate(("http://127.0.0.1:4707/mcp", "http://127.0.0.1:4708/mcp", "http://127.0.0.1:4709/mcp")):
        before = claude.read_text()
        r = run_cli(daemon, "bootstrap", "--clients", "claude", "--endpoint", endpoint, env=env)
        assert r.returncode == 0, r.stderr
        assert f"backup    {claude} -> {backup}" in r.stdout, r.stdout
        assert backup.read_text() == before, run  # the file as it was right before this write
        assert "1 older backup of" in r.stdout and "remove those when you no longer need them" in r.stdout
    assert sorted(p.name for p in home.iterdir() if "runtimed-bak" in p.name) == [
        ".claude.json.20250101T000000Z.runtimed-bak"]  # nothing new accumulates in $HOME
    assert [p for p in (daemon.state_dir / "backups").rglob("*") if p.is_file()] == [backup]

    rm = run_cli(daemon, "bootstrap", "remove", "--clients", "claude", env=env)
    assert rm.returncode == 0, rm.stderr
    assert json.loads(backup.read_text())["mcpServers"]["runtime"]["url"] == "http://127.0.0.1:4709/mcp"


# -- issue 17: bootstrap --profile NAME wires a client to /mcp/@NAME, as the entry runtimed-NAME ---------------------

def _profiles(d: DaemonProc) -> None:
    """Services math and upper (WASM); profile dev (math, add shown as plus), profile ops (upper)."""
    for name in ("math", "upper"):
        r = d.api("POST", "/api/services", json={"metadata": {"name": name}, "spec": {
            "origin": {"type": "local_wasm", "path": str(REPO / "examples" / "wasm" / f"{name}.wat")}}})
        assert r.status_code == 201, r.text
        d.wait_state(name, "RUNNING")
    for name, spec in (("dev", {"services": {"include": ["math"]}, "overrides": {"math__add": {"name": "plus"}}}),
                       ("ops", {"services": {"include": ["upper"]}})):
        r = d.api("POST", "/api/profiles", json={"kind": "MCPProfile", "metadata": {"name": name}, "spec": spec})
        assert r.status_code == 201, r.text


async def _tools(target: Any) -> set[str]:
    async with Client(target) as c:
        return {t.name for t in (await c.list_tools()).tools}


async def test_bootstrap_per_profile_side_by_side(daemon: DaemonProc, tmp_path: Path) -> None:
    _profiles(daemon)
    env = temp_homes(tmp_path)
    codex = Path(env["CODEX_HOME"]) / "config.toml"
    claude = Path(env["HOME"]) / ".claude.json"
    for args in ((), ("--profile", "dev"), ("--profile", "ops")):
        r = run_cli(daemon, "bootstrap", "--clients", "codex,claude", *args, env=env)
        assert r.returncode == 0, r.stderr
    dev_url, ops_url = f"{daemon.mcp_url}/@dev", f"{daemon.mcp_url}/@ops"
    assert f"add [mcp_servers.x] (http -> {dev_url})" in run_cli(  # --name still names it
        daemon, "bootstrap", "--profile", "dev", "--clients", "codex", "--name", "x", "--dry-run", env=env).stdout
    servers = tomllib.loads(codex.read_text())["mcp_servers"]
    assert servers == {"runtime": {"url": daemon.mcp_url}, "runtimed-dev": {"url": dev_url},
                       "runtimed-ops": {"url": ops_url}}
    assert json.loads(claude.read_text())["mcpServers"] == {
        "runtime": {"type": "http", "url": daemon.mcp_url}, "runtimed-dev": {"type": "http", "url": dev_url},
        "runtimed-ops": {"type": "http", "url": ops_url}}
    # What a client connecting to each entry's URL is served: that profile's tools only.
    assert await _tools(servers["runtimed-dev"]["url"]) == {"plus", "math__hypot", "math__fib"}
    assert await _tools(servers["runtimed-ops"]["url"]) == {"upper__upper"}

    st = run_cli(daemon, "bootstrap", "status", "--profile", "dev", "--json", env=env)
    assert st.returncode == 0, st.stdout + st.stderr
    body = json.loads(st.stdout)
    assert body["endpoint"] == dev_url
    assert all(e["entryPresent"] and e["pointsHere"] for e in body["entries"] if e["scope"] == "user")

    # An unknown profile is refused, naming the profiles there are; nothing is written.
    before = codex.read_text(), claude.read_text()
    r = run_cli(daemon, "bootstrap", "--profile", "nope", env=env)
    assert r.returncode == 1 and "no profile named 'nope': the profiles are: dev, ops" in r.stderr, r.stderr
    assert (codex.read_text(), claude.read_text()) == before

    # remove --profile takes out that profile's entry only.
    rm = run_cli(daemon, "bootstrap", "remove", "--profile", "dev", env=env)
    assert rm.returncode == 0, rm.stderr
    assert set(tomllib.loads(codex.read_text())["mcp_servers"]) == {"runtime", "runtimed-ops"}
    assert set(json.loads(claude.read_text())["mcpServers"]) == {"runtime", "runtimed-ops"}


async def test_bootstrap_profile_over_stdio_runs_the_bridge_to_the_profile(daemon: DaemonProc, tmp_path: Path) -> None:
    _profiles(daemon)
    env = temp_homes(tmp_path)
    r = run_cli(daemon, "bootstrap", "--profile", "dev", "--clients", "codex,claude", "--transport", "stdio",
                "--scope", "project", "--project-dir", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    entry = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["runtimed-dev"]
    assert entry["type"] == "stdio" and entry["args"] == ["gateway", "serve", "--stdio", "--profile", "dev"]
    assert entry["env"] == {"RUNTIMED_URL": daemon.url}
    codex_entry = tomllib.loads((tmp_path / ".codex" / "config.toml").read_text())["mcp_servers"]["runtimed-dev"]
    assert codex_entry["args"] == entry["args"] and codex_entry["env"] == entry["env"]
    # The entry as Claude Code would start it: the bridge relays to /mcp/@dev.
    params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                   env={**daemon.env_for_cli(), **entry["env"]}, cwd=str(tmp_path))
    assert await _tools(params) == {"plus", "math__hypot", "math__fib"}
    st = run_cli(daemon, "bootstrap", "status", "--profile", "dev", "--project-dir", str(tmp_path), "--json", env=env)
    rows = [e for e in json.loads(st.stdout)["entries"] if e["scope"] == "project"]
    assert [(e["transport"], e["endpoint"], e["pointsHere"]) for e in rows] == [
        ("stdio", f"{daemon.mcp_url}/@dev", True)] * 2


# -- issue 17: bootstrap --token-env VAR: each profile's entry sends its own scoped token ----------------------------

ADMIN = "a" * 24
VAR = "RUNTIMED_TOKEN_DEV"


async def _call(target: Any) -> tuple[set[str], str]:
    """The tools a client is served through ``target``, and what ``plus`` answers for 2 + 3."""
    async with Client(target) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        res = await c.call_tool("plus", {"a": 2, "b": 3})
        assert not res.is_error, res
        return names, res.content[0].text


def test_bootstrap_token_env_for_both_clients_http(make_daemon, tmp_path: Path) -> None:
    d = make_daemon(token=ADMIN)
    _profiles(d)
    env = temp_homes(tmp_path)
    r = run_cli(d, "bootstrap", "--profile", "dev", "--token-env", VAR, env=env)
    assert r.returncode == 0, r.stderr
    dev_url = f"{d.mcp_url}/@dev"
    assert tomllib.loads((Path(env["CODEX_HOME"]) / "config.toml").read_text())["mcp_servers"]["runtimed-dev"] == {
        "url": dev_url, "bearer_token_env_var": VAR}
    assert json.loads((Path(env["HOME"]) / ".claude.json").read_text())["mcpServers"]["runtimed-dev"] == {
        "type": "http", "url": dev_url, "headers": {"Authorization": f"Bearer ${{{VAR}}}"}}
    assert f'export {VAR}="$(runtimectl token create --profile dev | tail -n 1)"' in r.stdout, r.stdout
    assert ADMIN not in r.stdout + r.stderr

    st = run_cli(d, "bootstrap", "status", "--profile", "dev", "--token-env", VAR, "--json", env=env)
    assert st.returncode == 0, st.stdout + st.stderr
    rows = [e for e in json.loads(st.stdout)["entries"] if e["scope"] == "user"]
    assert [(e["pointsHere"], e["drift"]) for e in rows] == [(True, [])] * 2
    # Asked about another variable, the same entries are drift.
    st = run_cli(d, "bootstrap", "status", "--profile", "dev", "--token-env", "RUNTIMED_AUTH_TOKEN", env=env)
    assert st.returncode == 1 and st.stdout.count(f"DRIFT: sends the token from {VAR}, not RUNTIMED_AUTH_TOKEN") == 2

    # Without --profile too: the gateway's own entry.
    r = run_cli(d, "bootstrap", "--clients", "codex", "--token-env", "MY_ADMIN_TOKEN", env=env)
    assert r.returncode == 0, r.stderr
    assert tomllib.loads((Path(env["CODEX_HOME"]) / "config.toml").read_text())["mcp_servers"]["runtime"] == {
        "url": d.mcp_url, "bearer_token_env_var": "MY_ADMIN_TOKEN"}
    assert "the entries send the token from MY_ADMIN_TOKEN" in r.stdout


def test_bootstrap_refuses_a_bad_token_variable(daemon: DaemonProc, tmp_path: Path) -> None:
    env = temp_homes(tmp_path)
    for bad in ("MY-TOKEN", "1X", "$X", ""):
        r = run_cli(daemon, "bootstrap", "--token-env", bad, env=env)
        assert r.returncode == 2 and "--token-env: invalid token variable" in r.stderr, (bad, r.stderr)
        st = run_cli(daemon, "bootstrap", "status", "--token-env", bad, env=env)
        assert st.returncode == 2 and "invalid token variable" in st.stderr, (bad, st.stderr)
    assert not (Path(env["CODEX_HOME"]) / "config.toml").exists() and not (Path(env["HOME"]) / ".claude.json").exists()
    bridge = run_cli(daemon, "gateway", "serve", "--stdio", "--token-env", "MY-TOKEN", input="")
    assert bridge.returncode == 2 and "--token-env 'MY-TOKEN'" in bridge.stderr
    unset = run_cli(daemon, "gateway", "serve", "--stdio", "--token-env", "UNSET_TOKEN_VAR", input="")
    assert unset.returncode == 1 and "UNSET_TOKEN_VAR is not set" in unset.stderr


async def test_bootstrap_token_env_stdio_entry_run_as_the_client_reaches_the_profile(make_daemon,
                                                                                     tmp_path: Path) -> None:
    """End to end: a daemon with an admin token, profile dev, a scoped token exported under a custom variable
    (with the command the hint prints), the stdio entries each client got started the way that client starts
    them, with the admin's variable set to a wrong token: the bridge sends the scoped one and reaches dev."""
    d = make_daemon(token=ADMIN)
    _profiles(d)
    env = temp_homes(tmp_path)
    r = run_cli(d, "bootstrap", "--profile", "dev", "--token-env", VAR, "--clients", "codex,claude",
                "--transport", "stdio", "--scope", "project", "--project-dir", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    hint = next(line for line in r.stdout.splitlines() if f"export {VAR}=" in line)
    export = hint[hint.index(f"export {VAR}="):]
    claude = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["runtimed-dev"]
    codex = tomllib.loads((tmp_path / ".codex" / "config.toml").read_text())["mcp_servers"]["runtimed-dev"]
    args = ["gateway", "serve", "--stdio", "--profile", "dev", "--token-env", VAR]
    assert claude["args"] == codex["args"] == args
    assert claude["env"] == {"RUNTIMED_URL": d.url, VAR: f"${{{VAR}}}"}
    assert codex["env"] == {"RUNTIMED_URL": d.url} and codex["env_vars"] == [VAR]

    # The hint, run in a shell as the user would (runtimectl on PATH, the admin token in the environment).
    shell_env = {**d.env_for_cli(), "PATH": f"{Path(claude['command']).parent}:{os.environ['PATH']}"}
    p = subprocess.run(["bash", "-c", f'{export} && printf %s "${VAR}"'], capture_output=True, text=True,
                       env=shell_env, cwd=str(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr
    scoped = p.stdout
    assert scoped and scoped != ADMIN and "\n" not in scoped
    assert d.api("GET", "/api/status", headers={"Authorization": f"Bearer {scoped}"}).status_code in (401, 403)

    # The client's environment: the scoped token under VAR, and a wrong token where the bridge looks by default.
    client_env = {k: v for k, v in d.env_for_cli().items() if k != "RUNTIMED_URL"}
    client_env.update({VAR: scoped, "RUNTIMED_AUTH_TOKEN": "w" * 24})
    # Claude Code: its environment, then the entry's env with ${VAR} expanded.
    claude_env = {**client_env, **{k: re.sub(r"\$\{(\w+)\}", lambda m: client_env.get(m.group(1), ""), v)
                                   for k, v in claude["env"].items()}}
    assert await _call(StdioServerParameters(command=claude["command"], args=claude["args"], env=claude_env,
                                             cwd=str(tmp_path))) == ({"plus", "math__hypot", "math__fib"}, "5")
    # Codex: a stdio server gets only a base environment, the entry's env, and the variables in env_vars.
    base = {k: client_env[k] for k in ("PATH", "HOME", "PYTHONPATH", "LANG") if k in client_env}
    codex_env = {**base, **codex["env"], **{v: client_env[v] for v in codex["env_vars"]}}
    assert "RUNTIMED_AUTH_TOKEN" not in codex_env
    assert await _call(StdioServerParameters(command=codex["command"], args=codex["args"], env=codex_env,
                                             cwd=str(tmp_path))) == ({"plus", "math__hypot", "math__fib"}, "5")

    st = run_cli(d, "bootstrap", "status", "--profile", "dev", "--token-env", VAR, "--project-dir", str(tmp_path),
                 "--json", env=env)
    assert st.returncode == 0, st.stdout + st.stderr
    rows = [e for e in json.loads(st.stdout)["entries"] if e["scope"] == "project"]
    assert [(e["transport"], e["endpoint"], e["pointsHere"], e["drift"]) for e in rows] == [
        ("stdio", f"{d.mcp_url}/@dev", True, [])] * 2
