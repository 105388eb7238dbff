"""Bootstrap with ``token_env``: entries that send the token from a variable other than
``RUNTIMED_AUTH_TOKEN`` (a profile's scoped token beside the others), exactly as each client reads
them (both clients, both transports), read back by status as current, and a bad variable name
refused. Real files in temp dirs; HOME and CODEX_HOME point there."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from runtimed.bootstrap import BootstrapError, apply_plan, plan_bootstrap, status
from runtimed.bootstrap.entries import entry_token_env, stdio_args, stdio_endpoint

EP = "http://127.0.0.1:4707/mcp"
DEV = EP + "/@dev"
VAR = "RUNTIMED_TOKEN_DEV"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home, codex_home, project = tmp_path / "home", tmp_path / "codex-home", tmp_path / "project"
    for d in (home, project):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    monkeypatch.chdir(project)
    return {"codex": codex_home / "config.toml", "claude": home / ".claude.json"}


@pytest.fixture
def rtctl(tmp_path: Path) -> str:
    """An executable named runtimectl (status checks the stdio command is one)."""
    exe = tmp_path / "bin" / "runtimectl"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return str(exe)


def test_http_entries_send_the_token_from_the_variable(files):
    plan = plan_bootstrap(["codex", "claude"], endpoint=DEV, name="runtimed-dev", token_env=VAR)
    assert f"the daemon requires a token: export {VAR} in the environment the clients start from; the files " \
           "reference it by name and never contain it" in plan.notes  # naming a variable means a token is sent
    apply_plan(plan)
    codex = files["codex"].read_text()
    assert codex == f'[mcp_servers.runtimed-dev]\nurl = "{DEV}"\nbearer_token_env_var = "{VAR}"\n'
    assert tomllib.loads(codex)["mcp_servers"]["runtimed-dev"] == {"url": DEV, "bearer_token_env_var": VAR}
    assert json.loads(files["claude"].read_text())["mcpServers"]["runtimed-dev"] == {
        "type": "http", "url": DEV, "headers": {"Authorization": f"Bearer ${{{VAR}}}"}}
    assert "RUNTIMED_AUTH_TOKEN" not in codex + files["claude"].read_text()

    for s in status(endpoint=DEV, name="runtimed-dev", token_configured=True, token_env=VAR):
        assert (s.entry_present, s.transport, s.points_here, s.drift) == (True, "http", True, ()), s
    for s in status(endpoint=DEV, name="runtimed-dev", token_configured=True):  # any variable will do
        assert s.ok and s.drift == (), s
    for s in status(endpoint=DEV, name="runtimed-dev", token_configured=True, token_env="RUNTIMED_AUTH_TOKEN"):
        assert s.drift == (f"sends the token from {VAR}, not RUNTIMED_AUTH_TOKEN",), s
    # Running it again changes nothing.
    again = plan_bootstrap(["codex", "claude"], endpoint=DEV, name="runtimed-dev", token_env=VAR)
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]


def test_stdio_entries_forward_the_variable_and_tell_the_bridge(files, rtctl):
    plan = plan_bootstrap(["codex", "claude"], endpoint=DEV, name="runtimed-dev", transport="stdio",
                          runtimectl_path=rtctl, token_env=VAR)
    assert f"the stdio bridge reads the token from {VAR} in the client's environment" in plan.notes
    apply_plan(plan)
    args = ["gateway", "serve", "--stdio", "--profile", "dev", "--token-env", VAR]
    assert tomllib.loads(files["codex"].read_text())["mcp_servers"]["runtimed-dev"] == {
        "command": rtctl, "args": args, "env": {"RUNTIMED_URL": "http://127.0.0.1:4707"}, "env_vars": [VAR]}
    assert json.loads(files["claude"].read_text())["mcpServers"]["runtimed-dev"] == {
        "type": "stdio", "command": rtctl, "args": args,
        "env": {"RUNTIMED_URL": "http://127.0.0.1:4707", VAR: f"${{{VAR}}}"}}

    for s in status(endpoint=DEV, name="runtimed-dev", token_configured=True, token_env=VAR):
        assert (s.transport, s.endpoint, s.points_here, s.drift) == ("stdio", DEV, True, ()), s
    (other,) = status(["codex"], endpoint=DEV, name="runtimed-dev", token_configured=True, token_env="OTHER_TOKEN")
    assert other.drift == (f"sends the token from {VAR}, not OTHER_TOKEN",)


def test_status_finds_a_bridge_whose_variable_is_not_forwarded(files, rtctl):
    """Codex passes a stdio server only the variables in env_vars: a bridge told to read one not there is drift."""
    files["codex"].parent.mkdir()
    files["codex"].write_text(f'[mcp_servers.runtime]\ncommand = "{rtctl}"\n'
                              f'args = ["gateway", "serve", "--stdio", "--token-env", "{VAR}"]\n'
                              'env_vars = ["RUNTIMED_AUTH_TOKEN"]\n')
    (s,) = status(["codex"], endpoint=EP, token_env=VAR)
    assert s.points_here and s.drift == (f"the bridge reads the token from {VAR} but it is not forwarded (env_vars)",)


def test_the_gateway_entry_takes_a_variable_too(files):
    apply_plan(plan_bootstrap(["codex"], endpoint=EP, token_env="MY_TOKEN"))
    assert tomllib.loads(files["codex"].read_text())["mcp_servers"]["runtime"] == {
        "url": EP, "bearer_token_env_var": "MY_TOKEN"}
    (s,) = status(["codex"], endpoint=EP, token_configured=True, token_env="MY_TOKEN")
    assert s.ok and s.drift == ()


def test_default_variable_keeps_the_entries_as_before(files, rtctl):
    """token_env RUNTIMED_AUTH_TOKEN is the default: no --token-env in the bridge's arguments."""
    plan = plan_bootstrap(["codex"], endpoint=DEV, name="runtimed-dev", transport="stdio", runtimectl_path=rtctl,
                          token_env="RUNTIMED_AUTH_TOKEN")
    apply_plan(plan)
    entry = tomllib.loads(files["codex"].read_text())["mcp_servers"]["runtimed-dev"]
    assert entry["args"] == ["gateway", "serve", "--stdio", "--profile", "dev"]
    assert entry["env_vars"] == ["RUNTIMED_AUTH_TOKEN"]


def test_helpers_read_the_variable_back():
    assert stdio_args(DEV, VAR) == ["gateway", "serve", "--stdio", "--profile", "dev", "--token-env", VAR]
    assert stdio_args(EP, VAR) == ["gateway", "serve", "--stdio", "--token-env", VAR]
    assert stdio_endpoint("http://127.0.0.1:4707", stdio_args(DEV, VAR)) == DEV
    assert entry_token_env("codex", {"command": "x", "args": stdio_args(DEV, VAR)}) == VAR
    assert entry_token_env("codex", {"command": "x", "args": ["--token-env=T2"]}) == "T2"
    assert entry_token_env("claude", {"command": "x", "args": ["gateway", "serve", "--stdio"]}) == "RUNTIMED_AUTH_TOKEN"
    assert entry_token_env("codex", {"url": EP, "bearer_token_env_var": VAR}) == VAR
    assert entry_token_env("codex", {"url": EP}) is None
    assert entry_token_env("claude", {"url": EP, "headers": {"authorization": f"Bearer ${{{VAR}}}"}}) == VAR
    assert entry_token_env("claude", {"url": EP, "headers": {"Authorization": "Bearer abc"}}) is None


@pytest.mark.parametrize("bad", ["", "1TOKEN", "MY-TOKEN", "MY TOKEN", "TOK$EN", "T\n", "A" * 129, "${X}"])
def test_a_bad_variable_name_is_refused(files, bad):
    with pytest.raises(BootstrapError, match="invalid token variable"):
        plan_bootstrap(["codex", "claude"], endpoint=EP, token_env=bad)
    with pytest.raises(BootstrapError, match="invalid token variable"):
        status(endpoint=EP, token_env=bad)
    assert not files["codex"].exists() and not files["claude"].exists()


def test_longest_name_is_accepted(files):
    var = "_" + "A" * 127
    apply_plan(plan_bootstrap(["codex"], endpoint=EP, token_env=var))
    assert tomllib.loads(files["codex"].read_text())["mcp_servers"]["runtime"]["bearer_token_env_var"] == var
