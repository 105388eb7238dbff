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
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import __version__, api
from .config import Settings
from .events import EventBus
from .policy import PolicyEngine
from .registry import Registry
from .security import SecurityMiddleware
from .supervisor import Supervisor, SupervisorError

log = logging.getLogger("runtimed")


class Daemon:
    """Everything one daemon holds. Built before the port is bound."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.started_at = time.time()
        self.registry = Registry(settings.state_dir)
        self.events = EventBus(settings.state_dir)
        self.supervisor = Supervisor(settings, self.registry, self.events)
        self.policy = PolicyEngine(settings, report_fault=self.supervisor.report_fault)
        self.gateway: Any = None
        self.extra_routes: list[BaseRoute] = []
        self._build_parts()

    def _build_parts(self) -> None:
        """Optional parts, each owning its routes. Absent parts are skipped."""
        try:
            from .gateway import Gateway
        except ImportError:
            Gateway = None  # noqa: N806
        if Gateway is not None:
            self.gateway = Gateway(self)
            self.extra_routes += self.gateway.routes()
        for module_name in ("runtimed.analytics", "runtimed.web.routes", "runtimed.metrics"):
            try:
                module = __import__(module_name, fromlist=["routes"])
            except ImportError:
                continue
            self.extra_routes += module.routes(self)

    def load(self) -> list[str]:
        """Load the registry; returns the problems to say out loud."""
        report = self.registry.load()
        for p in report.problems:
            self.events.emit("registry.recovered", None, message=p)
        return report.problems

    def client_counts(self) -> dict[str, int]:
        if self.gateway is not None and hasattr(self.gateway, "client_counts"):
            return self.gateway.client_counts()
        return {}

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.supervisor.boot()
        if self.gateway is not None and hasattr(self.gateway, "startup"):
            await self.gateway.startup()
        self.events.emit("daemon.started", None, version=__version__, pid=self.pid)
        try:
            yield
        finally:
            self.events.emit("daemon.stopping", None)
            if self.gateway is not None and hasattr(self.gateway, "shutdown"):
                await self.gateway.shutdown()
            await self.supervisor.shutdown()
            analytics = getattr(self, "analytics", None)
            if analytics is not None:
                analytics.close()
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
    return SecurityMiddleware(app, daemon.settings)
