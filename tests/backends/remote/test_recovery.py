"""RemoteBackend recovering from what real upstreams do: a restarted server that answers a stale
session with HTTP 400 (as the TypeScript reference server does), probes that must not call a
failing service healthy, SSE answers that drop and are resumed with ``Last-Event-ID``, and the
connect-time address check of the host allowlist (DNS rebinding).

The upstreams are real processes on loopback (tests/upstreams/session_server.py: sessions and
streams as real servers handle them; conformance_server.py: the official SDK with an event
store). ``Host`` is test_backend's small harness standing in for the supervisor.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from runtimed.backends.base import BackendFault, BackendStartError, Health, UpstreamError
from runtimed.backends.remote.backend import RemoteBackend
from tests.backends.remote.test_backend import GUARD, Host, Relay, call_tool, manifest, settings, started, text_of
from tests.support.upstream import run_upstream


async def upstream_stats(backend: RemoteBackend) -> dict:
    return json.loads(text_of(await call_tool(backend, "stats")))


# -- a lost session (point 6) -------------------------------------------------------
async def test_a_400_no_valid_session_reinitializes_once_and_sends_the_request_again(tmp_path):
    with run_upstream("session_server") as up:
        backend, host = await started(up.url, tmp_path)
        try:
            assert backend.describe()["era"] == "session"
            assert text_of(await call_tool(backend, "echo", {"text": "before"})) == "before"
            up.restart()  # same port, new process: it answers our session id with 400 / -32000
            assert text_of(await call_tool(backend, "echo", {"text": "after"})) == "after"
            d = backend.describe()
            assert d["handshakes"] == 2 and d["reinitializations"] == 1
            assert any("No valid session ID provided" in m for _, m in host.logs), host.logs
            s = await upstream_stats(backend)
            # The refused request never ran; the retry on the new session ran once.
            assert s["initialize"] == 1 and s["executed"]["echo"] == 1
        finally:
            await backend.stop()


async def test_a_400_about_something_else_stays_the_upstreams_answer(tmp_path):
    with run_upstream("session_server") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            with pytest.raises(UpstreamError) as ei:
                await call_tool(backend, "bad400")
            assert ei.value.code == -32602 and "count must be a number" in ei.value.message
            assert backend.describe()["reinitializations"] == 0
            assert (await upstream_stats(backend))["executed"]["bad400"] == 1
        finally:
            await backend.stop()


async def test_a_session_lost_again_after_reinitializing_is_a_clear_fault(tmp_path):
    with run_upstream("session_server", "--forgetful") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            with pytest.raises(BackendFault) as ei:
                await call_tool(backend, "echo", {"text": "x"})
            assert "lost the session again" in str(ei.value) and "No valid session ID provided" in str(ei.value)
            d = backend.describe()
            assert d["handshakes"] == 2 and d["reinitializations"] == 1
            # The probe says so too: never HEALTHY while calls fail.
            probe = await asyncio.wait_for(backend.probe(), GUARD)
            assert probe.health != Health.HEALTHY and "lost the session again" in probe.detail
        finally:
            await backend.stop()


async def test_probe_recovers_a_lost_session_like_a_call(tmp_path):
    with run_upstream("session_server") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            up.restart()
            probe = await asyncio.wait_for(backend.probe(), GUARD)
            assert probe.health == Health.HEALTHY, probe
            assert backend.describe()["reinitializations"] == 1
            assert text_of(await call_tool(backend, "echo", {"text": "ok"})) == "ok"
            assert backend.describe()["reinitializations"] == 1
        finally:
            await backend.stop()


@pytest.mark.parametrize("ping,health,words", [
    ("error", Health.DEGRADED, "ping is broken here"),
    ("missing", Health.HEALTHY, "does not implement ping"),
])
async def test_probe_an_error_answer_is_degraded_unless_ping_is_not_implemented(tmp_path, ping, health, words):
    with run_upstream("session_server", "--ping", ping) as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            probe = await asyncio.wait_for(backend.probe(), GUARD)
            assert probe.health == health and words in probe.detail, probe
        finally:
            await backend.stop()


# -- resuming a dropped SSE answer (point 8) ----------------------------------------------
@pytest.mark.parametrize("drop", ["reset", "close"])
@pytest.mark.parametrize("drops", [1, 2])
async def test_a_dropped_sse_answer_with_event_ids_is_resumed_not_resent(tmp_path, drop, drops):
    with run_upstream("session_server") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            relay = Relay()
            got = await call_tool(backend, "resumable", {"drop": drop, "drops": drops}, relay=relay)
            assert text_of(got) == "resumed answer"
            assert [p["data"] for m, p in relay.notes if m == "notifications/message"] == ["before the drop"]
            s = await upstream_stats(backend)
            assert s["executed"]["resumable"] == 1 and s["resumes"] == drops
        finally:
            await backend.stop()


async def test_resuming_is_bounded(tmp_path):
    with run_upstream("session_server") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            with pytest.raises(BackendFault) as ei:
                await call_tool(backend, "resumable", {"drop": "reset", "drops": 50})
            assert "failed 3 times in a row" in str(ei.value) and "not sent again" in str(ei.value)
            s = await upstream_stats(backend)
            assert s["executed"]["resumable"] == 1 and s["resumes"] == 3
        finally:
            await backend.stop()


async def test_a_dropped_sse_answer_without_event_ids_is_a_fault_as_before(tmp_path):
    with run_upstream("session_server") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            with pytest.raises(BackendFault) as ei:
                await call_tool(backend, "noids")
            assert ei.value.kind == "protocol" and "reset" in str(ei.value)
            s = await upstream_stats(backend)
            assert s["executed"]["noids"] == 1 and s["resumes"] == 0
        finally:
            await backend.stop()


async def test_the_sdk_servers_polling_stream_is_resumed(tmp_path):
    """The official SDK server closes the stream mid-call (SEP-1699) and replays from its event store."""
    with run_upstream("conformance_server") as up:
        backend, _ = await started(up.url, tmp_path, era="session")
        try:
            relay = Relay()
            got = await call_tool(backend, "test_reconnection", relay=relay)
            assert text_of(got) == "Reconnection test completed"
            logs = [p["data"] for m, p in relay.notes if m == "notifications/message"]
            assert logs == ["Before disconnect", "After reconnect"], relay.notes
        finally:
            await backend.stop()


# -- the host allowlist at connect time (DNS rebinding) -------------------------------------
def loopback_alias() -> str:
    """A name of this machine other than localhost that resolves only to loopback addresses: what a
    rebinding name looks like from here (an allowed name answering with a forbidden address)."""
    import ipaddress

    name = socket.gethostname()
    try:
        addrs = {str(i[4][0]) for i in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        addrs = set()
    if not name or name.lower() == "localhost" or not addrs \
            or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        pytest.skip(f"this machine's name {name!r} does not resolve to loopback only ({addrs})")
    return name


async def test_a_name_allowed_by_name_but_resolving_to_loopback_is_refused_at_connect(tmp_path):
    name = loopback_alias()
    with run_upstream("session_server") as up:
        url = f"http://{name}:{up.port}/mcp"
        host = Host(settings(tmp_path, remote_allowed_hosts=[name]))
        with pytest.raises(BackendStartError) as ei:
            await asyncio.wait_for(RemoteBackend(manifest(url), host).start(), GUARD)
        msg = str(ei.value)
        assert f"host {name!r} resolves to 127." in msg and "loopback" in msg and "RUNTIMED_REMOTE_ALLOWED_HOSTS" in msg
        # The service's own list applies the same rule.
        with pytest.raises(BackendStartError, match=r"loopback address, which origin\.allowedHosts does not admit"):
            await asyncio.wait_for(RemoteBackend(manifest(url, allowedHosts=[name]), Host(settings(tmp_path))).start(), GUARD)
        # Admitted when the list also names the address range; unchanged without any list.
        for kw in ({"remote_allowed_hosts": [name, "127.0.0.0/8"]}, {}):
            backend, _ = await started(url, tmp_path, settings_kw=kw)
            try:
                assert text_of(await call_tool(backend, "echo", {"text": "in"})) == "in"
            finally:
                await backend.stop()


async def test_localhost_is_loopback_bound(tmp_path):
    with run_upstream("session_server") as up:
        backend, _ = await started(f"http://localhost:{up.port}/mcp", tmp_path,
                                   settings_kw={"remote_allowed_hosts": ["localhost"]})
        try:
            assert text_of(await call_tool(backend, "echo", {"text": "local"})) == "local"
        finally:
            await backend.stop()


async def test_the_stream_client_checks_resolved_addresses_too(tmp_path):
    """The httpx client (GET streams, the legacy SSE transport) connects through the same resolver."""
    from runtimed.backends.remote import http as _http

    name = loopback_alias()
    with run_upstream("session_server") as up:
        url = f"http://{name}:{up.port}/mcp"
        client = _http.make_client(3.0, _http.make_resolver(lambda: ([name], None), "svc"))
        try:
            with pytest.raises(BackendFault, match=f"host '{name}' resolves to 127"):
                await client.get(url)
        finally:
            await client.aclose()
        client = _http.make_client(3.0, _http.make_resolver(lambda: ([name, "127.0.0.1"], None), "svc"))
        try:
            assert (await client.get(url)).status_code == 400  # reached: no session on this GET
        finally:
            await client.aclose()
    with run_upstream("legacy_sse_server") as legacy:
        host = Host(settings(tmp_path, remote_allowed_hosts=[name]))
        backend = RemoteBackend(manifest(f"http://{name}:{legacy.port}/sse", transport="sse"), host)
        with pytest.raises(BackendStartError, match="loopback address"):
            await asyncio.wait_for(backend.start(), GUARD)


async def test_legacy_sse_a_400_unknown_session_reconnects_once(tmp_path):
    """The old HTTP+SSE transport: the TypeScript SDK answers a POST for a session it forgot with 400."""
    with run_upstream("session_server") as up:
        backend, _ = await started(up.sse_url, tmp_path, transport="sse")
        try:
            assert text_of(await call_tool(backend, "forget")) == "forgotten"  # the stream stays open
            assert text_of(await call_tool(backend, "echo", {"text": "again"})) == "again"
            d = backend.describe()
            assert d["reconnects"] == 1 and d["handshakes"] == 2
            s = await upstream_stats(backend)
            assert s["initialize"] == 2 and s["executed"]["echo"] == 1
        finally:
            await backend.stop()
