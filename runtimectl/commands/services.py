"""The service commands: ``add``, ``add-all``, ``apply``, ``list``, ``status``,
``start``/``stop``/``restart``/``unquarantine``, ``introspect`` and ``remove``.

Owns these commands' options, their human and ``--json`` renderings and exit
codes (1 when a service ends up CRASHED or QUARANTINED, or a file of a batch
failed). Manifests from flags and files come from ``manifests``; ``show`` and
``logs`` live in ``show``. Must not: hold daemon logic or import
``runtimectl.cli``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from runtimectl.commands.manifests import build_manifest, load_manifest_file, parse_rate, split_list
from runtimectl.context import EXIT_FAILURE, JsonOpt, client, emit_json, err, out, usage
from runtimed.errors import ClientError, DaemonUnavailable

_FAILED_STATES = ("CRASHED", "QUARANTINED")


def _apply(ctx: typer.Context, manifest: dict[str, Any], start: bool | None) -> dict[str, Any]:
    params = {} if start is None else {"start": str(start).lower()}
    res: dict[str, Any] = client(ctx).post("/api/services", json=manifest, params=params)
    return res


def _say_applied(res: dict[str, Any]) -> None:
    svc = res["service"]
    verb = "added" if res.get("created") else "updated"
    extra = f" ({svc['lastError']})" if svc.get("lastError") else ""
    out.print(f"{verb} {svc['name']} ({svc['id']}): {svc['state']}{extra}", markup=False)


def add(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="path to a .wasm/.wat file, or the http(s) URL of a remote MCP server"),
    name: str | None = typer.Option(None, "--name", help="service name (default: derived from TARGET)"),
    namespace: str | None = typer.Option(None, "--namespace", help="tool namespace (default: the name)"),
    transport: str | None = typer.Option(None, "--transport", help="streamable_http (default) or sse"),
    auth_ref: str | None = typer.Option(None, "--auth-ref", help="env:VAR, file:relative/path or header_env:Header:VAR"),
    timeout_ms: int | None = typer.Option(None, "--timeout-ms", help="per-call timeout"),
    allow_tools: str | None = typer.Option(None, "--allow-tools", help="comma-separated names or globs"),
    deny_tools: str | None = typer.Option(None, "--deny-tools", help="comma-separated names or globs"),
    read_only: bool = typer.Option(False, "--read-only", help="expose only tools annotated readOnlyHint"),
    max_payload_bytes: int | None = typer.Option(None, "--max-payload-bytes"),
    max_concurrency: int | None = typer.Option(None, "--max-concurrency"),
    max_queue: int | None = typer.Option(None, "--max-queue"),
    queue_timeout_ms: int | None = typer.Option(None, "--queue-timeout-ms"),
    rate_limit: str | None = typer.Option(None, "--rate-limit", help="e.g. 10/day, 5/second"),
    cache_ttl: float | None = typer.Option(None, "--cache-ttl", help="seconds to keep cacheable results"),
    cache_tools: str | None = typer.Option(None, "--cache-tools", help="comma-separated cacheable tools (globs)"),
    description: str | None = typer.Option(None, "--description"),
    label: list[str] = typer.Option([], "--label", help="key=value (repeatable)"),
    restart: str | None = typer.Option(None, "--restart", help="never, on-failure or always"),
    max_restarts: int | None = typer.Option(None, "--max-restarts"),
    no_start: bool = typer.Option(False, "--no-start", help="register without starting"),
    no_autostart: bool = typer.Option(False, "--no-autostart", help="do not start when the daemon boots"),
    as_json: bool = JsonOpt,
) -> None:
    """Register a service (and start it unless --no-start)."""
    if transport and transport not in ("streamable_http", "sse"):
        raise usage(f"--transport must be streamable_http or sse, not {transport!r}")
    if restart and restart not in ("never", "on-failure", "always"):
        raise usage(f"--restart must be never, on-failure or always, not {restart!r}")
    for flag, value in (("--timeout-ms", timeout_ms), ("--max-payload-bytes", max_payload_bytes),
                        ("--max-concurrency", max_concurrency), ("--queue-timeout-ms", queue_timeout_ms),
                        ("--cache-ttl", cache_ttl)):
        if value is not None and value <= 0:
            raise usage(f"{flag} must be greater than 0, not {value}")
    if max_queue is not None and max_queue < 0:
        raise usage(f"--max-queue must be 0 or more, not {max_queue}")
    if cache_tools and not cache_ttl:
        raise usage("--cache-tools needs --cache-ttl")
    policy: dict[str, Any] = {
        "timeoutMs": timeout_ms, "allowedTools": split_list(allow_tools), "deniedTools": split_list(deny_tools),
        "readOnly": read_only or None, "maxPayloadBytes": max_payload_bytes, "maxConcurrency": max_concurrency,
        "maxQueue": max_queue, "queueTimeoutMs": queue_timeout_ms,
        "rateLimit": parse_rate(rate_limit) if rate_limit else None,
        "cache": {"ttlSeconds": cache_ttl, "tools": split_list(cache_tools) or []} if cache_ttl else None,
    }
    manifest = build_manifest(target, name, namespace, transport, auth_ref, policy, description, label, restart,
                              max_restarts, autostart=not no_autostart)
    res = _apply(ctx, manifest, start=False if no_start else None)
    if as_json:
        emit_json(res)
    else:
        _say_applied(res)
    if res["service"]["state"] in _FAILED_STATES:
        raise typer.Exit(EXIT_FAILURE)


def add_all(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="folder holding .wasm/.wat files"),
    recursive: bool = typer.Option(False, "--recursive", "-r"),
    no_start: bool = typer.Option(False, "--no-start"),
    as_json: bool = JsonOpt,
) -> None:
    """Register every .wasm/.wat file in a folder."""
    if not directory.is_dir():
        raise usage(f"{directory}: not a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in directory.glob(pattern) if p.suffix in (".wasm", ".wat") and p.is_file())
    if not files:
        raise usage(f"{directory}: no .wasm or .wat files" + ("" if recursive else " (try --recursive)"))
    results: list[dict[str, Any]] = []
    failed = 0
    for f in files:
        manifest = build_manifest(str(f), None, None, None, None, {}, None, [], None, None, autostart=True)
        try:
            res = _apply(ctx, manifest, start=False if no_start else None)
            results.append({"file": str(f), "ok": True, "service": res["service"]["name"], "state": res["service"]["state"]})
        except DaemonUnavailable:
            raise
        except ClientError as e:
            failed += 1
            results.append({"file": str(f), "ok": False, "error": str(e)})
    if as_json:
        emit_json({"results": results, "failed": failed})
    else:
        for r in results:
            line = f"ok    {r['file']} -> {r['service']} ({r['state']})" if r["ok"] else f"FAIL  {r['file']}: {r['error']}"
            out.print(line, markup=False)
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def apply(
    ctx: typer.Context,
    file: str = typer.Option(..., "-f", "--file", help="manifest file (.json or .toml; - for stdin)"),
    no_start: bool = typer.Option(False, "--no-start"),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update services from a manifest file."""
    results: list[dict[str, Any]] = []
    failed = 0
    for m in load_manifest_file(file):
        try:
            results.append(_apply(ctx, m, start=False if no_start else None))
        except DaemonUnavailable:
            raise
        except ClientError as e:
            failed += 1
            name = (m.get("metadata") or {}).get("name") if isinstance(m.get("metadata"), dict) else None
            results.append({"error": str(e), "name": name})
    if as_json:
        emit_json({"results": results, "failed": failed})
    else:
        for r in results:
            if "error" in r:
                err.print(f"runtimectl: {r.get('name') or 'manifest'}: {r['error']}", markup=False)
            else:
                _say_applied(r)
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def _services_table(services: list[dict[str, Any]]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("NAME", "ID", "STATE", "HEALTH", "TOOLS", "ORIGIN"):
        t.add_column(col, no_wrap=col != "ORIGIN")
    for s in services:
        t.add_row(s["name"], s["id"], s["state"], s["health"], str(s["toolCount"]), s["originLabel"])
    return t


def list_(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """List registered services."""
    services = client(ctx).get("/api/services")["services"]
    if as_json:
        emit_json(services)
    elif not services:
        out.print("no services registered (add one with: runtimectl add URL-or-FILE)")
    else:
        out.print(_services_table(services))


def status(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """The daemon's summary: version, uptime, endpoint, counts by state and health."""
    s = client(ctx).get("/api/status")
    if as_json:
        emit_json(s)
        return
    states = ", ".join(f"{k.lower()} {v}" for k, v in s["byState"].items() if v) or "none"
    health = ", ".join(f"{k.lower()} {v}" for k, v in s["byHealth"].items() if v) or "none"
    out.print(f"runtimed {s['version']} (pid {s['pid']}), up {s['uptimeSeconds']:.0f}s", markup=False)
    out.print(f"MCP endpoint: {s['endpoints']['mcp']}", markup=False)
    out.print(f"status page:  {s['endpoints']['status']}", markup=False)
    out.print(f"services: {s['services']} ({states}); health: {health}", markup=False)


def _lifecycle(ctx: typer.Context, verb: str, ref: str, as_json: bool) -> None:
    svc = client(ctx, timeout=120).post(f"/api/services/{ref}/{verb}")
    if as_json:
        emit_json(svc)
    else:
        extra = f": {svc['lastError']}" if svc.get("lastError") and svc["state"] != "RUNNING" else ""
        out.print(f"{svc['name']}: {svc['state']}{extra}", markup=False)
    if verb in ("start", "restart", "unquarantine") and svc["state"] in _FAILED_STATES:
        raise typer.Exit(EXIT_FAILURE)


def start(ctx: typer.Context, service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Start a service."""
    _lifecycle(ctx, "start", service, as_json)


def stop(ctx: typer.Context, service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Stop a service."""
    _lifecycle(ctx, "stop", service, as_json)


def restart(ctx: typer.Context, service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Restart a service (reloads a changed WASM file)."""
    _lifecycle(ctx, "restart", service, as_json)


def unquarantine(ctx: typer.Context, service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Lift a quarantine and start the service again."""
    _lifecycle(ctx, "unquarantine", service, as_json)


def introspect(ctx: typer.Context, service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Refresh a service's cached interface from the service itself."""
    c = client(ctx, timeout=120)
    c.post(f"/api/services/{service}/introspect")
    iface = c.get(f"/api/services/{service}/interface")
    if as_json:
        emit_json(iface)
        return
    out.print(f"revision {iface['revision']}: {len(iface['tools'])} tools, {len(iface['resources'])} resources, "
              f"{len(iface['resourceTemplates'])} templates, {len(iface['prompts'])} prompts", markup=False)
    if iface.get("lastDiff"):
        out.print(f"last change: {json.dumps(iface['lastDiff'])}", markup=False)


def remove(
    ctx: typer.Context,
    service: str = typer.Argument(..., help="name or id"),
    as_json: bool = JsonOpt,
) -> None:
    """Stop and unregister a service."""
    res = client(ctx).delete(f"/api/services/{service}")
    if as_json:
        emit_json(res)
    else:
        out.print(f"removed {res['removed']} ({res['id']})", markup=False)


def register(app: typer.Typer) -> None:
    """Add the service commands to the root app, in the order ``--help`` lists them."""
    app.command()(add)
    app.command("add-all")(add_all)
    app.command()(apply)
    app.command("list")(list_)
    app.command()(status)
    app.command()(start)
    app.command()(stop)
    app.command()(restart)
    app.command()(unquarantine)
    app.command()(introspect)
    app.command()(remove)
