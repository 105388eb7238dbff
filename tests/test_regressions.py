"""Regression tests for bugs fixed by review (each was verified by hand before).

Every test drives a real ``runtimed`` (and, where needed, a real upstream or a
real ``runtimectl`` process). Each was run against a copy of the tree with its fix reverted and
fails there, except where a test says it is a guard:

1. web: the fragment name echoed in a 404 of /api/ui/... is HTML-escaped.
2. wasm: an origin path that cannot be resolved is a 422, not a 500.
3. secrets: an authRef ``file:`` symlink loop is a clear start failure.
4. registry: bad createdAt/updatedAt/generation is an unreadable registry.
5. config: an unreadable config.toml is a one-line error, exit 2.
6. bridge: initialize + initialized + tools/list piped at once all succeed.
7. api_bootstrap: ``"clients": "codex, claude"`` is stripped and accepted (a guard: bootstrap.py
   strips too, so this passed before the fix as well).
8. manifest: a credential-named query parameter in a remote url is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import REPO, DaemonProc
from tests.support.foundation import (
    closed_port,
    read_registry,
    remote_manifest,
    run_daemon_expect_exit,
)
from tests.support.upstream import run_upstream

TOKEN = "x" * 24


# -- 1. web: escaped fragment names ------------------------------------------------------------

@pytest.mark.parametrize(
    "path",
    [
        "/api/ui/%3Cimg%20src%3Dx%3E",
        "/api/ui/services/anything/%3Cimg%20src%3Dx%3E",
    ],
)
def test_unknown_fragment_name_is_escaped_in_404(daemon: DaemonProc, path: str) -> None:
    r = daemon.api("GET", path)
    assert r.status_code == 404, r.text
    assert "&lt;img" in r.text, r.text
    assert "<img" not in r.text, r.text


# -- 2. wasm: unresolvable origin paths ---------------------------------------------------------

def _wasm_manifest(name: str, path: str) -> dict:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "local_wasm", "path": path}}}


def _loop(dir_: Path, name: str = "loop") -> Path:
    """A symlink pointing at itself: resolving it is a loop."""
    dir_.mkdir(parents=True, exist_ok=True)
    link = dir_ / name
    os.symlink(link, link)
    return link


@pytest.mark.parametrize("kind", ["unknown_user", "symlink_loop", "nul_byte"])
def test_unresolvable_wasm_path_is_422(daemon: DaemonProc, tmp_path: Path, kind: str) -> None:
    if kind == "unknown_user":
        path = "~nosuchuser-regression-x/x.wat"
    elif kind == "symlink_loop":
        path = str(_loop(tmp_path / "wasm", "loop.wat"))
    else:
        path = str(tmp_path / "a\x00b.wat")
    r = daemon.api("POST", "/api/services", json=_wasm_manifest("w", path))
    assert r.status_code == 422, (r.status_code, r.text)
    msg = json.dumps(r.json())
    assert "not a usable file path" in msg, msg
    assert "Traceback" not in daemon.log()
    # Nothing was registered, and the daemon still answers.
    assert daemon.api("GET", "/api/services/w").status_code == 404
    assert daemon.api("GET", "/healthz").status_code == 200


# -- 3. secrets: authRef file: symlink loop -----------------------------------------------------

def test_auth_ref_file_symlink_loop_is_a_clear_start_failure(daemon: DaemonProc) -> None:
    _loop(daemon.state_dir / "secrets", "loop")
    with run_upstream("echo_server", "--name", "up") as up:
        m = remote_manifest("sec", up.url, restartPolicy={"mode": "never"})
        m["spec"]["origin"]["authRef"] = "file:loop"
        r = daemon.api("POST", "/api/services", json=m)
        assert r.status_code in (200, 201), r.text
        svc = daemon.wait_state("sec", "CRASHED")
        err = svc["lastError"] or ""
        assert "file:loop" in err and "symlink loop" in err, err
        assert "internal error" not in err, err  # was: "internal error RuntimeError: Symlink loop from ..."
        assert "Traceback" not in daemon.log()
    # The daemon keeps serving: another service (another upstream) starts.
    with run_upstream("echo_server", "--name", "up2") as up2:
        r = daemon.api("POST", "/api/services", json=remote_manifest("ok", up2.url))
        assert r.status_code in (200, 201), r.text
        daemon.wait_state("ok", "RUNNING")
    assert daemon.service("sec")["state"] == "CRASHED"


async def test_auth_ref_file_turned_into_symlink_loop_is_is_error(daemon: DaemonProc) -> None:
    """The secret is read at every request: a file replaced by a loop makes the call isError, no crash."""
    from mcp import Client

    secrets = daemon.state_dir / "secrets"
    secrets.mkdir()
    (secrets / "tok").write_text("not-a-real-secret-0123456789\n")
    with run_upstream("echo_server", "--name", "up") as up:
        m = remote_manifest("sec", up.url, restartPolicy={"mode": "never"})
        m["spec"]["origin"]["authRef"] = "file:tok"
        r = daemon.api("POST", "/api/services", json=m)
        assert r.status_code in (200, 201), r.text
        daemon.wait_state("sec", "RUNNING")
        (secrets / "tok").unlink()
        os.symlink(secrets / "tok", secrets / "tok")
        async with Client(daemon.mcp_url, mode="legacy") as c:
            res = await c.call_tool("sec__echo", {"text": "hi"})
            assert res.is_error, res
            text = " ".join(getattr(b, "text", "") for b in res.content)
            assert "file:tok" in text and "symlink loop" in text, text
            assert "internal error" not in text.lower(), text
            # The daemon still answers on the same session.
            names = {t.name for t in (await c.list_tools()).tools}
            assert "runtime__list_services" in names
    assert "Traceback" not in daemon.log()


# -- 4. registry: bad createdAt/updatedAt/generation --------------------------------------------

def _registered_state(make_daemon, name: str) -> DaemonProc:
    """A stopped daemon whose registry.json and last good copy hold one remote service 'a'."""
    d = make_daemon(name)
    m = remote_manifest("a", f"http://127.0.0.1:{closed_port()}/mcp", restartPolicy={"mode": "never"})
    r = d.api("POST", "/api/services", json=m)
    assert r.status_code in (200, 201), r.text
    d.stop()
    return d


def _spoil(state_dir: Path, how: str) -> None:
    doc = read_registry(state_dir)
    if how == "generation":
        doc["generation"] = "many"
    else:
        for item in doc["services"].values():
            item[how] = "yesterday"
    (state_dir / "registry.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("how", ["createdAt", "updatedAt", "generation"])
def test_bad_registry_field_recovers_from_last_good(make_daemon, how: str) -> None:
    d = _registered_state(make_daemon, f"st-{how}")
    assert (d.state_dir / "registry.last-good.json").exists()
    _spoil(d.state_dir, how)
    d.start()
    assert d.api("GET", "/api/services/a").status_code == 200
    log = d.log()
    assert "Traceback" not in log, log[-3000:]
    assert "unreadable" in log, log[-3000:]
    # The spoiled file was kept aside and a clean one written back.
    assert list(d.state_dir.glob("registry.corrupt-*.json"))
    d.stop()


@pytest.mark.parametrize("how", ["createdAt", "generation"])
def test_bad_registry_field_without_last_good_refuses_clearly(make_daemon, how: str) -> None:
    d = _registered_state(make_daemon, f"nolg-{how}")
    (d.state_dir / "registry.last-good.json").unlink()
    _spoil(d.state_dir, how)
    spoiled = (d.state_dir / "registry.json").read_bytes()
    p = run_daemon_expect_exit(d.state_dir)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    assert "no last good copy" in p.stderr and "registry.json" in p.stderr, p.stderr
    assert (d.state_dir / "registry.json").read_bytes() == spoiled  # left for inspection


# -- 5. config: unreadable config.toml ----------------------------------------------------------

def test_config_toml_that_is_a_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "config.toml").mkdir(parents=True)
    p = run_daemon_expect_exit(state)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert str(state / "config.toml") in lines[0] and "cannot be read" in lines[0], lines[0]


# -- 6. bridge: piped initialize + initialized + tools/list --------------------------------------

_PIPED = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
]


def _bridge(d: DaemonProc, token: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    env = d.env_for_cli()
    env["RUNTIMED_AUTH_TOKEN"] = token
    # One write to stdin: all three lines are there before the bridge reads the first.
    p = subprocess.run([sys.executable, "-m", "runtimectl", "gateway", "serve", "--stdio"],
                       input="".join(json.dumps(m) + "\n" for m in _PIPED), capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=90)
    out = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return p, out


def test_bridge_piped_initialize_and_tools_list(make_daemon) -> None:
    d = make_daemon(token=TOKEN)
    p, out = _bridge(d, TOKEN)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    by_id = {m.get("id"): m for m in out}
    assert set(by_id) == {1, 2}, out
    assert "result" in by_id[1] and by_id[1]["result"]["protocolVersion"], by_id[1]
    assert "result" in by_id[2], by_id[2]  # was: error "missing Mcp-Session-Id"
    names = {t["name"] for t in by_id[2]["result"]["tools"]}
    assert "runtime__list_services" in names, names
    assert "Mcp-Session-Id" not in p.stdout


def test_bridge_wrong_token_answers_an_error(make_daemon) -> None:
    """Contract guard (passed before the bridge fix too): a 401 is relayed as JSON-RPC errors, no crash."""
    d = make_daemon(token=TOKEN)
    p, out = _bridge(d, "y" * 24)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert out, "the bridge answered nothing"
    assert all(m.get("jsonrpc") == "2.0" and "error" in m and "result" not in m for m in out), out
    assert any("bearer token" in m["error"]["message"] for m in out), out


# -- 7. api_bootstrap: comma string of clients --------------------------------------------------

@pytest.mark.parametrize("endpoint", ["/api/bootstrap", "/api/bootstrap/remove"])
def test_bootstrap_clients_comma_string_with_spaces(make_daemon, tmp_path: Path, endpoint: str) -> None:
    """Contract guard, not a pure regression test: bootstrap._clients already strips each name, so the
    API answered 200 before the api_bootstrap fix too (checked by reverting 0dee0ef); this fails only if
    neither layer strips."""
    home = tmp_path / "home"
    home.mkdir()
    d = make_daemon(env={"HOME": str(home), "CODEX_HOME": str(home / ".codex")})
    r = d.api("POST", endpoint, json={"clients": "codex, claude", "dryRun": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dryRun"] is True
    assert {c["client"] for c in body["plan"]["files"]} >= {"codex", "claude"}, body
    # A dry run writes nothing.
    assert not (home / ".codex" / "config.toml").exists()
    assert not (home / ".claude.json").exists()


# -- 8. manifest: credential-named query parameters ---------------------------------------------

@pytest.mark.parametrize("query", ["api_key=sekrit-value-123", "token=sekrit-value-123",
                                   "access_token=sekrit-value-123", "region=eu&apiKey=sekrit-value-123"])
def test_remote_url_with_credential_query_is_refused(daemon: DaemonProc, query: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp?{query}"
    r = daemon.api("POST", "/api/services", json=remote_manifest("q", url, restartPolicy={"mode": "never"}))
    assert r.status_code == 422, (r.status_code, r.text)
    assert "authRef" in r.text, r.text
    assert "sekrit-value-123" not in r.text, r.text  # the refusal names the parameter, never its value
    assert daemon.api("GET", "/api/services/q").status_code == 404


def test_remote_url_with_ordinary_query_is_accepted(daemon: DaemonProc) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp?region=eu"
    r = daemon.api("POST", "/api/services", json=remote_manifest("q", url, restartPolicy={"mode": "never"}))
    assert r.status_code in (200, 201), r.text
    assert daemon.service("q")["manifest"]["spec"]["origin"]["url"].endswith("/mcp?region=eu")
