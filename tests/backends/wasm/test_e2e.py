"""Local WASM tools reached through the daemon's /mcp by the official SDK client:
registration by the CLI, JSON and numeric tools, limits as isError results,
policies through the shared path, and a changed file reloaded on restart with
list_changed sent to a connected client."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from mcp import Client

from tests.support.daemon import REPO, DaemonProc, run_cli

EXAMPLES = REPO / "examples" / "wasm"
LIMITS = REPO / "tests" / "wasm" / "limits.wat"


def _add(daemon: DaemonProc, path: Path, *args: str) -> None:
    r = run_cli(daemon, "add", str(path), *args)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_wasm_tools_through_mcp(daemon: DaemonProc, mode: str) -> None:
    _add(daemon, EXAMPLES / "upper.wat")
    _add(daemon, EXAMPLES / "math.wat")
    async with Client(daemon.mcp_url, mode=mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert {"upper__upper", "math__add", "math__hypot", "math__fib"} <= set(tools)
        assert tools["upper__upper"].input_schema["required"] == ["text"]
        res = await c.call_tool("upper__upper", {"text": "hello wasm"})
        assert not res.is_error and res.structured_content == {"text": "HELLO WASM"}
        res = await c.call_tool("math__add", {"a": 40, "b": 2})
        assert not res.is_error and res.structured_content == {"result": 42}
        res = await c.call_tool("math__add", {"a": 2**31, "b": 1})
        assert res.is_error and "a" in res.content[0].text  # out of i32 range, checked by the host
        res = await c.call_tool("upper__upper", {"txt": "wrong"})
        assert res.is_error


async def test_wasm_limits_are_isError_results_and_others_carry_on(daemon: DaemonProc) -> None:
    _add(daemon, LIMITS)
    _add(daemon, EXAMPLES / "math.wat")
    async with Client(daemon.mcp_url, mode="legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        limit_tools = sorted(n for n in names if n.startswith("limits__"))
        assert limit_tools, names
        spin = next(n for n in limit_tools if "spin" in n)
        spinning, ok = await asyncio.gather(c.call_tool(spin, {}), c.call_tool("math__add", {"a": 1, "b": 2}))
        assert spinning.is_error and any(w in spinning.content[0].text.lower() for w in ("fuel", "time"))
        assert not ok.is_error and ok.structured_content == {"result": 3}


async def test_wasm_policy_applies_through_shared_path(daemon: DaemonProc) -> None:
    _add(daemon, EXAMPLES / "math.wat", "--deny-tools", "fib")
    async with Client(daemon.mcp_url, mode="legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "math__add" in names and "math__fib" not in names
        res = await c.call_tool("math__fib", {"a": 10})
        assert res.is_error


async def test_changed_file_reloads_on_restart_with_list_changed(daemon: DaemonProc, tmp_path: Path) -> None:
    tool = tmp_path / "tool.wat"
    shutil.copy(EXAMPLES / "math.wat", tool)
    _add(daemon, tool)
    before = daemon.service("tool")["origin"]["sha256"]
    changed = asyncio.Event()

    async def on_message(message) -> None:
        if getattr(getattr(message, "root", message), "method", None) == "notifications/tools/list_changed" or \
                "list_changed" in repr(message):
            changed.set()

    async with Client(daemon.mcp_url, mode="legacy", message_handler=on_message) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert "tool__hypot" in names
        tool.write_text(tool.read_text().replace('(export "hypot")', '(export "distance")'))
        r = run_cli(daemon, "restart", "tool")
        assert r.returncode == 0, r.stderr
        await asyncio.wait_for(changed.wait(), 30)
        names = {t.name for t in (await c.list_tools(cache_mode="bypass")).tools}
        assert "tool__distance" in names and "tool__hypot" not in names
    assert daemon.service("tool")["origin"]["sha256"] != before
