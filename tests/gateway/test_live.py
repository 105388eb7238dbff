"""Issue 12, points 4 and 5, end to end: the official SDK ``Client`` (both eras) through a real
daemon in front of real SDK upstreams (``tests/upstreams/live_server.py``) on loopback.

- Mcp-Param headers (SEP-2243): the gateway mirrors ``x-mcp-header`` arguments upstream (the SDK
  upstream answers -32020 without them) and checks a stateless client's own headers.
- Live interfaces: a tool added upstream without a notification is listed and callable without
  ``runtimectl introspect``; ``ttlMs`` is honoured; unlisted names are forwarded; ``/mcp/<service>``
  advertises the upstream's ``listChanged``; a ``list_changed`` that changes nothing is forwarded.

Services (one daemon, ``interface_refresh_min_ms`` 0 so every list may refresh):
- ``live``: live_server (deniedTools ``secret*``)
- ``quiet``: live_server --no-listen (its 2026-07-28 capabilities say listChanged false)
- ``quiet2``: the same upstream under another URL, with ``toolNamespace: quiet``
- ``kept``: live_server --ttl-ms 600000 (lists stay fresh for 10 minutes)
- ``same``: live_server (only for the list_changed-without-change test)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support.daemon import DaemonProc
from tests.support.foundation import events, register_remote
from tests.support.upstream import run_upstream

MODES = ("auto", "legacy")
STATELESS_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


class Env:
    def __init__(self, daemon: DaemonProc) -> None:
        self.daemon = daemon

    def url(self, service: str | None = None) -> str:
        return self.daemon.mcp_url + (f"/{service}" if service else "")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("live")
    with run_upstream("live_server") as live, run_upstream("live_server", "--no-listen") as quiet, \
            run_upstream("live_server", "--ttl-ms", "600000") as kept, run_upstream("live_server") as same:
        d = DaemonProc(Path(tmp) / "state", env={"RUNTIMED_INTERFACE_REFRESH_MIN_MS": "0"}).start()
        try:
            register_remote(d, "live", live.url, policy={"deniedTools": ["secret*"]})
            register_remote(d, "quiet", quiet.url)
            register_remote(d, "quiet2", quiet.url + "?copy=2", toolNamespace="quiet")  # a shared namespace
            register_remote(d, "kept", kept.url)
            register_remote(d, "same", same.url)
            for n in ("live", "quiet", "quiet2", "kept", "same"):
                d.wait_state(n, "RUNNING", timeout=60)
            yield Env(d)
        finally:
            d.stop()


def text_of(result: Any) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


def stateless(url: str, method: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    hdrs = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, "Accept": "application/json, text/event-stream"}
    if "name" in params:
        hdrs["Mcp-Name"] = params["name"]
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": STATELESS_META}},
                      headers={**hdrs, **(headers or {})}, timeout=30)


async def names(c: Client) -> set[str]:
    out: set[str] = set()
    cursor = None
    while True:
        page = await c.list_tools(cursor=cursor)
        out |= {t.name for t in page.tools}
        cursor = page.next_cursor
        if not cursor:
            return out


# -- point 4: Mcp-Param headers ------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scoped", [False, True])
async def test_param_headers_reach_the_upstream(env: Env, mode: str, scoped: bool) -> None:
    """The SDK upstream refuses route without Mcp-Param-Region (-32020, both client eras through the
    gateway before the fix); non-ASCII goes base64, integers in decimal."""
    name = "route" if scoped else "live__route"
    async with Client(env.url("live" if scoped else None), mode=mode, cache=None) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        # The listed schema keeps x-mcp-header, so stateless clients know to send the headers.
        assert tools[name].input_schema["properties"]["region"]["x-mcp-header"] == "Region"
        r = await c.call_tool(name, {"region": "eu-west1", "query": "q", "shard": 7})
        assert not r.is_error, text_of(r)
        assert text_of(r) == "eu-west1/7:q"
        r = await c.call_tool(name, {"region": " Zürich ", "query": "q"})
        assert text_of(r) == " Zürich /0:q"
        seen = json.loads(text_of(await c.call_tool("seen" if scoped else "live__seen", {})))
        assert seen["params"] == {"mcp-param-region": "=?base64?IFrDvHJpY2gg?="}


def test_gateway_checks_a_stateless_clients_param_headers(env: Env) -> None:
    url = env.url("live")
    args = {"region": "us-east1", "query": "q", "shard": 3}
    call = {"name": "route", "arguments": args}
    missing = stateless(url, "tools/call", call, {"Mcp-Param-Region": "us-east1"})
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"]["code"] == -32020
    assert "Mcp-Param-Shard" in missing.json()["error"]["message"]
    wrong = stateless(url, "tools/call", call, {"Mcp-Param-Region": "us-west1", "Mcp-Param-Shard": "3"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == -32020, wrong.text
    bad = stateless(url, "tools/call", call, {"Mcp-Param-Region": "=?base64?***?=", "Mcp-Param-Shard": "3"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32020, bad.text
    extra = stateless(url, "tools/call", {"name": "route", "arguments": {"region": "x", "query": "q"}},
                      {"Mcp-Param-Region": "x", "Mcp-Param-Shard": "3"})
    assert extra.status_code == 400 and extra.json()["error"]["code"] == -32020, extra.text
    # Sentinel form decoded; an integer compared as a number; header names case-insensitive.
    ok = stateless(url, "tools/call", call, {"mcp-param-region": "=?base64?dXMtZWFzdDE=?=", "MCP-PARAM-SHARD": "3.0"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["content"][0]["text"] == "us-east1/3:q"
    # Aggregate too, with the public name.
    agg = stateless(env.url(), "tools/call", {"name": "live__route", "arguments": args}, {"Mcp-Param-Region": "nope"})
    assert agg.status_code == 400 and agg.json()["error"]["code"] == -32020, agg.text


def test_session_era_requests_need_no_param_headers(env: Env) -> None:
    """2025-11-25 defines no Mcp-Param headers: a session-era call without them is served."""
    url = env.url("live")
    base = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    init = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=base, timeout=30)
    sid = init.headers["mcp-session-id"]
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                              "params": {"name": "route", "arguments": {"region": "ap", "query": "q"}}},
                   headers={**base, "Mcp-Session-Id": sid}, timeout=30)
    assert r.status_code == 200, r.text
    assert "ap/0:q" in r.text


# -- point 5: live interfaces ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_tool_added_without_notification_is_listed_and_callable(env: Env, mode: str) -> None:
    tool = f"quiet_{mode}"
    async with Client(env.url(), mode=mode, cache=None) as c:
        assert f"live__{tool}" not in await names(c)
        await c.call_tool("live__add_quiet", {"name": tool})
        assert f"live__{tool}" in await names(c)  # no introspect: the list refreshed the stale interface
        r = await c.call_tool(f"live__{tool}", {"text": "hi"})
        assert text_of(r) == f"{tool}: hi"
    async with Client(env.url("live"), mode=mode, cache=None) as c:
        assert tool in await names(c)


@pytest.mark.parametrize("mode", MODES)
async def test_unlisted_tool_is_forwarded(env: Env, mode: str) -> None:
    """Called before any list saw it: /mcp/<service> forwards any name, /mcp a name whose prefix is
    a service's namespace; the upstream answers."""
    tool = f"fresh_{mode}"
    async with Client(env.url("live"), mode=mode, cache=None) as c:
        await c.call_tool("add_quiet", {"name": tool})
        assert text_of(await c.call_tool(tool, {"text": "a"})) == f"{tool}: a"
        try:  # the upstream's own answer, not the gateway's
            missing = await c.call_tool("no_such_tool", {})
            assert missing.is_error and "no_such_tool" in text_of(missing), text_of(missing)
            assert "offers no such tool" not in text_of(missing)
        except MCPError as e:
            assert "no_such_tool" in e.error.message and "offers no such tool" not in e.error.message
    agg_tool = f"fresh2_{mode}"
    async with Client(env.url(), mode=mode, cache=None) as c:
        await c.call_tool("live__add_quiet", {"name": agg_tool})
        assert text_of(await c.call_tool(f"live__{agg_tool}", {"text": "b"})) == f"{agg_tool}: b"
        with pytest.raises(MCPError) as e:
            await c.call_tool("nosuchservice__x", {})
        assert e.value.error.code == -32602


def test_aggregate_refuses_an_unlisted_name_of_a_shared_namespace(env: Env) -> None:
    """``quiet__x``: two services have the namespace ``quiet``; the gateway cannot tell which."""
    r = stateless(env.url(), "tools/call", {"name": "quiet__nothing_here", "arguments": {}})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32602, r.text
    assert "Unknown tool" in r.json()["error"]["message"] and "share the namespace" in r.json()["error"]["message"]


@pytest.mark.parametrize("mode", MODES)
async def test_policy_applies_to_unlisted_tools(env: Env, mode: str) -> None:
    tool = f"secret_{mode}"
    async with Client(env.url("live"), mode=mode, cache=None) as c:
        await c.call_tool("add_quiet", {"name": tool})
        r = await c.call_tool(tool, {"text": "x"})
        assert r.is_error and "deniedTools" in text_of(r)
        assert tool not in await names(c)


@pytest.mark.parametrize("mode", MODES)
async def test_unlisted_tool_with_param_header_is_retried_after_a_relist(env: Env, mode: str) -> None:
    """Unknown to the gateway, the call goes up without Mcp-Param-Zone; the upstream answers -32020;
    the gateway lists again and retries once with the header."""
    tool = f"zoned_{mode}"
    async with Client(env.url("live"), mode=mode, cache=None) as c:
        await c.call_tool("add_quiet", {"name": tool, "header": True})
        r = await c.call_tool(tool, {"zone": "z1"})
        assert not r.is_error, text_of(r)
        assert text_of(r) == f"{tool} in z1"


@pytest.mark.parametrize("mode", MODES)
async def test_ttl_ms_is_honoured(env: Env, mode: str) -> None:
    """``kept`` says its lists stay fresh for 10 minutes: a quiet addition is not listed (no
    refresh), but it is callable (forwarded)."""
    tool = f"later_{mode}"
    async with Client(env.url("kept"), mode=mode, cache=None) as c:
        await c.call_tool("add_quiet", {"name": tool})
        assert tool not in await names(c)
        assert text_of(await c.call_tool(tool, {"text": "t"})) == f"{tool}: t"


@pytest.mark.parametrize("mode", MODES)
async def test_scoped_endpoint_advertises_the_upstreams_list_changed(env: Env, mode: str) -> None:
    async with Client(env.url("quiet"), mode=mode, cache=None) as c:
        assert c.server_capabilities.tools is not None
        assert not c.server_capabilities.tools.list_changed
    async with Client(env.url("live"), mode=mode, cache=None) as c:
        assert c.server_capabilities.tools is not None and c.server_capabilities.tools.list_changed
    async with Client(env.url(), mode=mode, cache=None) as c:  # the aggregate announces its own changes
        assert c.server_capabilities.tools is not None and c.server_capabilities.tools.list_changed


async def test_list_changed_without_change_is_forwarded_stateless(env: Env) -> None:
    async with Client(env.url("same"), mode="auto", cache=None) as c, c.listen(tools_list_changed=True) as sub:
        await c.call_tool("notify_same", {})
        event = await asyncio.wait_for(sub.__anext__(), 20)
        assert "tools" in repr(event).lower()
    evs = [e for e in events(env.daemon, "same", ("interface",)) if e.get("notified") == "tools"]
    assert evs and evs[-1]["changed"] is False


async def test_list_changed_without_change_is_forwarded_session(env: Env) -> None:
    got = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if "ToolListChanged" in type(msg).__name__ or "tools/list_changed" in repr(msg):
            got.set()

    async with Client(env.url("same"), mode="legacy", cache=None, message_handler=on_message) as c:
        await asyncio.sleep(0.5)  # the GET stream opens
        deadline = time.monotonic() + 20
        while not got.is_set() and time.monotonic() < deadline:
            await c.call_tool("notify_same", {})
            try:
                await asyncio.wait_for(got.wait(), 3)
            except TimeoutError:
                pass
        assert got.is_set()


def test_aggregate_list_is_not_held_by_a_slow_service(tmp_path: Path) -> None:
    """A service whose tools/list takes 3 s: /mcp answers from the cached view within the short
    bound; /mcp/<service> waits at most its own bound."""
    with run_upstream("live_server", "--slow-list", "3") as slow, run_upstream("live_server") as fast, \
            DaemonProc(tmp_path / "state", env={"RUNTIMED_INTERFACE_REFRESH_MIN_MS": "0"}) as d:
        register_remote(d, "slow", slow.url)
        register_remote(d, "fast", fast.url)
        d.wait_state("slow", "RUNNING", timeout=60)
        d.wait_state("fast", "RUNNING", timeout=60)

        def slow_lists() -> int:
            r = stateless(d.mcp_url + "/slow", "tools/call", {"name": "seen", "arguments": {}})
            return int(json.loads(r.json()["result"]["content"][0]["text"])["lists"])

        before = slow_lists()
        stateless(d.mcp_url + "/fast", "tools/call", {"name": "add_quiet", "arguments": {"name": "newer"}})
        t0 = time.monotonic()
        r = stateless(d.mcp_url, "tools/list", {})
        took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        listed = {t["name"] for t in r.json()["result"]["tools"]}
        assert "slow__route" in listed and "fast__newer" in listed  # the fast refresh made it
        assert took < 1.5, took

        async def burst() -> None:  # ten more lists while the slow refresh is under way: they join it
            async with httpx.AsyncClient(timeout=30) as h:
                hdrs = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list",
                        "Accept": "application/json, text/event-stream"}
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": STATELESS_META}}
                rs = await asyncio.gather(*(h.post(d.mcp_url, json=body, headers=hdrs) for _ in range(10)))
                assert all(x.status_code == 200 for x in rs)

        asyncio.run(burst())
        t0 = time.monotonic()
        r = stateless(d.mcp_url + "/slow", "tools/list", {})
        assert r.status_code == 200 and time.monotonic() - t0 < 2.9
        assert slow_lists() == before + 1  # twelve lists, one upstream tools/list


def test_scoped_lists_follow_ttl_alone_the_aggregate_has_a_floor(tmp_path: Path) -> None:
    """With ``interface_refresh_min_ms`` at 10 minutes: /mcp/<service> still refreshes on every list
    (the upstream says ttlMs 0, as a direct client would ask it), /mcp does not fan out again."""
    with run_upstream("live_server") as up, \
            DaemonProc(tmp_path / "state", env={"RUNTIMED_INTERFACE_REFRESH_MIN_MS": "600000"}) as d:
        register_remote(d, "one", up.url)
        d.wait_state("one", "RUNNING", timeout=60)
        stateless(d.mcp_url + "/one", "tools/call", {"name": "add_quiet", "arguments": {"name": "floor_test"}})
        agg = stateless(d.mcp_url, "tools/list", {})
        assert "one__floor_test" not in {t["name"] for t in agg.json()["result"]["tools"]}
        scoped = stateless(d.mcp_url + "/one", "tools/list", {})
        assert "floor_test" in {t["name"] for t in scoped.json()["result"]["tools"]}
