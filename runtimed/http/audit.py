"""The call audit and analytics over HTTP: ``GET /api/audit``,
``GET /api/services/{ref}/calls``, ``GET /api/analytics`` and the per-minute
series of the status page's charts, ``GET /api/services/{ref}/series`` and
``GET /api/analytics/series`` (the whole gateway).

Owns the query parameters and the answer shapes of these routes; the
records and stats are ``records.analytics.Analytics``'s, reached through the
``ApiContext`` the routes are built with. Must not record or change anything
(besides flushing pending records to the file the answer names).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtimed.http.api import int_param
from runtimed.http.context import ApiContext
from runtimed.records.analytics import RING_ALL, RING_PER_SERVICE


class _Handlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def audit(self, request: Request) -> JSONResponse:
        """``GET /api/audit?service=&tool=&outcome=&limit=&before=``: call records, newest first."""
        a = self.ctx.analytics
        a.flush()  # the file named in the answer holds every call recorded so far
        q = request.query_params
        service = q.get("service")
        if service:
            found = self.ctx.supervisor.find(service)
            service = found.name if found is not None else service  # removed services keep their history
        limit = int_param(request, "limit", 100, 1, RING_ALL)
        before = int_param(request, "before", 0, 0, 10**12) or None
        calls = a.recent(service=service or None, tool=q.get("tool") or None, outcome=q.get("outcome") or None,
                         limit=limit, before=before)
        return JSONResponse({"calls": calls, "file": a.calls_log.where, "captureArguments": a.settings.capture_arguments})

    async def service_calls(self, request: Request) -> JSONResponse:
        """``GET /api/services/{ref}/calls``: the service's recent calls and stats."""
        a = self.ctx.analytics
        svc = self.ctx.supervisor.get(request.path_params["ref"])
        limit = int_param(request, "limit", 50, 1, RING_PER_SERVICE)
        return JSONResponse({"service": svc.name, "stats": a.service_stats(svc.name),
                             "calls": a.recent(service=svc.name, tool=request.query_params.get("tool") or None,
                                               limit=limit),
                             "intents": a.top_intents(svc.name)})

    async def service_series(self, request: Request) -> JSONResponse:
        """``GET /api/services/{ref}/series``: the service's calls, errors and p50/p95 per minute, last hour."""
        svc = self.ctx.supervisor.get(request.path_params["ref"])
        return JSONResponse(self.ctx.analytics.series(svc.name))

    async def gateway_series(self, request: Request) -> JSONResponse:
        """``GET /api/analytics/series``: every service's calls together, per minute, last hour."""
        return JSONResponse(self.ctx.analytics.series(None))

    async def summary(self, request: Request) -> JSONResponse:
        """``GET /api/analytics``: per-service stats, top intents, missing capabilities."""
        return JSONResponse(self.ctx.analytics.summary())


def routes(ctx: ApiContext) -> list[Route]:
    h = _Handlers(ctx)
    return [
        Route("/api/audit", h.audit, methods=["GET"]),
        Route("/api/analytics", h.summary, methods=["GET"]),
        Route("/api/analytics/series", h.gateway_series, methods=["GET"]),
        Route("/api/services/{ref}/calls", h.service_calls, methods=["GET"]),
        Route("/api/services/{ref}/series", h.service_series, methods=["GET"]),
    ]
