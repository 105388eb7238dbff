"""``runtimectl import``: register the MCP servers a client already has
(Claude Code, Claude Desktop, Codex, Cursor, VS Code, or a config file) as
services of the daemon.

Owns the command's options, registering each planned manifest through the
same call ``add`` makes (``services._apply``: ``POST /api/services``; the
manifests carry ``runtimed/imported-*`` labels saying where each entry was),
and the human and ``--json`` renderings: ``added``/``skipped``/``failed`` per
entry, the variables to export where the daemon runs, and per file what to
do with the entries now served twice: run ``runtimectl bootstrap
--replace-imported`` (Codex, Claude Code) or remove them by hand (the clients
bootstrap does not write); exit 1 when an entry failed (a skipped one is no
failure), 2 for bad usage. Reading the clients' files and building the manifests is
``runtimectl.importers``. Must not: read a client's file format itself, print
a secret value, write any client file, or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from runtimectl import importers
from runtimectl.commands.services import _apply
from runtimectl.context import EXIT_FAILURE, JsonOpt, client, emit_json, options, out, usage
from runtimed.bootstrap.locations import Locations
from runtimed.errors import ClientError, DaemonUnavailable

_FAILED_STATES = ("CRASHED", "QUARANTINED")
_REGISTERED = ("added", "updated", "would-add")


def import_(
    ctx: typer.Context,
    source: str = typer.Option(..., "--from", metavar="CLIENT|FILE",
                               help=f"{', '.join(importers.CLIENTS)}, or the path of a client's config file"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the manifests that would be registered; contact no daemon"),
    project: Path | None = typer.Option(None, "--project", help="the project whose servers to read (default: here)"),
    no_start: bool = typer.Option(False, "--no-start", help="register without starting"),
    as_json: bool = JsonOpt,
) -> None:
    """Register the MCP servers a client already has (secrets become env:VAR references)."""
    if project is not None and not project.expanduser().is_dir():
        raise usage(f"--project {project}: not a folder")
    if source not in importers.CLIENTS and not Path(source).expanduser().is_file():
        raise usage(f"--from takes {', '.join(importers.CLIENTS)} or the path of a config file; "
                    f"{source}: no such file")
    loc = Locations.resolve(project_dir=project)
    found = importers.read(source, loc)
    base = options(ctx).base_url
    plans = importers.plan(found.entries, loc, [base])
    daemon_base: str | None = None
    if not dry_run and any(p.manifest is not None for p in plans):
        daemon_base = _daemon_base(ctx)  # and a clear error now when it is not running, rather than per entry
        if daemon_base and daemon_base != base:  # the address it advertises: entries pointing there are it too
            plans = importers.plan(found.entries, loc, [base, daemon_base])

    results: list[dict[str, Any]] = []
    shown_source: importers.Source | None = None
    if not as_json:
        _say_sources(source, found)
    for p in plans:
        if not as_json and p.source is not shown_source and len(found.sources) > 1:
            out.print(f"{p.source.describe()}:", markup=False)
            shown_source = p.source
        r = _register(ctx, p, dry_run, no_start)
        results.append(r)
        if not as_json:
            _say(p, r)

    exports = _exports(plans, results)
    replace = _replace(plans, results, loc)
    counts = {k: sum(1 for r in results if r["status"] == k) for k in ("added", "updated", "would-add", "skipped", "failed")}
    if as_json:
        emit_json({"from": source, "dryRun": dry_run, "project": str(loc.project_dir),
                   "sources": [{"path": str(s.path), "section": s.section, "client": s.client,
                                "entries": found.count(s)} for s in found.sources],
                   "lookedAt": [str(f) for f in dict.fromkeys(found.looked_at)],
                   "results": results, "exports": [e.to_dict() for e in exports], "replace": replace,
                   "counts": counts})
    elif plans:
        if exports:
            out.print("set these where runtimed runs (their values were not copied):", markup=False)
            for e in exports:
                out.print(f"  {e.hint()}", markup=False)
        if dry_run:
            out.print(f"dry run: {counts['would-add']} to register, {counts['skipped']} skipped; nothing sent to the daemon",
                      markup=False)
        for line in _replace_hints(replace, daemon_base or base):
            out.print(line, markup=False)
    if any(r["status"] == "failed" or r.get("state") in _FAILED_STATES for r in results):
        raise typer.Exit(EXIT_FAILURE)


def _daemon_base(ctx: typer.Context) -> str | None:
    """The base URL the daemon gives for its own ``/mcp``; raises ``DaemonUnavailable`` when it is not running."""
    try:
        status = client(ctx, timeout=10).get("/api/status")
    except DaemonUnavailable:
        raise
    except ClientError:
        return None  # a refusal (401...): registering will say what is wrong, entry by entry
    mcp = str((status.get("endpoints") or {}).get("mcp", "")) if isinstance(status, dict) else ""
    return mcp[: -len("/mcp")] if mcp.endswith("/mcp") else None


def _say_sources(source: str, found: importers.Found) -> None:
    if not found.sources:
        what = importers.CLIENT_LABELS.get(source, source)
        looked = ", ".join(str(p) for p in dict.fromkeys(found.looked_at))
        out.print(f"nothing to import: no {what} MCP servers found (looked at {looked})", markup=False)
    elif not found.entries:
        out.print(f"nothing to import: {', '.join(s.describe() for s in found.sources)} lists no servers", markup=False)
    elif len(found.sources) == 1:
        out.print(f"{found.sources[0].describe()}:", markup=False)


def _register(ctx: typer.Context, p: importers.Plan, dry_run: bool, no_start: bool) -> dict[str, Any]:
    r = p.to_dict()
    if p.manifest is None:
        r["status"] = "skipped"
        return r
    if dry_run:
        r["status"] = "would-add"
        return r
    try:
        res = _apply(ctx, p.manifest, start=False if no_start else None)
    except ClientError as e:  # the daemon refused it, or stopped answering: this entry failed, the rest still go
        r["status"], r["error"] = "failed", str(e)
        return r
    svc = res["service"]
    r["status"] = "added" if res.get("created") else "updated"
    r.update(id=svc.get("id"), state=svc.get("state"))
    if svc.get("lastError"):
        r["lastError"] = svc["lastError"]
    return r


def _say(p: importers.Plan, r: dict[str, Any]) -> None:
    status = r["status"]
    if status == "skipped":
        out.print(f"skipped {p.key}: {p.skipped}", markup=False)
        return
    if status == "failed":
        named = "" if p.name == p.key else f" (as {p.name})"
        out.print(f"failed {p.key}{named}: {r['error']}", markup=False)
        return
    verb = "would add" if status == "would-add" else status
    renamed = "" if p.name == p.key else f" [from {p.key}]"
    line = f"{verb} {p.name} ({p.summary}){renamed}"
    if r.get("state") in _FAILED_STATES:
        line += f", but it is {r['state']}" + (f": {r['lastError']}" if r.get("lastError") else "")
    out.print(line, markup=False)
    for note in p.notes:
        out.print(f"  note: {note}", markup=False)
    if status == "would-add":
        out.print(f"  manifest: {json.dumps(p.manifest)}", markup=False)


def _replace(plans: list[importers.Plan], results: list[dict[str, Any]], loc: Locations) -> list[dict[str, Any]]:
    """Per file, the entries registered (or to be) and the bootstrap that takes them out of it (None: by hand)."""
    by_source: dict[importers.Source, list[str]] = {}
    for p, r in zip(plans, results, strict=True):
        if r["status"] in _REGISTERED:
            by_source.setdefault(p.source, []).append(p.key)
    out = []
    for source, keys in by_source.items():
        target = importers.bootstrap_target(source.path, loc)
        out.append({"path": str(source.path), "section": source.section, "client": source.client, "keys": keys,
                    "command": target.command() if target is not None else None})
    return out


def _replace_hints(replace: list[dict[str, Any]], base: str) -> list[str]:
    """One line per bootstrap command, one per file bootstrap does not write."""
    lines: list[str] = []
    for item in replace:
        if item["command"] is not None:
            line = f"run `{item['command']}` to replace these entries in the client with the single gateway entry"
        else:
            what = "this file" if item["client"] == "file" else f"{item['client']}'s config"
            line = (f"remove {', '.join(item['keys'])} from {item['path']} ({item['section']}) by hand: the gateway "
                    f"serves them now; `runtimectl bootstrap` does not write {what}: add the gateway to it yourself "
                    f"({base}/mcp, or the stdio bridge `runtimectl gateway serve --stdio`)")
        if line not in lines:
            lines.append(line)
    return lines


def _exports(plans: list[importers.Plan], results: list[dict[str, Any]]) -> list[importers.Export]:
    """The variables to export for the services registered (or to be), each once."""
    seen: dict[str, importers.Export] = {}
    for p, r in zip(plans, results, strict=True):
        if r["status"] in ("added", "updated", "would-add"):
            for e in p.exports:
                seen.setdefault(e.var, e)
    return list(seen.values())


def register(app: typer.Typer) -> None:
    """Add ``import`` to the root app."""
    app.command("import")(import_)
