"""Gateway: resource subscriptions across eras, and tools hidden by policy, through a real
daemon with real SDK upstreams on loopback and the official SDK ``Client``.

Services:
- ``w``: watch_server (both eras; the gateway talks 2026-07-28 to it, so a session-era
  client's ``resources/subscribe`` rides on the upstream's ``subscriptions/listen``)
- ``v``: watch_server --session-only (the gateway talks 2025-11-25 and forwards subscribe)
- ``h``: echo_server with ``deniedTools: [echo]`` and ``allowedTools`` without ``fail``
- ``k``: the conformance fixture (input-required results without a ``requestState``)
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote as _register
from tests.support.upstream import run_upstream

MODES = ("auto", "legacy")


class Env:
    def __init__(self, daemon: DaemonProc) -> None:
        self.daemon = daemon

    def url(self, service: str | None = None) -> str:
        return self.daemon.mcp_url + (f"/{service}" if service else "")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("gwsubs")
    with run_upstream("watch_server") as w, run_upstream("watch_server", "--session-only") as v, \
            run_upstream("echo_server", "--name", "h") as h, run_upstream("conformance_server") as k:
        d = DaemonProc(Path(tmp) / "state").start()
        try:
            _register(d, "w", w.url)
            _register(d, "v", v.url)
            _register(d, "h", h.url, policy={"deniedTools": ["echo"], "allowedTools": ["echo", "add", "log"]})
            _register(d, "k", k.url)
            for n in "wvhk":
                d.wait_state(n, "RUNNING", timeout=60)
            yield Env(d)
        finally:
            d.stop()


def text_of(result: Any) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


# -- resources/subscribe for session-era clients ---------------------------------------------

@pytest.mark.parametrize("service", ["w", "v"])
async def test_session_client_subscribe_receives_updates(env: Env, service: str) -> None:
    updated: list[str] = []
    got = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if isinstance(msg, types.ResourceUpdatedNotification):
            updated.append(str(msg.params.uri))
            got.set()

    async with Client(env.url(service), mode="legacy", cache=None, message_handler=on_message) as c:
        assert c.protocol_version != "2026-07-28"
        await c.subscribe_resource("test://watched")
        stats = json.loads(text_of(await c.call_tool("watch_stats", {})))
        if service == "v":  # a session-era upstream got the subscription itself
            assert stats["subscribed"] == ["test://watched"]
        else:  # a 2026-07-28 upstream has no resources/subscribe: it rides on subscriptions/listen
            assert stats["calls"].get("subscribe") is None
        r = await c.call_tool("touch", {})
        assert text_of(r).startswith("version ")
        await asyncio.wait_for(got.wait(), 30)
        assert updated[0] == "test://watched"
        await c.unsubscribe_resource("test://watched")
        if service == "v":
            stats = json.loads(text_of(await c.call_tool("watch_stats", {})))
            assert stats["subscribed"] == [] and stats["calls"]["unsubscribe"] >= 1


async def test_shared_upstream_subscription_outlives_the_first_unsubscribe(env: Env) -> None:
    """One upstream subscription is shared: the first unsubscribe must not end it for the other."""
    two_got = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if isinstance(msg, types.ResourceUpdatedNotification):
            two_got.set()

    async with Client(env.url("v"), mode="legacy", cache=None) as one, \
            Client(env.url("v"), mode="legacy", cache=None, message_handler=on_message) as two:
        await one.subscribe_resource("test://watched")
        await two.subscribe_resource("test://watched")
        await one.unsubscribe_resource("test://watched")
        stats = json.loads(text_of(await two.call_tool("watch_stats", {})))
        assert stats["subscribed"] == ["test://watched"]  # still held for `two`
        await two.call_tool("touch", {})
        await asyncio.wait_for(two_got.wait(), 30)
        await two.unsubscribe_resource("test://watched")
        stats = json.loads(text_of(await two.call_tool("watch_stats", {})))
        assert stats["subscribed"] == []


# -- resourceSubscriptions on subscriptions/listen (stateless-era clients) -----------------------

async def test_listen_resource_subscription_receives_updates(env: Env) -> None:
    async with Client(env.url("w"), mode="auto", cache=None) as c:
        assert c.protocol_version == "2026-07-28"
        async with c.listen(resource_subscriptions=["test://watched"]) as sub:
            await c.call_tool("touch", {})
            event = await asyncio.wait_for(sub.__anext__(), 30)
            assert "test://watched" in repr(event)


def stateless(url: str, method: str, params: dict[str, Any], caps: dict[str, Any] | None = None,
              name: str | None = None) -> httpx.Response:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": caps or {}}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, "Accept": "application/json, text/event-stream"}
    if name is not None:
        headers["Mcp-Name"] = name
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}},
                      headers=headers, timeout=30)


# -- input-required retries -----------------------------------------------------------------

@pytest.mark.parametrize("scoped", [False, True])
def test_retry_without_upstream_request_state_forwards_none(env: Env, scoped: bool) -> None:
    """The upstream's input-required result had no requestState: the gateway's signed state
    holds none, and the retry must not send requestState "" upstream (the SDK refuses that)."""
    name = "test_input_required_result_elicitation" if scoped else "k__test_input_required_result_elicitation"
    url = env.url("k" if scoped else None)
    caps = {"elicitation": {}}
    res = stateless(url, "tools/call", {"name": name, "arguments": {}}, caps, name).json()["result"]
    assert res["resultType"] == "input_required", res
    body = res["requestState"].split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["st"] in ("", None)
    reply = {"user_name": {"action": "accept", "content": {"name": "Ada"}}}
    r = stateless(url, "tools/call", {"name": name, "arguments": {}, "requestState": res["requestState"],
                                      "inputResponses": reply}, caps, name)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["content"][0]["text"] == "Hello, Ada!"


# -- removed methods in the stateless era ------------------------------------------------------

@pytest.mark.parametrize("method", ["ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe", "initialize"])
def test_removed_methods_are_404_in_2026_07_28(env: Env, method: str) -> None:
    r = stateless(env.url("w"), method, {})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == -32601


# -- tools hidden by policy --------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scoped", [False, True])
async def test_hidden_tool_call_is_an_error_result_naming_the_policy(env: Env, mode: str, scoped: bool) -> None:
    prefix = "" if scoped else "h__"
    async with Client(env.url("h" if scoped else None), mode=mode, cache=None) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert f"{prefix}add" in names
        assert f"{prefix}echo" not in names and f"{prefix}fail" not in names
        r = await c.call_tool(f"{prefix}echo", {"text": "x"})
        assert r.is_error and "deniedTools" in text_of(r)
        r = await c.call_tool(f"{prefix}fail", {})
        assert r.is_error and "allowedTools" in text_of(r)
        r = await c.call_tool(f"{prefix}add", {"a": 1, "b": 2})
        assert not r.is_error and text_of(r) == "3"
        # a name the service does not list is forwarded (issue 12, point 5), so its policy answers
        r = await c.call_tool(f"{prefix}no_such_tool", {})
        assert r.is_error and "allowedTools" in text_of(r)
        if not scoped:  # on /mcp, a name with no service's namespace is still an unknown tool (-32602)
            with pytest.raises(Exception) as e:
                await c.call_tool("zz__no_such_tool", {})
            assert "Unknown tool" in str(e.value) or "-32602" in str(e.value)
