"""Each sandbox limit gives an isError result naming it; the backend carries on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtimed.backends.base import BackendFault, CallContext
from tests.wasm.harness import HERE, Host, call, started, text_of

LIMITS = HERE / "limits.wat"
GROW = HERE / "grow.wat"
GROW_CAPPED = HERE / "grow_capped.wat"


async def _still_works(b) -> None:
    r = await call(b, "echo", {"after": True})
    assert r == {"content": [{"type": "text", "text": '{"after": true}'}], "structuredContent": {"after": True}, "isError": False}


async def test_fuel(tmp_path: Path) -> None:
    host = Host(tmp_path)
    b = await started(LIMITS, host, fuel=1_000_000)
    r = await call(b, "spin", {})
    assert r["isError"] is True
    assert text_of(r) == "WebAssembly fuel limit exceeded: the call used all 1000000 units of fuel"
    assert any(level == "warning" and "fuel limit exceeded" in m for level, m in host.lines)
    assert b.describe()["limitHits"] == 1
    # a numeric tool under the same budget: small work passes, big work runs out
    assert (await call(b, "count", {"a": 1000}))["structuredContent"] == {"result": 1000}
    assert "fuel limit exceeded" in text_of(await call(b, "count", {"a": 2**31 - 1}))
    await _still_works(b)


async def test_time(tmp_path: Path) -> None:
    host = Host(tmp_path, wasm={"timeoutMs": 200})
    b = await started(LIMITS, host, fuel=10**15)
    r = await call(b, "spin", {})
    assert r["isError"] is True
    assert text_of(r) == "WebAssembly time limit exceeded: the call ran longer than 200 ms"
    await _still_works(b)


async def test_time_bounded_by_call_deadline(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path), fuel=10**15)  # default timeout: 10 s
    loop = asyncio.get_running_loop()
    r = await call(b, "spin", {}, CallContext(deadline=loop.time() + 0.3))
    assert r["isError"] and "time limit exceeded" in text_of(r)
    with pytest.raises(BackendFault) as e:
        await call(b, "spin", {}, CallContext(deadline=loop.time() - 1))
    assert e.value.kind == "timeout"


async def test_memory(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path), memoryBytes=1024 * 1024)
    r = await call(b, "hog", {})
    assert r["isError"] is True
    assert text_of(r).startswith("WebAssembly memory limit exceeded: the call reached the 1048576 bytes memory limit")
    await _still_works(b)


async def test_memory_grown_in_steps_then_a_trap_is_the_memory_limit(tmp_path: Path) -> None:
    """A module growing 16 pages at a time is refused while well under the limit's last page, and
    then traps with unreachable: still the memory limit, because a grow was refused."""
    b = await started(GROW, Host(tmp_path), memoryBytes=32 * 65536)
    r = await call(b, "steps", {"a": 16})
    assert r["isError"] is True
    text = text_of(r)
    assert text.startswith("WebAssembly memory limit exceeded: the call reached the 2097152 bytes memory limit"), text
    assert "unreachable" in text
    assert b.describe()["limitHits"] == 1
    # A refused grow the tool recovers from is not an error; a trap with no refused grow is a trap.
    r = await call(b, "recover", {"a": 16})
    assert r["isError"] is False and r["structuredContent"] == {"result": 17}
    r = await call(b, "trap", {"a": 0})
    assert text_of(r) == "the tool trapped: wasm `unreachable` instruction executed"


async def test_a_grow_refused_by_the_modules_own_maximum_is_a_trap(tmp_path: Path) -> None:
    b = await started(GROW_CAPPED, Host(tmp_path), memoryBytes=32 * 65536)
    r = await call(b, "steps", {"a": 1})
    assert text_of(r) == "the tool trapped: wasm `unreachable` instruction executed"


async def test_memory_for_arguments(tmp_path: Path) -> None:
    """alloc itself is refused memory: the arguments do not fit under the limit."""
    b = await started(LIMITS, Host(tmp_path), memoryBytes=128 * 1024)
    r = await call(b, "echo", {"blob": "x" * 200_000})
    assert r["isError"] and text_of(r).startswith("WebAssembly memory limit exceeded: alloc(")


async def test_bad_pointer(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path))
    r = await call(b, "badptr", {})
    assert r["isError"] is True
    assert text_of(r) == ("WebAssembly sandbox: bad pointer: the result [4294901760, 4294901776) "
                          "lies outside the guest's 65536 bytes of memory")
    await _still_works(b)


async def test_output_size(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path), maxOutputBytes=1024)
    r = await call(b, "big", {})
    assert r["isError"] is True
    assert text_of(r) == "WebAssembly output size limit exceeded: the result is 65536 bytes, more than the 1024 allowed"
    await _still_works(b)


async def test_response_cap_from_policy_is_a_payload_fault(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path))
    with pytest.raises(BackendFault) as e:
        await call(b, "echo", {"x": "y" * 500}, CallContext(max_response_bytes=100))
    assert e.value.kind == "payload"


async def test_guest_errors(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path))
    assert await call(b, "fail", {}) == {"content": [{"type": "text", "text": "boom"}], "isError": True}
    r = await call(b, "garbage", {})
    assert r["isError"] and text_of(r).startswith("the tool's result is not valid JSON")
    r = await call(b, "trap", {})
    assert r["isError"] and text_of(r) == "the tool trapped: wasm `unreachable` instruction executed"
    await _still_works(b)


async def test_limits_in_describe(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path, wasm={"timeoutMs": 1234}), fuel=77, memoryBytes=5 * 65536)
    assert b.describe()["limits"] == {"fuel": 77, "memoryBytes": 5 * 65536, "timeoutMs": 1234, "maxOutputBytes": 1024 * 1024}


async def test_limit_hits_do_not_disturb_concurrent_calls(tmp_path: Path) -> None:
    b = await started(LIMITS, Host(tmp_path), fuel=2_000_000)

    async def good(i: int) -> None:
        assert (await call(b, "echo", {"i": i}))["structuredContent"] == {"i": i}

    async def bad() -> None:
        assert "fuel limit exceeded" in text_of(await call(b, "spin", {}))

    await asyncio.gather(*(good(i) if i % 3 else bad() for i in range(30)))
