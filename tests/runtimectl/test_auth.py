"""Issue 16: ``runtimectl auth login|status|logout`` and ``add``/``set`` ``--auth oauth`` with the
``--oauth-*`` options, against a real daemon signing in to a real protected upstream.

The authorization server is the real ``oidc-provider`` (``tests/support/oauth.py``); the upstream is
the official ``mcp`` SDK's resource server (``tests/support/protected.py``), which accepts only that
provider's JWTs issued for its own URL; the user's part (the provider's login and consent pages) is
done by the real headless chromium, which the provider sends back to the daemon's
``/oauth/callback``. ``runtimectl`` runs as a real process: with its output piped it never opens a
browser, and ``auth login --json`` returns the URL at once (without ``--json`` it waits for the
sign-in, polling the daemon).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.browser import launch_chromium
from tests.support.daemon import REPO, DaemonProc, run_cli
from tests.support.oauth import OidcProvider, browser_login, require_oidc_provider, run_oidc_provider
from tests.support.protected import ProtectedServer, run_protected_server

M2M: dict[str, Any] = {"client_id": "gateway-m2m", "client_secret": "m2m-secret-0123456789abcdef",
                       "grant_types": ["client_credentials"], "redirect_uris": [], "response_types": []}
NOBODY = "http://127.0.0.1:9/mcp"  # a loopback URL nothing serves: an OAuth service waits without contacting it


def cli(d: DaemonProc, *args: str, code: int = 0, **kw: Any) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, **kw)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    require_oidc_provider()
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), clients=[M2M]) as provider:
        yield provider


@pytest.fixture(scope="module")
def up(op: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtectedServer]:
    with run_protected_server(op.issuer, tmp_path_factory.mktemp("protected")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


# -- the flags ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    """One daemon for the refusals (none of them changes anything), with ``plain``: a remote service whose
    authRef is not oauth, registered without starting."""
    with DaemonProc(tmp_path_factory.mktemp("plain") / "state") as d:
        cli(d, "add", "http://127.0.0.1:9/plain", "--name", "plain", "--no-start")
        yield d


@pytest.mark.parametrize("args,message,code", [
    (("add", NOBODY, "--oauth-client-id", "x"), "--oauth-client-id applies to a service that signs in with OAuth: "
                                                 "give --auth oauth too", 2),
    (("add", NOBODY, "--auth", "env:TOKEN", "--oauth-scopes", "a", "--oauth-grant", "client_credentials"),
     "--oauth-scopes, --oauth-grant apply to a service that signs in with OAuth", 2),
    (("add", NOBODY, "--auth", "oauth", "--oauth-grant", "password"),
     "--oauth-grant must be authorization_code or client_credentials, not 'password'", 2),
    (("add", "--auth", "oauth", "--", "npx", "x"), "--transport and --auth-ref apply to remote URLs", 2),
    (("add", NOBODY, "--auth", "oauth", "--oauth-grant", "client_credentials"),
     "the client_credentials grant needs oauth.clientId and oauth.clientSecretRef", 1),
    (("add", NOBODY, "--auth", "oauth", "--oauth-client-secret-ref", "env:S"),
     "oauth.clientSecretRef needs oauth.clientId", 1),
    (("add", NOBODY, "--auth", "oauth", "--oauth-client-id", "c", "--oauth-client-secret-ref", "plain-secret"),
     "clientSecretRef", 1),
    (("set", "plain", "--oauth-scopes", "a"), "--oauth-scopes applies to a service that signs in with OAuth", 2),
    (("set", "plain", "--auth", "env:T", "--oauth-client-id", "c"), "give --auth oauth too", 2),
    (("auth", "status", "plain"), "does not sign in with OAuth", 1),
    (("auth", "login", "plain"), "does not sign in with OAuth", 1),
    (("auth", "logout", "nope"), "no service named or with id 'nope'", 1),
    (("auth", "login", "plain", "--timeout", "0"), "--timeout must be greater than 0", 2),
])
def test_oauth_flags_and_auth_commands_refuse_bad_input_clearly(plain: DaemonProc, args: tuple[str, ...],
                                                               message: str, code: int) -> None:
    res = cli(plain, *args, code=code)
    assert message in res.stderr, res.stderr
    assert res.stderr.startswith("runtimectl: "), res.stderr
    services = plain.api("GET", "/api/services").json()["services"]
    assert [s["name"] for s in services] == ["plain"]  # nothing registered
    assert "oauth" not in services[0]["origin"] and "authRef" not in services[0]["origin"]  # nothing changed


def test_add_an_oauth_service_that_waits_for_a_sign_in_and_change_its_options(daemon: DaemonProc) -> None:
    d = daemon
    res = cli(d, "add", NOBODY, "--auth", "oauth", "--name", "crm")
    lines = res.stdout.splitlines()
    assert lines[0].startswith("added crm (svc_") and ": STOPPED" in lines[0], res.stdout
    assert "crm needs a sign-in: runtimectl auth login crm" in lines, res.stdout
    svc = d.service("crm")
    assert (svc["state"], svc["health"]) == ("STOPPED", "UNAUTHORIZED")
    assert "runtimectl auth login crm" in svc["stateReason"]
    assert svc["manifest"]["spec"]["origin"]["authRef"] == "oauth"
    listed = cli(d, "list").stdout
    assert "STOPPED" in listed and "UNAUTHORIZED" in listed, listed

    one = cli(d, "auth", "status", "crm").stdout
    assert one.splitlines()[0] == "crm: signed-out", one
    assert "sign in with: runtimectl auth login crm" in one and f"resource:  {NOBODY}" in one, one
    table = cli(d, "auth", "status").stdout.splitlines()
    assert table[0].split() == ["SERVICE", "STATE", "ISSUER", "EXPIRES", "REGISTRATION", "REASON"]
    assert table[1].split()[:2] == ["crm", "signed-out"] and "runtimectl auth login crm" in table[1], table
    as_json = json.loads(cli(d, "auth", "status", "--json").stdout)
    assert [(s["service"], s["state"], s["signedIn"], s["login"]) for s in as_json] == [
        ("crm", "signed-out", False, "runtimectl auth login crm")]

    # set: the --oauth-* options of a service that signs in with OAuth (no --auth needed), merged.
    cli(d, "set", "crm", "--oauth-client-id", "registered-id", "--oauth-client-secret-ref", "env:CRM_SECRET",
        "--oauth-scopes", "read,write")
    origin = d.service("crm")["manifest"]["spec"]["origin"]
    assert origin["oauth"] == {"grant": "authorization_code", "clientId": "registered-id",
                               "clientSecretRef": "env:CRM_SECRET", "scopes": ["read", "write"]}
    cli(d, "set", "crm", "--oauth-scopes", "read")
    assert d.service("crm")["manifest"]["spec"]["origin"]["oauth"]["clientId"] == "registered-id"
    assert d.service("crm")["manifest"]["spec"]["origin"]["oauth"]["scopes"] == ["read"]
    cli(d, "set", "crm", "--unset", "oauth-scopes")
    assert "scopes" not in d.service("crm")["manifest"]["spec"]["origin"]["oauth"]
    # Another auth takes the oauth options away with it; --auth oauth brings sign-ins back.
    cli(d, "set", "crm", "--auth", "env:CRM_TOKEN")
    origin = d.service("crm")["manifest"]["spec"]["origin"]
    assert origin["authRef"] == "env:CRM_TOKEN" and "oauth" not in origin, origin
    assert "does not sign in with OAuth" in cli(d, "auth", "status", "crm", code=1).stderr
    cli(d, "set", "crm", "--auth", "oauth", "--oauth-scopes", "x", "--oauth-client-id", "cid")
    origin = d.service("crm")["manifest"]["spec"]["origin"]
    assert origin["authRef"] == "oauth" and origin["oauth"]["scopes"] == ["x"]
    assert "nothing changed" in cli(d, "set", "crm", "--auth", "oauth").stdout  # the options stay
    assert d.service("crm")["manifest"]["spec"]["origin"]["oauth"]["clientId"] == "cid"
    cli(d, "set", "crm", "--unset", "oauth")
    assert "oauth" not in d.service("crm")["manifest"]["spec"]["origin"]
    cli(d, "set", "crm", "--oauth-grant", "client_credentials", "--oauth-client-id", "c", code=1)  # no secret ref
    cli(d, "set", "crm", "--unset", "auth")
    assert "authRef" not in d.service("crm")["manifest"]["spec"]["origin"]
    # add again with the --auth-ref spelling and options: only what was given changes.
    res = cli(d, "add", NOBODY, "--auth-ref", "oauth", "--oauth-scopes", "a,b", "--no-start")
    assert "spec.origin.authRef: (default) → oauth" in res.stdout, res.stdout
    assert d.service("crm")["manifest"]["spec"]["origin"]["oauth"]["scopes"] == ["a", "b"]


# -- signing in -----------------------------------------------------------------------------------

def _tokens_kept(d: DaemonProc, service_id: str) -> list[str]:
    """The token values the daemon keeps for a service (its 0600 record), to check they are never shown."""
    path = d.state_dir / "oauth" / f"{service_id}.json"
    record = json.loads(path.read_text())
    assert path.stat().st_mode & 0o077 == 0
    tokens = record["tokens"]
    return [t for t in (tokens.get("access_token"), tokens.get("refresh_token")) if t]


def test_sign_in_with_the_cli_and_a_browser_then_call_and_sign_out(daemon: DaemonProc, op: OidcProvider,
                                                                   up: ProtectedServer, browser: Any) -> None:
    d = daemon
    shown: list[str] = []

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        res = cli(d, *args, code=code)
        shown.extend((res.stdout, res.stderr))
        return res

    run("add", up.url, "--auth", "oauth", "--name", "prot")
    sid = d.service("prot")["id"]
    assert d.service("prot")["health"] == "UNAUTHORIZED"

    # --json: the login's answer at once, the authorization URL in it.
    started = json.loads(run("auth", "login", "prot", "--json").stdout)
    assert started["service"] == "prot" and started["expiresInSeconds"] == 600
    assert started["redirectUri"] == d.url + "/oauth/callback"
    url = urlsplit(started["url"])
    assert f"{url.scheme}://{url.netloc}" == op.issuer and url.path == "/auth"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["resource"] == up.url and query["redirect_uri"] == d.url + "/oauth/callback"
    assert query["response_type"] == "code" and query["client_id"] and query["state"]
    status = json.loads(run("auth", "status", "prot", "--json").stdout)
    assert status["registration"] == "dcr" and status["clientId"] == query["client_id"]
    assert status["issuer"] == op.issuer and status["state"] == "signed-out"

    # The user's part, in a real browser: the provider sends it back to the daemon's callback.
    landed = browser_login(started["url"], browser=browser)
    assert landed.startswith(d.url + "/oauth/callback?")
    d.wait_for(lambda: d.api("GET", "/api/services/prot/auth").json()["signedIn"], what="the sign-in")
    one = run("auth", "status", "prot").stdout
    assert one.splitlines()[0] == "prot: signed-in", one
    assert f"issuer:    {op.issuer}" in one and "expires in " in one and "refreshed automatically" in one, one
    assert "sign in with" not in one
    d.wait_state("prot", "RUNNING")
    table = run("auth", "status").stdout.splitlines()
    assert table[1].split()[:4] == ["prot", "signed-in", op.issuer, "in"] and " dcr " in table[1], table

    # Calls go through with the gateway's own token for the upstream.
    whoami = json.loads(json.loads(run("call", "prot__whoami", "--output", "json").stdout)["content"][0]["text"])
    assert whoami["sub"] == "alice" and whoami["iss"] == op.issuer and whoami["aud"] == up.url
    assert whoami["client_id"] == query["client_id"]

    # Without --json, login waits for the sign-in to complete (the output is piped: no browser is opened).
    proc = subprocess.Popen([sys.executable, "-m", "runtimectl", "auth", "login", "prot", "--timeout", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=d.env_for_cli(), cwd=REPO)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("To sign prot in, open this URL in a browser (valid 10 minutes):"), first
        again = proc.stdout.readline().strip()
        assert again.startswith(op.issuer + "/auth?") and again != started["url"]
        browser_login(again, browser=browser)
        rest, errors = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shown.extend((first, again, rest, errors))
    assert proc.returncode == 0, (rest, errors)
    assert f"Signed in to prot at {op.issuer}" in rest, rest
    assert "opened in your browser" not in rest + errors

    # A sign-in nobody completes: exit 1 once the timeout passes, saying the URL stays valid.
    late = run("auth", "login", "prot", "--timeout", "1", code=1)
    assert "the sign-in to prot did not complete within 1 s" in late.stderr
    assert "valid 10 minutes" in late.stderr, late.stderr
    assert late.stdout.splitlines()[1].startswith(op.issuer + "/auth?")

    kept = _tokens_kept(d, sid)
    out = run("auth", "logout", "prot").stdout
    assert out.splitlines()[0] == "Signed out of prot: the authorization server confirmed the revocation", out
    assert "runtimectl auth login prot" in out
    after = json.loads(run("auth", "status", "prot", "--json").stdout)
    assert (after["state"], after["signedIn"], after["reason"]) == ("signed-out", False, "signed out")
    svc = d.wait_state("prot", "STOPPED")
    assert svc["health"] == "UNAUTHORIZED"
    assert "signed-out" in run("auth", "status").stdout
    assert json.loads(run("auth", "logout", "prot", "--json").stdout)["revoked"] is False  # nothing left to revoke

    # No token in anything runtimectl printed.
    sent = set(up.bearer_tokens()) | set(kept)
    assert sent
    for text in shown:
        for token in sent:
            assert token not in text


def test_client_credentials_sign_in_at_once(make_daemon: Any, op: OidcProvider, up: ProtectedServer) -> None:
    d = make_daemon(env={"M2M_SECRET": M2M["client_secret"]})
    res = cli(d, "add", up.url, "--name", "m2m", "--auth", "oauth", "--oauth-grant", "client_credentials",
              "--oauth-client-id", M2M["client_id"], "--oauth-client-secret-ref", "env:M2M_SECRET")
    assert res.stdout.startswith("added m2m (svc_") and ": RUNNING" in res.stdout.splitlines()[0], res.stdout
    assert "needs a sign-in" not in res.stdout
    out = cli(d, "auth", "login", "m2m").stdout
    assert out.startswith(f"Signed in to m2m at {op.issuer} (expires in "), out
    status = json.loads(cli(d, "auth", "status", "m2m", "--json").stdout)
    assert status["grant"] == "client_credentials" and status["registration"] == "configured"
    assert status["signedIn"] is True and status["login"] is None
    whoami = json.loads(json.loads(cli(d, "call", "m2m__whoami", "--output", "json").stdout)["content"][0]["text"])
    assert whoami["sub"] == whoami["client_id"] == M2M["client_id"]
    as_json = json.loads(cli(d, "auth", "login", "m2m", "--json").stdout)
    assert as_json["url"] is None and as_json["signedIn"] is True
    assert time.time() < as_json["expiresAt"]


def _on_a_terminal(d: DaemonProc, *args: str, env: dict[str, str]) -> tuple[int, str]:
    """``runtimectl ARGS`` with its stdin and stdout on a pseudo-terminal (as a person runs it): the exit code
    and everything it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runtimectl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**d.env_for_cli(), **env}, cwd=REPO)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side closed (the process exited)
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_a_browser_is_opened_only_at_a_terminal_with_a_display(daemon: DaemonProc, up: ProtectedServer,
                                                               tmp_path: Path) -> None:
    d = daemon
    cli(d, "add", up.url, "--auth", "oauth", "--name", "prot")
    # The browser: a real program named by $BROWSER (Python's webbrowser runs it), which writes down the URL.
    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.sh"
    recorder.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> {opened}\n")
    recorder.chmod(0o755)
    gui = {"BROWSER": f"{recorder} %s", "DISPLAY": ":99", "WAYLAND_DISPLAY": ""}

    code, text = _on_a_terminal(d, "auth", "login", "prot", "--no-wait", env=gui)
    assert code == 0, text
    url = text.splitlines()[1].strip()
    assert url.startswith("http://127.0.0.1:") and "code_challenge_method=S256" in url, text
    assert "(opened in your browser)" in text, text
    assert opened.read_text().splitlines() == [url]

    # No display (an ssh session), --no-browser, or output that is not a terminal: the URL only.
    for env, args in (({**gui, "DISPLAY": ""}, ()), (gui, ("--no-browser",))):
        code, text = _on_a_terminal(d, "auth", "login", "prot", "--no-wait", *args, env=env)
        assert code == 0 and "/auth?" in text and "opened" not in text, text
    piped = cli(d, "auth", "login", "prot", "--no-wait", env=gui)
    assert "/auth?" in piped.stdout and "opened" not in piped.stdout + piped.stderr
    assert len(opened.read_text().splitlines()) == 1
