"""WasmBackend end to end on real modules: the WAT examples, argument checks,
the custom section, the log import and many concurrent calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from runtimed.backends.base import Health, UpstreamError
from tests.wasm.harness import EXAMPLES, HERE, Host, call, started, text_of


async def test_json_tool_upper(tmp_path: Path) -> None:
    host = Host(tmp_path)
    b = await started(EXAMPLES / "upper.wat", host)
    r = await call(b, "upper", {"text": 'hello "wörld"\n tab\t'})
    assert r["isError"] is False
    assert r["structuredContent"] == {"text": 'HELLO "WöRLD"\n TAB\t'}
    assert json.loads(text_of(r)) == r["structuredContent"]


async def test_introspect_and_ping(tmp_path: Path) -> None:
    host = Host(tmp_path)
    b = await started(EXAMPLES / "upper.wat", host)
    iface = await b.introspect()
    assert iface.capabilities == {"tools": {}}
    assert iface.server_info["name"] == "tool"
    assert iface.resources == [] and iface.prompts == []
    [tool] = iface.tools
    assert tool["name"] == "upper"
    assert tool["title"] == "Upper-case"
    assert tool["inputSchema"]["required"] == ["text"]
    assert tool["annotations"]["idempotentHint"] is True
    assert await b.call("ping", {}, None) == {}  # type: ignore[arg-type]
    with pytest.raises(UpstreamError) as e:
        await b.call("resources/list", {}, None)  # type: ignore[arg-type]
    assert e.value.code == -32601
    probe = await b.probe()
    assert probe.health == Health.HEALTHY and probe.latency_ms is not None
    await b.stop()
    assert (await b.probe()).health == Health.UNREACHABLE


async def test_numeric_tools(tmp_path: Path) -> None:
    b = await started(EXAMPLES / "math.wat", Host(tmp_path))
    tools = {t["name"]: t for t in (await b.introspect()).tools}
    assert set(tools) == {"add", "hypot", "fib"}
    assert tools["add"]["inputSchema"]["properties"]["a"] == {
        "type": "integer", "minimum": -2**31, "maximum": 2**31 - 1, "description": "i32"}
    assert tools["add"]["outputSchema"]["properties"]["result"] == {"type": "integer"}
    assert (await call(b, "add", {"a": 2, "b": 40}))["structuredContent"] == {"result": 42}
    # wrapping is the function's own i32 arithmetic, not argument wrapping
    assert (await call(b, "add", {"a": 2**31 - 1, "b": 1}))["structuredContent"] == {"result": -2**31}
    assert (await call(b, "add", {"a": 2.0, "b": -3}))["structuredContent"] == {"result": -1}
    assert (await call(b, "hypot", {"a": 3, "b": 4.0}))["structuredContent"] == {"result": 5.0}
    r = await call(b, "fib", {"a": 92})
    assert r["structuredContent"] == {"result": 7540113804746346429} and text_of(r) == "7540113804746346429"


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("add", {"a": 2**31, "b": 0}, "arguments.a: 2147483648 is above the maximum 2147483647"),
        ("add", {"a": -(2**31) - 1, "b": 0}, "is below the minimum -2147483648"),
        ("add", {"a": 1.5, "b": 0}, "arguments.a: must be an integer, got number"),
        ("add", {"a": True, "b": 0}, "must be an integer, got boolean"),
        ("add", {"a": "1", "b": 0}, "must be an integer, got string"),
        ("add", {"a": 1}, "missing required property 'b'"),
        ("add", {"a": 1, "b": 2, "c": 3}, "unknown property 'c'"),
        ("fib", {"a": 2**63}, "is above the maximum 9223372036854775807"),
    ],
)
async def test_numeric_argument_errors(tmp_path: Path, tool: str, args: dict, expected: str) -> None:
    b = await started(EXAMPLES / "math.wat", Host(tmp_path))
    r = await call(b, tool, args)
    assert r["isError"] is True
    assert text_of(r).startswith("invalid arguments:")
    assert expected in text_of(r)


async def test_json_argument_errors(tmp_path: Path) -> None:
    b = await started(EXAMPLES / "upper.wat", Host(tmp_path))
    r = await call(b, "upper", {"text": 5})
    assert r["isError"] and "arguments.text: must be a string, got integer" in text_of(r)
    r = await call(b, "upper", {})
    assert r["isError"] and "missing required property 'text'" in text_of(r)
    with pytest.raises(UpstreamError) as e:
        await call(b, "upper", ["not", "an", "object"])
    assert e.value.code == -32602
    with pytest.raises(UpstreamError) as e:
        await call(b, "nope", {})
    assert e.value.code == -32602 and "unknown tool 'nope'" in e.value.message
    with pytest.raises(UpstreamError) as e:
        await b.call("tools/call", {}, None)  # type: ignore[arg-type]
    assert e.value.code == -32602


CUSTOM = r'''(module
  (@custom "mcp-tools" "[{\"name\":\"add\",\"description\":\"Adds two small numbers.\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},\"y\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"x\",\"y\"]},\"annotations\":{\"title\":\"Adder\"}},{\"name\":\"pair\",\"kind\":\"numeric\"}]")
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "pair") (param i32 i32) (result i64) (i64.const 7))
  (func (export "_hidden") (param externref))
)'''


async def test_custom_section_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "custom.wat"
    path.write_text(CUSTOM)
    b = await started(path, Host(tmp_path / "state"))
    tools = {t["name"]: t for t in (await b.introspect()).tools}
    assert set(tools) == {"add", "pair"}  # _hidden, memory and alloc are not tools
    assert tools["add"]["description"] == "Adds two small numbers."
    assert list(tools["add"]["inputSchema"]["properties"]) == ["x", "y"]
    assert tools["add"]["annotations"]["title"] == "Adder"
    # (i32, i32) -> i64 in a module with alloc would be a JSON tool; "kind" says numeric
    assert list(tools["pair"]["inputSchema"]["properties"]) == ["a", "b"]
    assert (await call(b, "pair", {"a": 1, "b": 2}))["structuredContent"] == {"result": 7}
    assert (await call(b, "add", {"x": 1, "y": 2}))["structuredContent"] == {"result": 3}
    r = await call(b, "add", {"x": 1, "y": -2})
    assert r["isError"] and "arguments.y: -2 is below the minimum 0" in text_of(r)
    # the custom schema has no range, the host still refuses what an i32 cannot hold
    r = await call(b, "add", {"x": 2**40, "y": 0})
    assert r["isError"] and "arguments.x: 1099511627776 is out of range for i32" in text_of(r)


async def test_log_import(tmp_path: Path) -> None:
    host = Host(tmp_path)
    b = await started(HERE / "log.wat", host)
    assert b.describe()["hostImports"] == ["runtimed.log"]
    r = await call(b, "shout", {"msg": "hello from wasm"})
    # code 0 for the good message, 1 (bad pointer) for the out-of-bounds one
    assert r["structuredContent"] == {"ok": 0, "bad": 1}
    assert ("info", '[shout] {"msg":"hello from wasm"}') in host.lines


async def test_many_concurrent_calls(tmp_path: Path) -> None:
    host = Host(tmp_path)
    b = await started(HERE / "limits.wat", host)
    m = await started(EXAMPLES / "math.wat", Host(tmp_path))

    async def one(i: int) -> None:
        r = await call(b, "echo", {"i": i, "pad": "x" * i})
        assert r["structuredContent"] == {"i": i, "pad": "x" * i}
        r = await call(m, "add", {"a": i, "b": 1000})
        assert r["structuredContent"] == {"result": i + 1000}

    await asyncio.gather(*(one(i) for i in range(50)))
    assert b.describe()["calls"] == 50 and m.describe()["calls"] == 50


async def test_event_loop_not_blocked_by_long_call(tmp_path: Path) -> None:
    """A spinning call runs on the pool; the loop (and other calls) carry on."""
    host = Host(tmp_path, wasm={"timeoutMs": 1500})
    b = await started(HERE / "limits.wat", host, fuel=10**15)
    spin = asyncio.ensure_future(call(b, "spin", {}))
    ticks = 0
    while not spin.done():
        r = await call(b, "echo", {"n": ticks})
        assert r["structuredContent"] == {"n": ticks}
        ticks += 1
        await asyncio.sleep(0.01)
    assert "time limit exceeded" in text_of(spin.result())
    assert ticks >= 3  # a blocked loop would have answered at most one call


async def test_lone_surrogate_in_arguments(tmp_path: Path) -> None:
    """JSON allows "\\ud800"; UTF-8 does not: the host escapes it instead of failing."""
    b = await started(HERE / "limits.wat", Host(tmp_path))
    r = await call(b, "echo", {"s": "a\ud800b"})
    assert r["isError"] is False and r["structuredContent"] == {"s": "a\ud800b"}
