"""The gateway in this process: the daemon's ASGI app (tests/support/inprocess.py) with two
local WASM services registered through the REST API (examples/wasm/upper.wat and math.wat,
run in-process by wasmtime), spoken to over /mcp with raw JSON-RPC in both eras. Fast: no
daemon process, no port, no upstream process. (The same paths against a real daemon and a
real upstream: tests/gateway/test_http.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.daemon import REPO
from tests.support.inprocess import SESSION, STATELESS, InProcess, inprocess_daemon

EXAMPLES = REPO / "examples" / "wasm"


def wasm_manifest(name: str, file: str, **policy: Any) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "local_wasm", "path": str(EXAMPLES / file)}, "policy": policy}}


@pytest.fixture
async def gw(tmp_path) -> AsyncIterator[InProcess]:
    async with inprocess_daemon(tmp_path / "state") as d:
        await d.register(wasm_manifest("up", "upper.wat"))
        await d.register(wasm_manifest("math", "math.wat"))
        yield d


SERVICE_TOOLS = {"up__upper", "math__add", "math__hypot", "math__fib"}


def names(result: dict[str, Any]) -> set[str]:
    return {t["name"] for t in result["tools"]}


# -- session era ------------------------------------------------------------------------------

async def test_session_era_initialize_list_and_call(gw: InProcess) -> None:
    sid = await gw.initialize()
    assert len(sid) >= 32
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    listed = names(r.json()["result"])
    assert listed >= SERVICE_TOOLS and "runtime__list_services" in listed
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                               "params": {"name": "up__upper", "arguments": {"text": "hello wasm"}}})
    assert r.status_code == 200
    assert r.json() == {"jsonrpc": "2.0", "id": 2, "result": {
        "content": [{"type": "text", "text": '{"text": "HELLO WASM"}'}],
        "structuredContent": {"text": "HELLO WASM"}, "isError": False}}
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                               "params": {"name": "math__add", "arguments": {"a": 40, "b": 2}}})
    assert r.json()["result"]["structuredContent"] == {"result": 42}


async def test_session_era_needs_a_known_session(gw: InProcess) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    r = await gw.post(body, {"MCP-Protocol-Version": SESSION})
    assert r.status_code == 400
    assert r.json()["error"] == {"code": -32600,
                                 "message": "Bad Request: missing Mcp-Session-Id header (send initialize first)"}
    r = await gw.session("not-a-session", body)
    assert r.status_code == 404
    sid = await gw.initialize()
    r = await gw.client.delete("/mcp", headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": SESSION})
    assert r.status_code == 200
    assert (await gw.session(sid, body)).status_code == 404


async def test_session_era_unknown_tool_and_method(gw: InProcess) -> None:
    sid = await gw.initialize()
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "zz__nope", "arguments": {}}})
    err = r.json()["error"]
    assert err["code"] == -32602 and err["message"].startswith("Unknown tool: 'zz__nope'")
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 2, "method": "no/such"})
    assert r.json()["error"]["code"] == -32601 and "no/such" in r.json()["error"]["message"]
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                               "params": {"name": "up__upper", "arguments": 5}})
    assert r.json()["error"]["code"] == -32602


# -- stateless era (2026-07-28) ---------------------------------------------------------------

async def test_stateless_era_list_and_call(gw: InProcess) -> None:
    r = await gw.stateless("server/discover")
    assert r.status_code == 200
    assert STATELESS in r.json()["result"]["supportedVersions"]
    r = await gw.stateless("tools/list")
    res = r.json()["result"]
    assert names(res) >= SERVICE_TOOLS
    assert res["resultType"] == "complete" and res["ttlMs"] == 0 and res["cacheScope"] == "private"
    r = await gw.stateless("tools/call", {"name": "up__upper", "arguments": {"text": "ok"}}, name="up__upper", id=7)
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
    assert r.json() == {"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": '{"text": "OK"}'}], "structuredContent": {"text": "OK"},
        "isError": False, "resultType": "complete"}}


async def test_stateless_era_routing_headers_must_match_the_body(gw: InProcess) -> None:
    args = {"name": "math__add", "arguments": {"a": 1, "b": 2}}
    r = await gw.stateless("tools/call", args)  # Mcp-Name missing
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    r = await gw.stateless("tools/call", args, name="math__fib")
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    r = await gw.stateless("tools/call", args, name="math__add")
    assert r.status_code == 200 and r.json()["result"]["structuredContent"] == {"result": 3}


async def test_stateless_era_unknown_tool_method_and_version(gw: InProcess) -> None:
    r = await gw.stateless("tools/call", {"name": "zz__nope", "arguments": {}}, name="zz__nope")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == -32602 and err["message"].startswith("Unknown tool: 'zz__nope'")
    r = await gw.stateless("no/such")
    assert r.status_code == 404 and r.json()["error"]["code"] == -32601
    r = await gw.stateless("tools/list", version="2099-01-01")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == -32022 and err["data"]["requested"] == "2099-01-01" and STATELESS in err["data"]["supported"]


async def test_single_service_endpoint_uses_the_upstream_names(gw: InProcess) -> None:
    r = await gw.stateless("tools/list", path="/mcp/math")
    assert sorted(names(r.json()["result"])) == ["add", "fib", "hypot"]
    r = await gw.stateless("tools/call", {"name": "fib", "arguments": {"a": 10}}, name="fib", path="/mcp/math")
    assert r.json()["result"]["structuredContent"] == {"result": 55}
    r = await gw.stateless("tools/list", path="/mcp/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


async def test_wasm_argument_errors_are_is_error_results(gw: InProcess) -> None:
    r = await gw.stateless("tools/call", {"name": "math__add", "arguments": {"a": 2**31, "b": 1}}, name="math__add")
    res = r.json()["result"]
    assert r.status_code == 200 and res["isError"] is True and "a" in res["content"][0]["text"]
    r = await gw.stateless("tools/call", {"name": "up__upper", "arguments": {"txt": "x"}}, name="up__upper")
    assert r.json()["result"]["isError"] is True


# -- malformed requests -----------------------------------------------------------------------

async def test_malformed_body_is_a_parse_error(gw: InProcess) -> None:
    r = await gw.post(None, raw=b"{not json")
    assert r.status_code == 400
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32700


async def test_invalid_requests(gw: InProcess) -> None:
    r = await gw.post({"jsonrpc": "1.0", "id": 1, "method": "initialize"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600
    r = await gw.post({"jsonrpc": "2.0", "id": 1, "method": 5}, {"MCP-Protocol-Version": STATELESS, "Mcp-Method": "5"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600
    r = await gw.post([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}],
                      {"MCP-Protocol-Version": STATELESS, "Mcp-Method": "tools/list"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600  # no batches in 2026-07-28


async def test_a_foreign_host_is_refused_before_the_gateway(gw: InProcess) -> None:
    r = await gw.client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                             headers={"Host": "evil.example"})
    assert r.status_code == 403
    err = r.json()["error"]  # on /mcp the refusal is a JSON-RPC error; on /api a plain one
    assert err["code"] == -32600 and err["message"].startswith("Host 'evil.example' is not this daemon's address")
    r = await gw.client.get("/api/services", headers={"Host": "evil.example"})
    assert r.status_code == 403 and r.json()["error"].startswith("Host 'evil.example' is not this daemon's address")
