"""``runtimectl`` as a real process against a real daemon: every command's human
and ``--json`` output, exit codes (0 ok, 1 failure, 2 usage), concurrent
mutation, and the message when the daemon is not running. No traceback ever
reaches stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import REPO, run_cli
from tests.support.foundation import closed_port, registry_names
from tests.support.upstream import run_upstream

WIDE = {"COLUMNS": "200"}


def cli(d, *args: str, code: int = 0, **kw) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, **kw)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def cli_json(d, *args: str, code: int = 0):
    return json.loads(cli(d, *args, "--json", code=code).stdout)


# -- concurrency ------------------------------------------------------------------

def test_twenty_cli_processes_adding_at_once_lose_nothing(daemon) -> None:
    d = daemon
    procs = []
    for k in range(20):
        url = f"http://127.0.0.1:{closed_port()}/mcp{k}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "runtimectl", "add", url, "--name", f"s{k}", "--no-start", "--timeout-ms", str(1000 + k)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=d.env_for_cli(), cwd=REPO))
    results = [(p.wait(120), *p.communicate()) for p in procs]
    for k, (rc, out, err) in enumerate(results):
        assert rc == 0 and f"added s{k}" in out, (k, rc, out, err)
    names = {s["name"] for s in cli_json(d, "list")}
    assert names == {f"s{k}" for k in range(20)}
    assert registry_names(d.state_dir) == names
    on_disk = json.loads((d.state_dir / "registry.json").read_text())["services"]
    assert sorted(i["manifest"]["spec"]["policy"]["timeoutMs"] for i in on_disk.values()) == list(range(1000, 1020))


# -- the daemon is not there / usage errors -----------------------------------------

@pytest.mark.parametrize("args", [("list",), ("status",), ("show", "x"), ("logs", "x"), ("start", "x"),
                                  ("add", "http://127.0.0.1:9/mcp", "--no-start"), ("remove", "x")])
def test_daemon_not_running_is_one_clear_line(args: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    res = run_cli(None, "--url", url, *args)
    assert res.returncode == 1, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert f"runtimed is not running at {url}" in lines[0] and "start it with: runtimectl daemon start" in lines[0]
    assert res.stdout == ""


USAGE_ERRORS = [
    (("add", "ftp://example.com/mcp"), "http(s) URL"),
    (("add", "http://127.0.0.1:9/mcp", "--timeout-ms", "-5"), "--timeout-ms must be greater than 0"),
    (("add", "http://127.0.0.1:9/mcp", "--max-concurrency", "0"), "--max-concurrency must be greater than 0"),
    (("add", "http://127.0.0.1:9/mcp", "--transport", "carrier-pigeon"), "--transport"),
    (("add", "http://127.0.0.1:9/mcp", "--rate-limit", "lots"), "--rate-limit"),
    (("add", "notes.txt"), ".wasm or .wat"),
    (("add", "/no/such/tool.wasm"), "no such file"),
    (("add-all", "/no/such/dir"), "not a folder"),
    # stdio: the command goes after --; a command where TARGET goes says so.
    (("add", "npx", "-y", "some-pkg"), "to run a stdio server put it after --: runtimectl add [--name NAME] -- npx -y some-pkg"),
    (("add", "--timeout-ms", "5", "uvx", "mcp-server-fetch"),
     "put it after --: runtimectl add --timeout-ms 5 -- uvx mcp-server-fetch"),
    (("add", "npx -y some-pkg"), "looks like a command: to run a stdio server put it after --"),
    (("add",), "missing TARGET"),
    (("add", "http://127.0.0.1:9/mcp", "--", "npx", "x"), "either TARGET"),
    (("add", "--name", "x", "--"), "nothing after --"),
    (("add", "--env", "NOVALUE", "--", "npx", "x"), "--env must be KEY=VALUE"),
    (("add", "--env", "9X=1", "--", "npx", "x"), "--env '9X'"),
    (("add", "--env", "GITHUB_TOKEN=ghp_literal", "--", "npx", "x"), "--env GITHUB_TOKEN=env:GITHUB_TOKEN"),
    (("add", "--cwd", "/no/such/dir", "--", "npx", "x"), "--cwd /no/such/dir: no such folder"),
    (("add", "--memory-bytes", "lots", "--", "npx", "x"), "--memory-bytes must be a number of bytes"),
    (("add", "--start-timeout-ms", "0", "--", "npx", "x"), "--start-timeout-ms must be greater than 0"),
    (("add", "http://127.0.0.1:9/mcp", "--cwd", "."), "--cwd applies to stdio servers"),
    (("add", "http://127.0.0.1:9/mcp", "--per-client", "--env", "A=1"), "--env, --per-client apply to stdio servers"),
    (("add", "--auth-ref", "env:X", "--", "npx", "x"), "--transport and --auth-ref apply to remote URLs"),
    (("apply", "-f", "/no/such/manifest.json"), "/no/such/manifest.json"),
    (("frobnicate",), ""),
    (("start",), ""),
    (("logs", "x", "--lines", "0"), ""),
]


@pytest.mark.parametrize("args,message", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    # No daemon is needed to refuse bad usage; point at a closed port to prove it.
    res = run_cli(None, "--url", f"http://127.0.0.1:{closed_port()}", *args)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert "ghp_literal" not in res.stderr  # a refused credential is never echoed


def test_bad_input_the_daemon_refuses_exits_1_with_the_reason(daemon, tmp_path: Path) -> None:
    d = daemon
    res = cli(d, "add", "http://127.0.0.1:9/mcp", "--name", "Bad Name", code=1)
    assert "metadata.name" in res.stderr and "must match" in res.stderr
    res = cli(d, "start", "nope", code=1)
    assert "no service named or with id 'nope'" in res.stderr
    bad = tmp_path / "bad.json"
    for manifest, message in [
        ({"metadata": {"name": "b"}, "spec": {"origin": {"type": "remote_mcp", "url": "http://h/mcp"},
                                              "policy": {"timeoutMS": 5}}}, "spec.policy.timeoutMS: unknown field"),
        ({"metadata": {"name": "b"}, "spec": {"origin": {"type": "docker", "image": "x"}}}, "origin.type must be"),
        ({"metadata": {"name": "b"}, "spec": {}}, "spec.origin: Field required"),
        ({"metadata": {"name": "b"}, "spec": {"origin": {"type": "remote_mcp", "url": "gopher://h"}}},
         "url must start with http:// or https://"),
        ({"metadata": {"name": "b"}, "spec": {"origin": {"type": "remote_mcp", "url": "http://h/mcp"},
                                              "policy": {"timeoutMs": -1}}}, "spec.policy.timeoutMs"),
    ]:
        bad.write_text(json.dumps(manifest))
        res = cli(d, "apply", "-f", str(bad), code=1)
        assert message in res.stderr, res.stderr
    bad.write_text("{not json")
    res = cli(d, "apply", "-f", str(bad), code=2)
    assert "not valid JSON" in res.stderr
    toml = tmp_path / "bad.toml"
    toml.write_text("[metadata\nname = 1")
    assert "not valid TOML" in cli(d, "apply", "-f", str(toml), code=2).stderr
    assert cli_json(d, "list") == []  # nothing half-registered


def test_token_missing_says_how_to_fix(make_daemon) -> None:
    d = make_daemon("tok", token="cli-token-0123456789abcdef")
    env = d.env_for_cli()
    env.pop("RUNTIMED_AUTH_TOKEN")
    res = subprocess.run([sys.executable, "-m", "runtimectl", "list"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=60)
    assert res.returncode == 1 and "--token" in res.stderr and "Traceback" not in res.stderr
    assert cli(d, "list").returncode == 0


# -- every command, human and --json ---------------------------------------------------

def test_every_service_command_human_and_json(daemon, tmp_path: Path) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        # add
        added = cli_json(d, "add", up.url, "--name", "echo", "--timeout-ms", "5000", "--deny-tools", "stats")
        assert added["created"] is True and added["service"]["name"] == "echo"
        assert added["service"]["state"] == "RUNNING" and added["service"]["id"].startswith("svc_")
        sid = added["service"]["id"]
        idle_url = f"http://127.0.0.1:{closed_port()}/mcp"
        res = cli(d, "add", idle_url, "--name", "idle", "--no-start")
        assert res.stdout.startswith("added idle (svc_") and res.stdout.strip().endswith(": REGISTERED")

        # list
        res = cli(d, "list", env=WIDE)
        header, *rows = res.stdout.splitlines()
        assert header.split() == ["NAME", "ID", "STATE", "HEALTH", "TOOLS", "ORIGIN"]
        assert any(r.split()[:3] == ["echo", sid, "RUNNING"] and up.url in r for r in rows)
        assert any(r.split()[0] == "idle" and "REGISTERED" in r for r in rows)
        listed = cli_json(d, "list")
        assert [s["name"] for s in listed] == ["echo", "idle"] and listed[0]["toolCount"] > 0

        # status
        res = cli(d, "status")
        assert "runtimed " in res.stdout and f"MCP endpoint: {d.url}/mcp" in res.stdout
        assert "services: 2 (registered 1, running 1)" in res.stdout
        st = cli_json(d, "status")
        assert st["services"] == 2 and st["byState"]["RUNNING"] == 1 and st["endpoints"]["mcp"] == d.url + "/mcp"

        # introspect
        res = cli(d, "introspect", "echo")
        assert res.stdout.startswith("revision ") and " tools, " in res.stdout
        iface = cli_json(d, "introspect", sid)  # by id too
        names = {t["name"] for t in iface["tools"]}
        assert {"echo", "add"} <= names and iface["revision"]
        cli(d, "introspect", "idle", code=1)  # not running

        # show
        res = cli(d, "show", "echo")
        out = res.stdout
        assert out.startswith(f"echo ({sid})")
        assert f"origin:     remote_mcp {up.url} [streamable_http]" in out
        assert "state:      RUNNING" in out and "health:     HEALTHY" in out
        assert "timeoutMs: 5000" in out and "- echo" in out and "recent events:" in out
        shown = cli_json(d, "show", "echo")
        assert shown["service"]["manifest"]["spec"]["policy"]["deniedTools"] == ["stats"]
        assert {"echo", "add"} <= {t["name"] for t in shown["interface"]["tools"]}
        assert any(e["type"] == "transition" and e["to"] == "RUNNING" for e in shown["events"])

        # stop / start / restart
        assert cli(d, "stop", "echo").stdout.strip() == "echo: STOPPED"
        assert cli_json(d, "stop", "echo")["state"] == "STOPPED"
        assert cli(d, "start", "echo").stdout.strip() == "echo: RUNNING"
        assert cli_json(d, "start", sid)["state"] == "RUNNING"
        assert cli(d, "restart", "echo").stdout.strip() == "echo: RUNNING"
        restarted = cli_json(d, "restart", "echo")
        assert restarted["state"] == "RUNNING" and restarted["name"] == "echo"

        # logs (and --follow)
        res = cli(d, "logs", "echo")
        assert "STARTING -> RUNNING" in res.stdout and "INFO" in res.stdout
        lines = [json.loads(ln) for ln in cli(d, "logs", "echo", "--json").stdout.splitlines()]
        assert lines and all({"seq", "time", "level", "message"} <= set(ln) for ln in lines)
        assert [ln["seq"] for ln in lines] == sorted(ln["seq"] for ln in lines)
        assert len(cli(d, "logs", "echo", "-n", "2").stdout.splitlines()) == 2
        follow = subprocess.Popen([sys.executable, "-m", "runtimectl", "logs", "echo", "--follow", "-n", "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=d.env_for_cli(), cwd=REPO)
        try:
            first = follow.stdout.readline()
            assert first.strip(), follow.stderr.read() if follow.poll() is not None else "no line"
            cli(d, "stop", "echo")  # a new line arrives while following
            nxt = follow.stdout.readline()
            assert "RUNNING -> STOPPING" in nxt or "STOPPING" in nxt, nxt
            assert follow.poll() is None  # still following
        finally:
            follow.kill()
            follow.wait(30)
        assert "Traceback" not in follow.stderr.read()

        # remove
        res = cli(d, "remove", "idle")
        assert res.stdout.strip().startswith("removed idle (svc_")
        removed = cli_json(d, "remove", "echo")
        assert removed == {"removed": "echo", "id": sid}
        assert cli_json(d, "list") == []
        assert "no services registered" in cli(d, "list").stdout
        cli(d, "remove", "echo", code=1)


def test_unquarantine_human_and_json(daemon) -> None:
    d = daemon
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    # (add of an origin nothing listens at registers nothing: test_unreachable.py; --no-start, then start.)
    cli(d, "add", url, "--name", "q", "--restart", "on-failure", "--max-restarts", "0", "--no-start")
    res = cli(d, "start", "q", code=1)
    assert res.stdout.startswith("q: QUARANTINED")
    assert d.service("q")["state"] == "QUARANTINED"
    res = cli(d, "unquarantine", "q", code=1)  # still failing: quarantined again, and says why
    assert res.stdout.startswith("q: QUARANTINED: start failed")
    out = cli_json(d, "unquarantine", "q", code=1)
    assert out["state"] == "QUARANTINED" and "failures within" in out["quarantineReason"]
    cli(d, "stop", "q")  # quarantined services stay quarantined
    assert d.service("q")["state"] == "QUARANTINED"
    cli(d, "add", f"http://127.0.0.1:{closed_port()}/mcp", "--name", "fine", "--no-start")
    res = cli(d, "unquarantine", "fine", code=1)
    assert "not quarantined" in res.stderr


def test_apply_json_and_toml(daemon, tmp_path: Path) -> None:
    d = daemon
    p1, p2, p3 = closed_port(), closed_port(), closed_port()
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"services": [
        {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "a1"},
         "spec": {"origin": {"type": "remote_mcp", "url": f"http://127.0.0.1:{p1}/mcp"}, "autostart": False}},
        {"metadata": {"name": "a2", "labels": {"team": "x"}},
         "spec": {"origin": {"type": "remote_mcp", "url": f"http://127.0.0.1:{p2}/mcp"}, "autostart": False,
                  "policy": {"maxPayloadBytes": 1000}}},
    ]}))
    res = cli(d, "apply", "-f", str(many))
    assert res.stdout.splitlines()[0].startswith("added a1 (svc_") and "REGISTERED" in res.stdout
    assert "added a2" in res.stdout
    again = cli_json(d, "apply", "-f", str(many))
    assert again["failed"] == 0 and [r["created"] for r in again["results"]] == [False, False]
    assert "updated a1" in cli(d, "apply", "-f", str(many)).stdout

    toml = tmp_path / "one.toml"
    toml.write_text(f'''apiVersion = "runtimed/v1"
kind = "MCPService"
[metadata]
name = "t1"
description = "from TOML"
[spec]
autostart = false
[spec.origin]
type = "remote_mcp"
url = "http://127.0.0.1:{p3}/mcp"
[spec.policy]
timeoutMs = 2500
allowedTools = ["read_*"]
''')
    res = cli_json(d, "apply", "-f", str(toml))
    svc = res["results"][0]["service"]
    assert res["results"][0]["created"] and svc["name"] == "t1" and svc["description"] == "from TOML"
    assert svc["manifest"]["spec"]["policy"] == {"timeoutMs": 2500, "allowedTools": ["read_*"], "deniedTools": [],
                                                 "readOnly": False}
    # stdin
    stdin_manifest = {"metadata": {"name": "s1"}, "spec": {"autostart": False, "origin": {
        "type": "remote_mcp", "url": f"http://127.0.0.1:{p3}/other"}}}
    assert "added s1" in cli(d, "apply", "-f", "-", input=json.dumps(stdin_manifest)).stdout
    assert {s["name"] for s in cli_json(d, "list")} == {"a1", "a2", "t1", "s1"}


def test_add_wat_and_add_all(daemon, tmp_path: Path) -> None:
    d = daemon
    folder = tmp_path / "tools"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "wasm" / "upper.wat", folder / "upper.wat")
    shutil.copy(REPO / "examples" / "wasm" / "math.wat", folder / "sub" / "math.wat")
    res = cli(d, "add-all", str(folder), "--no-start")
    assert res.stdout.strip() == f"ok    {folder / 'upper.wat'} -> upper (REGISTERED)"
    out = cli_json(d, "add-all", str(folder), "--recursive", "--no-start")
    assert out["failed"] == 0
    assert sorted((r["service"], r["state"]) for r in out["results"]) == [("math", "REGISTERED"),
                                                                         ("upper", "REGISTERED")]
    (folder / "broken.wat").write_text("(module (this is not wat")
    res = cli(d, "add-all", str(folder), "--no-start", code=1)
    assert f"FAIL  {folder / 'broken.wat'}:" in res.stdout and "ok    " in res.stdout
    # A single file, started: a local tool runs.
    single = tmp_path / "solo.wat"
    shutil.copy(REPO / "examples" / "wasm" / "upper.wat", single)
    added = cli_json(d, "add", str(single), "--name", "solo")
    assert added["service"]["state"] == "RUNNING" and added["service"]["origin"]["type"] == "local_wasm"
    assert added["service"]["origin"]["sha256"]
    assert "upper" in {t["name"] for t in cli_json(d, "introspect", "solo")["tools"]}


# -- apply -f: relative paths are the manifest file's --------------------------------------------------------------

def test_apply_takes_relative_paths_from_the_manifest_files_folder(daemon, tmp_path: Path) -> None:
    d = daemon
    proj = tmp_path / "proj"
    (proj / "tools").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "wasm" / "upper.wat", proj / "tools" / "upper.wat")
    shutil.copy(REPO / "examples" / "wasm" / "math.wat", proj / "math.wat")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (proj / "up.json").write_text(json.dumps(
        {"metadata": {"name": "up"}, "spec": {"autostart": False, "origin": {"type": "local_wasm", "path": "tools/upper.wat"}}}))
    (proj / "math.toml").write_text('[metadata]\nname = "m"\n[spec]\nautostart = false\n'
                                    '[spec.origin]\ntype = "local_wasm"\npath = "./math.wat"\n')

    def run_from(cwd: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([sys.executable, "-m", "runtimectl", *args], capture_output=True, text=True,
                             env={**d.env_for_cli(), "PYTHONPATH": str(REPO)}, cwd=cwd, timeout=60, input=input)
        assert res.returncode == 0 and "Traceback" not in res.stderr, (res.stdout, res.stderr)
        return res

    run_from(elsewhere, "apply", "-f", str(proj / "up.json"))
    run_from(elsewhere, "apply", "-f", os.path.relpath(proj / "math.toml", elsewhere))
    assert d.service("up")["origin"]["path"] == str(proj / "tools" / "upper.wat")
    assert d.service("m")["origin"]["path"] == str(proj / "math.wat")
    # It runs (the daemon found the file).
    run_from(elsewhere, "start", "up")
    assert d.service("up")["state"] == "RUNNING"
    # stdin: relative to where runtimectl runs (the same file: the same origin, so an update of "up").
    stdin_manifest = {"metadata": {"name": "up"}, "spec": {"autostart": False,
                                                           "origin": {"type": "local_wasm", "path": "tools/upper.wat"}}}
    assert "updated up" in run_from(proj, "apply", "-f", "-", input=json.dumps(stdin_manifest)).stdout
    assert {s["name"] for s in cli_json(d, "list")} == {"up", "m"}


# -- stdio --------------------------------------------------------------------------------------------------------

def test_apply_a_stdio_credential_literal_is_refused_by_field_without_the_value(daemon, tmp_path: Path) -> None:
    manifest = tmp_path / "gh.json"
    manifest.write_text(json.dumps({"metadata": {"name": "gh"}, "spec": {"origin": {
        "type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_do_not_echo_me"}}}}))
    res = cli(daemon, "apply", "-f", str(manifest), code=1)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("runtimectl: gh: ") and "spec.origin." in lines[0]
    assert ".env: env GITHUB_PERSONAL_ACCESS_TOKEN looks like a credential" in lines[0] and "env:VAR" in lines[0]
    assert "ghp_do_not_echo_me" not in res.stderr + res.stdout
    assert cli_json(daemon, "list") == []


def test_add_stdio_end_to_end(daemon) -> None:
    """A FastMCP server run over stdio, added with everything after --, started, listed and shown."""
    d = daemon
    res = cli(d, "add", "--name", "fm", "--cwd", ".", "--env", "LOG_LEVEL=warning", "--timeout-ms", "20000",
              "--", sys.executable, "tests/upstreams/fastmcp_stdio_server.py", "--name", "fm-upstream")
    assert res.stdout.startswith("added fm (svc_") and "RUNNING" in res.stdout, res.stdout + res.stderr
    listed = {s["name"]: s for s in cli_json(d, "list")}
    assert listed["fm"]["state"] == "RUNNING" and listed["fm"]["toolCount"] > 0
    svc = d.service("fm")
    assert svc["origin"]["type"] == "stdio" and svc["origin"]["cwd"] == str(REPO)
    assert svc["origin"]["args"] == ["tests/upstreams/fastmcp_stdio_server.py", "--name", "fm-upstream"]
    assert "echo" in {t["name"] for t in cli_json(d, "introspect", "fm")["tools"]}
    shown = cli(d, "show", "fm").stdout
    assert f"origin:     stdio {sys.executable} tests/upstreams/fastmcp_stdio_server.py --name fm-upstream" in shown
    assert f"cwd:        {REPO}" in shown and "env:        LOG_LEVEL" in shown
