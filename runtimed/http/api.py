"""The REST control API under ``/api``: JSON in, JSON out.

Owns request parsing and validation for the control plane, and the mapping of
every refusal to a 4xx with a message that says what is wrong. Must not hold
lifecycle logic (that is ``Supervisor``), speak MCP (``gateway``) or render
HTML (``web``). Every handler reaches the daemon through ``request.app.state``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtimed import __version__
from runtimed.config.manifest import ManifestError, parse_manifest
from runtimed.errors import ApiError
from runtimed.lifecycle.supervisor import ServiceRuntime, Supervisor, SupervisorError

JSON = dict[str, Any]
MAX_BODY = 1024 * 1024


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _sup(request: Request) -> Supervisor:
    return request.app.state.daemon.supervisor


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


def _int_param(request: Request, name: str, default: int, lo: int = 0, hi: int = 100_000) -> int:
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


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(400, f"query parameter {name!r} must be true or false, not {raw!r}")


# -- handlers -------------------------------------------------------------

async def status(request: Request) -> JSONResponse:
    daemon = request.app.state.daemon
    by_state, by_health = _sup(request).counts()
    base = daemon.settings.base_url
    return JSONResponse({
        "version": __version__,
        "uptimeSeconds": round(time.time() - daemon.started_at, 3),
        "pid": daemon.pid,
        "stateDir": str(daemon.settings.state_dir),
        "endpoints": {"mcp": f"{base}/mcp", "status": f"{base}/status", "api": f"{base}/api"},
        "authRequired": daemon.settings.auth_token is not None,
        "adminTools": daemon.settings.admin_tools,
        "services": len(_sup(request).services),
        "byState": by_state,
        "byHealth": by_health,
        "clients": daemon.client_counts(),
    })


async def list_services(request: Request) -> JSONResponse:
    return JSONResponse({"services": [s.summary() for s in _sup(request).all()]})


async def apply_service(request: Request) -> JSONResponse:
    data = await read_json(request)
    try:
        manifest = parse_manifest(data)
    except ManifestError as e:
        raise ApiError(422, f"invalid manifest: {e}") from None
    start = _bool_param(request, "start")
    svc, created = await _sup(request).apply(manifest, start=start)
    return JSONResponse({"created": created, "service": svc.detail()}, status_code=201 if created else 200)


async def get_service(request: Request) -> JSONResponse:
    return JSONResponse(_sup(request).get(request.path_params["ref"]).detail())


async def delete_service(request: Request) -> JSONResponse:
    svc = await _sup(request).remove(request.path_params["ref"])
    return JSONResponse({"removed": svc.name, "id": svc.id})


async def action(request: Request) -> JSONResponse:
    sup = _sup(request)
    ref, verb = request.path_params["ref"], request.path_params["action"]
    svc: ServiceRuntime
    if verb == "start":
        svc = await sup.start(ref)
    elif verb == "stop":
        svc = await sup.stop(ref)
    elif verb == "restart":
        svc = await sup.restart(ref)
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


async def interface(request: Request) -> JSONResponse:
    svc = _sup(request).get(request.path_params["ref"])
    if svc.interface is None:
        return JSONResponse({"revision": None, "tools": [], "resources": [], "resourceTemplates": [], "prompts": [],
                             "note": "never introspected: start the service"})
    out = svc.interface.to_json()
    out["updatedAt"] = svc.interface_at
    out["lastDiff"] = svc.last_diff
    out["hiddenTools"] = [{"name": name, "policy": why} for name, why in svc.hidden_tools().items()]
    return JSONResponse(out)


async def logs(request: Request) -> JSONResponse:
    svc = _sup(request).get(request.path_params["ref"])
    after = _int_param(request, "after", 0, 0, 10**12)
    limit = _int_param(request, "limit", 200, 1, 1000)
    lines = [entry for entry in svc.logs if entry["seq"] > after][-limit:]
    return JSONResponse({"service": svc.name, "lines": lines, "last": svc.last_log_seq})


async def events(request: Request) -> Response:
    bus = request.app.state.daemon.events
    service = request.query_params.get("service")
    after = _int_param(request, "after", 0, 0, 10**12)
    if "text/event-stream" in request.headers.get("accept", ""):
        from runtimed.http.status.live import event_stream  # SSE belongs to the web layer

        return await event_stream(request, bus, service=service, after=after)
    limit = _int_param(request, "limit", 200, 1, 2000)
    return JSONResponse({"events": [e.to_json() for e in bus.recent(limit=limit, service=service, after=after)]})


def routes() -> list[Route]:
    return [
        Route("/api/status", status, methods=["GET"]),
        Route("/api/services", list_services, methods=["GET"]),
        Route("/api/services", apply_service, methods=["POST", "PUT"]),
        Route("/api/services/{ref}", get_service, methods=["GET"]),
        Route("/api/services/{ref}", delete_service, methods=["DELETE"]),
        Route("/api/services/{ref}/interface", interface, methods=["GET"]),
        Route("/api/services/{ref}/logs", logs, methods=["GET"]),
        Route("/api/services/{ref}/{action}", action, methods=["POST"]),
        Route("/api/events", events, methods=["GET"]),
    ]


async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, SupervisorError):
        return error_response(exc.status, str(exc))
    raise exc
