"""Issue 14, item 12: a legacy HTTP+SSE server added without ``--transport sse``.

As the spec's backwards-compatibility rule asks of a client: the Streamable HTTP handshake is tried
first; when it is answered with a 4xx (the old server's ``/sse`` answers a POST with 405 or 404), a
GET expecting the old transport's ``endpoint`` event follows, and when that works the service runs
on HTTP+SSE (for its shared session and for each client's own session), saying so in its log, in
``show``'s backend facts and in ``add``'s output. ``add`` of the same URL with ``--transport sse``
(and another name) updates the service instead of refusing a duplicate. A URL that is neither
keeps the Streamable HTTP error. A real daemon, the real SDK's HTTP+SSE server, runtimectl as a
process and the official SDK client in both eras.
"""

from __future__ import annotations

import asyncio
import json

from mcp import Client

from tests.support.daemon import DaemonProc, run_cli
from tests.support.mcpclient import GUARD, text_of
from tests.support.upstream import run_upstream


def test_an_sse_server_added_without_the_flag_runs_on_sse(daemon: DaemonProc) -> None:
    d = daemon
    with run_upstream("legacy_sse_server", "--name", "old") as up:
        res = run_cli(d, "add", up.sse_url, "--name", "old")
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.startswith("added old (svc_") and "RUNNING" in res.stdout, res.stdout
        assert "older HTTP+SSE transport" in res.stdout and "runtimectl set old --transport sse" in res.stdout
        svc = d.service("old")
        assert svc["manifest"]["spec"]["origin"]["transport"] == "streamable_http"  # as registered
        assert svc["backend"]["transportInUse"] == "sse", svc["backend"]
        logs = [ln["message"] for ln in d.api("GET", "/api/services/old/logs").json()["lines"]]
        assert any("HTTP+SSE" in m and "405" in m for m in logs), logs

        async def calls() -> None:
            for mode in ("legacy", "auto"):  # a client's own upstream session, then the shared one
                async with Client(d.mcp_url, mode=mode, cache=None) as c:
                    assert "old__echo" in {t.name for t in (await c.list_tools()).tools}
                    r = await asyncio.wait_for(c.call_tool("old__echo", {"text": mode}), GUARD)
                    assert not r.is_error and text_of(r) == mode

        asyncio.run(calls())
        assert d.service("old")["backend"]["clientSessions"]["opened"] == 1

        # The same URL with the flag (and another name): an update, not a duplicate.
        res = run_cli(d, "add", up.sse_url, "--transport", "sse", "--name", "legacy")
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.startswith("updated legacy (svc_"), res.stdout
        assert "spec.origin.transport: streamable_http → sse" in res.stdout
        svc = d.wait_for(lambda: (s := d.service("legacy"))["state"] == "RUNNING" and s["backend"] and s,
                         what="the service to run again after its origin changed")
        assert svc["manifest"]["spec"]["origin"]["transport"] == "sse"
        names = [s["name"] for s in json.loads(run_cli(d, "list", "--json").stdout)]
        assert names == ["legacy"]
        assert "older HTTP+SSE" not in run_cli(d, "add", up.sse_url, "--timeout-ms", "9000").stdout


def test_a_url_that_is_neither_keeps_the_streamable_error(daemon: DaemonProc) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        r = d.api("POST", "/api/services", json={
            "apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "wrong"},
            "spec": {"origin": {"type": "remote_mcp", "url": up.base_url + "/nope"},
                     "restartPolicy": {"mode": "never"}}})
        assert r.status_code == 201, r.text
        svc = r.json()["service"]
        assert svc["state"] == "CRASHED", svc
        assert "HTTP 404" in svc["lastError"] and "SSE" not in svc["lastError"], svc["lastError"]
