"""A search-mode profile through a real daemon, with the official SDK ``Client`` in both eras and
real upstreams: two SDK echo servers, the revenue-operations connector (pol_revops) and the
TypeScript reference server (server-everything).

Services: ``a`` (echo_server), ``revops`` (pol_revops), ``ev`` (server-everything), ``guard``
(another echo_server whose policy denies ``fail``) and ``metered`` (the ``a`` upstream under
another URL, 3 calls per hour). Profile ``finder``: every service, search mode, ``a__echo``
renamed ``say`` with its own description.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.mcpclient import GUARD, call, client, text_of
from tests.support.thirdparty import run_everything
from tests.support.upstream import run_upstream

MODES = ("auto", "legacy")
FINDER = {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": "finder"},
          "spec": {"mode": "search",
                   "overrides": {"a__echo": {"name": "say", "description": "Repeat a sentence back, word for word."},
                                 "a__big": {"hidden": True}}}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    tmp = tmp_path_factory.mktemp("search")
    with run_upstream("echo_server", "--name", "a") as a, run_upstream("echo_server", "--name", "g") as g, \
            run_upstream("pol_revops", "--job-seconds", "0.2", "--steps", "2") as revops, run_everything() as ev:
        d = DaemonProc(Path(tmp) / "state").start()
        try:
            register_remote(d, "a", a.url)
            register_remote(d, "revops", revops.url)
            register_remote(d, "ev", ev.url)
            register_remote(d, "guard", g.url, policy={"deniedTools": ["fail"]})
            register_remote(d, "metered", a.url + "?copy=metered", policy={"rateLimit": {"calls": 3, "per": "hour"}})
            for n in ("a", "revops", "ev", "guard", "metered"):
                d.wait_state(n, "RUNNING", timeout=60)
            r = d.api("POST", "/api/profiles", json=FINDER)
            assert r.status_code == 201, r.text
            yield d
        finally:
            d.stop()


def url(d: DaemonProc) -> str:
    return f"{d.mcp_url}/@finder"


async def search(c: Client, query: str, limit: int | None = None) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"query": query} | ({"limit": limit} if limit is not None else {})
    r = await call(c, "search_tools", args)
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    assert json.loads(text_of(r)) == r.structured_content
    found: list[dict[str, Any]] = r.structured_content["tools"]
    return found


def calls_of(d: DaemonProc, **query: str) -> list[dict[str, Any]]:
    r = d.api("GET", "/api/audit", params={"limit": 500, **query})
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["calls"]
    return out


@pytest.mark.parametrize("mode", MODES)
async def test_the_client_sees_three_tools(daemon: DaemonProc, mode: str) -> None:
    async with client(url(daemon), mode) as c:
        tools = (await c.list_tools()).tools
        assert [t.name for t in tools] == ["search_tools", "describe_tool", "call_tool"]
        search_tool = tools[0]
        assert search_tool.input_schema["required"] == ["query"]
        assert search_tool.input_schema["properties"]["limit"]["maximum"] == 50
    # Every tool is still reachable through them: the REST API lists what the search covers.
    detail = daemon.api("GET", "/api/profiles/finder").json()
    names = {t["name"] for t in detail["tools"]}
    assert detail["mode"] == "search" and detail["toolCount"] == len(names) > 30
    assert {"say", "revops__forecast", "ev__get-sum", "metered__add"} <= names
    assert not names & {"a__echo", "a__big", "guard__fail", "search_tools"}


QUERIES = [
    ("forecast bookings for next quarter", "revops__forecast"),
    ("sum of two numbers", "ev__get-sum"),
    ("show me the environment variables", "ev__get-env"),
    ("repeat my sentence back", "say"),
    ("change the stage of an opportunity", "revops__update_opportunity"),
    ("long running operation with progress updates", "ev__trigger-long-running-operation"),
]


@pytest.mark.parametrize("mode", MODES)
async def test_search_ranks_the_relevant_tool_first(daemon: DaemonProc, mode: str) -> None:
    async with client(url(daemon), mode) as c:
        for query, expected in QUERIES:
            found = await search(c, query)
            assert found and found[0]["name"] == expected, (query, [f["name"] for f in found[:5]])
            assert 1 <= len(found) <= 10
        first = (await search(c, "forecast bookings"))[0]
        assert first == {"name": "revops__forecast", "service": "revops",
                         "description": "Forecast bookings for a quarter (runs a job of 5-30 s, with progress)."}
        # The renamed tool is found by its new description, never by its old name; hidden and
        # policy-hidden tools are not found at all.
        assert all(f["name"] not in ("a__echo", "a__big", "guard__fail") for f in await search(c, "echo big fail", 50))
        assert len(await search(c, "a", 50)) <= 50
        r = await call(c, "search_tools", {"query": "x", "limit": 51})
        assert r.is_error and "limit" in text_of(r)
        r = await call(c, "search_tools", {"query": "  "})
        assert r.is_error and "query" in text_of(r)


@pytest.mark.parametrize("mode", MODES)
async def test_describe_tool_gives_the_full_definition(daemon: DaemonProc, mode: str) -> None:
    async with client(url(daemon), mode) as c:
        r = await call(c, "describe_tool", {"name": "ev__get-sum"})
        assert not r.is_error
        tool = r.structured_content["tool"]
        assert tool["name"] == "ev__get-sum" and set(tool["inputSchema"]["properties"]) == {"a", "b"}
        r = await call(c, "describe_tool", {"name": "say"})
        tool = r.structured_content["tool"]
        assert tool["description"] == "Repeat a sentence back, word for word."
        assert tool["annotations"]["readOnlyHint"] is True and "text" in tool["inputSchema"]["properties"]
        for unknown in ("a__echo", "nope", "a__big"):
            r = await call(c, "describe_tool", {"name": unknown})
            assert r.is_error and "search_tools" in text_of(r) and repr(unknown) in text_of(r)


@pytest.mark.parametrize("mode", MODES)
async def test_call_tool_takes_the_path_of_a_direct_call(daemon: DaemonProc, mode: str) -> None:
    era = "stateless" if mode == "auto" else "session"
    async with client(url(daemon), mode) as c:
        r = await call(c, "call_tool", {"name": "ev__get-sum", "arguments": {"a": 20, "b": 22}})
        assert not r.is_error and "42" in text_of(r)
        r = await call(c, "call_tool", {"name": "say", "arguments": {"text": f"hi {mode}"}})
        assert not r.is_error and text_of(r) == f"hi {mode}"
        # A tool's own failure is its result, as on a direct call.
        r = await call(c, "call_tool", {"name": "a__fail", "arguments": {"message": "kaput"}})
        assert r.is_error and "fail" in text_of(r)
        # A tool found by search may also be called directly on the profile.
        r = await call(c, "ev__get-sum", {"a": 1, "b": 2})
        assert "3" in text_of(r)
        # Unknown: the original name of a renamed tool, a hidden one, one that does not exist.
        for unknown in ("a__echo", "a__big", "nope"):
            r = await call(c, "call_tool", {"name": unknown, "arguments": {"text": "x"}})
            assert r.is_error and "search_tools" in text_of(r), unknown
        with pytest.raises(MCPError):
            await call(c, "a__echo", {"text": "x"})
    summed = [r for r in calls_of(daemon, service="ev", tool="get-sum") if r.get("era") == era]
    assert [r["profileTool"] for r in summed[:2]] == ["ev__get-sum", "ev__get-sum"]
    assert all(r["profile"] == "finder" for r in summed)
    said = [r for r in calls_of(daemon, service="a", tool="echo") if r.get("era") == era]
    assert said and said[0]["profileTool"] == "say" and said[0]["outcome"] == "ok"
    assert not [r for r in calls_of(daemon) if r.get("profileTool") in ("a__echo", "a__big", "nope")]


@pytest.mark.parametrize("mode", MODES)
async def test_call_tool_obeys_a_service_policy_that_hides_a_tool(daemon: DaemonProc, mode: str) -> None:
    async with client(url(daemon), mode) as c:
        r = await call(c, "call_tool", {"name": "guard__fail", "arguments": {}})
        assert r.is_error and "deniedTools" in text_of(r)
        assert (r.meta or {}).get("runtimed", {}).get("policy") == "deniedTools"
        r = await call(c, "call_tool", {"name": "guard__echo", "arguments": {"text": "allowed"}})
        assert not r.is_error and text_of(r) == "allowed"
    refused = calls_of(daemon, service="guard", tool="fail")
    assert refused and refused[0]["outcome"] == "refused" and refused[0]["profile"] == "finder"


async def test_call_tool_obeys_a_rate_limit_in_both_eras(daemon: DaemonProc) -> None:
    """``metered`` allows 3 calls an hour, however they come: through call_tool in either era, or
    directly on the profile."""
    outcomes: list[str] = []
    for mode, how in (("auto", "call_tool"), ("legacy", "call_tool"), ("auto", "direct"), ("legacy", "call_tool")):
        async with client(url(daemon), mode) as c:
            if how == "call_tool":
                r = await call(c, "call_tool", {"name": "metered__add", "arguments": {"a": 1, "b": 1}})
            else:
                r = await call(c, "metered__add", {"a": 1, "b": 1})
            outcomes.append("ok" if not r.is_error else (r.meta or {}).get("runtimed", {}).get("policy", text_of(r)))
    assert outcomes == ["ok", "ok", "ok", "rateLimit"]
    recs = calls_of(daemon, service="metered")
    assert [r["outcome"] for r in recs[:4]] == ["rate_limited", "ok", "ok", "ok"]


async def test_the_index_follows_the_catalog(daemon: DaemonProc) -> None:
    """A tool an upstream adds at run time (tools list_changed) is found by the next searches."""
    async with client(daemon.mcp_url, "legacy") as c:
        r = await call(c, "a__add_tool", {"name": "zebra_census"})
        assert text_of(r) == "added zebra_census"
    async with client(url(daemon), "auto") as c:
        deadline = asyncio.get_running_loop().time() + GUARD
        found: list[dict[str, Any]] = []
        while asyncio.get_running_loop().time() < deadline:
            found = await search(c, "zebra census")
            if found:
                break
            await asyncio.sleep(0.2)
        assert found and found[0]["name"] == "a__zebra_census"
        r = await call(c, "call_tool", {"name": "a__zebra_census", "arguments": {"text": "3 stripes"}})
        assert text_of(r) == "zebra_census: 3 stripes"
