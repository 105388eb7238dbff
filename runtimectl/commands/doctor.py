"""``runtimectl doctor``: one line per check, a mark and a fix hint.

Checks: the daemon is reachable (and its version); if not, whether its port is
held by something else; the state dir is writable; the registry file is valid;
wasmtime imports; each service's lifecycle and health (a failed service's hint
fits what its failure means: is the server running, check the URL's host or
path, the credentials; not just "unquarantine"); the Codex and Claude
Code bootstrap entries exist and point at this daemon. Exit 1 when any check
fails (warnings do not fail). Owns only the checks and their rendering; must
not change anything or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from runtimectl.client import DaemonClient
from runtimectl.context import EXIT_FAILURE, EXIT_USAGE, client as daemon_client, fail, plural
from runtimed.backends import explain_cause
from runtimed.errors import ClientError, RegistryError

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: "✓", WARN: "!", FAIL: "✗"}


@dataclass
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


def _port_holder(url: str) -> Check:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError:
        return Check("port", OK, f"{host}:{port} is free", "start the daemon: runtimed")
    return Check("port", FAIL, f"{host}:{port} is held by something that is not runtimed",
                 "stop that program or run runtimed --port N and set RUNTIMED_URL")


def _state_dir_checks(state_dir: Path) -> list[Check]:
    out = []
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".doctor-", delete=True):
            pass
        out.append(Check("state dir", OK, f"{state_dir} is writable"))
    except OSError as e:
        out.append(Check("state dir", FAIL, f"{state_dir} is not writable: {e.strerror or e}",
                         "fix its permissions or choose another --state-dir"))
    reg = state_dir / "registry.json"
    if not reg.exists():
        out.append(Check("registry", OK, f"{reg} does not exist yet (no services registered)"))
        return out
    from runtimed.state.registry import parse_document

    try:
        entries, _ = parse_document(reg.read_bytes())
        out.append(Check("registry", OK, f"{reg} is valid ({plural(len(entries), 'service')})"))
    except (RegistryError, OSError) as e:
        out.append(Check("registry", FAIL, f"{reg}: {e}",
                         "start runtimed: it keeps the bad file and loads registry.last-good.json"))
    return out


def run_checks(client: DaemonClient, home: Path | None = None, codex_home: Path | None = None) -> list[Check]:
    checks: list[Check] = []
    status: dict[str, Any] | None = None
    try:
        status = client.get("/api/status", timeout=5)
        checks.append(Check("daemon", OK, f"runtimed {status['version']} (pid {status['pid']}) at {client.url}"))
    except ClientError as e:
        checks.append(Check("daemon", FAIL, str(e), "start it with: runtimed"))
        checks.append(_port_holder(client.url))
    from runtimed.config.settings import default_state_dir

    state_dir = Path(status["stateDir"]) if status else Path(os.environ.get("RUNTIMED_STATE_DIR") or default_state_dir())
    checks += _state_dir_checks(state_dir)
    try:
        import importlib.metadata

        import wasmtime  # noqa: F401

        checks.append(Check("wasmtime", OK, f"wasmtime {importlib.metadata.version('wasmtime')} imports"))
    except Exception as e:
        checks.append(Check("wasmtime", FAIL, f"wasmtime does not import: {e}", "pip install wasmtime"))
    if status is not None:
        try:
            services = client.get("/api/services", timeout=5)["services"]
        except ClientError as e:
            services = []
            checks.append(Check("services", FAIL, str(e)))
        for s in services:
            name = f"service {s['name']}"
            if s["state"] == "RUNNING" and s["health"] in ("HEALTHY", "UNKNOWN"):
                checks.append(Check(name, OK, f"RUNNING, {s['health']}"))
            elif s["state"] == "RUNNING":
                checks.append(Check(name, WARN, f"RUNNING but {s['health']}: {s.get('healthDetail') or ''}".strip(),
                                    f"runtimectl show {s['name']}"))
            elif s["health"] == "UNAUTHORIZED" and (s.get("origin") or {}).get("authRef") == "oauth":
                checks.append(Check(name, WARN, f"{s['state']}: waiting for a sign-in ({s.get('healthDetail') or ''})",
                                    f"runtimectl auth login {s['name']}"))
            elif s["state"] in ("CRASHED", "QUARANTINED"):
                checks.append(Check(name, FAIL, f"{s['state']}: {s.get('lastError') or s.get('quarantineReason') or ''}",
                                    failed_service_hint(s)))
            else:
                checks.append(Check(name, OK if s["state"] in ("STOPPED", "REGISTERED", "STARTING") else WARN, s["state"]))
        checks += _bootstrap_checks(status, home, codex_home)
    return checks


def failed_service_hint(s: dict[str, Any]) -> str:
    """What to do about a CRASHED or QUARANTINED service, from what its last failure means."""
    name, cause = s["name"], s.get("lastErrorCause")
    again = f"runtimectl {'unquarantine' if s['state'] == 'QUARANTINED' else 'start'} {name}"
    if not cause:
        return f"runtimectl logs {name}; then {again}"
    why = explain_cause(cause, s.get("originLabel"))
    if cause in ("refused", "connect-timeout"):
        return f"{why} Once it runs: {again}"
    if cause in ("dns", "not-found"):
        return (f"{why}; the URL identifies the service, so a retry cannot help: runtimectl remove {name}, then "
                f"runtimectl add THE-RIGHT-URL")
    if cause == "unauthorized":
        return f"{why}; to give another: runtimectl set {name} --auth-ref env:VAR; then {again}"
    return f"{why}; then {again}"


def _bootstrap_checks(status: dict[str, Any], home: Path | None, codex_home: Path | None) -> list[Check]:
    from runtimed import bootstrap

    endpoint = status["endpoints"]["mcp"]
    out = []
    try:
        entries = bootstrap.status(endpoint=endpoint, token_configured=bool(status.get("authRequired")),
                                   scopes=("user", "project"), home=home, codex_home=codex_home)
    except Exception as e:
        return [Check("bootstrap", WARN, f"could not read client configs: {e}")]
    for client in bootstrap.CLIENTS:
        mine = [e for e in entries if e.client == client]
        present = [e for e in mine if e.entry_present]
        errors = [e for e in mine if e.error]
        name = f"bootstrap {client}"
        if errors:
            out.append(Check(name, FAIL, errors[0].error or "unreadable", "fix the file, then runtimectl bootstrap"))
        elif not present:
            out.append(Check(name, WARN, f"no entry in {mine[0].path}" if mine else "no entry",
                             f"runtimectl bootstrap --clients {client}"))
        elif all(e.points_here and not e.drift for e in present):
            out.append(Check(name, OK, ", ".join(f"{e.path} ({e.transport})" for e in present)))
        else:
            drift = "; ".join(d for e in present for d in e.drift) or "points elsewhere"
            out.append(Check(name, FAIL, drift, f"runtimectl bootstrap --clients {client}"))
    return out


def doctor(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Check the daemon, the state dir, wasmtime, every service and the client configs."""
    try:
        client = daemon_client(ctx, timeout=5)
    except ClientError as e:
        raise fail(str(e), EXIT_USAGE) from None
    checks = run_checks(client)
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        sys.stdout.write(json.dumps({"ok": not failed, "checks": [c.to_json() for c in checks]}, indent=2) + "\n")
    else:
        for c in checks:
            line = f"{MARKS[c.status]} {c.name}: {c.detail}"
            if c.hint and c.status != OK:
                line += f"  → {c.hint}"
            print(line)
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the root app."""
    app.command("doctor")(doctor)
