"""Client bootstrap through the API, for the status page's Clients panel:
``GET /api/bootstrap`` (status), ``POST /api/bootstrap`` (add or update the
entries), ``POST /api/bootstrap/remove``.

Owns the request shapes and the mapping of bootstrap errors to 4xx answers.
Must not know any client's file format (that is ``bootstrap``), and never
writes a token into a file: entries reference ``RUNTIMED_AUTH_TOKEN``.
The files are the daemon user's (its ``HOME`` and ``CODEX_HOME``); their
backups go to ``<state-dir>/backups``, one per file. The routes are built with
the settings, the one thing they read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtimed import bootstrap
from runtimed.config.settings import Settings
from runtimed.errors import ApiError, BootstrapError
from runtimed.http.api import read_json

NAME = "runtime"


def _endpoint(settings: Settings) -> str:
    return f"{settings.base_url}/mcp"


def bootstrap_status(settings: Settings) -> dict[str, Any]:
    """What the Clients panel shows: one entry per client (user scope)."""
    try:
        entries = [e.to_dict() for e in bootstrap.status(
            bootstrap.CLIENTS, endpoint=_endpoint(settings), name=NAME, scopes=("user",),
            token_configured=settings.auth_token is not None)]
        error = None
    except BootstrapError as e:
        entries, error = [], str(e)
    return {"endpoint": _endpoint(settings), "name": NAME, "clients": entries, "error": error,
            "token_configured": settings.auth_token is not None}


def _clients(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object such as {\"clients\": [\"codex\", \"claude\"]}")
    clients = body.get("clients", list(bootstrap.CLIENTS))
    if isinstance(clients, str):
        clients = [c.strip() for c in clients.split(",") if c.strip()]
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise ApiError(400, "'clients' must be a list of client names (codex, claude)")
    return clients


def _opt(body: dict[str, Any], key: str, default: str) -> str:
    v = body.get(key, default)
    if not isinstance(v, str):
        raise ApiError(400, f"{key!r} must be a string")
    return v


class _Handlers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def get_status(self, request: Request) -> JSONResponse:
        return JSONResponse(bootstrap_status(self.settings))

    async def apply(self, request: Request) -> JSONResponse:
        settings = self.settings
        body = await read_json(request)
        clients = _clients(body)
        return _carry_out(settings, body, lambda: bootstrap.plan_bootstrap(
            clients, endpoint=_endpoint(settings), transport=_opt(body, "transport", "http"), name=_opt(body, "name", NAME),
            scope="user", token_configured=settings.auth_token is not None,
            runtimectl_path=bootstrap.default_runtimectl_path()))

    async def remove(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        clients = _clients(body)
        return _carry_out(self.settings, body, lambda: bootstrap.plan_remove(clients, name=_opt(body, "name", NAME),
                                                                             scope="user"))


def _carry_out(settings: Settings, body: dict[str, Any], make_plan: Callable[[], bootstrap.Plan]) -> JSONResponse:
    """Plan; answer with the plan on ``dryRun``, else apply it and answer with the result and new status."""
    try:
        plan = make_plan()
        if body.get("dryRun"):
            return JSONResponse({"dryRun": True, "plan": plan.to_dict()})
        result = bootstrap.apply_plan(plan, backup_dir=settings.state_dir / "backups")
    except BootstrapError as e:
        raise ApiError(409, str(e)) from None
    return JSONResponse({"result": result.to_dict(), **bootstrap_status(settings)})


def routes(settings: Settings) -> list[Route]:
    h = _Handlers(settings)
    return [
        Route("/api/bootstrap", h.get_status, methods=["GET"]),
        Route("/api/bootstrap", h.apply, methods=["POST"]),
        Route("/api/bootstrap/remove", h.remove, methods=["POST"]),
    ]
