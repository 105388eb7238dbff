"""``runtimectl bootstrap``: point Codex and Claude Code at the gateway.

A thin wrapper over ``runtimed.bootstrap`` (which owns the file formats and
the safe writes): resolves the endpoint and whether a token is needed from the
running daemon, then plans, shows and applies. Owns only the CLI surface
(``bootstrap``, ``bootstrap remove``, ``bootstrap status``). Must not: know a
client's file format, write files itself, or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from runtimectl.context import EXIT_FAILURE, EXIT_USAGE, client, fail, options
from runtimed import bootstrap as bs
from runtimed.errors import ClientError

bootstrap_app = typer.Typer(help="Write the Codex and Claude Code configs so agents use the one endpoint.",
                            invoke_without_command=True)


def _daemon_endpoint(ctx: typer.Context) -> tuple[str, bool, str | None]:
    """(mcp endpoint, token required, warning) from the running daemon, or from --url."""
    try:
        status = client(ctx, timeout=5).get("/api/status")
        return status["endpoints"]["mcp"], bool(status.get("authRequired")), None
    except ClientError as e:
        opts = options(ctx)
        base = opts.base_url
        return f"{base}/mcp", opts.resolved_token is not None, f"{e}; using {base}/mcp"


def _clients(value: str) -> list[str]:
    items = [c.strip() for c in value.split(",") if c.strip()]
    bad = [c for c in items if c not in bs.CLIENTS]
    if not items or bad:
        raise fail(f"--clients takes a comma-separated list of {', '.join(bs.CLIENTS)}, not {value!r}", EXIT_USAGE)
    return items


def _show(plan: bs.Plan, result: bs.Result | None, as_json: bool, dry_run: bool, warning: str | None) -> None:
    if as_json:
        data = plan.to_dict()
        data["dryRun"] = dry_run
        if result is not None:
            data["result"] = result.to_dict()
        if warning:
            data["warning"] = warning
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(plan.describe())
    if dry_run:
        diff = plan.diff()
        if diff:
            print(diff, end="" if diff.endswith("\n") else "\n")
        print("dry run: nothing written")
    elif result is not None:
        for src, dst in result.backups.items():
            print(f"backup    {src} -> {dst}")


@bootstrap_app.callback()
def bootstrap(
    ctx: typer.Context,
    clients: str = typer.Option("codex,claude", "--clients", help="comma-separated: codex, claude"),
    transport: str = typer.Option("http", "--transport", help="http or stdio"),
    endpoint: str | None = typer.Option(None, "--endpoint", help="default: the running daemon's /mcp"),
    name: str = typer.Option("runtime", "--name", help="the server's name in the client configs"),
    scope: str = typer.Option("user", "--scope", help="user or project"),
    project_dir: Path = typer.Option(Path("."), "--project-dir", help="the project, for --scope project"),
    update_agents_md: bool = typer.Option(False, "--update-agents-md", help="add a managed block to ./AGENTS.md"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would change, write nothing"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add (or update) the gateway entry in each client's config."""
    if ctx.invoked_subcommand is not None:
        return
    if transport not in bs.TRANSPORTS:
        raise fail(f"--transport must be http or stdio, not {transport!r}", EXIT_USAGE)
    if scope not in bs.SCOPES:
        raise fail(f"--scope must be user or project, not {scope!r}", EXIT_USAGE)
    found, token_needed, warning = _daemon_endpoint(ctx)
    try:
        plan = bs.plan_bootstrap(
            _clients(clients), endpoint=endpoint or found, transport=transport, name=name, scope=scope,
            project_dir=project_dir, token_configured=token_needed, runtimectl_path=bs.default_runtimectl_path(),
            update_agents_md=update_agents_md,
        )
        result = None if dry_run else bs.apply_plan(plan)
    except bs.BootstrapError as e:
        raise fail(str(e)) from None
    _show(plan, result, as_json, dry_run, warning if endpoint is None else None)


@bootstrap_app.command("remove")
def remove(
    clients: str = typer.Option("codex,claude", "--clients"),
    name: str = typer.Option("runtime", "--name"),
    scope: str = typer.Option("user", "--scope"),
    project_dir: Path = typer.Option(Path("."), "--project-dir"),
    update_agents_md: bool = typer.Option(False, "--update-agents-md", help="also remove the AGENTS.md block"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove the gateway entry from each client's config (other entries stay)."""
    try:
        plan = bs.plan_remove(_clients(clients), name=name, scope=scope, project_dir=project_dir,
                              update_agents_md=update_agents_md)
        result = None if dry_run else bs.apply_plan(plan)
    except bs.BootstrapError as e:
        raise fail(str(e)) from None
    _show(plan, result, as_json, dry_run, None)


@bootstrap_app.command("status")
def status(
    ctx: typer.Context,
    clients: str = typer.Option("codex,claude", "--clients"),
    name: str = typer.Option("runtime", "--name"),
    project_dir: Path = typer.Option(Path("."), "--project-dir"),
    endpoint: str | None = typer.Option(None, "--endpoint"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """For each client: the file, whether the entry exists, its transport and endpoint, and drift."""
    found, token_needed, warning = _daemon_endpoint(ctx)
    try:
        entries = bs.status(_clients(clients), endpoint=endpoint or found, name=name, scopes=("user", "project"),
                            project_dir=project_dir, token_configured=token_needed)
    except bs.BootstrapError as e:
        raise fail(str(e)) from None
    if as_json:
        rows = [{"client": x.client, "scope": x.scope, "path": str(x.path), "fileExists": x.file_exists,
                 "entryPresent": x.entry_present, "transport": x.transport, "endpoint": x.endpoint,
                 "pointsHere": x.points_here, "drift": list(x.drift), "error": x.error} for x in entries]
        sys.stdout.write(json.dumps({"endpoint": endpoint or found, "entries": rows}, indent=2) + "\n")
        return
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    for entry in entries:
        if entry.error:
            state = f"error: {entry.error}"
        elif not entry.entry_present:
            state = "no entry"
        else:
            state = f"{entry.transport} {entry.endpoint or ''}".strip()
            state += "  (this daemon)" if entry.points_here and not entry.drift else f"  DRIFT: {'; '.join(entry.drift)}"
        print(f"{entry.client:<7} {entry.scope:<8} {entry.path}: {state}")
    if any(x.error or (x.entry_present and (x.drift or not x.points_here)) for x in entries):
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Add the ``bootstrap`` group to the root app."""
    app.add_typer(bootstrap_app, name="bootstrap")
