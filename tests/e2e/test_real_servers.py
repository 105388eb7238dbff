"""Issue 12: the gateway in front of MCP servers nobody here wrote, through a real ``runtimed``,
with the official SDK ``Client`` in both eras (``mode="auto"``: 2026-07-28, ``mode="legacy"``:
2025-11-25) and its sampling, elicitation and roots callbacks.

Upstreams (one daemon per module, each registered as a ``remote_mcp`` service):
- ``sdk``: tests/upstreams/backchannel_server.py, the official SDK's ``MCPServer`` serving both
  eras on one app, its tools using the session-API back-channel (``ctx.session.create_message``,
  ``elicit_form``, ``list_roots``), an ``x-mcp-header`` tool, a quiet tool add, a log-level probe;
- ``sdkso``: the same server with ``--session-only`` (a pre-2026 server);
- ``fm`` / ``fmsse``: tests/upstreams/fastmcp_server.py (FastMCP 4.2) over streamable HTTP / the
  legacy HTTP+SSE transport;
- ``ev``: the TypeScript reference server ``@modelcontextprotocol/server-everything`` (npm,
  tests/support/thirdparty.py), session-only.
Tests whose upstream keeps per-session state (server-everything caches roots per session) or is
restarted start their own upstream.

Each test names the point of issue 12 it covers; every one failed before that point was fixed
(they were committed as strict xfails first and the markers went with the fixes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.mcpclient import GUARD, call, call_text, client, elicitation, roots_of, sampling, text_of
from tests.support.thirdparty import everything_problem, require_everything, run_everything
from tests.support.upstream import run_upstream

# Session-era features the 2026-07-28 SDK marks deprecated are what these tests exercise.
pytestmark = pytest.mark.filterwarnings("ignore:The .* capability is deprecated as of 2026-07-28")

MODES = ("auto", "legacy")
ALPHA, BETA = "file:///work/alpha", "file:///work/beta"



# -- the module's daemon and upstreams --------------------------------------------------

class Real:
    def __init__(self, daemon: DaemonProc, ups: dict[str, Any]) -> None:
        self.daemon = daemon
        self.ups = ups

    def url(self, service: str) -> str:
        return f"{self.daemon.mcp_url}/{service}"


def _register(d: DaemonProc, name: str, url: str, **origin: Any) -> None:
    register_remote(d, name, url, **({"origin": {"type": "remote_mcp", "url": url, **origin}} if origin else {}))
    d.wait_state(name, "RUNNING", timeout=60)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    tmp = tmp_path_factory.mktemp("real")
    with run_upstream("backchannel_server", "--name", "sdk") as sdk, \
            run_upstream("backchannel_server", "--name", "sdkso", "--session-only") as sdkso, \
            run_upstream("fastmcp_server", "--name", "fm") as fm, \
            run_upstream("fastmcp_server", "--name", "fmsse", "--sse") as fmsse:
        d = DaemonProc(Path(tmp) / "state").start()
        try:
            _register(d, "sdk", sdk.url)
            _register(d, "sdkso", sdkso.url)
            _register(d, "fm", fm.url)
            _register(d, "fmsse", fmsse.sse_url, transport="sse")
            ups: dict[str, Any] = {"sdk": sdk, "sdkso": sdkso, "fm": fm, "fmsse": fmsse}
            if everything_problem() is None:
                with run_everything() as ev:
                    _register(d, "ev", ev.url)
                    ups["ev"] = ev
                    yield Real(d, ups)
            else:
                yield Real(d, ups)
        finally:
            d.stop()


@asynccontextmanager
async def fresh_everything(real: Real, name: str) -> AsyncIterator[str]:
    """A server-everything process of its own, registered as service ``name``; yields its /mcp/<name> URL."""
    require_everything()
    with run_everything() as ev:
        _register(real.daemon, name, ev.url)
        try:
            yield real.url(name)
        finally:
            real.daemon.api("DELETE", f"/api/services/{name}")


def need(real: Real, service: str) -> None:
    if service == "ev" and "ev" not in real.ups:
        require_everything()


# -- raw HTTP, for what the SDK client hides ----------------------------------------------

ACCEPT = "application/json, text/event-stream"


def _messages(r: httpx.Response) -> list[dict[str, Any]]:
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        return body if isinstance(body, list) else [body]
    out = []
    for line in r.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            out.append(json.loads(line[5:]))
    return out


def rpc(url: str, method: str, params: dict[str, Any], rid: int = 1, headers: dict[str, str] | None = None
        ) -> tuple[httpx.Response, dict[str, Any]]:
    """POST one request; returns the response and its JSON-RPC answer (JSON or SSE)."""
    r = httpx.post(url, json={"jsonrpc": "2.0", "id": rid, "method": method, "params": params},
                   headers={"Accept": ACCEPT, "Content-Type": "application/json", **(headers or {})}, timeout=GUARD)
    answers = [m for m in _messages(r) if m.get("id") == rid]
    return r, (answers[0] if answers else {})


def legacy_session(url: str) -> dict[str, str]:
    """Open a 2025-11-25 session on ``url``; returns the headers of its later requests."""
    r, answer = rpc(url, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                        "clientInfo": {"name": "raw", "version": "1"}}, rid=0)
    assert "result" in answer, (r.status_code, r.text)
    h = {"Mcp-Session-Id": r.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
               headers={"Accept": ACCEPT, **h}, timeout=GUARD)
    return h


# == point 1: session-era clients, back-channel over each kind of upstream ==================

# Each session-era client gets a session-era upstream session of its own, so the upstream's session
# API has its back-channel over dual-era (sdk, fm) and session-only (fmsse, ev) servers alike.


def _case(service: str, tool: str, args: dict[str, Any], expected: str, *marks: Any) -> Any:
    return pytest.param(service, tool, args, expected, marks=marks, id=f"{service}-{tool}")


BACKCHANNEL = [
    # (service, tool, arguments, expected text: exact for ours, a fragment for server-everything)
    _case("sdk", "sample", {"prompt": "meaning of life?"}, "model said: forty-two"),
    _case("sdk", "ask", {"question": "favourite colour?"}, "user answered: blue"),
    _case("sdk", "roots", {}, json.dumps([ALPHA])),
    _case("fm", "sample", {"prompt": "meaning of life?"}, "model said: forty-two"),
    _case("fm", "ask", {"question": "favourite colour?"}, "user answered: blue"),
    _case("fm", "roots", {}, json.dumps([ALPHA])),
    _case("fmsse", "sample", {"prompt": "meaning of life?"}, "model said: forty-two"),
    _case("fmsse", "ask", {"question": "favourite colour?"}, "user answered: blue"),
    _case("fmsse", "roots", {}, json.dumps([ALPHA])),
    _case("ev", "trigger-sampling-request", {"prompt": "meaning of life?"}, '"text": "forty-two"'),
    _case("ev", "trigger-elicitation-request", {}, "- Name: Ada Lovelace"),
]


@pytest.mark.parametrize(("service", "tool", "args", "expected"), BACKCHANNEL)
async def test_session_client_backchannel(real: Real, service: str, tool: str, args: dict[str, Any], expected: str) -> None:
    need(real, service)
    async with client(real.url(service), "legacy", sampling_callback=sampling, elicitation_callback=elicitation,
                      list_roots_callback=roots_of(ALPHA)) as c:
        assert c.protocol_version == "2025-11-25"
        got = await call_text(c, tool, args)
    if service == "ev":
        assert expected in got, got
    else:
        assert got == expected


async def test_session_client_roots_over_everything(real: Real) -> None:
    async with fresh_everything(real, "evroots") as url, \
            client(url, "legacy", list_roots_callback=roots_of(ALPHA)) as c:
        got = await call_text(c, "get-roots-list")
    assert "Current MCP Roots (1 total)" in got and f"URI: {ALPHA}" in got, got


# == point 2: stateless-era clients, back-channel over a session-only upstream ===============

STATELESS_OVER_SESSION = [
    ("sdkso", "sample", {"prompt": "meaning of life?"}, "model said: forty-two"),
    ("sdkso", "ask", {"question": "favourite colour?"}, "user answered: blue"),
    ("ev", "trigger-sampling-request", {"prompt": "meaning of life?"}, '"text": "forty-two"'),
    ("ev", "trigger-elicitation-request", {}, "- Name: Ada Lovelace"),
]


@pytest.mark.parametrize(("service", "tool", "args", "expected"), STATELESS_OVER_SESSION,
                         ids=[f"{s}-{t}" for s, t, _, _ in STATELESS_OVER_SESSION])
async def test_stateless_client_backchannel_over_session_only_upstream(real: Real, service: str, tool: str,
                                                                       args: dict[str, Any], expected: str) -> None:
    need(real, service)
    asked: list[str] = []

    async def on_sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append("sampling")
        return await sampling(ctx, params)

    async def on_elicit(ctx: Any, params: Any) -> types.ElicitResult:
        asked.append("elicitation")
        return await elicitation(ctx, params)

    async with client(real.url(service), "auto", sampling_callback=on_sampling, elicitation_callback=on_elicit) as c:
        assert c.protocol_version == "2026-07-28"
        got = await call_text(c, tool, args)
    if service == "ev":
        assert expected in got, got
    else:
        assert got == expected
    assert asked == ["sampling" if "sampl" in tool else "elicitation"]


# == point 3: each client's roots and log level are its own ==================================

async def _three_clients_roots(url: str, tool: str) -> tuple[str, str, str, str]:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(client(url, "legacy", list_roots_callback=roots_of(ALPHA)))
        b = await stack.enter_async_context(client(url, "legacy", list_roots_callback=roots_of(BETA)))
        c = await stack.enter_async_context(client(url, "legacy"))  # declares no roots
        ra = await call_text(a, tool)
        rb = await call_text(b, tool)
        rc = await call_text(c, tool)
        ra2 = await call_text(a, tool)
    return ra, rb, rc, ra2


def _assert_own_roots(ra: str, rb: str, rc: str, ra2: str) -> None:
    assert ALPHA in ra and BETA not in ra, ra
    assert BETA in rb and ALPHA not in rb, rb
    assert ALPHA not in rc and BETA not in rc, rc
    assert ALPHA in ra2 and BETA not in ra2, ra2


async def test_roots_are_per_client_over_everything(real: Real) -> None:
    async with fresh_everything(real, "evroots3") as url:
        _assert_own_roots(*await _three_clients_roots(url, "get-roots-list"))


async def test_roots_are_per_client_over_session_only_sdk_server(real: Real) -> None:
    _assert_own_roots(*await _three_clients_roots(real.url("sdkso"), "roots"))


@pytest.mark.parametrize("service", [
    "sdk",  # a 2026-07-28 upstream: the gateway sends each client's level in _meta
    "sdkso",  # a session-only upstream: each client's own upstream session holds its level
])
async def test_log_level_is_per_client(real: Real, service: str) -> None:
    url = real.url(service)
    async with client(url, "legacy") as a, client(url, "legacy") as b:
        await asyncio.wait_for(a.set_logging_level("error"), GUARD)
        seen_a = json.loads(await call_text(a, "log_level"))
        seen_b = json.loads(await call_text(b, "log_level"))
        seen_a2 = json.loads(await call_text(a, "log_level"))
    assert seen_a["level"] == "error" and seen_a2["level"] == "error", seen_a
    assert seen_b["level"] != "error", seen_b


# == point 4: Mcp-Param headers (SEP-2243) ==================================================

def test_the_sdk_upstream_enforces_mcp_param_headers(real: Real) -> None:
    """The premise of point 4, direct: the upstream answers -32020 without the header, and works with it."""
    url = real.ups["sdk"].url
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": "regional", "arguments": {"region": "eu-west", "text": "hi"}, "_meta": meta}
    base = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "regional"}
    r, answer = rpc(url, "tools/call", params, headers=base)
    assert r.status_code == 400 and answer["error"]["code"] == -32020, (r.status_code, answer)
    r, answer = rpc(url, "tools/call", params, headers={**base, "Mcp-Param-Region": "eu-west"})
    assert r.status_code == 200 and answer["result"]["content"][0]["text"] == "eu-west: hi", answer


@pytest.mark.parametrize("mode", MODES)
async def test_mcp_param_tool_through_the_gateway(real: Real, mode: str) -> None:
    async with client(real.url("sdk"), mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["regional"].input_schema["properties"]["region"].get("x-mcp-header") == "Region"
        got = await call_text(c, "regional", {"region": "eu-west", "text": "hi"})
    assert got == "eu-west: hi"


# == point 5: live interfaces ================================================================

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("service", ["sdk", "sdkso"])
async def test_tool_added_without_notification_becomes_listed_and_callable(real: Real, service: str, mode: str) -> None:
    name = f"quiet_{service}_{mode}"
    async with client(real.url(service), mode) as c:
        assert await call_text(c, "add_tool_quietly", {"name": name}) == f"added {name}"
        deadline = time.monotonic() + 5
        listed = False
        while not listed and time.monotonic() < deadline:
            listed = name in {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
            if not listed:
                await asyncio.sleep(0.25)
        got = await call_text(c, name, {"text": "x"})
    assert listed, f"{name} not listed through /mcp/{service} within 5 s"
    assert got == f"{name}: x"


@pytest.mark.parametrize("mode", MODES)
async def test_tool_added_without_notification_is_callable_before_any_listing(real: Real, mode: str) -> None:
    name = f"unlisted_{mode}"
    async with client(real.url("sdk"), mode) as c:
        assert await call_text(c, "add_tool_quietly", {"name": name}) == f"added {name}"
        got = await call_text(c, name, {"text": "y"})
    assert got == f"{name}: y"


@pytest.mark.parametrize("service", [
    "sdkso",
    "ev",
])
async def test_single_service_endpoint_advertises_list_changed_as_the_upstream(real: Real, service: str) -> None:
    need(real, service)
    async with client(real.ups[service].url, "legacy") as direct:
        upstream = bool(direct.server_capabilities.tools and direct.server_capabilities.tools.list_changed)
    async with client(real.url(service), "legacy") as c:
        gateway = bool(c.server_capabilities.tools and c.server_capabilities.tools.list_changed)
    assert gateway == upstream == (service == "ev")


async def test_upstream_list_changed_is_forwarded_even_when_the_list_is_unchanged(real: Real) -> None:
    changed = asyncio.Event()

    async def on_message(msg: Any) -> None:
        if isinstance(msg, types.ToolListChangedNotification):
            changed.set()

    received: dict[str, bool] = {}
    # An upstream of its own: the module's upstreams get tools added by other tests, and a re-fetch
    # that finds them is a real change.
    with run_upstream("backchannel_server", "--name", "sdklc", "--session-only") as up:
        _register(real.daemon, "sdklc", up.url)
        try:
            for where, url in (("direct", up.url), ("gateway", real.url("sdklc"))):
                changed.clear()
                async with client(url, "legacy", message_handler=on_message) as c:
                    await asyncio.sleep(0.3)  # the SDK opens its GET stream in the background
                    assert await call_text(c, "notify_unchanged") == "notified"
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), 5)
                received[where] = changed.is_set()
        finally:
            real.daemon.api("DELETE", "/api/services/sdklc")
    assert received == {"direct": True, "gateway": True}


# == point 6: a restarted upstream ===========================================================

async def test_restarted_everything_recovers_and_is_not_healthy_while_failing(make_daemon: Any) -> None:
    require_everything()
    d = make_daemon(env={"RUNTIMED_PROBE_INTERVAL_S": "1"})
    with run_everything() as ev:
        _register(d, "ev", ev.url)
        url = f"{d.mcp_url}/ev"
        async with client(url, "legacy") as c:
            assert await call_text(c, "echo", {"message": "before"}) == "Echo: before"
        ev.restart()
        failures: list[str] = []
        health_while_failing: list[str] = []
        first_failure: float | None = None
        recovered = None
        deadline = time.monotonic() + 10
        async with client(url, "legacy") as c:
            while time.monotonic() < deadline:
                got = await call_text(c, "echo", {"message": "after"})
                if got == "Echo: after":
                    recovered = got
                    break
                failures.append(got)
                first_failure = first_failure or time.monotonic()
                if time.monotonic() - first_failure > 2.5:  # more than two probe intervals
                    health_while_failing.append(d.service("ev")["health"])
                await asyncio.sleep(0.25)
    assert "HEALTHY" not in health_while_failing, (health_while_failing[-3:], failures[-1:])
    assert recovered == "Echo: after", f"still failing 10 s after the restart: {failures[-1:]}"


# == point 7: era residue ====================================================================

def test_session_client_gets_no_stateless_fields(real: Real) -> None:
    url = real.url("sdk")
    h = legacy_session(url)
    r, answer = rpc(url, "tools/call", {"name": "echo", "arguments": {"text": "plain"}}, rid=2, headers=h)
    result = answer.get("result")
    assert result is not None, (r.status_code, r.text)
    assert result["content"][0]["text"] == "plain"
    assert "resultType" not in result, result
    assert "io.modelcontextprotocol/serverInfo" not in (result.get("_meta") or {}), result


# == what already works: client era x upstream era, tools/call + progress + logging =========

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("service", ["sdk", "sdkso"])
async def test_call_progress_and_logging_in_every_era_combination(real: Real, service: str, mode: str) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[Any] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total, message))

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with client(real.url(service), mode, logging_callback=on_log, log_level="info") as c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        assert await call_text(c, "echo", {"text": "hello"}) == "hello"
        r = await call(c, "slow", {"seconds": 0.2, "steps": 2}, progress_callback=on_progress)
        assert text_of(r) == "slept 0.2"
        assert await call_text(c, "log", {"text": "hello log"}) == "logged"
    assert [(p, t) for p, t, _ in progress] == [(1, 2), (2, 2)]
    assert progress[0][2] == "step 1 of 2"
    assert logs == ["hello log"]


@pytest.mark.parametrize("mode", MODES)
async def test_call_and_progress_over_everything_in_both_client_eras(real: Real, mode: str) -> None:
    need(real, "ev")
    progress: list[tuple[float, float | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total))

    async with client(real.url("ev"), mode) as c:
        assert await call_text(c, "echo", {"message": "hi"}) == "Echo: hi"
        r = await call(c, "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress)
    assert text_of(r) == "Long running operation completed. Duration: 0.3 seconds, Steps: 3."
    assert progress == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("service", ["fm", "fmsse"])
async def test_call_over_fastmcp_in_both_client_eras(real: Real, service: str, mode: str) -> None:
    async with client(real.url(service), mode) as c:
        names = {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
        assert names == {"echo", "sample", "ask", "roots"}
        assert await call_text(c, "echo", {"text": "via " + service}) == "via " + service
