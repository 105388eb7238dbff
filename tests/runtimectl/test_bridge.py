"""The stdio bridge, driven by the official SDK's stdio client against a real
daemon with a real upstream; plus what the bridge does when the daemon is gone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.support.daemon import REPO, DaemonProc
from tests.support.upstream import run_upstream


def _bridge_params(daemon: DaemonProc, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "runtimectl", "gateway", "serve", "--stdio", *extra],
        env=daemon.env_for_cli(),
        cwd=str(REPO),
    )


@pytest.fixture
def served(daemon: DaemonProc):
    with run_upstream("echo_server", "--name", "up") as up:
        r = daemon.api("POST", "/api/services", json={
            "metadata": {"name": "echo"}, "spec": {"origin": {"type": "remote_mcp", "url": up.url}}})
        assert r.status_code == 201, r.text
        daemon.wait_state("echo", "RUNNING")
        yield daemon


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_bridge_lists_and_calls_with_progress(served: DaemonProc, mode: str) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total, message))

    async with Client(_bridge_params(served), mode=mode) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "echo__echo" in names and "runtime__list_services" in names
        res = await c.call_tool("echo__echo", {"text": "through stdio"})
        assert not res.is_error and res.content[0].text == "through stdio"
        res = await c.call_tool("echo__slow", {"seconds": 0.4, "steps": 4}, progress_callback=on_progress)
        assert not res.is_error, res
    assert [p for p, _, _ in progress] == [1, 2, 3, 4], progress


async def test_bridge_many_requests_in_flight(served: DaemonProc) -> None:
    import anyio

    results: dict[int, str] = {}
    async with Client(_bridge_params(served), mode="legacy") as c:
        async def one(i: int) -> None:
            res = await c.call_tool("echo__echo", {"text": f"n{i}"})
            results[i] = res.content[0].text

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0)
            for i in range(1, 12):
                tg.start_soon(one, i)
    assert results == {i: f"n{i}" for i in range(12)}


async def test_bridge_single_service_endpoint(served: DaemonProc) -> None:
    async with Client(_bridge_params(served, "--service", "echo"), mode="legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "echo" in names and "echo__echo" not in names


def test_bridge_answers_errors_when_daemon_is_down(tmp_path) -> None:
    """Requests get JSON-RPC errors, stdout stays pure protocol, and the bridge exits cleanly on EOF."""
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    stdin = "\n".join(json.dumps(m) for m in lines) + "\nnot json\n"
    env = {"RUNTIMED_URL": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "runtimectl", "gateway", "serve", "--stdio"], input=stdin,
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    by_id = {m["id"]: m for m in out}
    assert by_id[1]["error"]["code"] == -32000 and "not reachable" in by_id[1]["error"]["message"]
    assert by_id[2]["error"]["code"] == -32000
    assert by_id[None]["error"]["code"] == -32700
    assert "Traceback" not in proc.stderr


# -- regression, bridge: piped initialize + initialized + tools/list (found by review; fails with its fix reverted; the wrong-token test is a contract guard) ---

TOKEN = "x" * 24

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
    # Each request's error carries its id: a client waits for that id (with id null it hung until its timeout).
    assert {m["id"] for m in out} == {1, 2}, out
