"""A service's resolved secret values never leave the daemon through upstream text (issue 14,
item 8): an upstream that echoes the credential it was sent (a remote service's ``authRef``, a
stdio service's ``env:`` reference) in an error, a tool result, a log notification or a failed
start has it masked as ``[secret]`` in what the gateway forwards to clients and in everything it
records (service state, events, logs, call records, the status page, the state dir, its own log).

Real daemon, real upstreams (``faulty_server`` echoes its ``Authorization`` header;
``stdio_server``'s ``environment`` tool returns its whole environment), raw MCP over HTTP in both
eras so the bytes a client receives are what is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.daemon import DaemonProc
from tests.support.foundation import remote_manifest
from tests.support.upstream import run_upstream, stdio_argv

REMOTE_SECRET = "leaky-credential-8c1f2e9a"
STDIO_SECRET = "stdio-credential-5b7d3e1c"
MASK = "[secret]"
ACCEPT = "application/json, text/event-stream"
STATELESS = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": STATELESS, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "leak-test", "version": "1"}}


def _post(d: DaemonProc, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    h = {"Accept": ACCEPT, "Content-Type": "application/json", **(headers or {})}
    return httpx.post(d.mcp_url, content=json.dumps(body).encode(), headers=h, timeout=60)


def _session(d: DaemonProc) -> str:
    r = _post(d, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "leak-test", "version": "1"}}})
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    _post(d, {"jsonrpc": "2.0", "method": "notifications/initialized"},
          {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    return sid


def _call_session(d: DaemonProc, sid: str, tool: str, args: dict[str, Any] | None = None) -> str:
    r = _post(d, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args or {}}},
              {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 200, r.text
    return r.text


def _call_stateless(d: DaemonProc, tool: str, args: dict[str, Any] | None = None) -> str:
    r = _post(d, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                  "params": {"name": tool, "arguments": args or {}, "_meta": META}},
              {"MCP-Protocol-Version": STATELESS, "Mcp-Method": "tools/call", "Mcp-Name": tool})
    assert r.status_code == 200, r.text
    return r.text


def _everything_recorded(d: DaemonProc, services: list[str]) -> dict[str, str]:
    """Every place the daemon shows or keeps what it saw: API, status page, metrics, state dir, log."""
    out: dict[str, str] = {}
    paths = ["/api/status", "/api/services", "/api/events?limit=2000", "/metrics", "/status",
             "/api/ui/overview", "/api/ui/services", "/api/ui/insights"]
    for name in services:
        paths += [f"/api/services/{name}", f"/api/services/{name}/logs?limit=1000", f"/api/services/{name}/interface",
                  f"/status/services/{name}", *(f"/api/ui/services/{name}/{p}"
                                                 for p in ("summary", "interface", "calls", "logs", "events"))]
    for p in paths:
        r = d.api("GET", p)
        assert r.status_code == 200, (p, r.status_code, r.text[:300])
        out[p] = r.text
    for f in sorted(Path(d.state_dir).rglob("*")):
        if f.is_file():
            out[str(f)] = f.read_bytes().decode("utf-8", "replace")
    out["daemon log"] = d.log()
    return out


def test_remote_credential_echoed_by_the_upstream_is_masked(make_daemon) -> None:
    with run_upstream("faulty_server") as up:
        d = make_daemon("leak", env={"LEAK_TOKEN": REMOTE_SECRET, "RUNTIMED_CAPTURE_ARGUMENTS": "true"},
                        args=["--log-level", "debug"])
        for name, url in (("leaky", up.url), ("leakstart", up.base_url + "/leakstart/mcp")):
            m = remote_manifest(name, url, restartPolicy={"mode": "never"})
            m["spec"]["origin"]["authRef"] = "env:LEAK_TOKEN"
            r = d.api("POST", "/api/services", json=m)
            assert r.status_code == 201, r.text
        d.wait_state("leaky", "RUNNING", timeout=60)
        failed = d.wait_state("leakstart", "CRASHED", timeout=60)
        assert REMOTE_SECRET not in json.dumps(failed) and MASK in (failed["lastError"] or ""), failed

        sid = _session(d)
        answers: dict[str, str] = {}
        for tool in ("leak_error", "leak_500", "leak_result", "leak_log"):
            answers[f"session {tool}"] = _call_session(d, sid, f"leaky__{tool}")
            answers[f"stateless {tool}"] = _call_stateless(d, f"leaky__{tool}")
        for where, text in answers.items():
            assert REMOTE_SECRET not in text, (where, text)
            assert MASK in text, (where, text)  # masked, not dropped: the rest of the upstream's text is kept
        # What the upstream said is otherwise passed on: its error code and words, its log notification.
        assert '"code":-32001' in answers["session leak_error"].replace(" ", "")
        assert "token rejected: Bearer [secret]" in answers["session leak_error"]
        assert "notifications/message" in answers["session leak_log"]

        for where, text in _everything_recorded(d, ["leaky", "leakstart"]).items():
            assert REMOTE_SECRET not in text, (where, text[:2000])


def test_stdio_env_reference_value_echoed_by_the_child_is_masked(make_daemon) -> None:
    d = make_daemon("leak-stdio", env={"STDIO_SECRET_SOURCE": STDIO_SECRET, "RUNTIMED_CAPTURE_ARGUMENTS": "true"})
    argv = stdio_argv("stdio_server", "--session-only")
    manifest = {"metadata": {"name": "kid"}, "spec": {
        "origin": {"type": "stdio", "command": argv[0], "args": argv[1:],
                   "env": {"API_TOKEN": "env:STDIO_SECRET_SOURCE", "PLAIN_SETTING": "visible-value"}},
        "restartPolicy": {"mode": "never"}}}
    r = d.api("POST", "/api/services", json=manifest)
    assert r.status_code == 201, r.text
    d.wait_state("kid", "RUNNING", timeout=60)
    sid = _session(d)
    answers = {"session environment": _call_session(d, sid, "kid__environment"),
               "stateless environment": _call_stateless(d, "kid__environment")}
    for where, text in answers.items():
        assert STDIO_SECRET not in text, (where, text)
        assert MASK in text, (where, text)
    assert "visible-value" in answers["session environment"]  # a literal value is not a secret
    for where, text in _everything_recorded(d, ["kid"]).items():
        assert STDIO_SECRET not in text, (where, text[:2000])
