"""An OAuth access token can select a profile the way a scoped token does (``oauth_profile_claim``):
a real ``oidc-provider`` puts the claim in one client's JWTs; that client reaches only its profile's
endpoint, in both eras, and the others keep ``/mcp``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.daemon import DaemonProc
from tests.support.foundation import register_remote
from tests.support.mcpclient import GUARD, text_of
from tests.support.oauth import OidcProvider, run_oidc_provider
from tests.support.upstream import run_upstream

ADMIN = "admin-token-0123456789abcdef"
CODER = {"client_id": "coder", "client_secret": "coder-secret-0123456789", "grant_types": ["client_credentials"],
         "redirect_uris": [], "response_types": []}
OTHER = {**CODER, "client_id": "other", "client_secret": "other-secret-0123456789"}
CLAIM = "mcp_profile"


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with run_oidc_provider(tmp_path_factory.mktemp("oidc"), clients=[CODER, OTHER],
                           extra_claims={"coder": {CLAIM: "coding"}}) as provider:
        yield provider


def token(op: OidcProvider, client: dict[str, Any], resource: str) -> str:
    return str(op.client_credentials_token(client["client_id"], client["client_secret"], resource)["access_token"])


async def tools(url: str, bearer: str, mode: str) -> tuple[set[str], str]:
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as c):
        listed = {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
        r = await asyncio.wait_for(c.call_tool("say", {"text": mode}), GUARD) if "say" in listed else None
        return listed, text_of(r) if r is not None else ""


def test_a_claim_names_the_one_profile_a_token_reaches(tmp_path: Path, op: OidcProvider) -> None:
    with run_upstream("echo_server", "--name", "a") as up, \
            DaemonProc(tmp_path / "state", args=["--oauth-issuer", op.issuer], token=ADMIN,
                       env={"RUNTIMED_OAUTH_PROFILE_CLAIM": CLAIM}) as d:
        register_remote(d, "a", up.url)
        d.wait_state("a", "RUNNING")
        r = d.api("POST", "/api/profiles", json={"apiVersion": "runtimed/v1", "kind": "MCPProfile",
                                                 "metadata": {"name": "coding"},
                                                 "spec": {"tools": {"include": ["a__echo"]},
                                                          "overrides": {"a__echo": {"name": "say"}}}})
        assert r.status_code == 201, r.text
        coder = token(op, CODER, d.url + "/mcp")
        for mode in ("legacy", "auto"):
            listed, said = asyncio.run(tools(f"{d.mcp_url}/@coding", coder, mode))
            assert listed == {"say"} and said == mode, (listed, said)
        headers = {"Authorization": f"Bearer {coder}", "Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for path in ("/mcp", "/mcp/a", "/mcp/@other"):
            r = httpx.post(d.url + path, headers=headers, json=ping, timeout=GUARD)
            assert r.status_code == 403 and "/mcp/@coding" in r.text and coder not in r.text, (path, r.text)
        # A token without the claim is not narrowed.
        other = token(op, OTHER, d.url + "/mcp")
        listed, _ = asyncio.run(tools(d.mcp_url, other, "auto"))
        assert "a__echo" in listed and "a__add" in listed
        calls = d.api("GET", "/api/audit", params={"service": "a"}).json()["calls"]
        assert any(c.get("principal", {}).get("profile") == "coding" and c.get("profile") == "coding" for c in calls), calls
