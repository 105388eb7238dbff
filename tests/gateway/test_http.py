"""The gateway's HTTP and JSON-RPC error paths, with raw HTTP against a real
daemon and a real upstream (no SDK: these are the requests a broken or hostile
client sends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon import DaemonProc
from tests.support.upstream import run_upstream

S = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    with run_upstream("echo_server", "--name", "a") as a:
        d = DaemonProc(Path(tmp_path_factory.mktemp("gwhttp")) / "state").start()
        try:
            r = d.api("POST", "/api/services", json={"metadata": {"name": "a"},
                                                     "spec": {"origin": {"type": "remote_mcp", "url": a.url}}})
            assert r.status_code in (200, 201), r.text
            d.wait_state("a", "RUNNING", timeout=60)
            yield d
        finally:
            d.stop()


def meta(version: str = S, caps: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": caps or {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}


def post(d: DaemonProc, body: Any, headers: dict[str, str] | None = None, path: str = "/mcp", raw: bytes | None = None) -> httpx.Response:
    h = {"Accept": ACCEPT, "Content-Type": "application/json", **(headers or {})}
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(d.url + path, content=content, headers=h, timeout=30)


def stateless(d: DaemonProc, method: str, params: dict[str, Any] | None = None, name: str | None = None,
              headers: dict[str, str] | None = None, path: str = "/mcp", version: str = S,
              caps: dict[str, Any] | None = None) -> httpx.Response:
    h = {"MCP-Protocol-Version": version, "Mcp-Method": method}
    if name is not None:
        h["Mcp-Name"] = name
    h.update(headers or {})
    return post(d, {"jsonrpc": "2.0", "id": 1, "method": method,
                    "params": {**(params or {}), "_meta": meta(version, caps)}}, h, path)


def initialize(d: DaemonProc, version: str = "2025-11-25", path: str = "/mcp") -> str:
    r = post(d, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                 "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
             path=path)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["protocolVersion"] == version
    sid = r.headers["mcp-session-id"]
    assert len(sid) >= 32
    return sid


def session_post(d: DaemonProc, sid: str, body: Any, version: str = "2025-11-25", path: str = "/mcp") -> httpx.Response:
    return post(d, body, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": version}, path)


# -- both eras ----------------------------------------------------------------------------

def test_bad_json_is_parse_error(env: DaemonProc) -> None:
    r = post(env, None, raw=b"{not json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32700 and r.json()["id"] is None


def test_invalid_request(env: DaemonProc) -> None:
    r = post(env, {"jsonrpc": "1.0", "id": 1, "method": "initialize"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600
    r = stateless(env, "tools/list")
    assert r.status_code == 200
    r = post(env, {"jsonrpc": "2.0", "id": 1, "method": 5}, {"MCP-Protocol-Version": S, "Mcp-Method": "5"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600


def test_unknown_service_is_404(env: DaemonProc) -> None:
    r = stateless(env, "tools/list", path="/mcp/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]


# -- session era ----------------------------------------------------------------------------

def test_negotiation_answers_client_version_or_newest(env: DaemonProc) -> None:
    for v in ("2025-03-26", "2025-06-18", "2025-11-25"):
        initialize(env, v)
    r = post(env, {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2024-01-01", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}})
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"


def test_session_missing_unknown_and_deleted(env: DaemonProc) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    r = post(env, body, {"MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 400 and "Mcp-Session-Id" in r.json()["error"]["message"]
    r = session_post(env, "not-a-session", body)
    assert r.status_code == 404
    sid = initialize(env)
    assert session_post(env, sid, {"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
    r = session_post(env, sid, body)
    assert r.status_code == 200 and any(t["name"] == "a__echo" for t in r.json()["result"]["tools"])
    # a session belongs to its endpoint
    assert session_post(env, sid, body, path="/mcp/a").status_code == 404
    r = httpx.delete(env.url + "/mcp", headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 200
    assert session_post(env, sid, body).status_code == 404
    r = httpx.delete(env.url + "/mcp", headers={"Mcp-Session-Id": sid})
    assert r.status_code == 404


def test_bad_protocol_version_header_is_400(env: DaemonProc) -> None:
    sid = initialize(env)
    r = session_post(env, sid, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, version="1999-01-01")
    assert r.status_code == 400 and "1999-01-01" in r.json()["error"]["message"]


def test_unknown_method_and_unknown_tool_session_era(env: DaemonProc) -> None:
    sid = initialize(env)
    r = session_post(env, sid, {"jsonrpc": "2.0", "id": 1, "method": "no/such"})
    assert r.json()["error"]["code"] == -32601
    r = session_post(env, sid, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "zz__nope"}})
    assert r.json()["error"]["code"] == -32602 and "zz__nope" in r.json()["error"]["message"]
    r = session_post(env, sid, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "a__echo", "arguments": 5}})
    assert r.json()["error"]["code"] == -32602


def test_batches_refused_from_2025_06_18_allowed_in_2025_03_26(env: DaemonProc) -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    sid = initialize(env, "2025-06-18")
    r = session_post(env, sid, batch, version="2025-06-18")
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600 and "batch" in r.json()["error"]["message"]
    sid = initialize(env, "2025-03-26")
    r = post(env, batch, {"Mcp-Session-Id": sid})
    assert r.status_code == 200
    out = {m["id"]: m for m in r.json()}
    assert out[1]["result"] == {} and any(t["name"] == "a__echo" for t in out[2]["result"]["tools"])


def test_sse_event_ids_and_last_event_id_resume(env: DaemonProc) -> None:
    sid = initialize(env)
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "a__slow", "arguments": {"seconds": 0.2, "steps": 2}, "_meta": {"progressToken": "p1"}}}
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("POST", env.url + "/mcp", json=body, timeout=30,
                      headers={"Accept": ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        ev_id = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                ev_id = line[4:]
            elif line.startswith("data: "):
                events.append((ev_id, json.loads(line[6:])))
    assert [m.get("method") for _, m in events[:2]] == ["notifications/progress"] * 2
    assert events[0][1]["params"]["progressToken"] == "p1"
    assert events[-1][1]["id"] == 7 and events[-1][1]["result"]["content"][0]["text"] == "slept 0.2"
    # resume after the first event: the rest is replayed on a GET with Last-Event-ID
    with httpx.stream("GET", env.url + "/mcp", timeout=30, headers={
            "Accept": "text/event-stream", "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25",
            "Last-Event-ID": events[0][0]}) as r:
        assert r.status_code == 200
        replay = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert replay == [m for _, m in events[1:]]


def test_cancelled_notification_cancels_the_call(env: DaemonProc) -> None:
    sid = initialize(env)
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "a__slow", "arguments": {"seconds": 60, "steps": 60}, "_meta": {"progressToken": 1}}}
    with httpx.stream("POST", env.url + "/mcp", json=body, timeout=60,
                      headers={"Accept": ACCEPT, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}) as r:
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                break  # the first progress event: the call is running upstream
        c = session_post(env, sid, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}})
        assert c.status_code == 202
        rest = [json.loads(x[6:]) for x in lines if x.startswith("data: ")]
    # the stream ends without a result for the cancelled request
    assert not any(m.get("id") == 9 for m in rest)


def sse_blocks(lines: Iterator[str], stop_after: int | None = None) -> list[dict[str, str]]:
    """Raw SSE events as {field: value} (data lines joined), comments skipped."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in lines:
        if line == "":
            if cur:
                out.append(cur)
                cur = {}
                if stop_after is not None and len(out) >= stop_after:
                    break
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        cur[key] = cur[key] + "\n" + value if key == "data" and key in cur else value
    if cur:
        out.append(cur)
    return out


def test_session_sse_streams_start_with_a_priming_event(env: DaemonProc) -> None:
    """2025-11-25: an SSE stream starts with an event carrying an id and a retry, with empty data."""
    sid = initialize(env)
    h = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
            "params": {"name": "a__slow", "arguments": {"seconds": 0.1, "steps": 2}, "_meta": {"progressToken": "p"}}}
    with httpx.stream("POST", env.url + "/mcp", json=body, timeout=30, headers={"Accept": ACCEPT, **h}) as r:
        blocks = sse_blocks(r.iter_lines())
    prime, rest = blocks[0], blocks[1:]
    assert prime["data"] == "" and prime["retry"].isdigit() and prime["id"].endswith(".0"), blocks
    assert all(b["data"] for b in rest) and json.loads(rest[-1]["data"])["id"] == 11
    # Resuming from the priming event's id replays the whole answer (after its own priming event).
    get = {"Accept": "text/event-stream", **h}
    with httpx.stream("GET", env.url + "/mcp", timeout=30, headers={**get, "Last-Event-ID": prime["id"]}) as r:
        replay = sse_blocks(r.iter_lines())
    assert replay[0] == prime and replay[1:] == rest
    # A finished stream with nothing after the given event: 404, so clients stop reconnecting.
    r = httpx.get(env.url + "/mcp", timeout=30, headers={**get, "Last-Event-ID": rest[-1]["id"]})
    assert r.status_code == 404 and "has ended" in r.json()["error"]["message"]
    # The session's GET stream starts with one too.
    with httpx.stream("GET", env.url + "/mcp", timeout=30, headers=get) as r:
        first = sse_blocks(r.iter_lines(), stop_after=1)[0]
    assert first["data"] == "" and first["id"].startswith("g") and first["retry"].isdigit()


def test_stateless_sse_answers_have_no_priming_event(env: DaemonProc) -> None:
    """2026-07-28 has no resumption: no id to resume from, no retry."""
    h = {"Accept": ACCEPT, "MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": "a__slow"}
    body = {"jsonrpc": "2.0", "id": 12, "method": "tools/call",
            "params": {"name": "a__slow", "arguments": {"seconds": 0.1, "steps": 2},
                       "_meta": {**meta(), "progressToken": "p"}}}
    with httpx.stream("POST", env.url + "/mcp", json=body, timeout=30, headers=h) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        blocks = sse_blocks(r.iter_lines())
    assert blocks and all(b.get("data") and "retry" not in b for b in blocks), blocks
    assert json.loads(blocks[-1]["data"])["id"] == 12


# -- stateless era ----------------------------------------------------------------------------

def test_discover(env: DaemonProc) -> None:
    r = stateless(env, "server/discover")
    assert r.status_code == 200
    res = r.json()["result"]
    assert "2026-07-28" in res["supportedVersions"] and "2025-11-25" in res["supportedVersions"]
    assert res["resultType"] == "complete" and res["capabilities"]["tools"]["listChanged"] is True


def test_stateless_header_mismatch(env: DaemonProc) -> None:
    r = stateless(env, "tools/list", headers={"Mcp-Method": "prompts/list"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    r = stateless(env, "tools/call", {"name": "a__echo", "arguments": {"text": "x"}}, name="a__add")
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    r = stateless(env, "tools/call", {"name": "a__echo", "arguments": {"text": "x"}})  # Mcp-Name missing
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    r = stateless(env, "tools/call", {"name": "a__echo", "arguments": {"text": "ok"}}, name="a__echo")
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "ok"
    assert r.json()["result"]["resultType"] == "complete"


def test_stateless_unsupported_version(env: DaemonProc) -> None:
    r = stateless(env, "tools/list", version="2099-01-01")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == -32022 and "2026-07-28" in err["data"]["supported"] and err["data"]["requested"] == "2099-01-01"


def test_stateless_unknown_method_and_tool(env: DaemonProc) -> None:
    r = stateless(env, "no/such")
    assert r.status_code == 404 and r.json()["error"]["code"] == -32601
    r = stateless(env, "tools/call", {"name": "zz__nope"}, name="zz__nope")
    assert r.status_code == 400 and r.json()["error"]["code"] == -32602


def test_stateless_list_results_carry_cache_fields(env: DaemonProc) -> None:
    res = stateless(env, "tools/list").json()["result"]
    assert res["resultType"] == "complete" and res["ttlMs"] == 0 and res["cacheScope"] == "private"


def test_get_and_delete_with_stateless_version_are_405(env: DaemonProc) -> None:
    h = {"MCP-Protocol-Version": S, "Accept": "text/event-stream"}
    assert httpx.get(env.url + "/mcp", headers=h).status_code == 405
    assert httpx.delete(env.url + "/mcp", headers=h).status_code == 405


def test_stateless_batch_refused(env: DaemonProc) -> None:
    r = post(env, [{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta()}}],
             {"MCP-Protocol-Version": S, "Mcp-Method": "tools/list"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600


def test_input_required_request_state_is_signed(env: DaemonProc) -> None:
    params = {"name": "a__ask", "arguments": {"question": "colour?"}}
    elicit = {"elicitation": {}}
    r = stateless(env, "tools/call", params, name="a__ask", caps=elicit)
    res = r.json()["result"]
    assert res["resultType"] == "input_required", res
    (key, req), = res["inputRequests"].items()
    assert req["method"] == "elicitation/create"
    state = res["requestState"]
    # a forged state is refused
    forged = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    r = stateless(env, "tools/call", {**params, "requestState": forged,
                                      "inputResponses": {key: {"action": "accept", "content": {"answer": "red"}}}},
                  name="a__ask", caps=elicit)
    assert r.status_code == 400 and r.json()["error"]["code"] == -32602
    r = stateless(env, "tools/call", {**params, "requestState": state,
                                      "inputResponses": {key: {"action": "accept", "content": {"answer": "red"}}}},
                  name="a__ask", caps=elicit)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["content"][0]["text"] == "user answered: red"


def test_routing_header_whitespace_is_not_part_of_the_value(env: DaemonProc) -> None:
    """Surrounding whitespace (RFC 9110 OWS) is not part of a field value. httpx won't send
    it, so this request is written by hand on a socket."""
    import socket
    from urllib.parse import urlsplit

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "a__echo", "arguments": {"text": "hi"}, "_meta": meta()}}).encode()
    u = urlsplit(env.url)
    head = (f"POST /mcp HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\nAccept: {ACCEPT}\r\n"
            f"MCP-Protocol-Version: {S}\r\nMcp-Method:  tools/call \r\nMcp-Name: \t a__echo  \r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(head + body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 200 " in status_line, raw[:500]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["result"]["content"][0]["text"] == "hi"


def test_client_capabilities_are_forwarded_upstream(env: DaemonProc) -> None:
    """The upstream sees the client's own capabilities, not the gateway's: without elicitation
    declared, a tool that needs it is refused with -32021 (HTTP 400), naming what is missing."""
    params = {"name": "a__ask", "arguments": {"question": "colour?"}}
    r = stateless(env, "tools/call", params, name="a__ask", caps={"sampling": {}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == -32021 and "elicitation" in json.dumps(err["data"]), err


def test_stateless_notification_is_202(env: DaemonProc) -> None:
    r = post(env, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
             {"MCP-Protocol-Version": S})
    assert r.status_code == 202


# -- runtimectl tools / call (real processes) -----------------------------------------------

def test_cli_tools_and_call(env: DaemonProc) -> None:
    from tests.support.daemon import run_cli

    r = run_cli(env, "tools", "--json")
    assert r.returncode == 0, r.stderr
    names = {t["name"] for t in json.loads(r.stdout)}
    assert {"a__echo", "runtime__list_services"} <= names
    r = run_cli(env, "tools", "a")
    assert r.returncode == 0 and "a__echo" in r.stdout and "read-only" in r.stdout and "runtime__" not in r.stdout
    r = run_cli(env, "call", "a__echo", "--arg", "text=hello there")
    assert r.returncode == 0 and r.stdout.strip() == '{\n  "result": "hello there"\n}'
    r = run_cli(env, "call", "a__add", "--json", '{"a": 2, "b": 40}')
    assert r.returncode == 0 and json.loads(r.stdout) == {"result": 42}
    r = run_cli(env, "call", "a__fail")
    assert r.returncode == 1 and "fail" in (r.stdout + r.stderr)
    r = run_cli(env, "call", "zz__nope")
    assert r.returncode == 1 and "Unknown tool" in r.stderr
    r = run_cli(env, "call", "a__echo", "--json", "{bad")
    assert r.returncode == 1 and "not valid JSON" in r.stderr
