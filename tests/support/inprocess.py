"""The daemon's ASGI app in the test's own process: no subprocess, no port.

Owns the ONE place where tests build the app (``build_inprocess_app``: the
same construction ``runtimed/cli.py`` does before handing the app to uvicorn),
driving its ASGI lifespan (``Lifespan``, the protocol messages uvicorn sends),
and the ``inprocess`` fixture: an ``httpx.AsyncClient`` over
``httpx.ASGITransport`` with a Host header the security middleware accepts.
When the daemon's wiring changes, only ``build_inprocess_app`` needs adapting.
Must not mock any part of the product: requests go through the whole app
(security middleware, dispatch, gateway, policy engine, backends).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtimed.config.settings import Settings

BASE_URL = "http://127.0.0.1:4707"  # the Host header: the default bind address, one the daemon answers to
ACCEPT = "application/json, text/event-stream"
STATELESS = "2026-07-28"
SESSION = "2025-11-25"


def build_inprocess_app(settings: Settings) -> Any:
    """The daemon's ASGI app, built as ``runtimed`` builds it (registry loaded, not yet started)."""
    from runtimed.daemon import Daemon, build_app

    daemon = Daemon(settings)
    daemon.load()
    return build_app(daemon)


class Lifespan:
    """Drives an ASGI app's lifespan (startup, then shutdown) as a server would."""

    def __init__(self, app: Any, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _expect(self, ok: str) -> None:
        msg = await asyncio.wait_for(self._from_app.get(), self.timeout)
        if msg["type"] != ok:
            raise RuntimeError(f"lifespan: expected {ok}, got {msg}")

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        await self._expect("lifespan.startup.complete")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        await self._to_app.put({"type": "lifespan.shutdown"})
        try:
            await self._expect("lifespan.shutdown.complete")
        finally:
            await asyncio.wait_for(self._task, self.timeout)


class InProcess:
    """The started app and a client for it; helpers speak the REST API and both MCP eras."""

    def __init__(self, app: Any, client: httpx.AsyncClient, state_dir: Path) -> None:
        self.app = app
        self.client = client
        self.state_dir = state_dir

    # -- REST API ---------------------------------------------------------------------------

    async def service(self, ref: str) -> dict[str, Any]:
        r = await self.client.get(f"/api/services/{ref}")
        assert r.status_code == 200, r.text
        return r.json()

    async def register(self, manifest: dict[str, Any], state: str = "RUNNING", timeout: float = 20.0) -> dict[str, Any]:
        """POST the manifest; wait until the service reaches ``state``."""
        r = await self.client.post("/api/services", json=manifest)
        assert r.status_code in (200, 201), r.text
        name = manifest["metadata"]["name"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            svc = await self.service(name)
            if svc["state"] == state:
                return svc
            assert loop.time() < deadline, f"{name} did not reach {state}: {svc}"
            await asyncio.sleep(0.01)

    # -- MCP --------------------------------------------------------------------------------

    async def post(self, body: Any, headers: dict[str, str] | None = None, path: str = "/mcp",
                   raw: bytes | None = None) -> httpx.Response:
        h = {"Accept": ACCEPT, "Content-Type": "application/json", **(headers or {})}
        content = raw if raw is not None else json.dumps(body).encode()
        return await self.client.post(path, content=content, headers=h)

    async def initialize(self, version: str = SESSION, path: str = "/mcp") -> str:
        """A session-era handshake (initialize + notifications/initialized); returns the session id."""
        r = await self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                             "params": {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": "inprocess", "version": "1"}}}, path=path)
        assert r.status_code == 200, r.text
        assert r.json()["result"]["protocolVersion"] == version
        sid = r.headers["mcp-session-id"]
        r = await self.session(sid, {"jsonrpc": "2.0", "method": "notifications/initialized"}, version, path)
        assert r.status_code == 202, r.text
        return sid

    async def session(self, sid: str, body: Any, version: str = SESSION, path: str = "/mcp") -> httpx.Response:
        return await self.post(body, {"Mcp-Session-Id": sid, "MCP-Protocol-Version": version}, path)

    async def stateless(self, method: str, params: dict[str, Any] | None = None, name: str | None = None,
                        path: str = "/mcp", version: str = STATELESS, id: int = 1) -> httpx.Response:
        """A 2026-07-28 request: the ``_meta`` envelope and the Mcp-Method / Mcp-Name headers."""
        h = {"MCP-Protocol-Version": version, "Mcp-Method": method}
        if name is not None:
            h["Mcp-Name"] = name
        return await self.post({"jsonrpc": "2.0", "id": id, "method": method,
                                "params": {**(params or {}), "_meta": meta(version)}}, h, path)


def meta(version: str = STATELESS) -> dict[str, Any]:
    return {"io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "inprocess", "version": "1"}}


@asynccontextmanager
async def inprocess_daemon(state_dir: Path, **settings: Any) -> AsyncIterator[InProcess]:
    """The app for a fresh state dir, started, with a client; stopped at the end."""
    state_dir.mkdir(parents=True, exist_ok=True)
    app = build_inprocess_app(Settings(state_dir=state_dir, **settings))
    async with Lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as client:
            yield InProcess(app, client, state_dir)


@pytest.fixture
async def inprocess(tmp_path: Path) -> AsyncIterator[InProcess]:
    """The daemon's app in this process, started on a temp state dir (see ``inprocess_daemon``)."""
    async with inprocess_daemon(tmp_path / "state") as d:
        yield d
