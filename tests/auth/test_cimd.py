"""The gateway signed in to a protected remote MCP server with a Client ID Metadata Document (CIMD):
its https ``public_url`` + ``/oauth/client-metadata.json`` is its ``client_id`` at an authorization
server that says ``client_id_metadata_document_supported``, and that server fetches the document.

Real programs only: a throwaway self-signed certificate (``cryptography``) for 127.0.0.1, HAProxy
terminating TLS in front of a real daemon (``--public-url https://127.0.0.1:P``), ``oidc-provider``
with CIMD on (``cimd=True``: it fetches loopback documents and trusts the certificate through
``NODE_EXTRA_CA_CERTS``), the SDK-protected upstream, and headless Chromium for the sign-in.

Covered: the authorization URL names the document's URL as ``client_id`` and the https callback; the
document served through TLS (its ``client_id``, ``redirect_uris``, no secret); the provider fetched
it and registered nothing; the browser's sign-in ends at the https callback; the service runs, its
sign-in says ``registration: "cimd"``, and the upstream sees tokens issued to the document's URL.
Without an https ``public_url`` (plain http behind the same proxy, or none) the same provider gets
a dynamic registration instead, and no document is served.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.browser import launch_chromium
from tests.support.cluster import address_of, haproxy_binary
from tests.support.daemon import DaemonProc
from tests.support.mcpclient import GUARD
from tests.support.oauth import OidcProvider, browser_login, run_oidc_provider
from tests.support.protected import ProtectedServer, run_protected_server
from tests.support.upstream import free_port

S = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": S, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "cimd-test", "version": "1"}}
START_TIMEOUT_S = 20.0  # a bound for start-up, not a timing assertion


# -- the certificate and the TLS proxy ---------------------------------------------------------------------
def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (no CA) for ``127.0.0.1`` and ``localhost``: the certificate's
    PEM file (what clients trust) and the certificate + key PEM file (what HAProxy's ``crt`` wants)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, both_file = directory / "cert.pem", directory / "cert+key.pem"
    cert_file.write_bytes(cert_pem)
    both_file.write_bytes(cert_pem + key_pem)
    both_file.chmod(0o600)
    return cert_file, both_file


class Proxy:
    """``haproxy -f <cfg> -db`` on ``127.0.0.1:port`` in front of one daemon: TLS terminated with
    ``crt`` (plain http when None), the ``Host`` header passed on as is, one log line per request."""

    def __init__(self, port: int, backend: str, directory: Path, crt: Path | None, verify: ssl.SSLContext | bool) -> None:
        self.port = port
        self.backend = backend
        self.crt = crt
        self.verify = verify
        self.cfg = directory / f"haproxy-{port}.cfg"
        self.log_path = directory / f"haproxy-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.crt else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        binary = haproxy_binary()
        tls = f" ssl crt {self.crt}" if self.crt else ""
        self.cfg.write_text(f"""global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend gateway
    bind 127.0.0.1:{self.port}{tls}
    default_backend daemon
backend daemon
    server d {self.backend}
""")
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([binary, "-f", str(self.cfg), "-db"], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}: {self.log()}")
            try:
                r = httpx.get(self.url + "/healthz", verify=self.verify, timeout=2)
                if r.status_code == 200:
                    return self
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not serve {self.url}/healthz within {START_TIMEOUT_S} s (last: {last}): {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def trust(cert: tuple[Path, Path]) -> ssl.SSLContext:
    """What the test's own https requests trust: the test certificate only."""
    return ssl.create_default_context(cafile=str(cert[0]))


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory, cert: tuple[Path, Path]) -> Iterator[OidcProvider]:
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), cimd=True, extra_ca=cert[0]) as provider:
        yield provider


@pytest.fixture(scope="module")
def up(op: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProtectedServer]:
    with run_protected_server(op.issuer, tmp_path_factory.mktemp("protected")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as b:
        yield b


class Gateway:
    """A daemon, and the proxy in front of it when it has a ``public_url`` (``tls``: https, else http)."""

    def __init__(self, d: DaemonProc, proxy: Proxy | None) -> None:
        self.d = d
        self.proxy = proxy

    @property
    def public(self) -> str:
        """Where browsers and the authorization server reach the daemon."""
        return self.proxy.url if self.proxy else self.d.url


@pytest.fixture
def gateway(request: pytest.FixtureRequest, tmp_path: Path, cert: tuple[Path, Path], trust: ssl.SSLContext) -> Iterator[Gateway]:
    """``request.param``: ``"https"`` (the default: TLS proxy, ``--public-url https://...``), ``"http"``
    (the same proxy without TLS, ``--public-url http://...``) or ``"none"`` (no proxy, no public_url)."""
    mode = getattr(request, "param", "https")
    port = free_port()
    args = [] if mode == "none" else ["--public-url", f"{mode}://127.0.0.1:{port}"]
    d = DaemonProc(tmp_path / "state", args=args).start()
    proxy = None
    try:
        if mode != "none":
            proxy = Proxy(port, address_of(d.url), tmp_path, cert[1] if mode == "https" else None,
                          trust if mode == "https" else False).start()
        yield Gateway(d, proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        d.stop()


# -- helpers -------------------------------------------------------------------------------------------------
def oauth_manifest(name: str, url: str) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "remote_mcp", "url": url, "authRef": "oauth"}}}


def add_waiting(d: DaemonProc, name: str, url: str) -> None:
    r = d.api("POST", "/api/services", json=oauth_manifest(name, url))
    assert r.status_code in (200, 201), r.text
    d.wait_for(lambda: (s := d.service(name))["health"] == "UNAUTHORIZED" and s["state"] == "STOPPED" and s,
               what=f"{name} waiting for a sign-in")


def login(d: DaemonProc, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``runtimectl auth login``'s API: its answer and the authorization URL's query."""
    r = d.api("POST", f"/api/services/{name}/auth/login", json={})
    assert r.status_code == 200, r.text
    answer = r.json()
    return answer, {k: v[0] for k, v in parse_qs(urlsplit(answer["url"]).query).items()}


def whoami(base: str, verify: ssl.SSLContext | bool) -> dict[str, Any]:
    """``notes__whoami`` as a plain stateless-era JSON-RPC POST to ``base``/mcp: the upstream's view of
    the token the gateway sent (``sub``, ``client_id``, ``aud``...)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": "notes__whoami"}
    r = httpx.post(base + "/mcp", headers=headers, verify=verify, timeout=GUARD, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "notes__whoami", "arguments": {}, "_meta": META}})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert not result.get("isError"), result
    return json.loads(result["content"][0]["text"])  # type: ignore[no-any-return]


def registrations(op: OidcProvider) -> int:
    """How many clients the provider registered dynamically so far (its log's success events)."""
    return op.log_tail(10**7).count("registration_create.success")


# -- the tests -----------------------------------------------------------------------------------------------
def test_the_provider_offers_cimd(op: OidcProvider) -> None:
    assert op.discovery().get("client_id_metadata_document_supported") is True, op.discovery()


def test_sign_in_with_a_client_id_metadata_document(gateway: Gateway, op: OidcProvider, up: ProtectedServer,
                                                    browser: Any, trust: ssl.SSLContext) -> None:
    d, public = gateway.d, gateway.public
    cimd_url, callback = public + "/oauth/client-metadata.json", public + "/oauth/callback"
    assert public.startswith("https://127.0.0.1:")
    before = registrations(op)
    add_waiting(d, "notes", up.url)

    answer, query = login(d, "notes")
    assert query["client_id"] == cimd_url and query["redirect_uri"] == callback, query
    assert answer["redirectUri"] == callback, answer

    # The document, through TLS as the authorization server gets it: the client id and callback, no secret.
    r = httpx.get(cimd_url, verify=trust, timeout=GUARD)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text
    doc = r.json()
    assert doc["client_id"] == cimd_url and doc["redirect_uris"] == [callback], doc
    assert doc["token_endpoint_auth_method"] == "none" and "authorization_code" in doc["grant_types"], doc
    assert not any(k.startswith("client_secret") for k in doc), doc

    landed = browser_login(answer["url"], browser=browser)
    assert (urlsplit(landed).scheme, urlsplit(landed).netloc, urlsplit(landed).path) == (
        "https", urlsplit(public).netloc, "/oauth/callback"), landed
    d.wait_state("notes", "RUNNING", timeout=30)

    status = d.api("GET", "/api/services/notes/auth").json()
    assert status["signedIn"] and status["registration"] == "cimd" and status["clientId"] == cimd_url, status
    assert status["issuer"] == op.issuer, status

    # The upstream sees a token issued to the document's URL, for the signed-in user (called through TLS).
    me = whoami(public, trust)
    assert me["client_id"] == cimd_url and me["sub"] == "alice" and me["aud"] in (up.url, [up.url]), me

    # The provider fetched the document (through the proxy) and registered no client.
    provider_log = op.log_tail(10**7)
    assert f"fetch GET {cimd_url} -> 200" in provider_log, provider_log[-3000:]
    assert registrations(op) == before, provider_log[-3000:]
    assert gateway.proxy is not None and gateway.proxy.log().count("GET /oauth/client-metadata.json") >= 2  # it, and us
    assert "Client ID Metadata Document" in d.api("GET", "/api/services/notes/logs").text


@pytest.mark.parametrize("gateway", ["http", "none"], indirect=True)
def test_without_an_https_public_url_it_registers_dynamically(gateway: Gateway, op: OidcProvider, up: ProtectedServer,
                                                              browser: Any) -> None:
    d, public = gateway.d, gateway.public
    before = registrations(op)
    add_waiting(d, "notes", up.url)
    answer, query = login(d, "notes")
    assert query["redirect_uri"] == public + "/oauth/callback", query
    assert not query["client_id"].startswith(("https://", "http://")), query
    # No document is served (404), wherever it is asked for.
    r = httpx.get(public + "/oauth/client-metadata.json", timeout=GUARD)
    assert r.status_code == 404 and "no https public_url" in r.text, r.text

    landed = browser_login(answer["url"], browser=browser)
    assert urlsplit(landed).path == "/oauth/callback" and landed.startswith(public + "/"), landed
    d.wait_state("notes", "RUNNING", timeout=30)
    status = d.api("GET", "/api/services/notes/auth").json()
    assert status["signedIn"] and status["registration"] == "dcr" and status["clientId"] == query["client_id"], status
    assert registrations(op) == before + 1
    assert whoami(public, False)["client_id"] == query["client_id"]
