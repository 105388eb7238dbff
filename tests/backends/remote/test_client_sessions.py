"""Upstream sessions follow downstream clients (issue 12), through a real daemon with real
SDK upstreams on loopback and the official SDK ``Client`` in both eras:

- a session-era client gets an upstream session of its own, in the session era, even over a
  dual-era upstream whose shared session is stateless; it is released when the client leaves;
- a stateless-era client uses the service's shared session (no handshake of its own);
- a stateless-era client over a session-only upstream is asked through input-required results
  for what the upstream asks mid-call (sampling, elicitation);
- a session-era client over a stateless-only upstream shares the service's session and gets
  no stateless-era residue (``resultType``) in its results.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support.foundation import register_remote
from tests.support.mcpclient import GUARD, elicitation as elicit, sampling, text_of
from tests.support.upstream import run_upstream


def test_each_session_era_client_gets_its_own_upstream_session(make_daemon) -> None:
    d = make_daemon()
    with run_upstream("echo_server", "--name", "dual") as up:
        register_remote(d, "dual", up.url)
        d.wait_state("dual", "RUNNING", timeout=60)

        async def scenario() -> None:
            async with Client(d.mcp_url + "/dual", mode="legacy", cache=None) as one, \
                    Client(d.mcp_url + "/dual", mode="legacy", cache=None) as two:
                for c, word in ((one, "one"), (two, "two"), (one, "again")):
                    r = await asyncio.wait_for(c.call_tool("echo", {"text": word}), GUARD)
                    assert text_of(r) == word
                seen = json.loads(text_of(await one.call_tool("stats", {})))
                assert seen["initialize"] == 2, seen  # one upstream session per client, no more
                backend = d.service("dual")["backend"]
                assert backend["era"] == "stateless", backend  # the shared session: the newest era
                assert backend["clientSessions"]["open"] == 2 and backend["clientSessions"]["opened"] == 2, backend
            async with Client(d.mcp_url + "/dual", cache=None) as stateless:
                r = await asyncio.wait_for(stateless.call_tool("echo", {"text": "no session"}), GUARD)
                assert text_of(r) == "no session"
                seen = json.loads(text_of(await stateless.call_tool("stats", {})))
                assert seen["initialize"] == 2, seen  # a stateless-era client opens no upstream session

        asyncio.run(scenario())
        # The two clients left (their sessions were deleted): their upstream sessions go with them.
        d.wait_for(lambda: d.service("dual")["backend"]["clientSessions"]["open"] == 0,
                   what="the clients' upstream sessions to be released")
        assert d.service("dual")["backend"]["clientSessions"]["opened"] == 2


def test_stateless_client_is_asked_through_input_required_over_a_session_only_upstream(make_daemon) -> None:
    d = make_daemon()
    with run_upstream("echo_server", "--name", "old", "--session-only") as up:
        register_remote(d, "old", up.url)
        d.wait_state("old", "RUNNING", timeout=60)

        async def scenario() -> None:
            async with Client(d.mcp_url + "/old", cache=None, sampling_callback=sampling,
                              elicitation_callback=elicit) as c:
                r = await asyncio.wait_for(c.call_tool("sample", {"prompt": "meaning of life?"}), GUARD)
                assert not r.is_error, text_of(r)
                assert text_of(r) == "model said: forty-two"
                r = await asyncio.wait_for(c.call_tool("ask", {"question": "favourite colour?"}), GUARD)
                assert not r.is_error, text_of(r)
                assert text_of(r) == "user answered: blue"
                # A call that asks nothing is not parked.
                r = await asyncio.wait_for(c.call_tool("echo", {"text": "plain"}), GUARD)
                assert text_of(r) == "plain"

        asyncio.run(scenario())
        assert d.service("old")["backend"]["clientSessions"]["opened"] == 0


def test_stateless_client_without_the_capability_is_not_asked(make_daemon) -> None:
    d = make_daemon()
    with run_upstream("echo_server", "--name", "old", "--session-only") as up:
        register_remote(d, "old", up.url)
        d.wait_state("old", "RUNNING", timeout=60)

        async def scenario() -> None:
            async with Client(d.mcp_url + "/old", cache=None) as c:  # declares neither sampling nor elicitation
                # The upstream is told no client can answer, and passes that on as its error.
                with pytest.raises(MCPError, match="did not declare the 'sampling' capability"):
                    await asyncio.wait_for(c.call_tool("sample", {"prompt": "meaning of life?"}), GUARD)

        asyncio.run(scenario())


def test_session_era_client_over_a_stateless_only_upstream(make_daemon) -> None:
    d = make_daemon()
    with run_upstream("echo_server", "--name", "new", "--stateless-only") as up:
        register_remote(d, "new", up.url)
        d.wait_state("new", "RUNNING", timeout=60)

        async def scenario() -> None:
            async with Client(d.mcp_url + "/new", mode="legacy", cache=None) as c:
                r = await asyncio.wait_for(c.call_tool("echo", {"text": "shared"}), GUARD)
                assert text_of(r) == "shared"

        asyncio.run(scenario())
        backend = d.service("new")["backend"]
        assert backend["era"] == "stateless" and backend["clientSessions"]["open"] == 0, backend

        # Over raw HTTP: the session-era client's result carries no stateless-era fields.
        base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                **d.headers()}
        with httpx.Client(timeout=GUARD) as http:
            r = http.post(d.mcp_url + "/new", headers={**base, "MCP-Protocol-Version": "2025-11-25"},
                          json={"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                           "clientInfo": {"name": "raw", "version": "1"}}})
            sid = r.headers["mcp-session-id"]
            session = {**base, "MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": sid}
            http.post(d.mcp_url + "/new", headers=session, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
            r = http.post(d.mcp_url + "/new", headers={**session, "Accept": "application/json"},
                          json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                "params": {"name": "echo", "arguments": {"text": "raw"}}})
            body = r.json()
            assert body["result"]["content"][0]["text"] == "raw", body
            assert "resultType" not in body["result"], body
            assert "io.modelcontextprotocol/serverInfo" not in (body["result"].get("_meta") or {}), body
