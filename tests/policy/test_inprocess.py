"""Policies on the whole call path, in this process: the daemon's ASGI app
(tests/support/inprocess.py), local WASM services (examples/wasm/*.wat, run in-process)
registered through the REST API with their policies, calls over /mcp in both eras. Each
refusal's exact answer is checked: an ``isError`` result naming the policy, with
``_meta.runtimed``. (The engine alone: tests/policy/test_engine.py; against real
daemons and upstream processes: tests/policy/test_e2e.py.)"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.daemon import REPO
from tests.support.inprocess import InProcess

EXAMPLES = REPO / "examples" / "wasm"


def wasm_manifest(name: str, file: str, **policy: Any) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "local_wasm", "path": str(EXAMPLES / file)}, "policy": policy}}


async def call_session(d: InProcess, sid: str, name: str, args: dict[str, Any], id: int = 1) -> dict[str, Any]:
    r = await d.session(sid, {"jsonrpc": "2.0", "id": id, "method": "tools/call",
                              "params": {"name": name, "arguments": args}})
    assert r.status_code == 200, r.text
    return r.json()["result"]


async def call_stateless(d: InProcess, name: str, args: dict[str, Any], path: str = "/mcp") -> dict[str, Any]:
    r = await d.stateless("tools/call", {"name": name, "arguments": args}, name=name, path=path)
    assert r.status_code == 200, r.text
    return r.json()["result"]


async def listed(d: InProcess, path: str = "/mcp") -> set[str]:
    r = await d.stateless("tools/list", path=path)
    return {t["name"] for t in r.json()["result"]["tools"]}


def refusal(text: str, **runtimed: Any) -> dict[str, Any]:
    """The result a policy refusal answers with (session era; stateless adds resultType)."""
    return {"content": [{"type": "text", "text": text}], "isError": True, "_meta": {"runtimed": runtimed}}


# -- visibility: deniedTools, allowedTools, readOnly ------------------------------------------

async def test_denied_tool_is_hidden_and_its_call_refused_in_both_eras(inprocess: InProcess) -> None:
    await inprocess.register(wasm_manifest("math", "math.wat", deniedTools=["fib", "hyp*"]))
    assert {n for n in await listed(inprocess) if n.startswith("math__")} == {"math__add"}
    assert await listed(inprocess, "/mcp/math") == {"add"}
    expected = refusal("tool 'fib' of service 'math' is refused by policy deniedTools",
                       policy="deniedTools", outcome="refused")
    sid = await inprocess.initialize()
    assert await call_session(inprocess, sid, "math__fib", {"a": 10}) == expected
    assert await call_stateless(inprocess, "math__fib", {"a": 10}) == {**expected, "resultType": "complete"}
    assert await call_stateless(inprocess, "fib", {"a": 10}, path="/mcp/math") == {**expected, "resultType": "complete"}
    assert (await call_stateless(inprocess, "math__add", {"a": 1, "b": 1}))["structuredContent"] == {"result": 2}


# Numeric tools: "get" keeps the default readOnlyHint (true), "put" declares readOnlyHint false.
STORE = r'''(module
  (@custom "mcp-tools" "[{\"name\":\"put\",\"annotations\":{\"readOnlyHint\":false}},{\"name\":\"get\"}]")
  (func (export "get") (param i32) (result i32) (local.get 0))
  (func (export "put") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
)'''


async def test_allowed_tools_and_read_only(inprocess: InProcess, tmp_path: Path) -> None:
    store = tmp_path / "store.wat"
    store.write_text(STORE)
    await inprocess.register(wasm_manifest("math", "math.wat", allowedTools=["add"]))
    await inprocess.register(wasm_manifest("store", str(store), readOnly=True))
    tools = await listed(inprocess)
    assert {n for n in tools if n.startswith(("math__", "store__"))} == {"math__add", "store__get"}
    assert await call_stateless(inprocess, "math__hypot", {"a": 3, "b": 4}) == {
        **refusal("tool 'hypot' of service 'math' is refused by policy allowedTools",
                  policy="allowedTools", outcome="refused"), "resultType": "complete"}
    assert await call_stateless(inprocess, "store__put", {"a": 1}) == {
        **refusal("tool 'put' of service 'store' is refused by policy readOnly", policy="readOnly",
                  outcome="refused"), "resultType": "complete"}
    assert (await call_stateless(inprocess, "store__get", {"a": 7}))["structuredContent"] == {"result": 7}


# -- maxPayloadBytes ----------------------------------------------------------------------------

async def test_request_over_max_payload_is_refused_before_the_call(inprocess: InProcess) -> None:
    await inprocess.register(wasm_manifest("up", "upper.wat", maxPayloadBytes=200))
    text = "x" * 300
    # The size is that of the params the backend would get, as canonical JSON: the upstream's tool
    # name, no client envelope; a session adds its log level (the default, debug) for the upstream.
    size = len('{"arguments":{"text":"' + text + '"},"name":"upper"}')
    session_size = len('{"_meta":{"io.modelcontextprotocol/logLevel":"debug"},"arguments":{"text":"' + text
                       + '"},"name":"upper"}')
    assert (size, session_size) == (340, 393)

    def expected(n: int) -> dict[str, Any]:
        return refusal(f"request to tool 'upper' of service 'up' is {n} bytes, over the limit of 200 "
                       "(policy maxPayloadBytes)", policy="maxPayloadBytes", outcome="refused",
                       limitBytes=200, sizeBytes=n)

    sid = await inprocess.initialize()
    assert await call_session(inprocess, sid, "up__upper", {"text": text}) == expected(session_size)
    assert await call_stateless(inprocess, "up__upper", {"text": text}) == {**expected(size), "resultType": "complete"}
    ok = await call_stateless(inprocess, "up__upper", {"text": "small"})
    assert ok["isError"] is False and ok["structuredContent"] == {"text": "SMALL"}


async def test_response_over_max_payload_is_dropped(inprocess: InProcess) -> None:
    await inprocess.register(wasm_manifest("up", "upper.wat", maxPayloadBytes=200))
    res = await call_stateless(inprocess, "up__upper", {"text": "y" * 120})  # a 160-byte request, a bigger answer
    meta = res["_meta"]["runtimed"]
    assert res["isError"] is True and "structuredContent" not in res
    assert meta["policy"] == "maxPayloadBytes" and meta["limitBytes"] == 200 and meta["sizeBytes"] > 200
    assert res["content"] == [{"type": "text", "text": f"the response of tool 'upper' of service 'up' is "
                               f"{meta['sizeBytes']} bytes, over the limit of 200 (policy maxPayloadBytes)"}]
    assert "Y" * 120 not in str(res)


# -- rateLimit ----------------------------------------------------------------------------------

async def test_rate_limit_refuses_the_third_call_saying_when_calls_resume(inprocess: InProcess) -> None:
    await inprocess.register(wasm_manifest("math", "math.wat", rateLimit={"calls": 2, "per": "minute"}))
    sid = await inprocess.initialize()
    assert (await call_session(inprocess, sid, "math__add", {"a": 1, "b": 1}))["structuredContent"] == {"result": 2}
    assert (await call_stateless(inprocess, "math__add", {"a": 1, "b": 2}))["structuredContent"] == {"result": 3}
    before = datetime.now(UTC)
    res = await call_stateless(inprocess, "math__add", {"a": 1, "b": 3})
    meta = res["_meta"]["runtimed"]
    assert res["isError"] is True and res["resultType"] == "complete"
    assert set(meta) == {"policy", "outcome", "retryAfterSeconds", "resumesAt"}
    assert meta["policy"] == "rateLimit" and meta["outcome"] == "rate_limited"
    assert 55 < meta["retryAfterSeconds"] <= 60
    resumes = datetime.strptime(meta["resumesAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 55 <= (resumes - before).total_seconds() <= 61
    assert res["content"] == [{"type": "text", "text": (
        f"service 'math' allows 2 calls per minute and that many were made in the last minute; calls resume in "
        f"{meta['retryAfterSeconds']:.0f} s, at {meta['resumesAt']} (policy rateLimit)")}]
    # The session era is refused the same way: the window is the service's, not the client's.
    again = await call_session(inprocess, sid, "math__fib", {"a": 5}, id=2)
    assert again["isError"] is True and again["_meta"]["runtimed"]["policy"] == "rateLimit"
    # The refusals are in the service's call records, with their outcome.
    r = await inprocess.client.get("/api/services/math/calls")
    outcomes = [c["outcome"] for c in r.json()["calls"]]
    assert sorted(outcomes) == ["ok", "ok", "rate_limited", "rate_limited"], outcomes


# -- maxConcurrency / maxQueue --------------------------------------------------------------------

async def test_a_full_queue_is_busy_while_one_call_runs(inprocess: InProcess) -> None:
    manifest = wasm_manifest("limits", str(REPO / "tests" / "wasm" / "limits.wat"), maxConcurrency=1, maxQueue=0)
    # "spin" loops until a sandbox limit: here the time limit (the fuel is made plentiful).
    manifest["spec"]["origin"]["limits"] = {"timeoutMs": 300, "fuel": 10**15}
    await inprocess.register(manifest)
    spinning = asyncio.create_task(call_stateless(inprocess, "limits__spin", {}))
    while (await inprocess.service("limits"))["policy"]["inFlight"] == 0:  # the spin call holds the one slot
        await asyncio.sleep(0.005)
    busy = await call_stateless(inprocess, "limits__echo", {"x": 1})
    assert busy == {**refusal(
        "service 'limits' is busy: 1 calls in flight (maxConcurrency 1) and the wait queue is full (maxQueue 0); "
        "try again shortly (policy maxConcurrency)", policy="maxConcurrency", outcome="busy", inFlight=1, queued=0),
        "resultType": "complete"}
    spun = await spinning
    assert spun["isError"] is True and "time limit" in spun["content"][0]["text"], spun
    # The slot is free again.
    assert (await call_stateless(inprocess, "limits__echo", {"x": 1}))["isError"] is False


# -- a policy change through the API applies to the next call ------------------------------------

async def test_policy_update_through_the_api_applies_at_once(inprocess: InProcess) -> None:
    await inprocess.register(wasm_manifest("math", "math.wat"))
    assert (await call_stateless(inprocess, "math__fib", {"a": 10}))["structuredContent"] == {"result": 55}
    r = await inprocess.client.post("/api/services", json=wasm_manifest("math", "math.wat", deniedTools=["fib"]))
    assert r.status_code in (200, 201), r.text
    assert (await inprocess.service("math"))["manifest"]["spec"]["policy"]["deniedTools"] == ["fib"]
    res = await call_stateless(inprocess, "math__fib", {"a": 10})
    assert res["_meta"]["runtimed"] == {"policy": "deniedTools", "outcome": "refused"}
    assert "math__fib" not in await listed(inprocess)


# -- a stopped service ------------------------------------------------------------------------

async def test_a_stopped_services_tools_are_gone(inprocess: InProcess) -> None:
    await inprocess.register(wasm_manifest("math", "math.wat"))
    assert "math__add" in await listed(inprocess)
    r = await inprocess.client.post("/api/services/math/stop", headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["state"] == "STOPPED"
    assert not any(n.startswith("math__") for n in await listed(inprocess))
    # A call of one of its tools says so, and how to start it (issue 14, item 11), instead of "Unknown tool".
    r = await inprocess.stateless("tools/call", {"name": "math__add", "arguments": {"a": 1, "b": 1}}, name="math__add")
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["isError"] is True and "service 'math' is STOPPED" in result["content"][0]["text"]
    assert result["_meta"]["runtimed"]["start"] == "runtimectl start math"
    assert re.fullmatch(r"svc_[0-9a-f]{12}", (await inprocess.service("math"))["id"])
