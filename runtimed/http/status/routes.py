"""The status page: ``/status``, ``/status/services/{ref}``, its HTML fragments
under ``/api/ui/...`` and its static assets under ``/static``.

Owns rendering (Jinja2, autoescaped) and which data each fragment shows, and
how: an error cause first and each fact once (``split_error``, ``problem``),
the policy as readable fields, configured apart from live (``policy_view``).
The charts are drawn by the page's script from the analytics series
(``http.audit``); the add-a-service form posts to the REST API. The
page shells under ``/status`` are served without the token (security.py), so
they carry data only when no token is configured (the request then already
passed the loopback check); with a token, the page's script loads the
fragments from ``/api/ui`` with the token. The handlers read what the
``ApiContext`` they are built with holds. The daemon's own fields (ids,
hashes, the manifest) are shown as they are; only text captured from others
goes through ``records.redaction``. Must not change state (actions are
the REST API's), show a secret value, or speak MCP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from runtimed import __version__
from runtimed.http.bootstrap_api import bootstrap_status, routes as bootstrap_routes
from runtimed.http.context import ApiContext
from runtimed.records.redaction import redact_text

HERE = Path(__file__).resolve().parent
FRAGMENTS = ("overview", "services", "profiles", "clients", "insights")
SERVICE_PARTS = ("summary", "interface", "calls", "logs", "events")


def _ago(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "—"
    d = max(0.0, time.time() - ts)
    if d < 60:
        return f"{int(d)}s ago"
    if d < 3600:
        return f"{int(d // 60)}m ago"
    if d < 86400:
        return f"{int(d // 3600)}h ago"
    return f"{int(d // 86400)}d ago"


def _clock(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(seconds: Any) -> str:
    s = int(seconds or 0)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s}s"


def _ms(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "—"
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _pct(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "—"
    return f"{v * 100:.0f}%" if v >= 0.01 or v == 0 else "<1%"


def _pretty(v: Any) -> str:
    return json.dumps(v, indent=2, ensure_ascii=False, default=str)


def _origin(summary: dict[str, Any]) -> str:
    return str(summary.get("originLabel") or "?")


_SHORT_CAUSE = 16  # a last part shorter than this ("Not Found") keeps the part before it ("HTTP 404: Not Found")


def split_error(text: str) -> tuple[str, str]:
    """(cause, context) of an error text built as ``context: context: cause``: the part after the last
    ``": "`` outside brackets, and what led to it. ``"start failed: initialize to URL: cannot connect (...)"``
    -> ``("cannot connect (...)", "start failed: initialize to URL")``."""
    cuts, depth = [], 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == ":" and depth == 0 and text[i + 1:i + 2] == " ":
            cuts.append(i)
    if not cuts:
        return text.strip(), ""
    cut = cuts[-1]
    if len(text) - cut - 2 < _SHORT_CAUSE and len(cuts) > 1:
        cut = cuts[-2]
    cause, context = text[cut + 2:].strip(), text[:cut].strip()
    return (cause, context) if cause else (text.strip(), "")


def problem(s: dict[str, Any], stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """What is wrong with a service, each fact once: ``note`` (the state's reason, unless it only repeats the
    error), ``quarantine`` (why, without the error it ends with), ``error`` (the service's last error, else the
    last failed call's: ``text``, ``cause``, ``context``, ``at``, ``label``)."""
    err, at, label = s.get("lastError"), s.get("lastErrorAt"), "Last error"
    if not err and stats and isinstance(stats.get("lastError"), dict):
        call = stats["lastError"]
        err, at = call.get("message") or call.get("outcome"), call.get("time")
        label = f"Last failed call ({call.get('tool')})" if call.get("tool") else "Last failed call"
    note = s.get("stateReason") or ""
    quarantine = s.get("quarantineReason") or ""
    if err:
        tail = f"; last: {err}"
        if quarantine.endswith(tail):
            quarantine = quarantine[: -len(tail)]
        if err in note:
            note = ""
    if quarantine and note and quarantine in note:
        note = ""
    error = None
    if err:
        cause, context = split_error(str(err))
        error = {"text": str(err), "cause": cause, "context": context, "at": at, "label": label}
    return {"note": note, "quarantine": quarantine, "error": error}


def _span(ms: Any) -> str:
    """A duration in milliseconds, readable: ``250 ms``, ``5 s``, ``1.5 s``, ``2 min``."""
    if not isinstance(ms, (int, float)):
        return "—"
    if ms < 1000:
        return f"{ms:g} ms"
    if ms < 120_000 or ms % 60_000:
        return f"{ms / 1000:g} s"
    return f"{ms / 60_000:g} min"


def _bytes(n: Any) -> str:
    if not isinstance(n, int):
        return "—"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def _names(items: Any, none: str) -> str:
    return ", ".join(str(i) for i in items) if items else none


def policy_view(pol: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    """A service's policy (``ServicePolicy.describe()``) as readable fields, ``(key, label, text)``: what is
    configured (the manifest over the daemon's defaults) apart from what is live (counters and states)."""
    rate, cache, br = pol.get("rateLimit"), pol.get("cache"), pol.get("breaker") or {}
    configured = [
        ("timeout", "Timeout", _span(pol.get("timeoutMs"))),
        ("connect", "Connect timeout", _span(pol.get("connectTimeoutMs"))),
        ("allowed", "Allowed tools", _names(pol.get("allowedTools"), "all")),
        ("denied", "Denied tools", _names(pol.get("deniedTools"), "none")),
        ("readonly", "Read-only", "only tools marked read-only" if pol.get("readOnly") else "no"),
        ("payload", "Max payload", _bytes(pol.get("maxPayloadBytes"))),
        ("concurrency", "Concurrent calls", f"at most {pol.get('maxConcurrency')}"),
        ("queue", "Queue", f"up to {pol.get('maxQueue')} calls, each waiting at most {_span(pol.get('queueTimeoutMs'))}"
         if pol.get("maxQueue") else "none: a call beyond the concurrency limit is refused"),
        ("retries", "Retries", f"{pol.get('retries')} (safe requests only)"),
        ("rate", "Rate limit", f"{rate['calls']} per {rate['per']}" if rate else "none"),
        ("cache", "Result cache",
         (f"{cache['ttlSeconds']:g} s for {_names(cache.get('tools'), 'no listed tools')}"
          + (" and read-only tools" if cache.get("readOnlyHint") else "") + f", at most {cache.get('maxEntries')} entries")
         if cache else "off"),
        ("breaker", "Circuit breaker",
         f"opens after {br.get('threshold')} faults in a row, tries again after {_span(br.get('cooldownMs'))}"),
    ]
    live = [
        ("inflight", "In flight", f"{pol.get('inFlight', 0)} of {pol.get('maxConcurrency')}"),
        ("queued", "Queued", f"{pol.get('queued', 0)} of {pol.get('maxQueue')}"),
    ]
    if rate:
        text = f"{rate.get('used', 0)} of {rate['calls']} used this {rate['per']}, {rate.get('remaining', 0)} left"
        if rate.get("resumesAt"):
            text += f"; resumes at {rate['resumesAt']}"
        if rate.get("persistError"):
            text += f"; not saved: {rate['persistError']}"
        live.append(("rate", "Rate limit", text))
    if cache:
        live.append(("cache", "Result cache",
                     f"{cache.get('entries', 0)} entries, {cache.get('hits', 0)} hits, {cache.get('misses', 0)} misses"))
    breaker = f"{br.get('state', '?')}, {br.get('consecutiveFaults', 0)} of {br.get('threshold')} faults in a row"
    if br.get("trips"):
        breaker += f", tripped {br['trips']}×"
    if br.get("retryInSeconds") is not None:
        breaker += f", tries again in {br['retryInSeconds']:g} s"
    if br.get("lastFault"):
        breaker += f"; last fault: {br['lastFault']}"
    live.append(("breaker", "Circuit breaker", breaker))
    outcomes = pol.get("outcomes") or {}
    live.append(("outcomes", "Outcomes", " · ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(outcomes.items()))
                 or "no calls yet"))
    return {"configured": configured, "live": live}


env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(ago=_ago, clock=_clock, duration=_duration, ms=_ms, pct=_pct, pretty=_pretty, origin=_origin)
env.globals.update(problem=problem, policy_view=policy_view)


def _render(template: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    html = env.get_template(template).render(**ctx)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _fragment_html(name: str, ctx: dict[str, Any]) -> Markup:
    return Markup(env.get_template(name).render(**ctx))


# -- data for each fragment ----------------------------------------------------

def overview_ctx(d: ApiContext) -> dict[str, Any]:
    by_state, by_health = d.supervisor.counts()
    base = d.settings.base_url
    return {
        "version": __version__, "pid": d.pid, "started_at": d.started_at, "uptime": time.time() - d.started_at,
        "endpoints": [("MCP gateway", f"{base}/mcp"), ("REST API", f"{base}/api"), ("Status page", f"{base}/status"),
                      ("Metrics", f"{base}/metrics")],
        "auth_required": d.settings.auth_token is not None, "services": len(d.supervisor.services),
        "by_state": by_state, "by_health": by_health, "clients": d.client_counts(), "state_dir": str(d.settings.state_dir),
        "store": d.store(), **_replicas_ctx(d),
    }


def _replicas_ctx(d: ApiContext) -> dict[str, Any]:
    """Each live replica's health as it last announced it, and their sum (a shared store only)."""
    store = d.store()
    replicas = sorted(d.replicas(), key=lambda r: str(r.get("replica"))) if store.get("shared") else []
    combined: dict[str, int] = {}
    for r in replicas:
        for health, n in (r.get("byHealth") or {}).items():
            if isinstance(n, int):
                combined[health] = combined.get(health, 0) + n
    return {"replicas": replicas, "this_replica": store.get("replica"), "combined_health": combined}


def services_ctx(d: ApiContext) -> dict[str, Any]:
    return {"rows": [{**svc.summary(), "stats": d.analytics.service_stats(svc.name)} for svc in d.supervisor.all()]}


def profiles_ctx(d: ApiContext) -> dict[str, Any]:
    """The Profiles panel: each profile's name, description, mode, pinning, how many tools it serves and
    its endpoint (``/mcp/@NAME``); the stored ones that do not validate, with why."""
    registry = d.profiles
    if registry is None:
        return {"rows": [], "invalid": []}
    base = d.settings.base_url
    rows = [{"name": m.name, "description": m.metadata.description, "mode": m.spec.mode,
             "pinTools": m.spec.pinTools, "toolCount": len(d.profile_tools(m.name) or []),
             "endpoint": f"{base}/mcp/@{m.name}"} for m in registry.all()]
    return {"rows": rows, "invalid": sorted(registry.invalid.items())}


def insights_ctx(d: ApiContext) -> dict[str, Any]:
    return {
        "capture_intent": d.settings.capture_intent, "capture_arguments": d.settings.capture_arguments,
        "intents": d.analytics.top_intents(), "capabilities": d.analytics.missing_capabilities(),
    }


def service_ctx(d: ApiContext, ref: str, part: str) -> dict[str, Any]:
    svc = d.supervisor.get(ref)
    ctx: dict[str, Any] = {"svc": svc.summary()}
    if part == "summary":
        detail = svc.detail()
        # The manifest and the backend's facts are the daemon's own fields (secret references only): shown as
        # they are. Only what was captured from the child (its stderr lines) goes through redaction.
        backend = detail["backend"]
        process = backend.get("process") if isinstance(backend, dict) else None
        if isinstance(process, dict) and process.get("stderrTail"):
            backend = {**backend, "process": {**process, "stderrTail": [redact_text(str(line))
                                                                        for line in process["stderrTail"]]}}
        ctx.update(manifest=detail["manifest"], policy=detail["policy"], backend=backend,
                   stats=d.analytics.service_stats(svc.name),
                   # An OAuth service's sign-in as shown (never a token): state, issuer, expiry.
                   signin=svc.upstream_auth().status_now()
                   if getattr(svc.manifest.spec.origin, "authRef", None) == "oauth" else None)
    elif part == "interface":
        iface = svc.interface.to_json() if svc.interface is not None else None
        ctx.update(iface=iface, updated_at=svc.interface_at, last_diff=svc.last_diff, hidden=svc.hidden_tools(),
                   # Tool pinning: changes since a tool was approved, each with its diff (an Approve button).
                   pending=d.supervisor.pins.pending(svc.id), pin_tools=svc.manifest.spec.pinTools)
    elif part == "calls":
        a = d.analytics
        ctx.update(calls=a.recent(service=svc.name, limit=50), stats=a.service_stats(svc.name),
                   intents=a.top_intents(svc.name), capture_arguments=d.settings.capture_arguments)
    elif part == "logs":
        ctx.update(lines=list(svc.logs)[-200:][::-1])
    elif part == "events":
        ctx.update(events=[e.to_json() for e in d.events.recent(limit=100, service=svc.name)][::-1])
    return ctx


def clients_ctx(d: ApiContext) -> dict[str, Any]:
    """The Clients panel: who is connected now (session-era sessions, the stateless count), then
    the clients' configuration entries."""
    return {**bootstrap_status(d.settings), "live_sessions": d.live_sessions(),
            "stateless_clients": d.client_counts().get("stateless", 0)}


_BUILDERS: dict[str, Callable[[ApiContext], dict[str, Any]]] = {
    "overview": overview_ctx, "services": services_ctx, "profiles": profiles_ctx, "clients": clients_ctx,
    "insights": insights_ctx}


# -- handlers --------------------------------------------------------------------

async def root(request: Request) -> Response:
    return RedirectResponse("/status", status_code=307)


def _no_such_fragment(name: str) -> HTMLResponse:
    # ``name`` comes from the URL: escaped, or a crafted link would run script on the daemon's origin.
    return HTMLResponse(f"<p class=error>no such fragment: {escape(name)}</p>", status_code=404)


class _Handlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def _with_data(self) -> bool:
        """Data goes into the shell only when no token is configured."""
        return self.ctx.settings.auth_token is None

    async def status_page(self, request: Request) -> HTMLResponse:
        d = self.ctx
        ctx: dict[str, Any] = {"page": "status", "auth_required": not self._with_data(), "inline": self._with_data()}
        ctx["frag"] = {}
        if ctx["inline"]:
            for name, build in _BUILDERS.items():
                ctx["frag"][name] = _fragment_html(f"fragments/{name}.html", build(d))
        return _render("status.html", ctx)

    async def service_page(self, request: Request) -> HTMLResponse:
        d = self.ctx
        ref = request.path_params["ref"]
        ctx: dict[str, Any] = {"page": "service", "ref": ref, "auth_required": not self._with_data(),
                               "inline": self._with_data(), "parts": SERVICE_PARTS}
        if ctx["inline"]:
            svc = d.supervisor.find(ref)
            if svc is None:
                return _render("missing.html", {**ctx, "ref": ref}, status=404)
            ctx["ref"] = svc.name
            ctx["frag"] = {p: _fragment_html(f"fragments/service_{p}.html", service_ctx(d, svc.name, p))
                           for p in SERVICE_PARTS}
        return _render("service.html", ctx)

    async def fragment(self, request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        build = _BUILDERS.get(name)
        if build is None:
            return _no_such_fragment(name)
        return _render(f"fragments/{name}.html", build(self.ctx))

    async def service_fragment(self, request: Request) -> HTMLResponse:
        part = request.path_params["part"]
        if part not in SERVICE_PARTS:
            return _no_such_fragment(part)
        ref = request.path_params["ref"]
        svc = self.ctx.supervisor.find(ref)
        if svc is None:
            return _render("fragments/gone.html", {"ref": ref}, status=404)
        return _render(f"fragments/service_{part}.html", service_ctx(self.ctx, svc.name, part))


def routes(ctx: ApiContext) -> list[BaseRoute]:
    h = _Handlers(ctx)
    return [
        Route("/", root, methods=["GET"]),
        Route("/status", h.status_page, methods=["GET"]),
        Route("/status/services/{ref}", h.service_page, methods=["GET"]),
        Route("/api/ui/services/{ref}/{part}", h.service_fragment, methods=["GET"]),
        Route("/api/ui/{name}", h.fragment, methods=["GET"]),
        *bootstrap_routes(ctx.settings),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
