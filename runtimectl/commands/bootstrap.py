"""``runtimectl bootstrap``: point Codex and Claude Code at the gateway.

A thin wrapper over ``runtimed.bootstrap`` (which owns the file formats and
the safe writes): resolves the endpoint and whether a token is needed from the
running daemon (with ``--profile NAME``: that profile's endpoint ``/mcp/@NAME``,
refused when the daemon has no such profile, and the entry ``runtimed-NAME``),
then plans, shows and applies. ``--token-env VAR`` makes the entries send the
token from VAR instead of ``RUNTIMED_AUTH_TOKEN`` (a profile's scoped token
beside the others; a hint says how to export one). With ``--replace-imported`` it
also asks the daemon which services ``runtimectl import`` registered (their
``runtimed/imported-*`` labels) and hands them to the plan, with a check
(``runtimectl.importers.still_imported``) that each entry still runs what its
service runs. Owns only the CLI surface (``bootstrap``, ``bootstrap remove``,
``bootstrap status``) and where backups go: ``<state-dir>/backups`` (the
running daemon's state dir when it is on this machine, else the one
``runtimed`` would use here), one per file. Must not: know a client's file
format, write files itself, or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from runtimectl import importers
from runtimectl.context import EXIT_FAILURE, EXIT_USAGE, client, fail, options
from runtimed import bootstrap as bs
from runtimed.bootstrap.locations import same_file
from runtimed.config.settings import default_state_dir, resolve_state_dir
from runtimed.errors import ClientError, ConfigError

bootstrap_app = typer.Typer(help="Write the Codex and Claude Code configs so agents use the one endpoint.",
                            invoke_without_command=True)


def _daemon_endpoint(ctx: typer.Context) -> tuple[str, bool, str | None, str | None]:
    """(mcp endpoint, token required, warning, its state dir) from the running daemon, or from --url."""
    try:
        status = client(ctx, timeout=5).get("/api/status")
        return status["endpoints"]["mcp"], bool(status.get("authRequired")), None, status.get("stateDir")
    except ClientError as e:
        opts = options(ctx)
        base = opts.base_url
        return f"{base}/mcp", opts.resolved_token is not None, f"{e}; using {base}/mcp", None


def _check_profile(ctx: typer.Context, profile: str) -> None:
    """Refuse a profile the daemon does not have, naming the ones it has."""
    try:
        listed = client(ctx, timeout=10).get("/api/profiles").get("profiles", [])
    except ClientError as e:
        raise fail(f"--profile {profile}: cannot ask the daemon which profiles exist: {e}") from None
    names = [str(p.get("name")) for p in listed]
    if profile not in names:
        known = f"the profiles are: {', '.join(names)}" if names else "there is no profile yet"
        raise fail(f"no profile named {profile!r}: {known} (runtimectl profile create NAME makes one)")


def _with_profile(endpoint: str, profile: str) -> str:
    """Profile ``profile``'s endpoint from the gateway's ``.../mcp`` (``--endpoint`` or the daemon's)."""
    try:
        return bs.profile_endpoint(endpoint, profile)
    except bs.BootstrapError as e:
        raise fail(str(e), EXIT_USAGE) from None


def _token_env(value: str | None) -> str | None:
    """``--token-env VAR``, checked as an environment variable's name (a usage error otherwise)."""
    if value is None:
        return None
    try:
        return bs.check_token_env(value)
    except bs.BootstrapError as e:
        raise fail(f"--token-env: {e}", EXIT_USAGE) from None


def token_hint(var: str, profile: str | None) -> str:
    """How to put a token into ``var`` where the clients start: a scoped token of ``profile`` (the token is
    the last line ``token create`` prints), or the daemon's token for the gateway's own endpoint."""
    if profile is None:
        return f"the entries send the token from {var}: export {var}=<the daemon's token> where the clients start"
    return (f"the entries send the token from {var}: export it where the clients start, with a token that reaches "
            f"profile {profile} (printed once, on the last line): "
            f'export {var}="$(runtimectl token create --profile {profile} | tail -n 1)"')


def _backup_dir(daemon_state_dir: str | None) -> Path:
    """``<state-dir>/backups``: the running daemon's state dir when it is a folder on this machine,
    else the state dir ``runtimed`` would use here."""
    if daemon_state_dir and Path(daemon_state_dir).is_dir():
        return Path(daemon_state_dir) / "backups"
    try:
        return resolve_state_dir() / "backups"
    except ConfigError:
        return default_state_dir() / "backups"


def _older_backups(written: tuple[Path, ...]) -> list[str]:
    """Notes for the timestamped backups earlier versions left next to the files written."""
    notes = []
    for path in written:
        old = sorted(path.parent.glob(path.name + ".*.runtimed-bak*"))
        if old:
            notes.append(f"{len(old)} older backup{'s' if len(old) != 1 else ''} of {path} from earlier versions "
                         f"{'are' if len(old) != 1 else 'is'} next to it ({path.name}.*.runtimed-bak); backups are "
                         "kept in the state dir now, one per file: remove those when you no longer need them")
    return notes


def _clients(value: str) -> list[str]:
    items = [c.strip() for c in value.split(",") if c.strip()]
    bad = [c for c in items if c not in bs.CLIENTS]
    if not items or bad:
        raise fail(f"--clients takes a comma-separated list of {', '.join(bs.CLIENTS)}, not {value!r}", EXIT_USAGE)
    return items


def _imported(ctx: typer.Context, loc: bs.Locations) -> list[tuple[bs.Imported, importers.ImportedRef]]:
    """The services ``runtimectl import`` registered, from the daemon, each with where its entry was and
    the check that the entry still runs what the service runs."""
    daemon = client(ctx, timeout=10)
    try:
        listed = daemon.get("/api/services").get("services", [])
        details = [daemon.get(f"/api/services/{s['id']}") for s in listed]
    except ClientError as e:
        raise fail(f"--replace-imported asks the daemon which services were imported: {e}") from None
    found: list[tuple[bs.Imported, importers.ImportedRef]] = []
    for svc in details:
        manifest = svc.get("manifest") or {}
        ref = importers.ImportedRef.from_labels((manifest.get("metadata") or {}).get("labels"))
        if ref is None:
            continue
        name, origin = str(svc.get("name")), dict((manifest.get("spec") or {}).get("origin") or {})

        def check(entry: dict[str, Any], ref: importers.ImportedRef = ref, name: str = name,
                  origin: dict[str, Any] = origin) -> str | None:
            return importers.still_imported(ref, name, origin, entry, loc)

        found.append((bs.Imported(ref.path, ref.key, name, check, ref.project_key), ref))
    return found


def _home_relative(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _elsewhere(plan: bs.Plan, imported: list[tuple[bs.Imported, importers.ImportedRef]], loc: bs.Locations
               ) -> list[str]:
    """Notes for the imported Codex and Claude Code entries in files this run does not write."""
    written = [c.path for c in plan.changes]
    by_command: dict[str, list[str]] = {}
    for imp, ref in imported:
        if any(same_file(imp.path, p) for p in written):
            continue
        target = importers.bootstrap_target(imp.path, loc)
        if target is not None:
            by_command.setdefault(target.command(), []).append(f"{ref.where()} in {_home_relative(imp.path)}")
    return [f"also imported: {', '.join(entries)}; `{command}` replaces them"
            for command, entries in by_command.items()]


def _show(plan: bs.Plan, result: bs.Result | None, as_json: bool, dry_run: bool, warning: str | None,
          extra_notes: list[str] | None = None) -> None:
    if as_json:
        data = plan.to_dict()
        data["dryRun"] = dry_run
        if extra_notes:
            data["notes"] = [*data["notes"], *extra_notes]
        if result is not None:
            data["result"] = result.to_dict()
        if warning:
            data["warning"] = warning
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(plan.describe())
    for note in extra_notes or ():
        print(f"note: {note}")
    if plan.removed and (dry_run or result is not None):
        for r in plan.removed:
            print(r.describe(done=not dry_run, path=_home_relative(r.path)))
    if dry_run:
        diff = plan.diff()
        if diff:
            print(diff, end="" if diff.endswith("\n") else "\n")
        print("dry run: nothing written")
    elif result is not None:
        for src, dst in result.backups.items():
            print(f"backup    {src} -> {dst}")
        for note in _older_backups(result.written):
            print(f"note: {note}")


@bootstrap_app.callback()
def bootstrap(
    ctx: typer.Context,
    clients: str = typer.Option("codex,claude", "--clients", help="comma-separated: codex, claude"),
    transport: str = typer.Option("http", "--transport", help="http or stdio"),
    endpoint: str | None = typer.Option(None, "--endpoint", help="default: the running daemon's /mcp (with "
                                        "--profile, /@NAME is added to it)"),
    profile: str | None = typer.Option(None, "--profile", metavar="NAME",
                                       help="wire the clients to profile NAME's endpoint, /mcp/@NAME, as the entry "
                                            "runtimed-NAME (several profiles sit side by side)"),
    name: str | None = typer.Option(None, "--name", help="the server's name in the client configs (default: "
                                                          "runtime; with --profile, runtimed-NAME)"),
    scope: str = typer.Option("user", "--scope", help="user or project"),
    project_dir: Path = typer.Option(Path("."), "--project-dir", help="the project, for --scope project"),
    update_agents_md: bool = typer.Option(False, "--update-agents-md", help="add a managed block to ./AGENTS.md"),
    token_env: str | None = typer.Option(
        None, "--token-env", metavar="VAR",
        help="the entries send the token from environment variable VAR instead of RUNTIMED_AUTH_TOKEN (e.g. a "
             "profile's scoped token, runtimectl token create --profile NAME)"),
    replace_imported: bool = typer.Option(
        False, "--replace-imported",
        help="also remove from these files the entries `runtimectl import` registered (when unchanged since)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would change, write nothing"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Add (or update) the gateway entry in each client's config (and, with --replace-imported, remove the
    entries the gateway now serves)."""
    if ctx.invoked_subcommand is not None:
        return
    if transport not in bs.TRANSPORTS:
        raise fail(f"--transport must be http or stdio, not {transport!r}", EXIT_USAGE)
    if scope not in bs.SCOPES:
        raise fail(f"--scope must be user or project, not {scope!r}", EXIT_USAGE)
    chosen = _clients(clients)
    var = _token_env(token_env)
    found, token_needed, warning, daemon_state_dir = _daemon_endpoint(ctx)
    if profile is not None:
        _check_profile(ctx, profile)
        endpoint = _with_profile(endpoint or found, profile)
    loc = bs.Locations.resolve(project_dir=project_dir)
    imported = _imported(ctx, loc) if replace_imported else []
    try:
        plan = bs.plan_bootstrap(
            chosen, endpoint=endpoint or found, transport=transport, name=name or bs.entry_name(profile), scope=scope,
            project_dir=project_dir, token_configured=token_needed, runtimectl_path=bs.default_runtimectl_path(),
            update_agents_md=update_agents_md, replace=[imp for imp, _ in imported], token_env=var,
        )
        result = None if dry_run else bs.apply_plan(plan, backup_dir=_backup_dir(daemon_state_dir))
    except bs.BootstrapError as e:
        raise fail(str(e)) from None
    notes = _elsewhere(plan, imported, loc)
    if var is not None and var != bs.TOKEN_ENV:
        notes.append(token_hint(var, profile))
    _show(plan, result, as_json, dry_run, warning if endpoint is None else None, notes)


@bootstrap_app.command("remove")
def remove(
    ctx: typer.Context,
    clients: str = typer.Option("codex,claude", "--clients"),
    profile: str | None = typer.Option(None, "--profile", metavar="NAME",
                                       help="remove profile NAME's entry (runtimed-NAME)"),
    name: str | None = typer.Option(None, "--name", help="default: runtime; with --profile, runtimed-NAME"),
    scope: str = typer.Option("user", "--scope"),
    project_dir: Path = typer.Option(Path("."), "--project-dir"),
    update_agents_md: bool = typer.Option(False, "--update-agents-md", help="also remove the AGENTS.md block"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove the gateway entry from each client's config (other entries stay)."""
    try:
        plan = bs.plan_remove(_clients(clients), name=name or bs.entry_name(profile), scope=scope, project_dir=project_dir,
                              update_agents_md=update_agents_md)
        result = None if dry_run else bs.apply_plan(plan, backup_dir=_backup_dir(_daemon_endpoint(ctx)[3]))
    except bs.BootstrapError as e:
        raise fail(str(e)) from None
    _show(plan, result, as_json, dry_run, None)


@bootstrap_app.command("status")
def status(
    ctx: typer.Context,
    clients: str = typer.Option("codex,claude", "--clients"),
    profile: str | None = typer.Option(None, "--profile", metavar="NAME",
                                       help="profile NAME's entry (runtimed-NAME), expected at /mcp/@NAME"),
    name: str | None = typer.Option(None, "--name", help="default: runtime; with --profile, runtimed-NAME"),
    project_dir: Path = typer.Option(Path("."), "--project-dir"),
    endpoint: str | None = typer.Option(None, "--endpoint"),
    token_env: str | None = typer.Option(None, "--token-env", metavar="VAR",
                                         help="the variable the entries should send the token from (another one is "
                                              "drift; default: any)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """For each client: the file, whether the entry exists, its transport and endpoint, and drift."""
    var = _token_env(token_env)
    found, token_needed, warning, _ = _daemon_endpoint(ctx)
    name = name or bs.entry_name(profile)
    if profile is not None:
        endpoint = _with_profile(endpoint or found, profile)
    try:
        entries = bs.status(_clients(clients), endpoint=endpoint or found, name=name, scopes=("user", "project"),
                            project_dir=project_dir, token_configured=token_needed, token_env=var)
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
