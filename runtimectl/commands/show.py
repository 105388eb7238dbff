"""``runtimectl show`` and ``runtimectl logs``: one service in detail.

Owns the two read-only views of a single service: everything the daemon
knows about it (origin, state, health, policies, breaker, its process when
it has one, interface, pending tool changes, recent events) and its log, once
or followed. Must not: change anything or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from typing import Any

import typer

from runtimectl.commands.pins import pending_lines
from runtimectl.context import JsonOpt, client, emit_json, out, plural, service_argument, shorten


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _fmt_duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def interface_counts(iface: dict[str, Any]) -> str:
    """``1 tool, 0 resources, 2 templates, 1 prompt``."""
    return ", ".join(plural(len(iface[key]), word) for key, word in (
        ("tools", "tool"), ("resources", "resource"), ("resourceTemplates", "template"), ("prompts", "prompt")))


def logs(
    ctx: typer.Context,
    service: str = service_argument(),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines"),
    lines: int = typer.Option(100, "--lines", "-n", min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """Print a service's log."""
    c = client(ctx)
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


def _location(origin: dict[str, Any]) -> str:
    """Where a service comes from: its URL, its file, or its command line (quoted as a shell would need)."""
    if origin.get("command"):
        return shlex.join([origin["command"], *origin.get("args", [])])
    return str(origin.get("url") or origin.get("path"))


def _stdio_details(origin: dict[str, Any]) -> list[str]:
    """A stdio origin's other parts; an environment value shows only when it is a reference's kind (env:…)."""
    lines = []
    if origin.get("cwd"):
        lines.append(f"cwd:        {origin['cwd']}")
    env = origin.get("env") or {}
    if env:
        shown = [f"{k}={v.split(':')[0]}:…" if v.startswith(("env:", "file:")) else k for k, v in env.items()]
        lines.append(f"env:        {', '.join(shown)}")
    limits = {k: v for k, v in (origin.get("limits") or {}).items() if v is not None}
    if limits:
        lines.append(f"limits:     {', '.join(f'{k} {v}' for k, v in limits.items())}")
    if origin.get("clientSessions"):
        lines.append(f"sessions:   {origin['clientSessions']}")
    return lines


def show(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Everything about one service: origin, state, health, policies, breaker, interface, recent events."""
    c = client(ctx)
    svc = c.get(f"/api/services/{service}")
    iface = c.get(f"/api/services/{service}/interface")
    events = c.get("/api/events", params={"service": svc["name"], "limit": 10})["events"]
    pins = c.get(f"/api/services/{service}/pins")
    if as_json:
        emit_json({"service": svc, "interface": iface, "events": events, "pins": pins})
        return
    origin = svc["origin"]
    p = out.print
    p(f"{svc['name']} ({svc['id']})" + (f" — {svc['displayName']}" if svc.get("displayName") else ""), markup=False)
    if svc.get("description"):
        p(f"  {svc['description']}", markup=False)
    p(f"origin:     {origin['type']} {_location(origin)}"
      + (f" [{origin.get('transport')}]" if origin.get("transport") else "")
      + (f" auth {origin['authRef'].split(':')[0]}:…" if origin.get("authRef") else ""), markup=False)
    for line in _stdio_details(origin):
        p(line, markup=False)
    p(f"state:      {svc['state']} since {_fmt_time(svc['stateSince'])} ({svc['stateReason']})", markup=False)
    p(f"health:     {svc['health']}" + (f" ({svc['healthDetail']})" if svc.get("healthDetail") else "")
      + (f", {svc['healthLatencyMs']:.1f} ms" if svc.get("healthLatencyMs") is not None else ""), markup=False)
    if svc.get("lastError"):
        p(f"last error: {svc['lastError']}", markup=False)
    if svc.get("quarantineReason"):
        p(f"quarantine: {svc['quarantineReason']}", markup=False)
    p(f"restarts:   {svc['restarts']}", markup=False)
    proc = (svc.get("backend") or {}).get("process")
    if proc:
        up = f", up {_fmt_duration(proc['uptimeSeconds'])}" if proc.get("uptimeSeconds") is not None else ""
        p(f"process:    pid {proc.get('pid') or '-'}{up}: {proc.get('command')}", markup=False)
        if proc.get("stderrTail"):
            p("  stderr (last lines):", markup=False)
            for line in proc["stderrTail"]:
                p(f"    {line}", markup=False)
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
    p(f"interface:  {iface.get('revision') or 'never introspected'} — {interface_counts(iface)}", markup=False)
    hidden = {h["name"]: h["policy"] for h in iface.get("hiddenTools", [])}
    pending = pins.get("pending") or []
    changed = {ch["tool"] for ch in pending}
    for t in iface["tools"]:
        mark = f"  [hidden: {hidden[t['name']]}]" if t["name"] in hidden else ""
        if t["name"] in changed:
            mark += "  [withheld: changed]" if pins.get("pinTools") else "  [changed]"
        desc = shorten(t.get("description"))
        p(f"  - {t['name']}{mark}  {desc}", markup=False)
    if pending:
        held = "withheld until approved (pinTools)" if pins.get("pinTools") else "served as they are now (pinTools off)"
        p(f"Pending tool changes ({len(pending)}; {held}):", markup=False)
        for ch in pending:
            for line in pending_lines(ch):
                p(line, markup=False)
        p(f"  approve: runtimectl approve {svc['name']} [TOOL...]", markup=False)
    if events:
        p("recent events:", markup=False)
        for e in events:
            detail = e.get("reason") or e.get("detail") or e.get("health") or ""
            if e["type"] == "transition":
                detail = f"{e['from']} -> {e['to']}: {e['reason']}"
            p(f"  {_fmt_time(e['time'])} {e['type']} {detail}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``logs`` and ``show`` to the root app."""
    app.command()(logs)
    app.command()(show)
