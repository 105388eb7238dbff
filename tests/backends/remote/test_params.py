"""RemoteBackend and SEP-2243 / 2026-07-28 caching against a real SDK upstream
(``tests/upstreams/live_server.py``) in each upstream era: the ``Mcp-Param-*`` headers a
``tools/call`` carries (from ``CallContext.input_schema``), and the ``ttlMs`` of its lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtimed.backends.base import UpstreamError
from tests.backends.remote.test_backend import call_tool, started, text_of
from tests.support.upstream import run_upstream

ERAS = ("stateless", "session")


@pytest.mark.parametrize("era", ERAS)
async def test_param_headers_sent_from_the_schema(era: str, tmp_path: Path) -> None:
    with run_upstream("live_server") as up:
        backend, _ = await started(up.url, tmp_path, era=era)
        try:
            iface = await backend.introspect()
            schema = next(t for t in iface.tools if t["name"] == "route")["inputSchema"]
            r = await call_tool(backend, "route", {"region": "Zürich", "query": "q", "shard": 5}, input_schema=schema)
            assert text_of(r) == "Zürich/5:q", r
            seen = json.loads(text_of(await call_tool(backend, "seen")))["params"]
            assert seen == {"mcp-param-region": "=?base64?WsO8cmljaA==?=", "mcp-param-shard": "5"}
            if era == "stateless":  # without the schema no headers: the SDK server refuses
                with pytest.raises(UpstreamError) as e:
                    await call_tool(backend, "route", {"region": "eu", "query": "q"})
                assert e.value.code == -32020
        finally:
            await backend.stop()


@pytest.mark.parametrize(("args", "ttl"), [((), 0), (("--ttl-ms", "45000"), 45000)])
async def test_interface_carries_the_lists_ttl(args: tuple[str, ...], ttl: int, tmp_path: Path) -> None:
    with run_upstream("live_server", *args) as up:
        backend, _ = await started(up.url, tmp_path, era="stateless")
        try:
            assert (await backend.introspect()).ttl_ms == ttl
        finally:
            await backend.stop()


async def test_tool_with_an_invalid_annotation_is_left_out(tmp_path: Path) -> None:
    """SEP-2243: a streamable-HTTP client must not list a tool whose x-mcp-header breaks the rules,
    and should say so; the others stay."""
    with run_upstream("live_server", "--bad-tool") as up:
        backend, host = await started(up.url, tmp_path, era="stateless")
        try:
            names = {t["name"] for t in (await backend.introspect()).tools}
            assert "bad" not in names and "route" in names
            assert any(level == "warning" and "'bad' left out: invalid x-mcp-header" in line
                       for level, line in host.logs), host.logs
        finally:
            await backend.stop()
