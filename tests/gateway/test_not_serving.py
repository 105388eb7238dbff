"""Issue 14, item 11: a tool of a registered service that is not serving (stopped, crashed,
quarantined, never started) is answered with an ``isError`` result that says what is true (the
state, since when, why, and the command that starts it) instead of "Unknown tool", in both eras,
on ``/mcp`` and on ``/mcp/<service>``. A real daemon, the official SDK ``Client`` (both eras) and
raw stateless-era POSTs (the HTTP status is 200: the call was understood, its answer is an error
result). A name that belongs to no registered service is still an unknown tool (-32602).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.support.daemon import REPO, DaemonProc
from tests.support.foundation import closed_port, register_remote
from tests.support.mcpclient import GUARD, text_of

STATELESS_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def stateless_call(url: str, name: str, arguments: dict[str, Any]) -> httpx.Response:
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name,
               "Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": STATELESS_META}}
    return httpx.post(url, json=body, headers=headers, timeout=GUARD)


def register_wasm(d: DaemonProc, name: str, path: Path, **spec: Any) -> None:
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
                "spec": {"origin": {"type": "local_wasm", "path": str(path)}, **spec}}
    r = d.api("POST", "/api/services", json=manifest)
    assert r.status_code in (200, 201), r.text


@pytest.fixture
def d(daemon: DaemonProc, tmp_path: Path) -> DaemonProc:
    register_wasm(daemon, "math", REPO / "examples" / "wasm" / "math.wat")
    daemon.wait_state("math", "RUNNING")
    assert daemon.api("POST", "/api/services/math/stop").json()["state"] == "STOPPED"
    copy = tmp_path / "math-copy.wat"  # one origin is one service: another file
    copy.write_text((REPO / "examples" / "wasm" / "math.wat").read_text())
    register_wasm(daemon, "later", copy, autostart=False)  # registered, never started
    return daemon


async def call_both_eras(url: str, tool: str, args: dict[str, Any]) -> list[tuple[bool, str, dict[str, Any]]]:
    """(isError, text, _meta) of the call in the stateless era (SDK auto mode) and the session era."""
    out = []
    for mode in ("auto", "legacy"):
        async with Client(url, mode=mode, cache=None) as c:
            r = await c.call_tool(tool, args)
            out.append((bool(r.is_error), text_of(r), dict(r.meta or {})))
    return out


async def test_a_stopped_services_tool_says_stopped_and_how_to_start_it(d: DaemonProc) -> None:
    for url, tool in ((d.mcp_url, "math__add"), (d.mcp_url + "/math", "add")):
        for is_error, text, _ in await call_both_eras(url, tool, {"a": 1, "b": 2}):
            assert is_error, text
            assert "Unknown tool" not in text
            assert "service 'math' is STOPPED since " in text and "stop requested" in text, text
            assert "runtimectl start math" in text, text
        r = stateless_call(url, tool, {"a": 1, "b": 2})
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert result["isError"] is True and "STOPPED" in result["content"][0]["text"]
        facts = result["_meta"]["runtimed"]
        assert facts["service"] == "math" and facts["state"] == "STOPPED" and facts["start"] == "runtimectl start math"
        assert isinstance(facts["since"], (int, float))
    # Started again, the same names work.
    assert d.api("POST", "/api/services/math/start").json()["state"] == "RUNNING"
    r = stateless_call(d.mcp_url, "math__add", {"a": 1, "b": 2})
    assert r.json()["result"].get("isError") is False and r.json()["result"]["structuredContent"] == {"result": 3}


async def test_a_registered_never_started_service(d: DaemonProc) -> None:
    for is_error, text, _ in await call_both_eras(d.mcp_url, "later__add", {"a": 1, "b": 2}):
        assert is_error and "service 'later' is REGISTERED (never started)" in text, text
        assert "runtimectl start later" in text


async def test_crashed_and_quarantined_services_say_why(daemon: DaemonProc) -> None:
    d = daemon
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    register_remote(d, "down", url, restartPolicy={"mode": "never"})
    d.wait_state("down", "CRASHED")
    register_remote(d, "quar", f"http://127.0.0.1:{closed_port()}/mcp", restartPolicy={"maxRestarts": 0})
    d.wait_state("quar", "QUARANTINED")
    for target, tool in ((d.mcp_url, "down__anything"), (d.mcp_url + "/down", "anything")):
        for is_error, text, _ in await call_both_eras(target, tool, {}):
            assert is_error and "service 'down' is CRASHED since " in text, text
            assert "start failed" in text and "runtimectl start down" in text, text
    for target, tool in ((d.mcp_url, "quar__anything"), (d.mcp_url + "/quar", "anything")):
        for is_error, text, _ in await call_both_eras(target, tool, {}):
            assert is_error and "service 'quar' is QUARANTINED since " in text, text
            assert "failures within" in text and "runtimectl unquarantine quar" in text, text
        r = stateless_call(target, tool, {})
        assert r.status_code == 200 and r.json()["result"]["_meta"]["runtimed"]["state"] == "QUARANTINED"


async def test_a_name_of_no_registered_service_is_still_unknown(d: DaemonProc) -> None:
    r = stateless_call(d.mcp_url, "zz__nope", {})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32602
    assert "Unknown tool" in r.json()["error"]["message"]
    # /mcp/<name> of no service at all is not found, as before.
    r = stateless_call(d.mcp_url + "/nope", "x", {})
    assert r.status_code == 404, r.text
    assert json.dumps(r.json())  # a readable JSON body
