"""The status page in a real headless Chromium (Debian's ``chromium`` driven by
Playwright, ``tests/support/browser.py``), against real daemons and a real upstream MCP server.

Skipped with a reason when chromium or Playwright is missing, except under
``CI=true`` where that is a failure. Screenshots go to ``tests/_artifacts/``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.support.browser import launch_chromium
from tests.support.daemon import DaemonProc
from tests.support.upstream import free_port, run_upstream

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"
TOKEN = "page-token-0123456789abcdef"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, width: int = 1400, height: int = 1000) -> None:
        self.ctx = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("dialog", lambda dlg: dlg.accept())
        self.page.set_default_timeout(WAIT_MS)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    p = Page(browser)
    yield p
    p.close()


def _home_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "CODEX_HOME": str(home / ".codex")}


def _register(d: DaemonProc, name: str, url: str) -> None:
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
                "spec": {"origin": {"type": "remote_mcp", "url": url}}}
    r = d.api("POST", "/api/services", json=manifest)
    assert r.status_code == 201, r.text
    d.wait_state(name, "RUNNING")


def _call_in_thread(url: str, tool: str, args: dict[str, Any]) -> Any:
    """An MCP call with the official SDK, on its own thread and event loop
    (Playwright's sync API owns this thread's loop)."""
    out: dict[str, Any] = {}

    def run() -> None:
        async def go() -> Any:
            async with Client(url) as c:
                return await c.call_tool(tool, args)
        try:
            out["result"] = asyncio.run(go())
        except BaseException as e:  # reported below
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out["result"]


def _row(name: str) -> str:
    return f'tr[data-service-row="{name}"]'


def test_status_page_live(page: Page, make_daemon, tmp_path: Path) -> None:
    d = make_daemon(env=_home_env(tmp_path))
    with run_upstream("echo_server") as up:
        _register(d, "echo", up.url)
        pg = page.page
        pg.goto(d.url + "/status")
        pg.wait_for_selector(".live.on")
        row = pg.locator(_row("echo"))
        assert row.locator("td").first.inner_text().strip() == "echo"
        assert row.locator("[data-state]").get_attribute("data-state") == "RUNNING"
        assert pg.locator(".endpoint code").first.inner_text() == d.mcp_url
        page.shot("status_loaded")
        pg.evaluate("window.__sameDocument = 'yes'")

        # A Stop click changes the row without a reload.
        row.locator('button[data-action="stop"]').click()
        pg.wait_for_selector(f'{_row("echo")} [data-state="STOPPED"]')
        # A change made elsewhere (the API, not this page) arrives over the event stream.
        assert d.api("POST", "/api/services/echo/start").status_code == 200
        pg.wait_for_selector(f'{_row("echo")} [data-state="RUNNING"]')
        assert pg.evaluate("window.__sameDocument") == "yes"

        # A call through /mcp shows up in the service's recent calls, live.
        pg.click(f'{_row("echo")} a')
        pg.wait_for_url("**/status/services/echo")
        pg.wait_for_selector(".live.on")
        assert pg.locator("#calls .empty").inner_text().startswith("No calls")
        result = _call_in_thread(d.mcp_url, "echo__echo", {"text": "hello from the test"})
        assert result.is_error is False
        pg.wait_for_selector('#calls tr[data-call="echo"]')
        call_row = pg.locator('#calls tr[data-call="echo"]').first
        assert "ok" in call_row.inner_text()
        assert "echo" in pg.locator("#interface").inner_text()
        page.shot("service_page")

        # Back on the overview, the counts follow the calls.
        pg.goto(d.url + "/status")
        pg.wait_for_selector(".live.on")
        assert pg.locator(f'{_row("echo")} [data-calls]').inner_text() == "1"
    assert page.errors == []


def test_remove_and_bootstrap_from_the_page(page: Page, make_daemon, tmp_path: Path) -> None:
    env = _home_env(tmp_path)
    d = make_daemon(env=env)
    with run_upstream("echo_server") as up:
        _register(d, "echo", up.url)
        pg = page.page
        pg.goto(d.url + "/status")
        pg.wait_for_selector(".live.on")
        # Clients panel: bootstrap Codex into the temp HOME, then remove it.
        codex_row = pg.locator('tr[data-client-row="codex"]')
        codex_row.locator('button[data-bootstrap="apply"]').click()
        pg.wait_for_selector('tr[data-client-row="codex"] .h-healthy')
        config = Path(env["CODEX_HOME"]) / "config.toml"
        assert "[mcp_servers.runtime]" in config.read_text() and d.mcp_url in config.read_text()
        page.shot("clients_bootstrapped")
        pg.locator('tr[data-client-row="codex"] button[data-bootstrap="remove"]').click()
        pg.wait_for_selector('tr[data-client-row="codex"] button[data-bootstrap="apply"]')
        assert "[mcp_servers.runtime]" not in config.read_text()
        # Remove (confirmed in the dialog) takes the row away.
        pg.locator(f'{_row("echo")} button[data-action="remove"]').click()
        pg.wait_for_selector(_row("echo"), state="detached")
        assert d.api("GET", "/api/services").json()["services"] == []
    assert page.errors == []


def test_token_protected_daemon(page: Page, make_daemon, tmp_path: Path) -> None:
    d = make_daemon(token=TOKEN, env=_home_env(tmp_path))
    with run_upstream("echo_server") as up:
        _register(d, "echo", up.url)
        # The page shell is served without the token, and carries no data.
        shell = httpx.get(d.url + "/status", timeout=10)
        assert shell.status_code == 200 and "echo" not in shell.text and up.url not in shell.text
        assert httpx.get(d.url + "/api/ui/services", timeout=10).status_code == 401
        assert httpx.get(d.url + "/status/services/echo", timeout=10).text.count(up.url) == 0
        pg = page.page
        pg.goto(d.url + "/status")
        pg.wait_for_selector("#token-panel:not([hidden])")
        assert pg.locator(_row("echo")).count() == 0
        pg.fill("#token-input", "wrong-token-but-long-enough")
        pg.click("#token-form button")
        pg.wait_for_selector("#token-error:not([hidden])")
        pg.fill("#token-input", TOKEN)
        pg.click("#token-form button")
        pg.wait_for_selector(".live.on")
        pg.wait_for_selector(f'{_row("echo")} [data-state="RUNNING"]')
        assert TOKEN not in pg.url
        assert pg.evaluate("sessionStorage.getItem('runtimed.token')") == TOKEN
        pg.locator(f'{_row("echo")} button[data-action="stop"]').click()
        pg.wait_for_selector(f'{_row("echo")} [data-state="STOPPED"]')
        # Live updates reach the token-protected page too.
        assert d.api("POST", "/api/services/echo/start").status_code == 200
        pg.wait_for_selector(f'{_row("echo")} [data-state="RUNNING"]')
        # The token stays for this tab: a reload needs no new entry.
        pg.reload()
        pg.wait_for_selector(f'{_row("echo")} [data-state="RUNNING"]')
        assert pg.locator("#token-panel").is_hidden()
        page.shot("status_with_token")
    # The wrong token was answered with 401, which the browser logs as a failed resource load.
    assert [e for e in page.errors if "401" not in e] == []


def test_page_reconnects_after_a_daemon_restart(page: Page, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    d = DaemonProc(state, args=["--port", str(port)], env=_home_env(tmp_path)).start()
    try:
        pg = page.page
        pg.goto(d.url + "/status")
        pg.wait_for_selector(".live.on")
        pid = d.proc.pid
        d.stop()
        pg.wait_for_selector(".live.off")
        d = DaemonProc(state, args=["--port", str(port)], env=_home_env(tmp_path)).start()
        assert d.proc.pid != pid
        pg.wait_for_selector(".live.on", timeout=40_000)
        with run_upstream("echo_server") as up:
            _register(d, "echo", up.url)
            pg.wait_for_selector(f'{_row("echo")} [data-state="RUNNING"]')
    finally:
        d.stop()


def test_a_stdio_services_page_shows_its_process(page: Page, make_daemon, tmp_path: Path) -> None:
    import signal
    import sys

    d = make_daemon(env=_home_env(tmp_path))
    server = Path(__file__).resolve().parents[1] / "upstreams" / "stdio_server.py"
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "kid"},
                "spec": {"origin": {"type": "stdio", "command": sys.executable, "args": [str(server), "--stderr-chatter"]},
                         "restartPolicy": {"backoff": {"initialMs": 100}}}}
    assert d.api("POST", "/api/services", json=manifest).status_code == 201
    pid = d.wait_state("kid", "RUNNING")["backend"]["process"]["pid"]
    pg = page.page
    pg.goto(d.url + "/status/services/kid")
    pg.wait_for_selector(".live.on")
    assert pg.locator("[data-process] [data-pid]").inner_text() == str(pid)
    assert "chatter" in pg.locator("[data-process] [data-stderr]").inner_text()
    assert str(server) in pg.locator("[data-process]").inner_text()
    page.shot("stdio_service_page")
    os.kill(pid, signal.SIGKILL)
    d.wait_for(lambda: d.service("kid")["restarts"] == 1 and d.service("kid")["state"] == "RUNNING",
               what="the killed child to be restarted")
    new = d.service("kid")["backend"]["process"]["pid"]
    pg.reload()
    pg.wait_for_selector(".live.on")
    assert pg.locator("[data-process] [data-pid]").inner_text() == str(new) != str(pid)
    assert "1 restarts" in pg.locator(".svc-head").inner_text()
    assert page.errors == []


# -- issue 14 item 19: an error shows its cause first, once, with when ----------------------------------------------

def test_a_quarantined_services_error_shows_the_cause_first_and_once(page: Page, make_daemon, tmp_path: Path) -> None:
    d = make_daemon(env=_home_env(tmp_path))
    port = free_port()  # nothing listens there: every start is refused
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "gone"},
                "spec": {"origin": {"type": "remote_mcp", "url": f"http://127.0.0.1:{port}/mcp"},
                         "restartPolicy": {"maxRestarts": 1, "backoff": {"initialMs": 50}}}}
    assert d.api("POST", "/api/services", json=manifest).status_code == 201
    svc = d.wait_state("gone", "QUARANTINED", timeout=60)
    full = svc["lastError"]
    assert full and "refused" in full.lower()
    pg = page.page
    pg.goto(d.url + "/status")
    pg.wait_for_selector(".live.on")
    # The services list: the cause leads (not "start failed: cannot start..."), the full text is on hover, and when.
    cell = pg.locator(f'{_row("gone")} [data-last-error]')
    cause = cell.locator("[data-cause]").inner_text().strip()
    assert cause and full.endswith(cause) and len(cause) < len(full), (cause, full)
    assert cause.lower().startswith("cannot connect")
    assert cell.get_attribute("title") == full
    assert "ago" in cell.locator("[data-when]").inner_text()
    # The service page: the error once (not in the state line, the quarantine line and "Last error" each).
    pg.goto(d.url + "/status/services/gone")
    pg.wait_for_selector(".live.on")
    summary = pg.locator("#summary")
    text = summary.inner_text()
    assert text.count("Connection refused") == 1, text
    assert "2 failures within" in text
    block = summary.locator("[data-last-error]")
    assert block.locator("[data-cause]").inner_text().strip() == cause
    assert block.get_attribute("title") == full
    assert "ago" in block.locator("[data-when]").inner_text()
    # Expanded, the full text.
    block.locator("details summary").click()
    assert full in block.locator("details").inner_text()
    page.shot("quarantined_service")
    assert page.errors == []


# -- issue 14 item 18: a phone's width ---------------------------------------------------------------------------

def _no_sideways_scroll(pg: Any) -> None:
    sizes = pg.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth, "
                        "document.body.scrollWidth]")
    assert sizes[0] <= sizes[1] and sizes[2] <= sizes[1], f"the page scrolls sideways: {sizes}"


def _inside(pg: Any, selector: str, width: int) -> None:
    for box in pg.evaluate("(sel) => Array.from(document.querySelectorAll(sel)).map(e => {"
                           "const r = e.getBoundingClientRect(); return [r.left, r.right]; })", selector):
        assert box[0] >= 0 and box[1] <= width, f"{selector} is off-screen at {width} px: {box}"


def test_the_page_fits_a_phone_and_a_desktop(browser: Any, make_daemon, tmp_path: Path) -> None:
    d = make_daemon(env=_home_env(tmp_path))
    with run_upstream("echo_server") as up:
        _register(d, "echo-with-a-rather-long-name", up.url + "?tenant=some-long-tenant-identifier-value")
        assert _call_in_thread(d.mcp_url, "echo-with-a-rather-long-name__echo", {"text": "hi"}).is_error is False
        for width in (390, 1400):
            p = Page(browser, width=width, height=900)
            try:
                pg = p.page
                pg.goto(d.url + "/status")
                pg.wait_for_selector(".live.on")
                row = _row("echo-with-a-rather-long-name")
                pg.wait_for_selector(row)
                _no_sideways_scroll(pg)
                # State, health and the actions are on screen (no table scrolled inside its box either).
                for part in ("[data-state]", ".badge[class*=' h-']", "button[data-action]"):
                    _inside(pg, f"{row} {part}", width)
                display = pg.evaluate("(s) => getComputedStyle(document.querySelector(s)).display", row)
                assert display == ("table-row" if width > 700 else "block"), display  # a card per service on a phone
                p.shot(f"status_{width}px")
                pg.click("#add-service > summary")  # the add form fits too
                pg.wait_for_selector("#add-form")
                _no_sideways_scroll(pg)
                _inside(pg, "#add-form button[type=submit]", width)
                pg.click(f"{row} a")
                pg.wait_for_url("**/status/services/**")
                pg.wait_for_selector(".live.on")
                pg.wait_for_selector('#calls tr[data-call="echo"]')
                _no_sideways_scroll(pg)
                _inside(pg, ".svc-head button[data-action]", width)
                p.shot(f"service_{width}px")
            finally:
                p.close()
            assert p.errors == []


# -- issue 14 item 20: charts drawn with data ---------------------------------------------------------------------

def _chart(pg: Any, name: str) -> dict[str, Any]:
    """What the chart ``name`` draws: its canvas's size and, per series after time, the sum and the count of
    points with a value above zero (read from the uPlot instance the page keeps on the chart's element)."""
    return pg.evaluate("""(name) => {
        const fig = document.querySelector('[data-chart="' + name + '"]');
        const canvas = fig && fig.querySelector('canvas');
        const u = fig && fig._uplot;
        if (!canvas || !u) return null;
        const r = canvas.getBoundingClientRect();
        return {width: r.width, right: r.right, height: r.height, labels: u.series.slice(1).map(s => s.label),
                series: u.data.slice(1).map(col => ({sum: col.reduce((a, v) => a + (v || 0), 0),
                                                     positive: col.filter(v => v > 0).length}))};
    }""", name)


def _wait_chart(pg: Any, name: str, series: int, at_least: float) -> dict[str, Any]:
    pg.wait_for_function("""([name, i, n]) => {
        const fig = document.querySelector('[data-chart="' + name + '"]');
        return !!(fig && fig._uplot && fig.querySelector('canvas') &&
                  fig._uplot.data[i + 1].reduce((a, v) => a + (v || 0), 0) >= n);
    }""", arg=[name, series, at_least])
    got = _chart(pg, name)
    assert got is not None
    return got


def test_charts_are_drawn_with_data_after_calls(browser: Any, make_daemon, tmp_path: Path) -> None:
    d = make_daemon(env=_home_env(tmp_path))
    with run_upstream("echo_server") as up:
        _register(d, "echo", up.url)
        for args in ({"text": "a"}, {"text": "b"}):
            assert _call_in_thread(d.mcp_url, "echo__echo", args).is_error is False
        assert _call_in_thread(d.mcp_url, "echo__fail", {}).is_error is True
        calls = 3
        for width in (1400, 390):
            p = Page(browser, width=width, height=900)
            try:
                pg = p.page
                # The overview: the whole gateway's calls and errors per minute.
                pg.goto(d.url + "/status")
                pg.wait_for_selector(".live.on")
                g = _wait_chart(pg, "gateway", 0, calls)
                assert g["labels"][:2] == ["calls", "errors"]
                assert g["series"][0]["positive"] >= 1 and g["series"][1]["sum"] >= 1
                assert g["width"] > 0 and g["right"] <= width and g["height"] > 0
                _no_sideways_scroll(pg)
                # The service page: calls per minute, error rate, p50/p95.
                pg.goto(d.url + "/status/services/echo")
                pg.wait_for_selector(".live.on")
                c = _wait_chart(pg, "calls", 0, calls)
                assert c["series"][1]["sum"] >= 1  # errors
                e = _wait_chart(pg, "errors", 0, 1)  # the error rate, in percent, above zero in some minute
                assert e["series"][0]["positive"] >= 1
                lat = _wait_chart(pg, "latency", 0, 0.001)
                assert lat["labels"] == ["p50", "p95"] and lat["series"][1]["positive"] >= 1
                for name in ("calls", "errors", "latency"):
                    got = _chart(pg, name)
                    assert got is not None and got["width"] > 0 and got["right"] <= width
                _no_sideways_scroll(pg)
                p.shot(f"charts_{width}px")
                # Live: a call made now is drawn without a reload.
                assert _call_in_thread(d.mcp_url, "echo__echo", {"text": "live"}).is_error is False
                calls += 1
                _wait_chart(pg, "calls", 0, calls)
            finally:
                p.close()
            assert p.errors == []


# -- issue 14 item 20: add a service from the page ------------------------------------------------------------------

def _add_from_page(pg: Any, kind: str, target: str, name: str | None = None) -> None:
    form = pg.locator("#add-form")
    if not form.is_visible():
        pg.click("#add-service > summary")
    form.locator(f'input[name="kind"][value="{kind}"]').check()
    form.locator("#add-target").fill(target)
    if name is not None:
        form.locator("#add-name").fill(name)
    form.locator('button[type="submit"]').click()


def _form_error(pg: Any) -> str:
    pg.wait_for_selector("#add-error:not([hidden])")
    text = pg.locator("#add-error").inner_text().strip()
    pg.evaluate("document.getElementById('add-error').hidden = true")
    return text


def test_add_a_service_from_the_page(page: Page, make_daemon, tmp_path: Path) -> None:
    import shlex
    import sys

    d = make_daemon(env=_home_env(tmp_path))
    pg = page.page
    pg.goto(d.url + "/status")
    pg.wait_for_selector(".live.on")
    with run_upstream("echo_server") as up:
        # A remote URL: the name is suggested as the CLI derives it (a local port: local-<port>).
        port = up.url.split(":")[2].split("/")[0]
        pg.click("#add-service > summary")
        pg.locator('#add-form input[name="kind"][value="url"]').check()
        pg.locator("#add-target").fill(up.url)
        assert pg.locator("#add-name").input_value() == f"local-{port}"
        pg.locator('#add-form button[type="submit"]').click()
        pg.wait_for_selector(f'{_row(f"local-{port}")} [data-state="RUNNING"]')
        assert pg.locator("#add-target").input_value() == ""  # the form is ready for the next one

        # Refusals say what the daemon (and so the CLI) says, word for word.
        bad = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "bad"},
               "spec": {"origin": {"type": "remote_mcp", "url": "ftp://example.com/mcp"}}}
        daemon_says = d.api("POST", "/api/services", json=bad).json()["error"]
        _add_from_page(pg, "url", "ftp://example.com/mcp", "bad")
        assert _form_error(pg) == daemon_says
        _add_from_page(pg, "url", up.url + "?x=1", "Bad Name")
        assert "metadata.name" in _form_error(pg)
        _add_from_page(pg, "command", "no-such-program-xyz --flag", "nope")
        assert "no-such-program-xyz" in _form_error(pg)
        _add_from_page(pg, "wasm", str(tmp_path / "missing.wasm"), "missing")
        assert _form_error(pg) == f"{tmp_path / 'missing.wasm'}: no such file"
        # The page's own checks: nothing entered, an unclosed quote, a name already taken.
        _add_from_page(pg, "url", "", "x")
        assert "URL" in _form_error(pg)
        _add_from_page(pg, "command", "python3 'unclosed", "x")
        assert "quote" in _form_error(pg)
        _add_from_page(pg, "url", up.url, f"local-{port}")
        assert "already" in _form_error(pg)
        assert {s["name"] for s in d.api("GET", "/api/services").json()["services"]} == {f"local-{port}"}

        # A WASM file: named after it (a name cleared by the user is suggested again).
        wat = Path(__file__).resolve().parents[2] / "examples" / "wasm" / "upper.wat"
        pg.locator('#add-form input[name="kind"][value="wasm"]').check()
        pg.locator("#add-target").fill(str(wat))
        pg.locator("#add-name").fill("")
        assert pg.locator("#add-name").input_value() == "upper"
        pg.locator('#add-form button[type="submit"]').click()
        pg.wait_for_selector(f'{_row("upper")} [data-state="RUNNING"]')

        # A stdio command, split as a shell would (quotes kept together), run without one.
        server = Path(__file__).resolve().parents[1] / "upstreams" / "stdio_server.py"
        line = f"{shlex.quote(sys.executable)} {shlex.quote(str(server))} --name 'my upstream'"
        _add_from_page(pg, "command", line, "kid")
        pg.wait_for_selector(f'{_row("kid")} [data-state="RUNNING"]')
        origin = d.service("kid")["manifest"]["spec"]["origin"]
        assert origin["command"] == sys.executable and origin["args"] == [str(server), "--name", "my upstream"]
        page.shot("added_from_the_page")
    assert page.errors == [] or all("422" in e or "409" in e or "404" in e for e in page.errors), page.errors


# -- issue 17: the Profiles panel -----------------------------------------------------------------------------------

def _profile_row(name: str) -> str:
    return f'tr[data-profile-row="{name}"]'


def test_the_profiles_panel_lists_each_profile_with_its_endpoint(page: Page, make_daemon, tmp_path: Path) -> None:
    d = make_daemon(env=_home_env(tmp_path))
    wat = Path(__file__).resolve().parents[2] / "examples" / "wasm" / "math.wat"
    r = d.api("POST", "/api/services", json={"metadata": {"name": "math"},
                                             "spec": {"origin": {"type": "local_wasm", "path": str(wat)}}})
    assert r.status_code == 201, r.text
    d.wait_state("math", "RUNNING")

    def save(name: str, **spec: Any) -> None:
        body = {"kind": "MCPProfile", "metadata": {"name": name, "description": f"The {name} agents."}, "spec": spec}
        res = d.api("POST", "/api/profiles", json=body)
        assert res.status_code in (200, 201), res.text

    pg = page.page
    page.ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=d.url)
    pg.goto(d.url + "/status")
    pg.wait_for_selector(".live.on")
    assert "runtimectl profile create" in pg.locator("#profiles .empty-profiles").inner_text()
    pg.evaluate("window.__sameDocument = 'yes'")

    # A profile made elsewhere (the API) appears without a reload: name, mode, tool count, endpoint.
    save("dev", tools={"exclude": ["math__fib"]})
    pg.wait_for_selector(_profile_row("dev"))
    row = pg.locator(_profile_row("dev"))
    assert row.locator("td.name b").inner_text() == "dev"
    assert row.locator("td.name .muted").inner_text() == "The dev agents."
    assert row.locator("[data-mode]").inner_text() == "full"
    assert row.locator("[data-tool-count]").inner_text() == "2"
    endpoint = f"{d.mcp_url}/@dev"
    assert row.locator(".endpoint code").inner_text() == endpoint
    # The copy button copies the endpoint, as the overview's do.
    row.locator("button.copy").click()
    pg.wait_for_function("document.querySelector('tr[data-profile-row=\"dev\"] button.copy').textContent === 'Copied'")
    assert pg.evaluate("navigator.clipboard.readText()") == endpoint

    save("finder", mode="search", pinTools=True)
    pg.wait_for_selector(_profile_row("finder"))
    finder = pg.locator(_profile_row("finder"))
    assert finder.locator("[data-mode]").inner_text() == "search" and "pinned" in finder.inner_text()
    assert finder.locator("[data-tool-count]").inner_text() == "3"
    names = pg.locator("#profiles tr[data-profile-row]").evaluate_all("rows => rows.map(r => r.dataset.profileRow)")
    assert names == ["dev", "finder"]
    page.shot("profiles_panel")

    # The tool counts follow the services: math stopped, no profile serves a tool.
    assert d.api("POST", "/api/services/math/stop").status_code == 200
    pg.wait_for_function("document.querySelector('tr[data-profile-row=\"finder\"] [data-tool-count]')"
                         ".textContent.trim() === '0'")
    # A profile removed goes away; the last one gone, the panel says how to make one.
    assert d.api("DELETE", "/api/profiles/dev").status_code == 200
    pg.wait_for_selector(_profile_row("dev"), state="detached")
    assert d.api("DELETE", "/api/profiles/finder").status_code == 200
    pg.wait_for_selector("#profiles .empty-profiles")
    assert pg.evaluate("window.__sameDocument") == "yes"
    assert page.errors == []
