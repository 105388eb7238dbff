"""The daemon's ASGI application: the routes, the error handlers and the
fast path of ``/mcp``, behind the access check.

Owns ``build`` (the Starlette app from the routes of every part, in the order
they are matched, wrapped in ``McpDispatch`` and ``SecurityMiddleware``),
``McpDispatch`` and ``/healthz``. Must not build the parts or hold their logic:
``runtimed.daemon`` builds them and passes what the routes need.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from runtimed import __version__
from runtimed.config.settings import Settings
from runtimed.http import api, audit, metrics, pins, profiles, signin, tokens_api
from runtimed.http.context import ApiContext
from runtimed.http.errors import EXCEPTION_HANDLERS, unexpected_body
from runtimed.http.security import SecurityMiddleware
from runtimed.http.status import routes as status_routes

log = logging.getLogger("runtimed")
Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
MCP_METHODS = frozenset({"GET", "POST", "DELETE"})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "version": __version__})


class McpDispatch:
    """``/mcp`` and ``/mcp/{service}`` (GET, POST, DELETE) straight to the gateway's raw ASGI
    endpoints, ahead of Starlette's middleware and router (per-call cost on the hot path); every
    other request goes to Starlette. Matches exactly what the Starlette routes match (so anything
    else, e.g. ``/mcp/`` or HEAD, gets Starlette's answer as before). Sits behind
    ``SecurityMiddleware``: the checks are the same for both ways in."""

    def __init__(self, app: ASGIApp, endpoint: ASGIApp, scoped_endpoint: ASGIApp) -> None:
        self.app = app
        self.endpoint = endpoint
        self.scoped_endpoint = scoped_endpoint

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
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
    async def _serve(endpoint: ASGIApp, scope: Scope, receive: Any, send: Any) -> None:
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await endpoint(scope, receive, tracking_send)
        except Exception as exc:  # what Starlette's error middleware does with ``http.errors.unexpected``
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                body = unexpected_body(exc)
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})


def build(settings: Settings, ctx: ApiContext, mcp_routes: Sequence[BaseRoute], mcp_endpoint: ASGIApp,
          mcp_scoped_endpoint: ASGIApp, metrics_of: metrics.Metrics,
          lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]]) -> ASGIApp:
    """The app: ``/healthz``, the REST API (profiles and ``/api/tokens`` too), ``/mcp``, the audit routes, the
    status page, ``/metrics``."""
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]), *signin.routes(ctx), *api.routes(ctx), *profiles.routes(ctx),
        *tokens_api.routes(ctx), *pins.routes(ctx), *mcp_routes, *audit.routes(ctx), *status_routes.routes(ctx),
        *metrics.routes(metrics_of)]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=dict(EXCEPTION_HANDLERS))
    inner = McpDispatch(app, mcp_endpoint, mcp_scoped_endpoint)
    return SecurityMiddleware(inner, settings, ctx.tokens)
