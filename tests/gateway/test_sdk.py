"""The gateway end to end: the official SDK ``Client`` (auto and legacy modes)
against a real daemon with real SDK upstreams on loopback.

Services (one daemon per module):
- ``a``: echo_server --name a
- ``b``: echo_server --name b
- ``c``: echo_server --many-tools 120 --long-names (pagination, long names)
- ``d``: the ``a`` upstream under another URL with ``toolNamespace: a`` (collisions)
- ``e``: the ``b`` upstream under another URL (stopped and started for list_changed)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote as _register
from tests.support.upstream import run_upstream

MODES = ("auto", "legacy")


class Env:
    def __init__(self, daemon: DaemonProc, ups: dict[str, Any]) -> None:
        self.daemon = daemon
        self.ups = ups

    def url(self, service: str | None = None) -> str:
        return self.daemon.mcp_url + (f"/{service}" if service else "")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("gw")
    with run_upstream("echo_server", "--name", "a") as a, run_upstream("echo_server", "--name", "b") as b, \
            run_upstream("echo_server", "--name", "c", "--many-tools", "120", "--long-names") as c:
        # Small pages, so that listing crosses page and service boundaries (the default is 1000 items).
        d = DaemonProc(Path(tmp) / "state", args=["--admin-tools"], env={"RUNTIMED_LIST_PAGE_SIZE": "100"}).start()
        try:
            _register(d, "a", a.url)
            _register(d, "b", b.url)
            _register(d, "c", c.url)
            _register(d, "d", a.url + "?copy=d", toolNamespace="a")
            _register(d, "e", b.url + "?copy=e")
            for n in "abcde":
                d.wait_state(n, "RUNNING", timeout=60)
            yield Env(d, {"a": a, "b": b, "c": c})
        finally:
            d.stop()


async def all_tools(c: Client) -> list[types.Tool]:
    out: list[types.Tool] = []
    cursor = None
    while True:
        page = await c.list_tools(cursor=cursor)
        out += page.tools
        cursor = page.next_cursor
        if not cursor:
            return out


def text_of(result: Any) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


# -- list, call, read, templates, get, completion ------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_aggregate_lists_and_calls(gw: Env, mode: str) -> None:
    async with Client(gw.url(), mode=mode, cache=None) as c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        names = {t.name for t in await all_tools(c)}
        assert {"a__echo", "b__echo", "a__add", "runtime__list_services"} <= names
        # admin tools are on: the daemon was started with --admin-tools
        assert "runtime__stop_service" in names
        r = await c.call_tool("a__echo", {"text": "hi"})
        assert not r.is_error and text_of(r) == "hi"
        r = await c.call_tool("b__add", {"a": 2, "b": 3})
        assert text_of(r) == "5"
        # a tool's own failure is an isError result, not a protocol error
        r = await c.call_tool("a__fail", {"message": "kaput"})
        assert r.is_error and "fail" in text_of(r)
        # resources: routed by URI; collisions across services resolved to one listing
        uris = [str(r.uri) for r in (await c.list_resources()).resources]
        assert uris.count("test://static-text") == 1
        read = await c.read_resource("test://static-text")
        assert "static text" in read.contents[0].text
        tpls = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
        assert "test://items/{item_id}" in tpls
        read = await c.read_resource("test://items/42")
        assert read.contents[0].text == "item 42"
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        assert {"a__greet", "b__greet"} <= prompts
        got = await c.get_prompt("b__greet", {"name": "Ada", "style": "formal"})
        assert "Ada" in got.messages[0].content.text and "formal" in got.messages[0].content.text
        comp = await c.complete(types.PromptReference(type="ref/prompt", name="a__greet"),
                                {"name": "style", "value": "f"})
        assert comp.completion.values == ["friendly", "formal"]
        status = await c.call_tool("runtime__status_summary", {})
        assert status.structured_content["services"] == 5


@pytest.mark.parametrize("mode", MODES)
async def test_single_service_endpoint_is_transparent(gw: Env, mode: str) -> None:
    async with Client(gw.url("b"), mode=mode, cache=None) as c:
        names = {t.name for t in await all_tools(c)}
        assert "echo" in names and "add" in names
        assert not any("__" in n for n in names)
        assert c.server_info is not None and c.server_info.name == "b"
        r = await c.call_tool("echo", {"text": "direct"})
        assert text_of(r) == "direct"
        got = await c.get_prompt("greet", {"name": "Bo"})
        assert "Bo" in got.messages[0].content.text
        comp = await c.complete(types.PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "a"})
        assert comp.completion.values == ["alice"]
        # A name the service does not list is forwarded (issue 12, point 5): the upstream answers.
        r = await c.call_tool("a__echo", {"text": "x"})
        assert r.is_error and "Unknown tool: a__echo" in text_of(r)


# -- relays --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_progress_is_relayed(gw: Env, mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(gw.url(), mode=mode, cache=None) as c:
        r = await c.call_tool("a__slow", {"seconds": 0.4, "steps": 4}, progress_callback=on_progress)
        assert text_of(r) == "slept 0.4"
    assert [p for p, _, _ in seen] == [1, 2, 3, 4]
    assert seen[-1][1] == 4 and seen[0][2] == "step 1 of 4"


@pytest.mark.parametrize("mode", MODES)
async def test_sampling_and_elicitation_reach_the_client(gw: Env, mode: str) -> None:
    asked: list[str] = []

    async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("sampling:" + params.messages[0].content.text)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="forty-two"),
                                         model="test-model")

    async def elicit(ctx: Any, params: Any) -> types.ElicitResult:
        asked.append("elicit:" + params.message)
        return types.ElicitResult(action="accept", content={"answer": "blue"})

    async with Client(gw.url(), mode=mode, cache=None, sampling_callback=sampling, elicitation_callback=elicit) as c:
        r = await c.call_tool("a__sample", {"prompt": "meaning of life?"})
        assert not r.is_error, text_of(r)
        assert text_of(r) == "model said: forty-two"
        r = await c.call_tool("b__ask", {"question": "favourite colour?"})
        assert text_of(r) == "user answered: blue"
    assert asked == ["sampling:meaning of life?", "elicit:favourite colour?"]


@pytest.mark.parametrize("mode", MODES)
async def test_cancellation_reaches_the_upstream(gw: Env, mode: str) -> None:
    async def cancelled_count() -> int:
        async with Client(gw.url("b"), mode="legacy", cache=None) as s:
            return json.loads(text_of(await s.call_tool("stats", {})))["cancelled_tools"]

    before = await cancelled_count()
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(gw.url(), mode=mode, cache=None) as c:
        task = asyncio.ensure_future(c.call_tool("b__slow", {"seconds": 60, "steps": 60}, progress_callback=on_progress))
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # The cancellation travels asynchronously: poll until a generous deadline (a hang guard on a
    # loaded machine, not a timing assertion; the tool itself would run for 60 s).
    deadline = asyncio.get_running_loop().time() + 45
    while await cancelled_count() == before and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
    assert await cancelled_count() == before + 1


# -- naming, collisions, pagination ----------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_pagination_across_services(gw: Env, mode: str) -> None:
    async with Client(gw.url(), mode=mode, cache=None) as c:
        first = await c.list_tools()
        assert first.next_cursor, "more than one page expected (c alone has 131 tools)"
        tools = await all_tools(c)
    names = [t.name for t in tools]
    assert len(names) == len(set(names))
    assert sum(1 for n in names if n.startswith("c__")) == 131  # 11 regular tools + 120 bulk tools
    assert len(first.tools) < len(tools)


async def test_long_names_are_shortened_stably_and_callable(gw: Env) -> None:
    async with Client(gw.url(), mode="legacy", cache=None) as c:
        tools = await all_tools(c)
        long = [t for t in tools if t.name.startswith("c__bulk")]
        assert len(long) == 120
        for t in tools:
            assert len(t.name) <= 64 and all(ch.isalnum() or ch in "_-." for ch in t.name), t.name
        target = next(t for t in long if t.description == "bulk tool 7")
        r = await c.call_tool(target.name, {})
        assert text_of(r) == "bulk 7"
    async with Client(gw.url(), mode="auto", cache=None) as c2:
        again = {t.description: t.name for t in await all_tools(c2) if t.name.startswith("c__bulk")}
    assert again["bulk tool 7"] == target.name  # stable across clients and eras
    events = gw.daemon.api("GET", "/api/events", params={"limit": 2000}).json()
    evs = events.get("events", events) if isinstance(events, dict) else events
    naming = [e for e in evs if e.get("type") == "naming" and e.get("service") == "c"]
    assert any(e["public"] == target.name for e in naming)


async def test_name_collisions_are_deterministic(gw: Env) -> None:
    async with Client(gw.url(), mode="legacy", cache=None) as c:
        tools = await all_tools(c)
        echoes = [t for t in tools if t.name.startswith("a__echo")]
        assert len(echoes) == 2
        services = {t.name: (t.meta or {}).get("io.runtimed/service") for t in echoes}
        assert services["a__echo"] == "a"  # first in name order keeps the plain name
        other = next(n for n, s in services.items() if s == "d")
        assert other != "a__echo" and len(other) <= 64
        r = await c.call_tool(other, {"text": "via d"})
        assert text_of(r) == "via d"


# -- list_changed ----------------------------------------------------------------------

async def test_list_changed_after_stop_and_start_legacy(gw: Env) -> None:
    got: list[str] = []
    changed = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if isinstance(msg, types.ToolListChangedNotification):
            got.append(msg.method)
            changed.set()

    async with Client(gw.url(), mode="legacy", cache=None, message_handler=on_message) as c:
        assert any(t.name == "e__echo" for t in await all_tools(c))
        await asyncio.sleep(0.2)  # let the SDK open its GET stream (it does so in the background)
        r = gw.daemon.api("POST", "/api/services/e/stop")
        assert r.status_code == 200, r.text
        await asyncio.wait_for(changed.wait(), 30)
        assert not any(t.name == "e__echo" for t in await all_tools(c))
        changed.clear()
        r = gw.daemon.api("POST", "/api/services/e/start")
        assert r.status_code == 200, r.text
        await asyncio.wait_for(changed.wait(), 30)
        gw.daemon.wait_state("e", "RUNNING")
        assert any(t.name == "e__echo" for t in await all_tools(c))


async def test_list_changed_after_stop_and_start_stateless_listen(gw: Env) -> None:
    async with Client(gw.url(), mode="auto", cache=None) as c:
        assert c.protocol_version == "2026-07-28"
        async with c.listen(tools_list_changed=True) as sub:
            r = gw.daemon.api("POST", "/api/services/e/stop")
            assert r.status_code == 200, r.text
            event = await asyncio.wait_for(sub.__anext__(), 30)
            assert "tools" in type(event).__name__.lower() or "tools" in repr(event).lower()
        assert not any(t.name == "e__echo" for t in await all_tools(c))
    gw.daemon.api("POST", "/api/services/e/start")
    gw.daemon.wait_state("e", "RUNNING")


async def test_upstream_list_changed_reaches_clients(gw: Env) -> None:
    changed = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if isinstance(msg, types.ToolListChangedNotification):
            changed.set()

    async with Client(gw.url(), mode="legacy", cache=None, message_handler=on_message) as c:
        await asyncio.sleep(0.2)
        r = await c.call_tool("b__add_tool", {"name": "fresh"})
        assert text_of(r) == "added fresh"
        await asyncio.wait_for(changed.wait(), 30)
        for _ in range(100):
            if any(t.name == "b__fresh" for t in await all_tools(c)):
                break
            await asyncio.sleep(0.1)
        r = await c.call_tool("b__fresh", {"text": "x"})
        assert text_of(r) == "fresh: x"


@pytest.mark.parametrize("mode", MODES)
async def test_log_messages_and_roots_are_relayed(gw: Env, mode: str) -> None:
    logs: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def roots(ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async with Client(gw.url(), mode=mode, cache=None, logging_callback=on_log, list_roots_callback=roots,
                      log_level="info") as c:
        r = await c.call_tool("a__log", {"text": "hello log"})
        assert text_of(r) == "logged"
        r = await c.call_tool("b__roots", {})
        assert json.loads(text_of(r)) == ["file:///work/project"]
    assert "hello log" in logs
