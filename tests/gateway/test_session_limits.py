"""Session-era sessions are bounded (issue 14, item 3), against a real daemon, raw HTTP (the
requests a forgetful or hostile client sends) and a real upstream:

- idle sessions expire (``session_idle_s``, default 1 h), even when no new client comes;
- at ``max_sessions`` a new initialize ends the session idle the longest, and its upstream
  sessions with it; a session with an open GET stream is not idle, and with none idle the
  initialize is refused with 503 and a message saying what to do;
- a session keeps at most ``session_client_max_bytes`` of clientInfo and capabilities: a larger
  initialize is refused with -32602 and no session is made.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from runtimed.config.settings import Settings
from runtimed.gateway.sessions import Stream
from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.upstream import run_upstream

V = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


def _post(d: DaemonProc, body: Any, sid: str | None = None, path: str = "/mcp") -> httpx.Response:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if sid is not None:
        headers.update({"Mcp-Session-Id": sid, "MCP-Protocol-Version": V})
    return httpx.post(d.url + path, content=json.dumps(body).encode(), headers=headers, timeout=30)


def _init_response(d: DaemonProc, name: str, path: str = "/mcp", capabilities: Any = None) -> httpx.Response:
    return _post(d, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                     "params": {"protocolVersion": V, "capabilities": capabilities or {},
                                "clientInfo": {"name": name, "version": "1"}}}, path=path)


def _initialize(d: DaemonProc, name: str, path: str = "/mcp") -> str:
    r = _init_response(d, name, path)
    assert r.status_code == 200 and "result" in r.json(), r.text
    sid = r.headers["mcp-session-id"]
    assert _post(d, {"jsonrpc": "2.0", "method": "notifications/initialized"}, sid, path).status_code == 202
    return sid


def _ping(d: DaemonProc, sid: str, path: str = "/mcp") -> httpx.Response:
    return _post(d, {"jsonrpc": "2.0", "id": 7, "method": "ping"}, sid, path)


def _sessions(d: DaemonProc) -> int:
    r = d.api("GET", "/api/status")
    assert r.status_code == 200, r.text
    return int(r.json()["clients"]["session"])


def test_defaults_are_a_gateways() -> None:
    s = Settings()
    assert s.session_idle_s == 3600
    assert s.max_sessions >= 100
    assert s.session_client_max_bytes <= 64 * 1024


def test_idle_sessions_expire_without_a_new_client(make_daemon) -> None:
    d = make_daemon(env={"RUNTIMED_SESSION_IDLE_S": "1"})
    sid = _initialize(d, "forgetful")
    assert _ping(d, sid).status_code == 200
    assert _sessions(d) == 1
    # Nobody initializes again: the daemon's own sweep ends it (bounded wait, not a timing assertion).
    d.wait_for(lambda: _sessions(d) == 0, timeout=20, what="the idle session to expire")
    r = _ping(d, sid)
    assert r.status_code == 404 and "initialize again" in r.json()["error"]["message"]


def test_the_oldest_idle_session_is_evicted_with_its_upstream_sessions(make_daemon) -> None:
    d = make_daemon(env={"RUNTIMED_MAX_SESSIONS": "2"})
    with run_upstream("echo_server", "--name", "dual") as up:
        register_remote(d, "dual", up.url)
        d.wait_state("dual", "RUNNING", timeout=60)
        path = "/mcp/dual"
        a = _initialize(d, "a", path)
        r = _post(d, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "mine"}}}, a, path)
        assert r.status_code == 200 and "mine" in r.text, r.text
        assert d.service("dual")["backend"]["clientSessions"]["open"] == 1  # a's own upstream session
        b = _initialize(d, "b", path)
        assert _ping(d, a, path).status_code == 200  # a is used again: b is now the one idle the longest
        c = _initialize(d, "c", path)
        assert _ping(d, b, path).status_code == 404
        assert _ping(d, a, path).status_code == 200 and _ping(d, c, path).status_code == 200
        assert _sessions(d) == 2
        d_ = _initialize(d, "d", path)  # a was pinged before c: a is now the one idle the longest
        assert _ping(d, a, path).status_code == 404
        # a's upstream session went with it, as on DELETE.
        d.wait_for(lambda: d.service("dual")["backend"]["clientSessions"]["open"] == 0,
                   what="the evicted client's upstream session to be released")
        assert _ping(d, d_, path).status_code == 200
        assert "evicted" in d.log()


def test_sessions_with_an_open_stream_are_not_evicted(make_daemon) -> None:
    d = make_daemon(env={"RUNTIMED_MAX_SESSIONS": "1"})
    sid = _initialize(d, "listening")
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": V}
    with httpx.stream("GET", d.mcp_url, headers=headers, timeout=30) as stream:
        assert stream.status_code == 200
        r = _init_response(d, "newcomer")
        assert r.status_code == 503, r.text
        message = r.json()["error"]["message"]
        assert "1 session" in message and "max_sessions" in message and "RUNTIMED_MAX_SESSIONS" in message
        assert "mcp-session-id" not in r.headers
    # The stream closed: the listening session is idle now, and gives way.
    d.wait_for(lambda: _init_response(d, "newcomer").status_code == 200, what="the newcomer to be admitted")
    assert _ping(d, sid).status_code == 404


def test_oversized_client_capabilities_are_refused(make_daemon) -> None:
    d = make_daemon()
    big = {"experimental": {"blob": {"x": "y" * (1024 * 1024)}}}
    r = _init_response(d, "greedy", capabilities=big)
    assert r.status_code == 200, r.text  # a JSON-RPC error to a well-formed request
    err = r.json()["error"]
    assert err["code"] == -32602
    assert "capabilities" in err["message"] and "session_client_max_bytes" in err["message"], err
    assert "mcp-session-id" not in r.headers
    assert _sessions(d) == 0
    # A client's ordinary capabilities are kept in full.
    sid = _initialize(d, "ordinary")
    assert _ping(d, sid).status_code == 200


def _sse_call(d: DaemonProc, sid: str, path: str, call_id: int) -> str:
    """A call answered as SSE (it reports progress); returns the id of its first event."""
    body = {"jsonrpc": "2.0", "id": call_id, "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 0.1, "steps": 2}, "_meta": {"progressToken": "p"}}}
    headers = {"Accept": ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": V}
    with httpx.stream("POST", d.url + path, json=body, headers=headers, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        ids = [line[4:] for line in r.iter_lines() if line.startswith("id: ")]
    return next(i for i in ids if not i.endswith(".0"))  # the first event after the priming one


def _resume(d: DaemonProc, sid: str, path: str, event_id: str) -> int:
    headers = {"Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": V,
               "Last-Event-ID": event_id}
    with httpx.stream("GET", d.url + path, headers=headers, timeout=30) as r:
        return r.status_code


def test_answers_kept_for_resumption_are_bounded_in_bytes(make_daemon) -> None:
    """A session keeps finished answers for Last-Event-ID resumption: the newest always, older
    ones up to a byte budget, so a client pulling large results does not pile them up."""
    d = make_daemon()
    with run_upstream("echo_server", "--name", "up") as up:
        register_remote(d, "up", up.url)
        d.wait_state("up", "RUNNING", timeout=60)
        path = "/mcp/up"
        sid = _initialize(d, "puller", path)
        first = _sse_call(d, sid, path, 1)
        assert _resume(d, sid, path, first) == 200  # kept: it can be resumed
        for i in range(3):  # 3 answers of 1 MiB each, as SSE (a log message first): past the budget
            r = _post(d, {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                          "params": {"name": "log", "arguments": {"text": "x" * 1024 * 1024}}}, sid, path)
            assert r.headers["content-type"].startswith("text/event-stream"), r.headers
            assert r.status_code == 200 and len(r.content) > 1024 * 1024, r.text[:200]
        last = _sse_call(d, sid, path, 20)
        assert _resume(d, sid, path, first) == 404  # dropped: the oldest answers go first
        assert _resume(d, sid, path, last) == 200  # the newest is always kept


def test_a_stream_keeps_a_bounded_number_of_bytes() -> None:
    """One stream (a session's GET stream gets every upstream log message) keeps its newest events
    up to a byte budget, not 1000 events of any size."""
    s = Stream()
    for i in range(12):
        s.push({"jsonrpc": "2.0", "method": "notifications/message", "params": {"i": i, "data": "x" * (1 << 20)}})
    kept = s.after(0)
    assert sum(len(data) for _, data, _ in kept) <= 4 * (1 << 20)
    assert kept[-1][0] == 12 and len(kept) >= 2  # the newest events, in order
    s.push({"jsonrpc": "2.0", "id": 1, "result": {"big": "y" * (5 << 20)}}, final=True)
    assert [seq for seq, _, _ in s.after(0)] == [13]  # one event larger than the budget is still kept
