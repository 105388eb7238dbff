"""The REST routes of tool pinning: ``GET /api/services/{ref}/pins`` and
``POST /api/services/{ref}/tools/approve``.

Owns parsing and answering them: the pins of one service (each tool's fingerprint, when it was first
seen and approved, and the pending changes with their diffs), and approving pending changes (body
``{"tools": [names]}``, or ``{"tools": null}`` / ``{}``: every pending one). Must not: decide what is
pinned, withheld or approved (``runtimed.pins``), or render HTML.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtimed.errors import ApiError
from runtimed.http.api import read_json
from runtimed.http.context import ApiContext


class _Handlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def pins(self, request: Request) -> JSONResponse:
        sup = self.ctx.supervisor
        return JSONResponse(sup.pins.describe(sup.get(request.path_params["ref"])))

    async def approve(self, request: Request) -> JSONResponse:
        sup = self.ctx.supervisor
        svc = sup.get(request.path_params["ref"])
        body = await read_json(request) if await request.body() else {}
        if not isinstance(body, dict):
            raise ApiError(400, 'send a JSON object: {"tools": ["name", ...]} or {"tools": null} for every pending one')
        tools = body.get("tools")
        if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, str) for t in tools)):
            raise ApiError(400, '"tools" must be a list of tool names, or null for every pending change')
        approved = await sup.pins.approve(svc, tools)
        return JSONResponse({"service": svc.name, "approved": approved, "pending": sup.pins.pending(svc.id)})


def routes(ctx: ApiContext) -> list[Route]:
    h = _Handlers(ctx)
    return [
        Route("/api/services/{ref}/pins", h.pins, methods=["GET"]),
        Route("/api/services/{ref}/tools/approve", h.approve, methods=["POST"]),
    ]
