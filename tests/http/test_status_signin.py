"""Issue 16: the status page's Sign in and Sign out buttons for a service whose ``authRef`` is
``oauth``, in a real headless chromium (``tests/support/browser.py``), against a real daemon, the
real ``oidc-provider`` (``tests/support/oauth.py``) and the ``mcp`` SDK's protected upstream
(``tests/support/protected.py``).

Sign in asks the daemon for the authorization URL and takes the window there: the provider's own
login and consent pages (filled in here as a user would), which send the browser back to the
daemon's ``/oauth/callback``; its page links back to the status page, where the service now runs
and offers Sign out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import launch_chromium
from tests.support.daemon import DaemonProc
from tests.support.oauth import OidcProvider, require_oidc_provider, run_oidc_provider
from tests.support.protected import ProtectedServer, run_protected_server

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    require_oidc_provider()
    with run_oidc_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider


@pytest.fixture(scope="module")
def up(op: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtectedServer]:
    with run_protected_server(op.issuer, tmp_path_factory.mktemp("protected")) as server:
        yield server


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with launch_chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        # Only loopback: the provider's pages ask for web fonts elsewhere.
        ctx.route(lambda url: urlsplit(url).hostname not in ("127.0.0.1", "localhost"), lambda route: route.abort())
        pg = ctx.new_page()
        pg.set_default_timeout(WAIT_MS)
        pg.on("dialog", lambda dlg: dlg.accept())
        try:
            yield pg
        finally:
            ctx.close()


def _register(d: DaemonProc, name: str, origin: dict[str, Any], start: bool = True) -> None:
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
                "spec": {"origin": {"type": "remote_mcp", **origin}}}
    r = d.api("POST", "/api/services" + ("" if start else "?start=false"), json=manifest)
    assert r.status_code == 201, r.text


def _row(name: str) -> str:
    return f'tr[data-service-row="{name}"]'


def test_sign_in_and_out_from_the_status_page(page: Any, daemon: DaemonProc, op: OidcProvider,
                                              up: ProtectedServer) -> None:
    d = daemon
    _register(d, "prot", {"url": up.url, "authRef": "oauth"})
    svc = d.service("prot")
    assert (svc["state"], svc["health"]) == ("STOPPED", "UNAUTHORIZED")
    _register(d, "plain", {"url": "http://127.0.0.1:9/mcp"}, start=False)

    pg = page
    pg.goto(d.url + "/status")
    pg.wait_for_selector(".live.on")
    row = pg.locator(_row("prot"))
    sign_in = row.locator('button[data-action="signin"]')
    assert sign_in.inner_text() == "Sign in"
    assert row.locator('button[data-action="signout"]').count() == 0
    plain = pg.locator(_row("plain"))
    assert plain.locator('button[data-action="start"]').count() == 1  # the row is there, without sign-in buttons
    assert plain.locator('button[data-action="signin"], button[data-action="signout"]').count() == 0

    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "signin_waiting.png"))

    # Sign in: the window goes to the authorization server's login page.
    sign_in.click()
    pg.wait_for_url(op.issuer + "/**")
    assert f"{urlsplit(pg.url).scheme}://{urlsplit(pg.url).netloc}" == op.issuer
    pg.wait_for_selector('form input[name="prompt"][value="login"]', state="attached")
    pg.fill('input[name="login"]', "bob")
    pg.fill('input[name="password"]', "any-password")
    pg.click('form button[type="submit"]')
    pg.wait_for_selector('form input[name="prompt"][value="consent"]', state="attached")
    pg.click('form button[type="submit"]')

    # The provider sends the browser to the daemon's callback, whose page links back to the status page.
    pg.wait_for_url(d.url + "/oauth/callback?**")
    assert pg.locator("#result").get_attribute("data-ok") == "true"
    assert pg.locator("#result").inner_text() == "Signed in to prot"
    pg.screenshot(path=str(ARTIFACTS / "signin_callback.png"))
    pg.click('a[href="/status"]')
    pg.wait_for_selector(".live.on")
    pg.wait_for_selector(f'{_row("prot")} [data-state="RUNNING"]')
    row = pg.locator(_row("prot"))
    row.locator('button[data-action="signout"]').wait_for()
    assert row.locator('button[data-action="signin"]').count() == 0
    status = d.api("GET", "/api/services/prot/auth").json()
    assert status["signedIn"] is True and status["issuer"] == op.issuer
    pg.screenshot(path=str(ARTIFACTS / "signin_running.png"))

    # Sign out: revoked and forgotten; the service waits for a sign-in again, and the page says so.
    row.locator('button[data-action="signout"]').click()
    pg.wait_for_selector(f'{_row("prot")} [data-state="STOPPED"]')
    pg.wait_for_selector(f'{_row("prot")} button[data-action="signin"]')
    assert "prot: signed out" in pg.locator("#toasts").inner_text()
    status = d.api("GET", "/api/services/prot/auth").json()
    assert status["signedIn"] is False and status["reason"] == "signed out"

    # The service's own page offers the same button.
    pg.goto(d.url + "/status/services/prot")
    pg.wait_for_selector(".live.on")
    pg.locator('button[data-action="signin"][data-service="prot"]').wait_for()
