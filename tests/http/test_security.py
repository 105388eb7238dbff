"""Who may talk to the daemon: bearer token, loopback-only binds, Host and Origin
(DNS rebinding). Real daemons, real HTTP requests.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.foundation import (
    closed_port,
    events,
    register_remote,
    remote_manifest,
    run_daemon_expect_exit,
    temp_homes,
)

TOKEN = "s3cret-token-for-tests-42"
PROTECTED = [("GET", "/api/status"), ("GET", "/api/services"), ("GET", "/api/events"), ("POST", "/mcp")]
MCP_BODY = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def _req(d, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    kw: dict = {}
    if path == "/mcp":
        kw["json"] = MCP_BODY
        headers = {"Accept": "application/json, text/event-stream", **(headers or {})}
    return httpx.request(method, d.url + path, headers=headers or {}, timeout=30, **kw)


@pytest.fixture
def token_daemon(make_daemon):
    return make_daemon("tok", token=TOKEN)


@pytest.mark.parametrize("method,path", PROTECTED)
def test_token_required_on_api_and_mcp(token_daemon, method: str, path: str) -> None:
    d = token_daemon
    r = _req(d, method, path)
    assert r.status_code == 401, r.text
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert TOKEN not in r.text
    r = _req(d, method, path, {"Authorization": "Bearer wrong-token-wrong-token"})
    assert r.status_code == 401
    r = _req(d, method, path, {"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401
    r = _req(d, method, path, {"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    if path == "/mcp":
        assert '"result"' in r.text and '"protocolVersion"' in r.text


def test_healthz_is_open(token_daemon) -> None:
    r = httpx.get(token_daemon.url + "/healthz", timeout=30)
    assert r.status_code == 200 and r.json()["ok"] is True


@pytest.mark.parametrize("with_token", [False, True])
def test_foreign_host_header_is_refused(make_daemon, with_token: bool) -> None:
    d = make_daemon("h", token=TOKEN if with_token else None)
    auth = {"Authorization": f"Bearer {TOKEN}"} if with_token else {}
    for path in ("/api/status", "/mcp"):
        r = _req(d, "GET" if path != "/mcp" else "POST", path, {"Host": "evil.example", **auth})
        assert r.status_code == 403, r.text
        assert "evil.example" in r.text
        r = _req(d, "GET" if path != "/mcp" else "POST", path, {"Host": f"evil.example:{d.url.rsplit(':', 1)[1]}", **auth})
        assert r.status_code == 403
    r = _req(d, "GET", "/api/status", {"Origin": "http://evil.example", **auth})
    assert r.status_code == 403 and "Origin" in r.text
    r = _req(d, "GET", "/api/status", {"Origin": "null", **auth})
    assert r.status_code == 403
    # Our own names pass, with the port and with an own-address Origin.
    port = d.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        r = _req(d, "GET", "/api/status", {"Host": host, "Origin": f"http://{host}", **auth})
        assert r.status_code == 200, r.text


def test_allowed_hosts_config_lets_a_proxy_name_through(make_daemon) -> None:
    d = make_daemon("proxy", env={"RUNTIMED_ALLOWED_HOSTS": "proxy.example, other.example"})
    r = _req(d, "GET", "/api/status", {"Host": "proxy.example"})
    assert r.status_code == 200, r.text
    for host, origin in (("proxy.example:443", "https://proxy.example"), ("proxy.example", "https://proxy.example"),
                         ("other.example:8443", "https://other.example:8443")):
        r = _req(d, "GET", "/api/status", {"Host": host, "Origin": origin})
        assert r.status_code == 200, r.text
    # A page must come from the origin the request went to: another allowed name or port is another site.
    for host, origin in (("proxy.example:443", "https://other.example"), ("proxy.example", "https://proxy.example:8443"),
                         ("proxy.example", "http://proxy.example:8080")):
        r = _req(d, "GET", "/api/status", {"Host": host, "Origin": origin})
        assert r.status_code == 403, (host, origin, r.text)
    r = _req(d, "GET", "/api/status", {"Host": "evil.example"})
    assert r.status_code == 403


def test_the_public_urls_host_is_the_daemons_name_too(make_daemon) -> None:
    """``public_url`` names the daemon as a TLS proxy serves it (the OAuth callback comes back there)."""
    d = make_daemon("public", env={"RUNTIMED_PUBLIC_URL": "https://gw.example.test"})
    r = _req(d, "GET", "/api/status", {"Host": "gw.example.test", "Origin": "https://gw.example.test"})
    assert r.status_code == 200, r.text
    r = httpx.get(d.url + "/oauth/callback", headers={"Host": "gw.example.test"}, params={"state": "x", "code": "y"},
                  timeout=30)
    assert r.status_code == 400 and "unknown or expired" in r.text, r.text  # reached, and refused for its state
    assert _req(d, "GET", "/api/status", {"Host": "evil.example"}).status_code == 403


def test_non_loopback_bind_without_token_is_refused(tmp_path: Path) -> None:
    res = run_daemon_expect_exit(tmp_path / "state", "--host", "0.0.0.0")
    assert res.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in res.stderr
    assert "--auth-token" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "state" / "runtimed.pid").exists()


def test_wildcard_bind_with_token_starts_and_guards(make_daemon) -> None:
    d = make_daemon("wild", args=["--host", "0.0.0.0"], token=TOKEN)
    port = d.url.rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(base + "/healthz", timeout=30).status_code == 200
    assert httpx.get(base + "/api/status", timeout=30).status_code == 401
    r = httpx.get(base + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200 and r.json()["authRequired"] is True
    r = httpx.get(base + "/api/status", headers={"Authorization": f"Bearer {TOKEN}", "Host": "evil.example"},
                  timeout=30)
    assert r.status_code == 403


def test_token_never_appears_in_status_events_or_log(token_daemon) -> None:
    d = token_daemon
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/api/status", "/api/events", "/api/services"):
        r = httpx.get(d.url + path, headers=auth, timeout=30)
        assert r.status_code == 200 and TOKEN not in r.text
    assert TOKEN not in d.log()
    pid = json.loads((d.state_dir / "runtimed.pid").read_text())
    assert TOKEN not in json.dumps(pid)


# -- CSRF: another origin on the same machine, and simple (preflight-free) requests ---------------

SIMPLE_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None]


def test_other_local_origins_and_simple_requests_cannot_mutate(make_daemon, tmp_path: Path) -> None:
    """A page at http://localhost:8080 (another port of the same machine) is another origin; and a
    request a page could send without a CORS preflight (text/plain, form types, no Content-Type) never
    changes anything, Origin or not."""
    home = temp_homes(tmp_path)
    d = make_daemon("csrf", env=home)
    register_remote(d, "victim", f"http://127.0.0.1:{closed_port()}/mcp")
    port = int(d.url.rsplit(":", 1)[1])
    other = 8080 if port != 8080 else 8081
    for origin in (f"http://localhost:{other}", f"http://127.0.0.1:{other}", f"https://127.0.0.1:{port}",
                   "http://localhost", f"http://[::1]:{other}"):
        for ctype in ("text/plain", "application/json"):
            r = httpx.post(d.url + "/api/services/victim/stop", content=b"",
                           headers={"Origin": origin, "Content-Type": ctype}, timeout=30)
            assert r.status_code == 403, (origin, r.status_code, r.text)
            assert "Origin" in r.json()["error"] and origin in r.json()["error"]
        r = httpx.get(d.url + "/api/status", headers={"Origin": origin}, timeout=30)
        assert r.status_code == 403, (origin, r.text)
    # Simple requests without an Origin (or with our own) are refused before they reach a handler.
    own = f"http://127.0.0.1:{port}"
    for origin in (None, own):
        for ctype in SIMPLE_TYPES:
            h = {k: v for k, v in (("Origin", origin), ("Content-Type", ctype)) if v is not None}
            for method, path, body in (("POST", "/api/services/victim/stop", b""),
                                       ("POST", "/api/services/victim/restart", b"{}"),
                                       ("DELETE", "/api/services/victim", b""),
                                       ("POST", "/api/services", json.dumps(remote_manifest(
                                           "intruder", f"http://127.0.0.1:{closed_port()}/mcp")).encode()),
                                       ("POST", "/api/bootstrap", b'{"clients": ["codex"]}'),
                                       ("POST", "/mcp", json.dumps(MCP_BODY).encode())):
                r = httpx.request(method, d.url + path, content=body, timeout=30,
                                  headers={**h, "Accept": "application/json, text/event-stream"})
                assert r.status_code == 415, (method, path, h, r.status_code, r.text)
                assert "application/json" in r.text, r.text
    names = [s["name"] for s in d.api("GET", "/api/services").json()["services"]]
    assert names == ["victim"]
    assert not (Path(home["CODEX_HOME"]) / "config.toml").exists()
    assert [e for e in events(d, "victim") if e["type"] == "transition" and e["to"] in ("STOPPING", "STOPPED")] == []
    # The same requests as JSON from our own origin (what the CLI and the status page send) work.
    for origin in (own, f"http://localhost:{port}"):
        r = httpx.post(d.url + "/api/services/victim/stop", headers={"Origin": origin, "Content-Type": "application/json"},
                       timeout=30)
        assert r.status_code == 200, r.text
    # Reached through a port forward (the browser's page at localhost:8080 is forwarded to the daemon):
    # the Origin is the very origin the request was sent to.
    r = httpx.get(d.url + "/api/status", headers={"Host": f"localhost:{other}", "Origin": f"http://localhost:{other}"},
                  timeout=30)
    assert r.status_code == 200, r.text
    r = httpx.get(d.url + "/api/status", headers={"Host": f"localhost:{other}", "Origin": f"https://localhost:{other}"},
                  timeout=30)
    assert r.status_code == 403, r.text
    r = httpx.delete(d.url + "/api/services/victim", headers={"Content-Type": "application/json; charset=utf-8"},
                     timeout=30)
    assert r.status_code == 200, r.text


# -- the gateway cannot be registered into itself (issue 14 item 10) -------------------------------

def _register(d, name: str, url: str) -> httpx.Response:
    return d.api("POST", "/api/services?start=false", json=remote_manifest(name, url, restartPolicy={"mode": "never"}))


def test_the_daemons_own_endpoint_is_refused_as_a_service(make_daemon) -> None:
    d = make_daemon("selfloop", env={"RUNTIMED_ALLOWED_HOSTS": "proxy.example"})
    port = int(d.url.rsplit(":", 1)[1])
    own = [f"http://127.0.0.1:{port}/mcp", f"http://localhost:{port}/mcp", f"http://LOCALHOST:{port}/mcp/",
           f"http://127.0.0.1:{port}/mcp/some-service", f"http://127.0.0.1:{port}//mcp", f"http://127.0.0.1:{port}/%6Dcp",
           f"http://127.0.0.1:{port}/mcp/../mcp", f"http://0.0.0.0:{port}/mcp", f"http://127.0.0.1:{port}/",
           f"http://[::ffff:127.0.0.1]:{port}/mcp", "https://proxy.example/mcp", "http://proxy.example:8080/mcp/x"]
    for i, url in enumerate(own):
        r = _register(d, f"self{i}", url)
        assert r.status_code == 422, (url, r.status_code, r.text)
        error = r.json()["error"]
        assert "this daemon" in error and "itself" in error, (url, error)
    assert d.api("GET", "/api/services").json()["services"] == []
    # Everything else on loopback stays allowed: other ports, another loopback address the daemon
    # does not listen on, other paths behind the proxy name.
    other = closed_port()
    for i, url in enumerate([f"http://127.0.0.1:{other}/mcp", f"http://localhost:{other}/mcp",
                             f"http://127.0.0.2:{port}/mcp", "https://proxy.example/other/mcp"]):
        r = _register(d, f"fine{i}", url)
        assert r.status_code == 201, (url, r.text)


def test_a_wildcard_bound_daemon_refuses_any_local_address_at_its_port(make_daemon) -> None:
    d = make_daemon("selfwild", args=["--host", "0.0.0.0"], token=TOKEN)
    port = int(d.url.rsplit(":", 1)[1])
    for url in (f"http://127.0.0.2:{port}/mcp", f"http://localhost:{port}/mcp"):
        r = _register(d, "self", url)
        assert r.status_code == 422 and "this daemon" in r.json()["error"], (url, r.text)
    r = _register(d, "fine", f"http://127.0.0.2:{closed_port()}/mcp")
    assert r.status_code == 201, r.text
