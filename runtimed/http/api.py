"""The REST control API under ``/api``: JSON in, JSON out.

Owns request parsing and validation for the control plane (``read_json``,
``int_param``, ``bool_param``, shared by the other ``/api`` routes) and the
handlers of ``/api/status``, ``/api/services...`` (``PATCH`` of one service:
a JSON merge patch of its manifest) and ``/api/events``. Every
refusal is raised (``ApiError``, ``SupervisorError``) and answered by
``http.errors`` with a 4xx whose message says what is wrong. Handlers get the
``ApiContext`` they are built with. Must not hold lifecycle logic (that is
``Supervisor``), speak MCP (``gateway``) or render HTML (``status``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtimed import __version__
from runtimed.config.manifest import parse_manifest
from runtimed.errors import ApiError, ManifestError
from runtimed.http.context import ApiContext
from runtimed.http.status.live import event_stream  # SSE belongs to the status page's module
from runtimed.lifecycle.service import ServiceRuntime

MAX_BODY = 1024 * 1024


async def read_json(request: Request) -> Any:
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype:
        raise ApiError(415, f"send JSON (Content-Type: application/json), not {ctype!r}")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, f"body too large ({len(body)} bytes; at most {MAX_BODY})")
    if not body:
        raise ApiError(400, "the request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply to be a manifest") from None


def int_param(request: Request, name: str, default: int, lo: int = 0, hi: int = 100_000) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"query parameter {name!r} must be between {lo} and {hi}")
    return value


def bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(400, f"query parameter {name!r} must be true or false, not {raw!r}")


# -- handlers -------------------------------------------------------------

class _Handlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def status(self, request: Request) -> JSONResponse:
        ctx = self.ctx
        by_state, by_health = ctx.supervisor.counts()
        base = ctx.settings.base_url
        return JSONResponse({
            "version": __version__,
            "uptimeSeconds": round(time.time() - ctx.started_at, 3),
            "pid": ctx.pid,
            "stateDir": str(ctx.settings.state_dir),
            "endpoints": {"mcp": f"{base}/mcp", "status": f"{base}/status", "api": f"{base}/api"},
            "authRequired": ctx.settings.auth_token is not None,
            "adminTools": ctx.settings.admin_tools,
            "services": len(ctx.supervisor.services),
            "byState": by_state,
            "byHealth": by_health,
            "clients": ctx.client_counts(),
            "store": ctx.store(),
            "replicas": ctx.replicas(),
        })

    async def sessions(self, request: Request) -> JSONResponse:
        """The session-era clients this daemon (replica) holds now, as the status page lists them."""
        return JSONResponse({"sessions": self.ctx.live_sessions()})

    async def list_services(self, request: Request) -> JSONResponse:
        return JSONResponse({"services": [s.summary() for s in self.ctx.supervisor.all()]})

    async def apply_service(self, request: Request) -> JSONResponse:
        data = await read_json(request)
        try:
            manifest = parse_manifest(data)
        except ManifestError as e:
            raise ApiError(422, f"invalid manifest: {e}") from None
        start = bool_param(request, "start")
        keep = bool_param(request, "keepUnreachable")
        svc, created = await self.ctx.supervisor.apply(manifest, start=start, keep_unreachable=keep is not False)
        return JSONResponse({"created": created, "service": svc.detail()}, status_code=201 if created else 200)

    async def update_service(self, request: Request) -> JSONResponse:
        patch = await read_json(request)
        if not isinstance(patch, dict):
            raise ApiError(400, "send a JSON object: the fields to change, as in the manifest "
                                "(a JSON merge patch; null gives a field back its default)")
        svc, changes = await self.ctx.supervisor.update(request.path_params["ref"], patch,
                                                        start=bool_param(request, "start") or False)
        return JSONResponse({"created": False, "service": svc.detail(), "changes": changes})

    async def get_service(self, request: Request) -> JSONResponse:
        return JSONResponse(self.ctx.supervisor.get(request.path_params["ref"]).detail())

    async def delete_service(self, request: Request) -> JSONResponse:
        svc = await self.ctx.supervisor.remove(request.path_params["ref"])
        return JSONResponse({"removed": svc.name, "id": svc.id})

    async def action(self, request: Request) -> JSONResponse:
        sup = self.ctx.supervisor
        ref, verb = request.path_params["ref"], request.path_params["action"]
        svc: ServiceRuntime
        if verb == "start":
            svc = await sup.start(ref, intend=True)
        elif verb == "stop":
            svc = await sup.stop(ref, intend=True)
        elif verb == "restart":
            svc = await sup.restart(ref, intend=True)
        elif verb == "unquarantine":
            svc = await sup.unquarantine(ref)
        elif verb == "introspect":
            svc = sup.get(ref)
            await sup.refresh_interface(svc)
        elif verb == "probe":
            svc = sup.get(ref)
            if svc.backend is None:
                raise ApiError(409, f"service {svc.name!r} is not running ({svc.state.value})")
            await sup.probe_once(svc)
        else:
            raise ApiError(404, f"unknown action {verb!r} (start, stop, restart, introspect, unquarantine, probe)")
        return JSONResponse(svc.detail())

    async def interface(self, request: Request) -> JSONResponse:
        svc = self.ctx.supervisor.get(request.path_params["ref"])
        if svc.interface is None:
            return JSONResponse({"revision": None, "tools": [], "resources": [], "resourceTemplates": [], "prompts": [],
                                 "note": "never introspected: start the service"})
        out = svc.interface.to_json()
        out["updatedAt"] = svc.interface_at
        out["lastDiff"] = svc.last_diff
        out["hiddenTools"] = [{"name": name, "policy": why} for name, why in svc.hidden_tools().items()]
        return JSONResponse(out)

    async def logs(self, request: Request) -> JSONResponse:
        svc = self.ctx.supervisor.get(request.path_params["ref"])
        after = int_param(request, "after", 0, 0, 10**12)
        limit = int_param(request, "limit", 200, 1, 1000)
        lines = [entry for entry in svc.logs if entry["seq"] > after][-limit:]
        return JSONResponse({"service": svc.name, "lines": lines, "last": svc.last_log_seq})

    async def events(self, request: Request) -> Response:
        bus = self.ctx.events
        service = request.query_params.get("service")
        after = int_param(request, "after", 0, 0, 10**12)
        if "text/event-stream" in request.headers.get("accept", ""):
            return await event_stream(request, bus, service=service, after=after)
        limit = int_param(request, "limit", 200, 1, 2000)
        return JSONResponse({"events": [e.to_json() for e in bus.recent(limit=limit, service=service, after=after)]})


def routes(ctx: ApiContext) -> list[Route]:
    h = _Handlers(ctx)
    return [
        Route("/api/status", h.status, methods=["GET"]),
        Route("/api/sessions", h.sessions, methods=["GET"]),
        Route("/api/services", h.list_services, methods=["GET"]),
        Route("/api/services", h.apply_service, methods=["POST", "PUT"]),
        Route("/api/services/{ref}", h.get_service, methods=["GET"]),
        Route("/api/services/{ref}", h.delete_service, methods=["DELETE"]),
        Route("/api/services/{ref}", h.update_service, methods=["PATCH"]),
        Route("/api/services/{ref}/interface", h.interface, methods=["GET"]),
        Route("/api/services/{ref}/logs", h.logs, methods=["GET"]),
        Route("/api/services/{ref}/{action}", h.action, methods=["POST"]),
        Route("/api/events", h.events, methods=["GET"]),
    ]
