"""RemoteBackend against real upstream MCP servers on loopback.

The upstreams are real processes (tests/upstreams/): the SDK's MCPServer in
both eras, a fault-injecting raw server and an old HTTP+SSE server. ``Host``
and ``Relay`` below are a small real harness standing in for the supervisor
and the gateway (what a backend is lent), not mocks of the backend.
Bounds like ``asyncio.wait_for(..., GUARD)`` only stop a broken test from
hanging; nothing asserts on durations.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from runtimed.backends.base import (
    BackendFault,
    BackendStartError,
    CallContext,
    Health,
    InputRequired,
    InvalidOrigin,
    NullRelay,
    UpstreamError,
)
from runtimed.backends.remote.backend import RemoteBackend, prepare_remote_origin
from runtimed.backends.remote.hosts import host_matches
from runtimed.config.manifest import parse_manifest
from runtimed.config.settings import Settings
from tests.support.upstream import run_upstream

GUARD = 30.0  # seconds: only to stop a broken test from hanging forever
BASE_TOOLS = {"echo", "add", "slow", "sample", "ask", "roots", "log", "big", "fail", "add_tool", "stats"}
SECRET = "s3cret-value-7f3a9c"


# -- harness ------------------------------------------------------------------
class Host:
    """What the supervisor lends a backend, recording what the backend tells it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = str(settings.state_dir)
        self.logs: list[tuple[str, str]] = []
        self.list_changed: list[str] = []
        self.notifications: list[tuple[str, Any]] = []
        self.failures: list[str] = []

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def on_list_changed(self, kind: str) -> None:
        self.list_changed.append(kind)

    def on_notification(self, method: str, params: Any) -> None:
        self.notifications.append((method, params))

    def on_failure(self, reason: str) -> None:
        self.failures.append(reason)

    async def on_server_request(self, method: str, params: Any) -> Any:
        return {"roots": []}


class Relay:
    """The downstream client side of one call: records notifications, answers requests."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, Any]] = []
        self.requests: list[tuple[str, Any]] = []
        self.first_progress = asyncio.Event()

    async def notify(self, method: str, params: Any) -> None:
        self.notes.append((method, params))
        if method == "notifications/progress":
            self.first_progress.set()

    async def request(self, method: str, params: Any) -> Any:
        self.requests.append((method, params))
        if method == "sampling/createMessage":
            return {"role": "assistant", "content": {"type": "text", "text": "forty-two"}, "model": "test-model"}
        if method == "elicitation/create":
            return {"action": "accept", "content": {"answer": "blue"}}
        if method == "roots/list":
            return {"roots": [{"uri": "file:///work/project", "name": "project"}]}
        raise AssertionError(method)


def manifest(url: str, **origin: Any) -> Any:
    policy = origin.pop("policy", {})
    return parse_manifest(
        {"metadata": {"name": "svc"}, "spec": {"origin": {"type": "remote_mcp", "url": url, **origin}, "policy": policy}}
    )


def settings(tmp_path: Path, **kw: Any) -> Settings:
    kw.setdefault("policy", {"timeoutMs": 20_000, "connectTimeoutMs": 3_000})
    return Settings(state_dir=tmp_path, **kw)


async def started(url: str, tmp_path: Path, era: str | None = None, settings_kw: dict | None = None, **origin: Any):
    host = Host(settings(tmp_path, **(settings_kw or {})))
    backend = RemoteBackend(manifest(url, **origin), host, force_era=era)
    await asyncio.wait_for(backend.start(), GUARD)
    return backend, host


def text_of(result: dict) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []))


async def call_tool(backend: RemoteBackend, name: str, args: dict | None = None, **ctx: Any) -> dict:
    ctx.setdefault("max_response_bytes", 4 * 1024 * 1024)
    # The calling client's capabilities go upstream as declared (a 2026-07-28 upstream refuses a
    # tool needing one that is missing with -32021): these tests' client can answer everything.
    ctx.setdefault("client_capabilities", {"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": True}})
    c = CallContext(**ctx)
    return await asyncio.wait_for(backend.call("tools/call", {"name": name, "arguments": args or {}}, c), GUARD)


async def stats(backend: RemoteBackend) -> dict:
    return json.loads(text_of(await call_tool(backend, "stats")))


async def eventually(predicate, what: str) -> None:
    for _ in range(int(GUARD / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


# -- upstreams (one process per module where state does not matter) -----------
@pytest.fixture(scope="module")
def echo():
    with run_upstream("echo_server", "--page-size", "4", "--many-tools", "9", "--long-names") as up:
        yield up


@pytest.fixture(scope="module")
def faulty():
    with run_upstream("faulty_server", "--oversized-bytes", str(20 * 1024**3)) as up:
        yield up


@pytest.fixture(scope="module")
def legacy():
    with run_upstream("legacy_sse_server") as up:
        yield up


ERAS = pytest.mark.parametrize("era", ["stateless", "session"])


# -- eras and the one session ---------------------------------------------------
async def test_auto_picks_stateless_era_and_introspects_all_pages(echo, tmp_path):
    backend, _ = await started(echo.url, tmp_path)
    try:
        d = backend.describe()
        assert d["era"] == "stateless" and d["protocolVersion"] == "2026-07-28" and d["handshakes"] == 1
        iface = await asyncio.wait_for(backend.introspect(), GUARD)
        names = {t["name"] for t in iface.tools}
        assert names >= BASE_TOOLS
        bulk = [n for n in names if n.startswith("bulk_")]
        assert len(bulk) == 9 and all(len(n) == 128 for n in bulk)  # 20 tools over pages of 4
        assert {r["uri"] for r in iface.resources} == {"test://static-text", "test://info"}
        assert [t["uriTemplate"] for t in iface.resource_templates] == ["test://items/{item_id}"]
        assert [p["name"] for p in iface.prompts] == ["greet"]
        assert "tools" in iface.capabilities and iface.server_info.get("name") == "echo"
    finally:
        await backend.stop()


async def test_auto_falls_back_to_session_era_when_discover_is_refused(tmp_path):
    with run_upstream("echo_server", "--session-only") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            d = backend.describe()
            assert d["era"] == "session" and d["protocolVersion"] == "2025-11-25" and d["sessionIdPresent"] is True
            assert text_of(await call_tool(backend, "add", {"a": 2, "b": 40})) == "42"
            s = await stats(backend)
            assert s["discover"] == 1 and s["initialize"] == 1
        finally:
            await backend.stop()


@ERAS
async def test_one_handshake_over_200_calls(era, tmp_path):
    with run_upstream("echo_server") as up:
        backend, _ = await started(up.url, tmp_path, era=era)
        try:
            async def one(i: int) -> str:
                return text_of(await call_tool(backend, "add", {"a": i, "b": 1}))

            for batch in range(10):
                got = await asyncio.gather(*(one(batch * 20 + i) for i in range(20)))
                assert got == [str(batch * 20 + i + 1) for i in range(20)]
            assert backend.describe()["handshakes"] == 1
            s = await stats(backend)
            if era == "session":
                assert s["initialize"] == 1 and s["discover"] == 0
            else:
                assert s["initialize"] == 0 and s["discover"] == 1
            assert s["methods"]["tools/call"] == 201
        finally:
            await backend.stop()


async def test_session_not_found_reinitializes_once_and_retries(tmp_path):
    with run_upstream("echo_server") as up:
        backend, host = await started(up.url, tmp_path, era="session")
        try:
            assert text_of(await call_tool(backend, "echo", {"text": "before"})) == "before"
            up.restart()  # same port, new process: the session id is unknown now
            assert text_of(await call_tool(backend, "echo", {"text": "after"})) == "after"
            d = backend.describe()
            assert d["handshakes"] == 2 and d["reinitializations"] == 1
            assert any("session not found" in m for _, m in host.logs)
            s = await stats(backend)
            assert s["initialize"] == 1  # the new process saw exactly one handshake
            up.restart()  # a probe also recovers the session instead of reporting it down
            assert (await backend.probe()).health == Health.HEALTHY
            assert backend.describe()["reinitializations"] == 2
        finally:
            await backend.stop()


# -- relaying ------------------------------------------------------------------
@ERAS
async def test_progress_is_relayed_with_the_clients_token(echo, era, tmp_path):
    backend, _ = await started(echo.url, tmp_path, era=era)
    try:
        relay = Relay()
        result = await call_tool(backend, "slow", {"seconds": 0.2, "steps": 4}, relay=relay, progress_token="client-tok-9")
        assert text_of(result) == "slept 0.2"
        progress = [p for m, p in relay.notes if m == "notifications/progress"]
        assert [p["progress"] for p in progress] == [1, 2, 3, 4]
        assert all(p["progressToken"] == "client-tok-9" for p in progress)
    finally:
        await backend.stop()


@ERAS
async def test_sampling_elicitation_and_roots_are_relayed(echo, era, tmp_path):
    backend, _ = await started(echo.url, tmp_path, era=era)
    try:
        relay = Relay()
        assert text_of(await call_tool(backend, "sample", {"prompt": "meaning?"}, relay=relay)) == "model said: forty-two"
        assert text_of(await call_tool(backend, "ask", {"question": "colour?"}, relay=relay)) == "user answered: blue"
        assert json.loads(text_of(await call_tool(backend, "roots", {}, relay=relay))) == ["file:///work/project"]
        methods = [m for m, _ in relay.requests]
        assert methods == ["sampling/createMessage", "elicitation/create", "roots/list"]
        assert relay.requests[1][1]["message"] == "colour?"
    finally:
        await backend.stop()


async def test_session_era_log_message_is_relayed(echo, tmp_path):
    backend, _ = await started(echo.url, tmp_path, era="session")
    try:
        relay = Relay()
        await call_tool(backend, "log", {"text": "hello from upstream"}, relay=relay)
        assert ("notifications/message", {"level": "info", "data": "hello from upstream"}) in [
            (m, {k: v for k, v in p.items() if k in ("level", "data")}) for m, p in relay.notes
        ]
    finally:
        await backend.stop()


async def test_stateless_input_required_without_a_relay_raises_input_required(echo, tmp_path):
    backend, _ = await started(echo.url, tmp_path, era="stateless")
    try:
        with pytest.raises(InputRequired) as ei:
            await call_tool(backend, "ask", {"question": "colour?"}, relay=NullRelay())
        (req,) = ei.value.requests.values()
        assert req["method"] == "elicitation/create"
    finally:
        await backend.stop()


@ERAS
async def test_list_changed_reaches_the_host(era, tmp_path):
    with run_upstream("echo_server") as up:
        backend, host = await started(up.url, tmp_path, era=era)
        try:
            async def stream_open() -> bool:
                return backend.describe()["backgroundStream"] in ("GET stream", "subscriptions/listen")

            await eventually(stream_open, "background stream open")
            await call_tool(backend, "add_tool", {"name": "fresh_tool"})

            async def changed() -> bool:
                return "tools" in host.list_changed

            await eventually(changed, "tools list_changed")
            iface = await backend.introspect()
            assert "fresh_tool" in {t["name"] for t in iface.tools}
        finally:
            await backend.stop()


async def test_notify_forwards_roots_list_changed(tmp_path):
    with run_upstream("echo_server") as up:
        backend, _ = await started(up.url, tmp_path, era="session")
        try:
            await backend.notify("notifications/roots/list_changed", {})
            s = await stats(backend)
            assert s["methods"].get("notifications/roots/list_changed") == 1
        finally:
            await backend.stop()


# -- cancellation ------------------------------------------------------------------
@ERAS
async def test_cancellation_reaches_the_upstream(era, tmp_path):
    with run_upstream("echo_server") as up:
        backend, _ = await started(up.url, tmp_path, era=era)
        try:
            relay = Relay()
            task = asyncio.ensure_future(
                call_tool(backend, "slow", {"seconds": 60, "steps": 60}, relay=relay, progress_token="t")
            )
            await asyncio.wait_for(relay.first_progress.wait(), GUARD)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

            async def upstream_cancelled() -> bool:
                return (await stats(backend))["cancelled_tools"] >= 1

            await eventually(upstream_cancelled, "the upstream tool was cancelled")
            if era == "session":
                assert (await stats(backend))["cancel_notifications"] == 1
        finally:
            await backend.stop()


# -- faults ------------------------------------------------------------------------
@pytest.fixture
async def faulty_backend(faulty, tmp_path):
    backend, _host = await started(faulty.url, tmp_path)
    yield backend
    await backend.stop()


@pytest.mark.parametrize(
    "tool,kind,status,words",
    [
        ("http500", "http", 500, "HTTP 500"),
        ("reset", "protocol", None, "reset"),
        ("badjson", "protocol", None, "invalid JSON"),
        ("badframe", "protocol", None, "invalid JSON"),
        ("unauthorized", "unauthorized", 401, "authRef"),
        ("oversized", "payload", None, "maxPayloadBytes"),
    ],
)
async def test_injected_fault_gives_the_right_kind(faulty_backend, tool, kind, status, words):
    with pytest.raises(BackendFault) as ei:
        await call_tool(faulty_backend, tool, max_response_bytes=1024 * 1024)
    assert ei.value.kind == kind and ei.value.status == status
    assert words in str(ei.value)
    # The session survives the fault: the next call works.
    assert text_of(await call_tool(faulty_backend, "ok")) == "ok"


@pytest.mark.parametrize("tool", ["hang", "drip"])
async def test_hang_and_drip_end_at_the_callers_deadline(faulty_backend, tool):
    loop = asyncio.get_running_loop()
    ctx = CallContext(deadline=loop.time() + 0.5, max_response_bytes=1024 * 1024)
    # The policy layer implements timeouts as cancellation; do the same here.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await faulty_backend.call("tools/call", {"name": tool, "arguments": {}}, ctx)
    assert text_of(await call_tool(faulty_backend, "ok")) == "ok"


async def test_a_hanging_service_does_not_delay_a_healthy_one(faulty_backend, echo, tmp_path):
    healthy, _ = await started(echo.url, tmp_path / "h")
    try:
        hang = asyncio.ensure_future(faulty_backend.call("tools/call", {"name": "hang", "arguments": {}}, CallContext()))
        got = await asyncio.gather(*(call_tool(healthy, "add", {"a": i, "b": i}) for i in range(20)))
        assert [text_of(r) for r in got] == [str(2 * i) for i in range(20)]
        assert not hang.done()
        hang.cancel()
    finally:
        await healthy.stop()


async def test_connect_error_is_safe_to_retry(tmp_path):
    with run_upstream("faulty_server") as up:
        backend, _ = await started(up.url, tmp_path)
        try:
            up.stop()
            with pytest.raises(BackendFault) as ei:
                await call_tool(backend, "ok")
            assert ei.value.kind == "connect" and ei.value.safe_to_retry is True
            assert "cannot connect" in str(ei.value)
            assert (await backend.probe()).health == Health.UNREACHABLE
        finally:
            await backend.stop()


async def test_start_fails_clearly_on_refused_port_and_401(faulty, tmp_path):
    from tests.support.upstream import free_port

    host = Host(settings(tmp_path))
    with pytest.raises(BackendStartError, match="cannot connect"):
        await RemoteBackend(manifest(f"http://127.0.0.1:{free_port()}/mcp"), host).start()
    with pytest.raises(BackendStartError, match="HTTP 401"):
        await RemoteBackend(manifest(faulty.base_url + "/401/mcp"), host).start()
    with pytest.raises(BackendStartError, match="HTTP 500"):
        await RemoteBackend(manifest(faulty.base_url + "/500/mcp"), host).start()


async def test_probe_reports_healthy_and_timeout(faulty, tmp_path):
    backend, _ = await started(faulty.url, tmp_path)
    slow, _ = await started(faulty.base_url + "/hangping/mcp", tmp_path)
    try:
        ok = await backend.probe()
        assert ok.health == Health.HEALTHY and ok.latency_ms is not None
        slow.manifest.spec.healthCheck.timeoutMs = 300
        assert (await asyncio.wait_for(slow.probe(), GUARD)).health == Health.TIMEOUT
    finally:
        await backend.stop()
        await slow.stop()


async def test_payload_limit_on_a_real_sdk_upstream(echo, tmp_path):
    backend, _ = await started(echo.url, tmp_path, era="session")
    try:
        assert len(text_of(await call_tool(backend, "big", {"size": 1000}, max_response_bytes=64 * 1024))) == 1000
        with pytest.raises(BackendFault) as ei:
            await call_tool(backend, "big", {"size": 200_000}, max_response_bytes=64 * 1024)
        assert ei.value.kind == "payload"
    finally:
        await backend.stop()


async def test_upstream_jsonrpc_errors_pass_through_as_upstream_error(echo, tmp_path):
    backend, _ = await started(echo.url, tmp_path, era="session")
    try:
        with pytest.raises(UpstreamError) as ei:
            await asyncio.wait_for(backend.call("prompts/get", {"name": "nope"}, CallContext()), GUARD)
        assert isinstance(ei.value.code, int) and ei.value.message
        tool_error = await call_tool(backend, "fail", {"message": "kaput"})
        assert tool_error["isError"] is True and "fail" in text_of(tool_error)
    finally:
        await backend.stop()


# -- redirects ---------------------------------------------------------------------
async def test_same_origin_redirect_is_followed_other_host_is_not(faulty, tmp_path):
    backend, _ = await started(faulty.base_url + "/redirect-same/mcp", tmp_path)
    try:
        assert text_of(await call_tool(backend, "ok")) == "ok"
    finally:
        await backend.stop()
    with pytest.raises(BackendStartError, match="another origin"):
        await started(faulty.base_url + "/redirect-other/mcp", tmp_path)


# -- authRef -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded():
    with run_upstream("echo_server", "--require-header", f"Authorization: Bearer {SECRET}") as up:
        yield up


def assert_no_secret(backend: RemoteBackend, host: Host, *texts: str) -> None:
    blob = json.dumps(backend.describe()) + json.dumps(host.logs) + "".join(texts)
    assert SECRET not in blob


async def test_authref_env_is_sent_as_bearer(guarded, tmp_path, monkeypatch):
    monkeypatch.setenv("RT_TEST_TOKEN", SECRET)
    backend, host = await started(guarded.url, tmp_path, authRef="env:RT_TEST_TOKEN")
    try:
        assert text_of(await call_tool(backend, "echo", {"text": "in"})) == "in"
        # Resolved at call time: a wrong value now is refused as unauthorized, and probes say so.
        monkeypatch.setenv("RT_TEST_TOKEN", "wrong-value")
        with pytest.raises(BackendFault) as ei:
            await call_tool(backend, "echo", {"text": "in"})
        assert ei.value.kind == "unauthorized" and ei.value.status == 401
        assert (await backend.probe()).health == Health.UNAUTHORIZED
        monkeypatch.delenv("RT_TEST_TOKEN")
        with pytest.raises(BackendFault) as ei:
            await call_tool(backend, "echo", {"text": "in"})
        assert ei.value.kind == "unauthorized" and "RT_TEST_TOKEN" in str(ei.value)
        assert_no_secret(backend, host, str(ei.value))
    finally:
        await backend.stop()


async def test_authref_missing_variable_fails_start_naming_it(guarded, tmp_path, monkeypatch):
    monkeypatch.delenv("RT_TEST_ABSENT", raising=False)
    with pytest.raises(BackendStartError, match="RT_TEST_ABSENT"):
        await started(guarded.url, tmp_path, authRef="env:RT_TEST_ABSENT")


async def test_authref_file_under_secrets(guarded, tmp_path):
    (tmp_path / "secrets" / "team").mkdir(parents=True)
    (tmp_path / "secrets" / "team" / "token").write_text(SECRET + "\n")
    backend, host = await started(guarded.url, tmp_path, authRef="file:team/token")
    try:
        assert text_of(await call_tool(backend, "echo", {"text": "file"})) == "file"
        assert_no_secret(backend, host)
    finally:
        await backend.stop()


async def test_authref_file_symlink_escape_is_refused(guarded, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    (tmp_path / "secrets").mkdir()
    os.symlink(outside, tmp_path / "secrets" / "token")
    with pytest.raises(BackendStartError) as ei:
        await started(guarded.url, tmp_path, authRef="file:token")
    assert "symlink" in str(ei.value) and "outside" in str(ei.value)
    assert SECRET not in str(ei.value)


@pytest.mark.parametrize("ref", ["file:/etc/passwd", "file:../secret", "file:a/../../b"])
def test_authref_file_absolute_or_dotdot_refused_at_registration(ref, tmp_path):
    with pytest.raises(InvalidOrigin, match=r"relative|'\.\.'"):
        prepare_remote_origin(manifest("http://127.0.0.1:1/mcp", authRef=ref), settings(tmp_path))


async def test_authref_header_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RT_TEST_API_KEY", SECRET)
    with run_upstream("echo_server", "--require-header", f"X-Api-Key: {SECRET}") as up:
        backend, host = await started(up.url, tmp_path, authRef="header_env:X-Api-Key:RT_TEST_API_KEY")
        try:
            assert text_of(await call_tool(backend, "echo", {"text": "hdr"})) == "hdr"
            assert (await backend.probe()).health == Health.HEALTHY
            assert_no_secret(backend, host)
        finally:
            await backend.stop()


# -- host allowlist ----------------------------------------------------------------
def test_host_patterns():
    assert host_matches("api.example.com", "*.example.com")
    assert not host_matches("example.com", "*.example.com")
    assert not host_matches("evil-example.com", "*.example.com")
    assert host_matches("API.Example.com", "api.example.com")
    assert host_matches("127.0.0.1", "127.0.0.1") and host_matches("10.1.2.3", "10.0.0.0/8")
    assert host_matches("::1", "[::1]") and not host_matches("127.0.0.2", "127.0.0.1")


def test_allowlist_at_registration(tmp_path):
    s = settings(tmp_path, remote_allowed_hosts=["*.example.com", "127.0.0.1"])
    prepare_remote_origin(manifest("https://api.example.com/mcp"), s)
    prepare_remote_origin(manifest("http://127.0.0.1:9/mcp"), s)
    with pytest.raises(InvalidOrigin, match=r"'169\.254\.169\.254' is not in the daemon's allowed remote hosts"):
        prepare_remote_origin(manifest("http://169.254.169.254/mcp"), s)
    with pytest.raises(InvalidOrigin, match=r"origin\.allowedHosts"):
        prepare_remote_origin(manifest("https://api.example.com/mcp", allowedHosts=["other.example.com"]), s)
    prepare_remote_origin(manifest("http://10.0.0.1/mcp"), settings(tmp_path))  # None = any


async def test_allowlist_checked_again_at_connect(echo, tmp_path):
    host = Host(settings(tmp_path, remote_allowed_hosts=["mcp.example.com"]))
    with pytest.raises(BackendStartError, match="not in the daemon's allowed remote hosts"):
        await RemoteBackend(manifest(echo.url), host).start()
    backend, host = await started(echo.url, tmp_path, settings_kw={"remote_allowed_hosts": ["127.0.0.1"]})
    try:
        host.settings.remote_allowed_hosts = ["mcp.example.com"]  # tightened while running
        with pytest.raises(BackendFault, match="not in the daemon's allowed remote hosts"):
            await call_tool(backend, "echo", {"text": "x"})
    finally:
        await backend.stop()


# -- the old HTTP+SSE transport ----------------------------------------------------------
async def test_legacy_sse_transport(legacy, tmp_path):
    backend, _ = await started(legacy.sse_url, tmp_path, transport="sse")
    try:
        iface = await backend.introspect()
        assert {"echo", "add", "slow", "stats"} <= {t["name"] for t in iface.tools}
        assert [r["uri"] for r in iface.resources] == ["test://legacy"]
        got = await asyncio.gather(*(call_tool(backend, "add", {"a": i, "b": 1}) for i in range(50)))
        assert [text_of(r) for r in got] == [str(i + 1) for i in range(50)]
        relay = Relay()
        await call_tool(backend, "slow", {"seconds": 0.2, "steps": 2}, relay=relay, progress_token=7)
        assert [p["progressToken"] for m, p in relay.notes if m == "notifications/progress"] == [7, 7]
        d = backend.describe()
        assert d["transport"] == "sse" and d["handshakes"] == 1
        assert (await backend.probe()).health == Health.HEALTHY
    finally:
        await backend.stop()


async def test_legacy_sse_cancellation_reaches_the_upstream(legacy, tmp_path):
    backend, _ = await started(legacy.sse_url, tmp_path, transport="sse")
    try:
        before = json.loads(text_of(await call_tool(backend, "stats")))["cancelled_tools"]
        relay = Relay()
        task = asyncio.ensure_future(call_tool(backend, "slow", {"seconds": 60, "steps": 60}, relay=relay, progress_token=1))
        await asyncio.wait_for(relay.first_progress.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def cancelled() -> bool:
            return json.loads(text_of(await call_tool(backend, "stats")))["cancelled_tools"] > before

        await eventually(cancelled, "legacy upstream saw the cancellation")
    finally:
        await backend.stop()
