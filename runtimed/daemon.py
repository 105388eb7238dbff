"""The daemon's composition root: builds every part and the ASGI app.

Owns ``Daemon`` (settings, registry, events, supervisor, policy engine,
gateway, in start-up and shutdown order) and the Starlette application with
its routes and error handlers. Must not hold protocol or lifecycle logic of
its own: each part owns its concept; this module only wires them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runtimed import __version__
from runtimed.config.settings import Settings
from runtimed.gateway import Gateway
from runtimed.http import api, metrics
from runtimed.http.security import SecurityMiddleware
from runtimed.http.status import routes as web_routes
from runtimed.lifecycle.supervisor import Supervisor, SupervisorError
from runtimed.policy.engine import PolicyEngine
from runtimed.records import analytics
from runtimed.state.events import EventBus
from runtimed.state.registry import Registry

log = logging.getLogger("runtimed")


class Daemon:
    """Everything one daemon holds. Built before the port is bound."""

    analytics: analytics.Analytics  # set by analytics.routes()
    metrics: metrics.Metrics  # set by metrics.routes()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.started_at = time.time()
        self.registry = Registry(settings.state_dir)
        self.events = EventBus(settings.state_dir)
        self.supervisor = Supervisor(settings, self.registry, self.events)
        self.policy = PolicyEngine(settings, report_fault=self.supervisor.report_fault)
        self.gateway = Gateway(self)
        # Each part owns its routes; analytics and metrics also hang themselves on the daemon.
        self.extra_routes: list[BaseRoute] = [
            *self.gateway.routes(), *analytics.routes(self), *web_routes.routes(self), *metrics.routes(self)]

    def load(self) -> list[str]:
        """Load the registry; returns the problems to say out loud."""
        report = self.registry.load()
        for p in report.problems:
            self.events.emit("registry.recovered", None, message=p)
        return report.problems

    def client_counts(self) -> dict[str, int]:
        return self.gateway.client_counts()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.supervisor.boot()
        await self.gateway.startup()
        self.events.emit("daemon.started", None, version=__version__, pid=self.pid)
        try:
            yield
        finally:
            self.events.emit("daemon.stopping", None)
            await self.gateway.shutdown()
            await self.supervisor.shutdown()
            self.analytics.close()
            self.events.close()


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "version": __version__})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return JSONResponse({"error": f"method {request.method} is not allowed on {request.url.path}"}, status_code=405,
                            headers=exc.headers)
    if exc.status_code == 404:
        return JSONResponse({"error": f"no such endpoint: {request.url.path}"}, status_code=404)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug must still answer with something readable; it is logged with its traceback.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the daemon log"}, status_code=500)


MCP_METHODS = frozenset({"GET", "POST", "DELETE"})
_INTERNAL_ERROR = b'{"error":"internal error (%s); see the daemon log"}'


class McpDispatch:
    """``/mcp`` and ``/mcp/{service}`` (GET, POST, DELETE) straight to the gateway's raw ASGI
    endpoints, ahead of Starlette's middleware and router (per-call cost on the hot path); every
    other request goes to Starlette. Matches exactly what the Starlette routes match (so anything
    else, e.g. ``/mcp/`` or HEAD, gets Starlette's answer as before). Sits behind
    ``SecurityMiddleware``: the checks are the same for both ways in."""

    def __init__(self, app: Any, endpoint: Any, scoped_endpoint: Any) -> None:
        self.app = app
        self.endpoint = endpoint
        self.scoped_endpoint = scoped_endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in MCP_METHODS and not scope.get("root_path"):
            path: str = scope["path"]
            if path == "/mcp":
                await self._serve(self.endpoint, scope, receive, send)
                return
            if path.startswith("/mcp/") and len(path) > 5 and "/" not in path[5:]:
                scope["path_params"] = {"service": path[5:]}
                await self._serve(self.scoped_endpoint, scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _serve(endpoint: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await endpoint(scope, receive, tracking_send)
        except Exception as exc:  # what Starlette's error middleware did with ``_unexpected``
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                body = _INTERNAL_ERROR % type(exc).__name__.encode()
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})


def build_app(daemon: Daemon) -> Any:
    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]), *api.routes(), *daemon.extra_routes]
    app = Starlette(
        routes=routes,
        lifespan=daemon.lifespan,
        exception_handlers={
            api.ApiError: api.handle_api_error,
            SupervisorError: api.handle_api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.daemon = daemon
    inner = McpDispatch(app, daemon.gateway.endpoint, daemon.gateway.scoped_endpoint)
    return SecurityMiddleware(inner, daemon.settings)
