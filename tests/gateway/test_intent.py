"""Gateway intent capture (``capture_intent``): the optional ``_intent`` argument on every
service tool, taken out before the call and recorded with it, and the built-in
``runtime__request_capability`` tool. A real daemon (started with
``RUNTIMED_CAPTURE_INTENT=1`` and ``RUNTIMED_CAPTURE_ARGUMENTS=1``, so the call record shows
the arguments the upstream got) and a real SDK upstream; the official SDK ``Client``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.support.daemon import DaemonProc
from tests.support.upstream import run_upstream

MODES = ("auto", "legacy")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    tmp = tmp_path_factory.mktemp("gwintent")
    with run_upstream("echo_server", "--name", "i") as up:
        d = DaemonProc(Path(tmp) / "state", env={"RUNTIMED_CAPTURE_INTENT": "1",
                                                 "RUNTIMED_CAPTURE_ARGUMENTS": "1"}).start()
        try:
            r = d.api("POST", "/api/services", json={"metadata": {"name": "i"},
                                                     "spec": {"origin": {"type": "remote_mcp", "url": up.url}}})
            assert r.status_code in (200, 201), r.text
            d.wait_state("i", "RUNNING", timeout=60)
            yield d
        finally:
            d.stop()


def text_of(result: Any) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


@pytest.mark.parametrize("mode", MODES)
async def test_intent_is_offered_stripped_and_recorded(daemon: DaemonProc, mode: str) -> None:
    intent = f"Repeat what the user typed ({mode})"
    async with Client(daemon.mcp_url, mode=mode, cache=None) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        schema = tools["i__echo"].input_schema
        assert "_intent" in schema["properties"] and "_intent" not in schema.get("required", [])
        assert schema["properties"]["text"]["type"] == "string"  # the tool's own schema is kept
        assert "_intent" not in tools["runtime__status_summary"].input_schema.get("properties", {})
        r = await c.call_tool("i__echo", {"text": "hello", "_intent": intent})
        assert not r.is_error and text_of(r) == "hello"
    calls = daemon.api("GET", "/api/audit?service=i&tool=echo").json()["calls"]
    rec = next(c for c in calls if c.get("intent") == intent)
    assert rec["arguments"] == {"text": "hello"}  # what the upstream got: no _intent
    intents = daemon.api("GET", "/api/analytics").json()["intents"]
    assert any(e["service"] == "i" and e["tool"] == "echo" for e in intents)


async def test_call_without_intent_is_unchanged(daemon: DaemonProc) -> None:
    async with Client(daemon.mcp_url, mode="auto", cache=None) as c:
        r = await c.call_tool("i__add", {"a": 2, "b": 3})
        assert text_of(r) == "5"
    rec = daemon.api("GET", "/api/audit?service=i&tool=add").json()["calls"][0]
    assert rec["arguments"] == {"a": 2, "b": 3} and "intent" not in rec


async def test_the_single_service_endpoint_also_strips_intent(daemon: DaemonProc) -> None:
    async with Client(daemon.mcp_url + "/i", mode="auto", cache=None) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert "_intent" in tools["echo"].input_schema["properties"]
        assert "runtime__request_capability" not in tools  # a transparent proxy adds no tools
        r = await c.call_tool("echo", {"text": "scoped", "_intent": "scoped intent"})
        assert text_of(r) == "scoped"
    rec = next(c for c in daemon.api("GET", "/api/audit?service=i&tool=echo").json()["calls"]
               if c.get("intent") == "scoped intent")
    assert rec["arguments"] == {"text": "scoped"}


@pytest.mark.parametrize("mode", MODES)
async def test_request_capability_tool_records_the_request(daemon: DaemonProc, mode: str) -> None:
    description = f"Translate a document to French ({mode})"
    async with Client(daemon.mcp_url, mode=mode, cache=None) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert "runtime__request_capability" in tools
        r = await c.call_tool("runtime__request_capability",
                              {"description": description, "context": "user asked; no translation tool listed"})
        assert not r.is_error and "Recorded" in text_of(r)
        r = await c.call_tool("runtime__request_capability", {"description": "   "})
        assert r.is_error
    caps = daemon.api("GET", "/api/analytics").json()["capabilities"]
    assert any(e["description"] == description for e in caps)
