"""Profiles served at ``/mcp/@NAME`` by a real daemon, through the official SDK ``Client`` in both
eras (auto: 2026-07-28, legacy: 2025-11-25), with real upstreams: two SDK echo servers and the
TypeScript reference server (server-everything).

Services: ``a`` and ``b`` (tests/upstreams/echo_server.py), ``ev`` (server-everything).
Profiles (made through ``/api/profiles``):
- ``dev``: services a and ev; tools ``a__*`` less ``a__fail``/``a__big``, plus ``ev__echo`` and
  ``ev__get-sum``; ``a__echo`` renamed ``say``, ``ev__echo`` renamed ``repeat``, ``a__add``'s
  description and annotations overridden, ``a__slow`` hidden; prompts of ``a`` only, no resources.
- ``bees``: services ``b*``, everything else by default.
- ``ghost``: a service that does not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.mcpclient import GUARD, call, client, text_of
from tests.support.thirdparty import run_everything
from tests.support.upstream import run_upstream

MODES = ("auto", "legacy")


def profile(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": name}, "spec": spec}


DEV = profile(
    "dev",
    services={"include": ["a", "ev"]},
    tools={"include": ["a__*", "ev__echo", "ev__get-sum"], "exclude": ["a__fail", "a__big"]},
    overrides={
        "a__echo": {"name": "say", "description": "Say it back."},
        "ev__echo": {"name": "repeat"},
        "a__add": {"description": "Sum two numbers (overridden).",
                   "annotations": {"title": "Adder", "destructiveHint": False}},
        "a__slow": {"hidden": True},
    },
    prompts={"include": ["a"]},
    resources={"include": ["nothing-by-that-name"]},
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    tmp = tmp_path_factory.mktemp("profiles")
    with run_upstream("echo_server", "--name", "a") as a, run_upstream("echo_server", "--name", "b") as b, \
            run_everything() as ev:
        d = DaemonProc(Path(tmp) / "state").start()
        try:
            register_remote(d, "a", a.url)
            register_remote(d, "b", b.url)
            register_remote(d, "ev", ev.url)
            for n in ("a", "b", "ev"):
                d.wait_state(n, "RUNNING", timeout=60)
            for p in (DEV, profile("bees", services={"include": ["b*"]}),
                      profile("ghost", services={"include": ["no-such-service"]})):
                r = d.api("POST", "/api/profiles", json=p)
                assert r.status_code == 201, r.text
            yield d
        finally:
            d.stop()


def url(d: DaemonProc, name: str) -> str:
    return f"{d.mcp_url}/@{name}"


async def tools_of(c: Client) -> dict[str, types.Tool]:
    out: dict[str, types.Tool] = {}
    cursor = None
    while True:
        page = await asyncio.wait_for(c.list_tools(cursor=cursor), GUARD)
        out.update((t.name, t) for t in page.tools)
        cursor = page.next_cursor
        if not cursor:
            return out


def records(d: DaemonProc, **query: str) -> list[dict[str, Any]]:
    r = d.api("GET", "/api/audit", params={"limit": 500, **query})
    assert r.status_code == 200, r.text
    calls: list[dict[str, Any]] = r.json()["calls"]
    return calls


# -- listing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_the_listing_follows_the_selections_and_overrides(daemon: DaemonProc, mode: str) -> None:
    async with client(daemon.mcp_url, mode) as c:
        everything = await tools_of(c)
    async with client(url(daemon, "dev"), mode) as c:
        tools = await tools_of(c)
        assert c.server_info is not None and c.server_info.name == "runtimed/@dev"
    # /mcp's a__* tools, less the excluded, hidden and renamed ones, plus the renamed and ev's two.
    expected = {n for n in everything if n.startswith("a__")} - {"a__fail", "a__big", "a__slow", "a__echo"}
    assert set(tools) == expected | {"say", "repeat", "ev__get-sum"}
    assert not any(n.startswith(("b__", "runtime__")) for n in tools)
    assert "ev__get-env" in everything and "ev__get-env" not in tools
    # Overrides: the name and description shown; annotations merged over the upstream's own.
    assert tools["say"].description == "Say it back."
    assert tools["say"].input_schema == everything["a__echo"].input_schema
    add = tools["a__add"]
    assert add.description == "Sum two numbers (overridden)."
    assert add.annotations is not None
    assert (add.annotations.title, add.annotations.destructive_hint) == ("Adder", False)
    assert add.annotations.read_only_hint is True and add.annotations.idempotent_hint is True  # the upstream's
    assert tools["repeat"].description == everything["ev__echo"].description
    # /mcp itself is unchanged by a profile.
    assert everything["a__add"].description == "Add two integers."


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_and_resources_follow_their_own_selections(daemon: DaemonProc, mode: str) -> None:
    async with client(url(daemon, "dev"), mode) as c:
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        assert prompts == {"a__greet"}  # ev's prompts are not selected
        assert (await c.list_resources()).resources == []
        got = await c.get_prompt("a__greet", {"name": "Ada"})
        assert "Ada" in got.messages[0].content.text
        with pytest.raises(MCPError):
            await c.read_resource("test://static-text")
    async with client(url(daemon, "bees"), mode) as c:
        tools = await tools_of(c)
        assert tools and all(n.startswith("b__") for n in tools)
        assert {p.name for p in (await c.list_prompts()).prompts} == {"b__greet"}
        read = await c.read_resource("test://static-text")  # b's resources, the default
        assert "static text" in read.contents[0].text


# -- calling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_a_renamed_tool_routes_to_the_original_and_records_both_names(daemon: DaemonProc, mode: str) -> None:
    word = f"hello-{mode}"
    async with client(url(daemon, "dev"), mode) as c:
        r = await call(c, "say", {"text": word})
        assert not r.is_error and text_of(r) == word
        r = await call(c, "repeat", {"message": word})
        assert not r.is_error and text_of(r) == f"Echo: {word}"
        r = await call(c, "a__add", {"a": 2, "b": 40})
        assert text_of(r) == "42"
    era = "stateless" if mode == "auto" else "session"
    said = [r for r in records(daemon, service="a", tool="echo") if r.get("profileTool") == "say" and r["era"] == era]
    assert said and said[0]["profile"] == "dev" and said[0]["outcome"] == "ok"
    repeated = [r for r in records(daemon, service="ev", tool="echo") if r.get("profile") == "dev" and r["era"] == era]
    assert repeated and repeated[0]["profileTool"] == "repeat"
    added = [r for r in records(daemon, service="a", tool="add") if r.get("profile") == "dev" and r["era"] == era]
    assert added and added[0]["profileTool"] == "a__add"
    # The service page's calls show both names too.
    page = daemon.api("GET", "/api/ui/services/a/calls").text
    assert 'data-via-profile="dev"' in page and "as <code>say</code> on @dev" in page, page[:2000]


@pytest.mark.parametrize("mode", MODES)
async def test_a_profile_cannot_reach_a_tool_outside_it(daemon: DaemonProc, mode: str) -> None:
    before = len(records(daemon))
    async with client(url(daemon, "dev"), mode) as c:
        # The original name of a renamed tool, a hidden one, excluded ones, another service's, a built-in.
        for name in ("a__echo", "ev__echo", "a__slow", "a__fail", "a__big", "b__echo", "ev__get-env",
                     "runtime__list_services"):
            with pytest.raises(MCPError) as e:
                await call(c, name, {"text": "x", "message": "x", "seconds": 0})
            assert e.value.error.code == -32602 and "offers no such tool" in e.value.error.message, name
        # The very same names on /mcp do reach their tools.
    async with client(daemon.mcp_url, mode) as c:
        r = await call(c, "a__echo", {"text": "via /mcp"})
        assert text_of(r) == "via /mcp"
    after = records(daemon)
    assert len(after) == before + 1 and after[0].get("profile") is None  # only the /mcp call reached an upstream


@pytest.mark.parametrize("mode", MODES)
async def test_a_profile_of_a_service_that_does_not_exist_serves_nothing(daemon: DaemonProc, mode: str) -> None:
    async with client(url(daemon, "ghost"), mode) as c:
        assert await tools_of(c) == {}
        assert (await c.list_prompts()).prompts == []
        with pytest.raises(MCPError):
            await call(c, "a__echo", {"text": "x"})


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
def test_an_unknown_profile_is_a_404_that_names_the_profiles(daemon: DaemonProc, version: str) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}
    if version == "2025-11-25":
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                "params": {"protocolVersion": version, "capabilities": {},
                                           "clientInfo": {"name": "t", "version": "1"}}}
        headers = {}
    else:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
        headers = {"MCP-Protocol-Version": version, "Mcp-Method": "tools/list"}
    r = httpx.post(url(daemon, "nope"), json=body, timeout=30,
                   headers={"Accept": "application/json, text/event-stream", **headers})
    assert r.status_code == 404
    err = r.json()["error"]
    assert "no profile named 'nope'" in err["message"] and "bees, dev, ghost" in err["message"]


# -- the REST API and changes ---------------------------------------------------------------------

def test_the_rest_api(daemon: DaemonProc) -> None:
    listed = daemon.api("GET", "/api/profiles").json()["profiles"]
    assert [p["name"] for p in listed] == ["bees", "dev", "ghost"]
    dev = next(p for p in listed if p["name"] == "dev")
    assert dev["endpoint"] == f"{daemon.url}/mcp/@dev" and dev["mode"] == "full" and dev["pinTools"] is False
    assert dev["manifest"]["spec"]["overrides"]["a__echo"]["name"] == "say"
    one = daemon.api("GET", "/api/profiles/dev").json()
    by_name = {t["name"]: t for t in one["tools"]}
    assert one["toolCount"] == len(one["tools"]) == dev["toolCount"]
    assert by_name["say"] == {"name": "say", "original": "a__echo", "service": "a"}
    assert by_name["repeat"] == {"name": "repeat", "original": "ev__echo", "service": "ev"}
    assert "a__echo" not in by_name and "a__slow" not in by_name
    assert next(p for p in listed if p["name"] == "ghost")["toolCount"] == 0
    # Refusals: what is wrong, with a 4xx.
    r = daemon.api("GET", "/api/profiles/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = daemon.api("DELETE", "/api/profiles/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = daemon.api("POST", "/api/profiles", json=profile("bad", mode="sometimes"))
    assert r.status_code == 400 and "mode" in r.json()["error"]
    r = daemon.api("POST", "/api/profiles", json=profile("bad", overrides={"a__x": {"name": "has space"}}))
    assert r.status_code == 400 and "invalid profile" in r.json()["error"]
    r = daemon.api("POST", "/api/profiles", json={**profile("bad"), "kind": "MCPService"})
    assert r.status_code == 400
    assert "bad" not in [p["name"] for p in daemon.api("GET", "/api/profiles").json()["profiles"]]


async def test_a_changed_profile_is_served_at_once_and_its_clients_are_told(daemon: DaemonProc) -> None:
    r = daemon.api("POST", "/api/profiles", json=profile("temp", services={"include": ["a"]},
                                                        tools={"include": ["a__echo"]}))
    assert r.status_code == 201 and r.json()["profile"]["toolCount"] == 1
    changed = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if isinstance(msg, types.ToolListChangedNotification):
            changed.set()

    async with Client(url(daemon, "temp"), mode="legacy", cache=None, message_handler=on_message) as c:
        assert set(await tools_of(c)) == {"a__echo"}
        await asyncio.sleep(0.2)  # the session's GET stream is open (no notification is lost before it)
        r = daemon.api("POST", "/api/profiles", json=profile("temp", services={"include": ["a"]},
                                                            tools={"include": ["a__echo", "a__add"]}))
        assert r.status_code == 200 and r.json()["profile"]["toolCount"] == 2
        await asyncio.wait_for(changed.wait(), GUARD)
        assert set(await tools_of(c)) == {"a__echo", "a__add"}
        assert daemon.api("DELETE", "/api/profiles/temp").json() == {"removed": "temp"}
        # The endpoint is gone with its profile, for the open session too.
        with pytest.raises(MCPError) as e:
            await tools_of(c)
        assert "no profile named 'temp'" in e.value.error.message
    r = httpx.post(url(daemon, "temp"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
    assert r.status_code == 404


async def test_profiles_outlive_a_restart(tmp_path: Path) -> None:
    with run_upstream("echo_server", "--name", "a") as a:
        d = DaemonProc(tmp_path / "state").start()
        try:
            register_remote(d, "a", a.url)
            d.wait_state("a", "RUNNING", timeout=60)
            r = d.api("POST", "/api/profiles", json=profile("keep", services={"include": ["a"]},
                                                           overrides={"a__echo": {"name": "parrot"}}))
            assert r.status_code == 201, r.text
        finally:
            d.stop()
        d = DaemonProc(tmp_path / "state").start()
        try:
            d.wait_state("a", "RUNNING", timeout=60)
            assert [p["name"] for p in d.api("GET", "/api/profiles").json()["profiles"]] == ["keep"]
            for mode in MODES:
                async with client(url(d, "keep"), mode) as c:
                    tools = await tools_of(c)
                    assert "parrot" in tools and "a__echo" not in tools
                    assert text_of(await call(c, "parrot", {"text": "again"})) == "again"
        finally:
            d.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_an_override_name_wins_over_the_tool_whose_name_it_takes(daemon: DaemonProc, mode: str) -> None:
    r = daemon.api("POST", "/api/profiles", json=profile(f"swap-{mode}", services={"include": ["a"]},
                                                        tools={"include": ["a__echo", "a__add"]},
                                                        overrides={"a__add": {"name": "a__echo"}}))
    assert r.status_code == 201, r.text
    try:
        async with client(url(daemon, f"swap-{mode}"), mode) as c:
            tools = await tools_of(c)
            assert list(tools) == ["a__echo"] and tools["a__echo"].description == "Add two integers."
            assert text_of(await call(c, "a__echo", {"a": 1, "b": 2})) == "3"
            with pytest.raises(MCPError):
                await call(c, "a__add", {"a": 1, "b": 2})
    finally:
        daemon.api("DELETE", f"/api/profiles/swap-{mode}")
