"""The ``runtimectl`` command line: the typer app and the service commands.

Owns argument parsing, the human (rich tables) and ``--json`` renderings, and
exit codes (0 ok, 1 failure, 2 usage). Every command reaches the daemon through
``runtimectl.client.DaemonClient``. Other command groups (tools and call,
bootstrap, doctor, the stdio bridge) live in their own modules and register
themselves here. Must not hold daemon logic or print tracebacks.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from runtimectl.client import ClientError, DaemonClient

app = typer.Typer(
    name="runtimectl",
    help="Control runtimed: register MCP services, drive their lifecycle, see what agents see.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Piped output is for grep and scripts: never cut a URL to fit 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4096)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Opts:
    url: str | None = None
    token: str | None = None


@app.callback()
def _global(
    url: str | None = typer.Option(None, "--url", envvar="RUNTIMED_URL", help="daemon URL (default http://127.0.0.1:4707)"),
    token: str | None = typer.Option(None, "--token", envvar="RUNTIMED_AUTH_TOKEN", help="bearer token", show_default=False),
) -> None:
    Opts.url, Opts.token = url, token


def client(timeout: float = 60.0) -> DaemonClient:
    return DaemonClient(Opts.url, Opts.token, timeout=timeout)


def usage(message: str) -> typer.Exit:
    err.print(f"runtimectl: {message}", markup=False)
    return typer.Exit(2)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


JsonOpt = typer.Option(False, "--json", help="machine-readable output")


# -- manifests from the command line ----------------------------------------

_NAME_CLEAN = re.compile(r"[^a-z0-9_-]+")


def derive_name(target: str) -> str:
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        host = (parts.hostname or "remote").split(".")
        base = host[0] if host[0] not in ("127", "localhost", "www", "api", "mcp") or len(host) == 1 else host[1]
        if parts.hostname in ("127.0.0.1", "localhost", "::1"):
            base = f"local-{parts.port or 80}"
    else:
        base = Path(target).stem
    name = _NAME_CLEAN.sub("-", base.lower()).strip("-_") or "service"
    if not name[0].isalnum():
        name = "s" + name
    return name[:32]


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|sec|s|minute|min|m|hour|h|day|d)\s*$")
_PER = {"second": "second", "sec": "second", "s": "second", "minute": "minute", "min": "minute", "m": "minute",
        "hour": "hour", "h": "hour", "day": "day", "d": "day"}


def parse_rate(value: str) -> dict[str, Any]:
    m = _RATE.match(value)
    if not m or int(m.group(1)) <= 0:
        raise usage(f"--rate-limit must look like 10/day, 5/second, 100/minute or 1000/hour, not {value!r}")
    return {"calls": int(m.group(1)), "per": _PER[m.group(2)]}


def build_manifest(target: str, name: str | None, namespace: str | None, transport: str | None, auth_ref: str | None,
                   policy: dict[str, Any], description: str | None, labels: list[str], restart: str | None,
                   max_restarts: int | None, autostart: bool) -> dict[str, Any]:
    if target.startswith(("http://", "https://")):
        origin: dict[str, Any] = {"type": "remote_mcp", "url": target}
        if transport:
            origin["transport"] = transport
        if auth_ref:
            origin["authRef"] = auth_ref
    elif "://" in target:
        raise usage(f"TARGET must be an http(s) URL or a path to a .wasm/.wat file, not {target!r}")
    else:
        if transport or auth_ref:
            raise usage("--transport and --auth-ref apply to remote URLs, not to WASM files")
        path = Path(target).expanduser()
        if path.suffix not in (".wasm", ".wat"):
            raise usage(f"{target}: a local tool must be a .wasm or .wat file")
        if not path.is_file():
            raise usage(f"{target}: no such file")
        origin = {"type": "local_wasm", "path": str(path.resolve())}
    meta: dict[str, Any] = {"name": name or derive_name(target)}
    if description:
        meta["description"] = description
    if labels:
        lab: dict[str, str] = {}
        for item in labels:
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise usage(f"--label must be key=value, not {item!r}")
            lab[k] = v
        meta["labels"] = lab
    spec: dict[str, Any] = {"origin": origin, "policy": {k: v for k, v in policy.items() if v is not None},
                            "autostart": autostart}
    if namespace:
        spec["toolNamespace"] = namespace
    if restart or max_restarts is not None:
        rp: dict[str, Any] = {}
        if restart:
            rp["mode"] = restart
        if max_restarts is not None:
            rp["maxRestarts"] = max_restarts
        spec["restartPolicy"] = rp
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": meta, "spec": spec}


def _apply(manifest: dict[str, Any], start: bool | None) -> dict[str, Any]:
    params = {} if start is None else {"start": str(start).lower()}
    return client().post("/api/services", json=manifest, params=params)


def _say_applied(res: dict[str, Any]) -> None:
    svc = res["service"]
    verb = "added" if res.get("created") else "updated"
    extra = f" ({svc['lastError']})" if svc.get("lastError") else ""
    out.print(f"{verb} {svc['name']} ({svc['id']}): {svc['state']}{extra}", markup=False)


# -- commands --------------------------------------------------------------

@app.command()
def add(
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
        "timeoutMs": timeout_ms, "allowedTools": _split_list(allow_tools), "deniedTools": _split_list(deny_tools),
        "readOnly": read_only or None, "maxPayloadBytes": max_payload_bytes, "maxConcurrency": max_concurrency,
        "maxQueue": max_queue, "queueTimeoutMs": queue_timeout_ms,
        "rateLimit": parse_rate(rate_limit) if rate_limit else None,
        "cache": {"ttlSeconds": cache_ttl, "tools": _split_list(cache_tools) or []} if cache_ttl else None,
    }
    manifest = build_manifest(target, name, namespace, transport, auth_ref, policy, description, label, restart,
                              max_restarts, autostart=not no_autostart)
    res = _apply(manifest, start=False if no_start else None)
    if as_json:
        emit_json(res)
    else:
        _say_applied(res)
    if res["service"]["state"] in ("CRASHED", "QUARANTINED"):
        raise typer.Exit(1)


@app.command("add-all")
def add_all(
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
    results, failed = [], 0
    for f in files:
        manifest = build_manifest(str(f), None, None, None, None, {}, None, [], None, None, autostart=True)
        try:
            res = _apply(manifest, start=False if no_start else None)
            results.append({"file": str(f), "ok": True, "service": res["service"]["name"], "state": res["service"]["state"]})
        except ClientError as e:
            if type(e).__name__ == "DaemonUnavailable":
                raise
            failed += 1
            results.append({"file": str(f), "ok": False, "error": str(e)})
    if as_json:
        emit_json({"results": results, "failed": failed})
    else:
        for r in results:
            line = f"ok    {r['file']} -> {r['service']} ({r['state']})" if r["ok"] else f"FAIL  {r['file']}: {r['error']}"
            out.print(line, markup=False)
    if failed:
        raise typer.Exit(1)


def _load_manifest_file(path: str) -> list[dict[str, Any]]:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise usage(f"{path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise usage(f"{path}: not UTF-8 text") from None
    data: Any
    if path.endswith(".toml"):
        try:
            data = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as e:
            raise usage(f"{path}: not valid TOML: {e}") from None
    else:
        try:
            data = json.loads(raw)
        except ValueError as e:
            if path != "-":
                raise usage(f"{path}: not valid JSON: {e}") from None
            try:  # stdin has no extension: JSON first, then TOML
                data = tomllib.loads(raw)
            except tomllib.TOMLDecodeError:
                raise usage(f"stdin: neither valid JSON ({e}) nor valid TOML") from None
    if isinstance(data, dict) and isinstance(data.get("services"), list):
        data = data["services"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise usage(f"{path}: expected a manifest object, a list of them, or {{\"services\": [...]}}")
    return items


@app.command()
def apply(
    file: str = typer.Option(..., "-f", "--file", help="manifest file (.json or .toml; - for stdin)"),
    no_start: bool = typer.Option(False, "--no-start"),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update services from a manifest file."""
    results = []
    failed = 0
    for m in _load_manifest_file(file):
        try:
            results.append(_apply(m, start=False if no_start else None))
        except ClientError as e:
            if type(e).__name__ == "DaemonUnavailable":
                raise
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
        raise typer.Exit(1)


def _services_table(services: list[dict[str, Any]]) -> Table:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("NAME", "ID", "STATE", "HEALTH", "TOOLS", "ORIGIN"):
        t.add_column(col, no_wrap=col != "ORIGIN")
    for s in services:
        t.add_row(s["name"], s["id"], s["state"], s["health"], str(s["toolCount"]), s["originLabel"])
    return t


@app.command("list")
def list_(as_json: bool = JsonOpt) -> None:
    """List registered services."""
    services = client().get("/api/services")["services"]
    if as_json:
        emit_json(services)
    elif not services:
        out.print("no services registered (add one with: runtimectl add URL-or-FILE)")
    else:
        out.print(_services_table(services))


@app.command()
def status(as_json: bool = JsonOpt) -> None:
    """The daemon's summary: version, uptime, endpoint, counts by state and health."""
    s = client().get("/api/status")
    if as_json:
        emit_json(s)
        return
    states = ", ".join(f"{k.lower()} {v}" for k, v in s["byState"].items() if v) or "none"
    health = ", ".join(f"{k.lower()} {v}" for k, v in s["byHealth"].items() if v) or "none"
    out.print(f"runtimed {s['version']} (pid {s['pid']}), up {s['uptimeSeconds']:.0f}s", markup=False)
    out.print(f"MCP endpoint: {s['endpoints']['mcp']}", markup=False)
    out.print(f"status page:  {s['endpoints']['status']}", markup=False)
    out.print(f"services: {s['services']} ({states}); health: {health}", markup=False)


def _lifecycle(verb: str, ref: str, as_json: bool) -> None:
    svc = client(timeout=120).post(f"/api/services/{ref}/{verb}")
    if as_json:
        emit_json(svc)
    else:
        extra = f": {svc['lastError']}" if svc.get("lastError") and svc["state"] != "RUNNING" else ""
        out.print(f"{svc['name']}: {svc['state']}{extra}", markup=False)
    if verb in ("start", "restart", "unquarantine") and svc["state"] in ("CRASHED", "QUARANTINED"):
        raise typer.Exit(1)


@app.command()
def start(service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Start a service."""
    _lifecycle("start", service, as_json)


@app.command()
def stop(service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Stop a service."""
    _lifecycle("stop", service, as_json)


@app.command()
def restart(service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Restart a service (reloads a changed WASM file)."""
    _lifecycle("restart", service, as_json)


@app.command()
def unquarantine(service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Lift a quarantine and start the service again."""
    _lifecycle("unquarantine", service, as_json)


@app.command()
def introspect(service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Refresh a service's cached interface from the service itself."""
    c = client(timeout=120)
    c.post(f"/api/services/{service}/introspect")
    iface = c.get(f"/api/services/{service}/interface")
    if as_json:
        emit_json(iface)
        return
    out.print(f"revision {iface['revision']}: {len(iface['tools'])} tools, {len(iface['resources'])} resources, "
              f"{len(iface['resourceTemplates'])} templates, {len(iface['prompts'])} prompts", markup=False)
    if iface.get("lastDiff"):
        out.print(f"last change: {json.dumps(iface['lastDiff'])}", markup=False)


@app.command()
def remove(
    service: str = typer.Argument(..., help="name or id"),
    as_json: bool = JsonOpt,
) -> None:
    """Stop and unregister a service."""
    res = client().delete(f"/api/services/{service}")
    if as_json:
        emit_json(res)
    else:
        out.print(f"removed {res['removed']} ({res['id']})", markup=False)


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


@app.command()
def logs(
    service: str = typer.Argument(..., help="name or id"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
    lines: int = typer.Option(100, "--lines", "-n", min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """Print a service's log."""
    c = client()
    res = c.get(f"/api/services/{service}/logs", params={"limit": lines})

    def show(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if as_json:
                sys.stdout.write(json.dumps(e) + "\n")
            else:
                out.print(f"{_fmt_time(e['time'])} {e['level'].upper():7} {e['message']}", markup=False)
        sys.stdout.flush()

    show(res["lines"])
    last = res["last"]
    while follow:
        time.sleep(0.5)
        res = c.get(f"/api/services/{service}/logs", params={"after": last, "limit": 1000})
        show(res["lines"])
        last = res["last"]


@app.command()
def show(service: str = typer.Argument(..., help="name or id"), as_json: bool = JsonOpt) -> None:
    """Everything about one service: origin, state, health, policies, breaker, interface, recent events."""
    c = client()
    svc = c.get(f"/api/services/{service}")
    iface = c.get(f"/api/services/{service}/interface")
    events = c.get("/api/events", params={"service": svc["name"], "limit": 10})["events"]
    if as_json:
        emit_json({"service": svc, "interface": iface, "events": events})
        return
    origin = svc["origin"]
    p = out.print
    p(f"{svc['name']} ({svc['id']})" + (f" — {svc['displayName']}" if svc.get("displayName") else ""), markup=False)
    if svc.get("description"):
        p(f"  {svc['description']}", markup=False)
    p(f"origin:     {origin['type']} {origin.get('url') or origin.get('path')}"
      + (f" [{origin.get('transport')}]" if origin.get("transport") else "")
      + (f" auth {origin['authRef'].split(':')[0]}:…" if origin.get("authRef") else ""), markup=False)
    p(f"state:      {svc['state']} since {_fmt_time(svc['stateSince'])} ({svc['stateReason']})", markup=False)
    p(f"health:     {svc['health']}" + (f" ({svc['healthDetail']})" if svc.get("healthDetail") else "")
      + (f", {svc['healthLatencyMs']:.1f} ms" if svc.get("healthLatencyMs") is not None else ""), markup=False)
    if svc.get("lastError"):
        p(f"last error: {svc['lastError']}", markup=False)
    if svc.get("quarantineReason"):
        p(f"quarantine: {svc['quarantineReason']}", markup=False)
    p(f"restarts:   {svc['restarts']}", markup=False)
    pol = svc.get("policy", {})
    p("policies:", markup=False)
    for k, v in pol.items():
        if k == "breaker":
            continue
        if v not in (None, [], {}):
            p(f"  {k}: {json.dumps(v) if not isinstance(v, str) else v}", markup=False)
    breaker = pol.get("breaker")
    if breaker is not None:
        p(f"breaker:    {breaker.get('state', breaker) if isinstance(breaker, dict) else breaker}", markup=False)
    p(f"interface:  {iface.get('revision') or 'never introspected'} — {len(iface['tools'])} tools, "
      f"{len(iface['resources'])} resources, {len(iface['resourceTemplates'])} templates, {len(iface['prompts'])} prompts",
      markup=False)
    hidden = {h["name"]: h["policy"] for h in iface.get("hiddenTools", [])}
    for t in iface["tools"]:
        mark = f"  [hidden: {hidden[t['name']]}]" if t["name"] in hidden else ""
        desc = (t.get("description") or "").splitlines()[0][:80] if t.get("description") else ""
        p(f"  - {t['name']}{mark}  {desc}", markup=False)
    if events:
        p("recent events:", markup=False)
        for e in events:
            detail = e.get("reason") or e.get("detail") or e.get("health") or ""
            if e["type"] == "transition":
                detail = f"{e['from']} -> {e['to']}: {e['reason']}"
            p(f"  {_fmt_time(e['time'])} {e['type']} {detail}", markup=False)


# Command groups owned by their own modules (imported here, after ``app`` exists; they import
# ``Opts`` from this module only inside their commands).
from runtimectl import bridge  # noqa: E402
from runtimectl.commands import bootstrap as commands_bootstrap, doctor, tools as commands_tools

for _group in (commands_tools, commands_bootstrap, doctor, bridge):
    _group.register(app)


def main() -> None:
    try:
        app(standalone_mode=True)
    except ClientError as e:
        err.print(f"runtimectl: {e}", markup=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # never a traceback for the user
        err.print(f"runtimectl: unexpected error: {type(e).__name__}: {e}", markup=False)
        if os.environ.get("RUNTIMECTL_DEBUG"):
            raise
        sys.exit(1)


if __name__ == "__main__":
    main()
