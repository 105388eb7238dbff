"""The status page's Clients panel shows the session-era clients connected now, live, in a real
headless Chromium (the fixtures of ``test_status_page``): a session appears when a client
initializes and disappears, without a reload, when its client leaves: by DELETE, by idle expiry
and by eviction at ``max_sessions`` (issue 14, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.http.test_status_page import Page, browser, page  # noqa: F401  (fixtures)
from tests.support.daemon import DaemonProc

V = "2025-11-25"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _initialize(d: DaemonProc, name: str) -> str:
    r = httpx.post(d.mcp_url, headers=HEADERS, timeout=30, content=json.dumps(
        {"jsonrpc": "2.0", "id": 0, "method": "initialize",
         "params": {"protocolVersion": V, "capabilities": {}, "clientInfo": {"name": name, "version": "9.9"}}}))
    assert r.status_code == 200 and "result" in r.json(), r.text
    return r.headers["mcp-session-id"]


def _delete(d: DaemonProc, sid: str) -> None:
    r = httpx.delete(d.mcp_url, headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": V}, timeout=30)
    assert r.status_code == 200, r.text


def _row(name: str) -> str:
    return f'[data-session-client="{name}"]'


def _home_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "CODEX_HOME": str(home / ".codex")}


def test_sessions_come_and_go_on_the_page(page: Page, make_daemon, tmp_path: Path) -> None:  # noqa: F811
    d = make_daemon(env={**_home_env(tmp_path), "RUNTIMED_MAX_SESSIONS": "1"})
    pg = page.page
    pg.goto(d.url + "/status")
    pg.wait_for_selector(".live.on")
    assert pg.locator(".empty-sessions").count() == 1

    # A client initializes: it shows, with its name, version and endpoint, without a reload.
    pg.evaluate("window.__sameDocument = 'yes'")
    first = _initialize(d, "first-client")
    pg.wait_for_selector(_row("first-client"))
    row_text = pg.locator(_row("first-client")).inner_text()
    assert "9.9" in row_text and "/mcp" in row_text
    assert first not in pg.content()  # the session id is the client's credential: never shown

    # A second client arrives at max_sessions=1: the first (idle) is evicted and leaves the page.
    second = _initialize(d, "second-client")
    pg.wait_for_selector(_row("second-client"))
    pg.wait_for_selector(_row("first-client"), state="detached")

    # The second client ends its session with DELETE: it leaves the page.
    _delete(d, second)
    pg.wait_for_selector(_row("second-client"), state="detached")
    pg.wait_for_selector(".empty-sessions")
    assert pg.evaluate("window.__sameDocument") == "yes"
    page.shot("status_sessions")
    assert page.errors == []


def test_an_expired_session_leaves_the_page(page: Page, make_daemon, tmp_path: Path) -> None:  # noqa: F811
    d = make_daemon(env={**_home_env(tmp_path), "RUNTIMED_SESSION_IDLE_S": "3"})
    pg = page.page
    pg.goto(d.url + "/status")
    pg.wait_for_selector(".live.on")
    _initialize(d, "gone-quiet")
    pg.wait_for_selector(_row("gone-quiet"))
    # The client never comes back: the daemon's sweep ends the session and the row goes (bounded wait).
    pg.wait_for_selector(_row("gone-quiet"), state="detached")
    pg.wait_for_selector(".empty-sessions")
    assert page.errors == []
