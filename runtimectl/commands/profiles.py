"""``runtimectl profile``: named, narrowed views of the gateway, each served at ``/mcp/@NAME``.

Owns ``profile create NAME`` (a ``kind: MCPProfile`` manifest built from flags: services and tools
to include and exclude, per-tool overrides keyed by the tool's public name on ``/mcp``, where
prompts and resources come from, the mode, ``pinTools``; checked here with the daemon's own model
so that a malformed flag is a usage error, then ``POST /api/profiles``), ``profile list``,
``profile show NAME`` (the manifest in words and the tools it serves: shown name, original,
service), ``profile edit NAME`` (the manifest in the editor, ``runtimectl.commands.editor``) and
``profile remove NAME``, their human and ``--json`` renderings, the PROFILE argument's completion,
and ``save_profile``/``say_saved`` which ``apply -f`` uses for the profiles of a file. Must not:
decide what a profile serves (the daemon does), or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from runtimectl.client import DaemonClient
from runtimectl.commands.editor import edit_until_valid
from runtimectl.commands.manifests import parse_labels
from runtimectl.context import JsonOpt, client, emit_json, err, out, plural, say_changes, shorten, usage
from runtimed.config.changes import field_changes
from runtimed.config.profile import PROFILE_KIND, parse_profile
from runtimed.errors import DaemonError, ManifestError

MODES = ("full", "search")

profile_app = typer.Typer(
    help="Profiles: one endpoint per kind of agent (/mcp/@NAME), serving the tools you choose, renamed or "
         "described as you say, in full or search mode.",
    no_args_is_help=True)


def complete_profile(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a PROFILE argument: the daemon's profile names starting with ``incomplete``.
    Quiet and quick: no daemon (or any error) completes nothing."""
    root = ctx.find_root()
    try:
        listed = DaemonClient(root.params.get("url"), root.params.get("token"), timeout=1.0).get("/api/profiles")
        names = [p["name"] for p in listed["profiles"]]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def _name_argument() -> Any:
    return typer.Argument(..., metavar="NAME", help="the profile's name (its endpoint is /mcp/@NAME)",
                          autocompletion=complete_profile, show_default=False)


def _path(name: str) -> str:
    return f"/api/profiles/{quote(name, safe='')}"


# -- create: flags to a manifest ------------------------------------------------------------------------------------

def _globs(items: list[str] | None) -> list[str]:
    """Repeated ``--flag GLOB`` (each may also be comma-separated) as one list, in order, each once."""
    found: list[str] = []
    for item in items or []:
        for g in item.split(","):
            g = g.strip()
            if g and g not in found:
                found.append(g)
    return found


def _pairs(flag: str, items: list[str] | None, what: str, words: str) -> list[tuple[str, str]]:
    """``--flag PUBLIC=VALUE`` items as pairs; a usage error names a malformed one (``what``: VALUE's
    metavar, ``words``: what it is, for the message)."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise usage(f"{flag} takes PUBLIC={what} (PUBLIC: the tool's name on /mcp, namespace__tool), "
                        f"not {item!r}")
        if not value.strip():
            raise usage(f"{flag} {key}=: give {words} after '='")
        pairs.append((key, value))
    return pairs


def _bool_word(flag: str, item: str, word: str) -> bool:
    lowered = word.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise usage(f"{flag} takes PUBLIC or PUBLIC=true|false, not {item!r}")


def build_profile(name: str, *, services: list[str] | None = None, exclude_services: list[str] | None = None,
                  tools: list[str] | None = None, exclude_tools: list[str] | None = None,
                  renames: list[str] | None = None, describes: list[str] | None = None,
                  hides: list[str] | None = None, read_only_hints: list[str] | None = None,
                  prompts_from: list[str] | None = None, resources_from: list[str] | None = None,
                  mode: str = "full", pin_tools: bool = False, description: str | None = None,
                  labels: list[str] | None = None) -> dict[str, Any]:
    """The ``MCPProfile`` manifest ``profile create``'s flags describe, checked with the daemon's model
    (a problem is a usage error, exit 2)."""
    if mode not in MODES:
        raise usage(f"--mode must be full or search, not {mode!r}")
    overrides: dict[str, dict[str, Any]] = {}

    def override(key: str) -> dict[str, Any]:
        return overrides.setdefault(key, {})

    for key, new in _pairs("--rename", renames, "NEW", "the name to show"):
        if "name" in override(key):
            raise usage(f"--rename {key} is given twice")
        override(key)["name"] = new.strip()
    for key, text in _pairs("--describe", describes, "TEXT", "the description"):
        if "description" in override(key):
            raise usage(f"--describe {key} is given twice")
        override(key)["description"] = text
    for item in hides or []:
        key = item.strip()
        if not key or "=" in key:
            raise usage(f"--hide takes PUBLIC (the tool's name on /mcp, namespace__tool), not {item!r}")
        override(key)["hidden"] = True
    for item in read_only_hints or []:
        key, sep, word = item.partition("=")
        key = key.strip()
        if not key:
            raise usage(f"--read-only-hint takes PUBLIC or PUBLIC=true|false, not {item!r}")
        override(key).setdefault("annotations", {})["readOnlyHint"] = _bool_word("--read-only-hint", item, word) \
            if sep else True
    spec: dict[str, Any] = {"mode": mode}
    for key, include, exclude in (("services", services, exclude_services), ("tools", tools, exclude_tools)):
        selection = {k: v for k, v in (("include", _globs(include)), ("exclude", _globs(exclude))) if v}
        if selection:
            spec[key] = selection
    for key, flag_globs in (("prompts", prompts_from), ("resources", resources_from)):
        if flag_globs:
            spec[key] = {"include": _globs(flag_globs)}
    if overrides:
        spec["overrides"] = overrides
    if pin_tools:
        spec["pinTools"] = True
    metadata: dict[str, Any] = {"name": name}
    if description:
        metadata["description"] = description
    if labels:
        metadata["labels"] = parse_labels(labels)
    manifest = {"apiVersion": "runtimed/v1", "kind": PROFILE_KIND, "metadata": metadata, "spec": spec}
    try:
        parse_profile(manifest)
    except ManifestError as e:
        raise usage(f"profile {name}: {e}") from None
    return manifest


def save_profile(c: DaemonClient, manifest: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/profiles``: ``{"profile": summary, "created": bool}`` (False: it replaced one)."""
    res: dict[str, Any] = c.post("/api/profiles", json=manifest)
    return {**res, "created": c.last_status == 201}


def _mode_words(p: dict[str, Any]) -> str:
    return f"{p.get('mode', 'full')} mode, {plural(int(p.get('toolCount') or 0), 'tool')}"


def say_saved(res: dict[str, Any], verb: str | None = None) -> None:
    """One line for a saved profile: ``added profile dev: http://.../mcp/@dev (full mode, 5 tools)``."""
    p = res["profile"]
    verb = verb or ("added" if res.get("created") else "updated")
    out.print(f"{verb} profile {p['name']}: {p['endpoint']} ({_mode_words(p)})", markup=False)


def _unmatched_overrides(manifest: dict[str, Any], detail: dict[str, Any]) -> list[str]:
    """Override keys that name no tool the profile serves now (a hidden one cannot be told: left out)."""
    served = {t.get("original") for t in detail.get("tools") or []}
    overrides = (manifest.get("spec") or {}).get("overrides") or {}
    return [k for k, o in overrides.items() if k not in served and not o.get("hidden")]


@profile_app.command()
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="the profile's name (its endpoint is /mcp/@NAME)"),
    service: list[str] = typer.Option(None, "--service", metavar="GLOB",
                                      help="serve these services (names or globs; repeat, or a,b; default: all)"),
    exclude_service: list[str] = typer.Option(None, "--exclude-service", metavar="GLOB",
                                              help="but not these services"),
    tool: list[str] = typer.Option(None, "--tool", metavar="GLOB",
                                   help="serve these tools, by public name (namespace__tool, globs; default: all "
                                        "of the services)"),
    exclude_tool: list[str] = typer.Option(None, "--exclude-tool", metavar="GLOB", help="but not these tools"),
    rename: list[str] = typer.Option(None, "--rename", metavar="PUBLIC=NEW",
                                     help="list tool PUBLIC as NEW (a call to NEW reaches PUBLIC)"),
    describe: list[str] = typer.Option(None, "--describe", metavar="PUBLIC=TEXT",
                                       help="replace tool PUBLIC's description with TEXT"),
    hide: list[str] = typer.Option(None, "--hide", metavar="PUBLIC", help="neither list nor serve tool PUBLIC"),
    read_only_hint: list[str] = typer.Option(None, "--read-only-hint", metavar="PUBLIC[=false]",
                                             help="annotate tool PUBLIC readOnlyHint: true (or false); policies "
                                                  "still read the upstream's own"),
    prompts_from: list[str] = typer.Option(None, "--prompts-from", metavar="GLOB",
                                           help="serve the prompts of these services (default: the selected ones)"),
    resources_from: list[str] = typer.Option(None, "--resources-from", metavar="GLOB",
                                             help="serve the resources of these services (default: the selected "
                                                  "ones)"),
    mode: str = typer.Option("full", "--mode", metavar="full|search",
                             help="full: every selected tool is listed; search: search_tools, describe_tool and "
                                  "call_tool over them (for clients that cap tool counts)"),
    pin_tools: bool = typer.Option(False, "--pin-tools", help="withhold a tool whose definition changed until "
                                                               "runtimectl approve"),
    description: str | None = typer.Option(None, "--description", metavar="TEXT"),
    label: list[str] = typer.Option(None, "--label", metavar="KEY=VALUE", help="a label (repeatable)"),
    replace: bool = typer.Option(False, "--replace", help="replace a profile of that name (default: refuse)"),
    as_json: bool = JsonOpt,
) -> None:
    """Create a profile: a named endpoint, /mcp/@NAME, serving the tools chosen by these flags.

    Tools are named by their public name on /mcp (namespace__tool: runtimectl tools lists them). A profile
    only narrows: the services' policies still apply to every call.
    """
    manifest = build_profile(name, services=service, exclude_services=exclude_service, tools=tool,
                             exclude_tools=exclude_tool, renames=rename, describes=describe, hides=hide,
                             read_only_hints=read_only_hint, prompts_from=prompts_from,
                             resources_from=resources_from, mode=mode, pin_tools=pin_tools,
                             description=description, labels=label)
    c = client(ctx)
    if not replace:
        try:
            c.get(_path(name))
        except DaemonError as e:
            if e.status != 404:
                raise
        else:
            raise usage(f"a profile named {name} exists: runtimectl profile edit {name} changes it, --replace "
                        f"replaces it")
    res = save_profile(c, manifest)
    detail: dict[str, Any] = c.get(_path(name))
    if as_json:
        emit_json({**res, "tools": detail.get("tools") or []})
        return
    say_saved(res, "created" if res["created"] else "replaced")
    for key in _unmatched_overrides(manifest, detail):
        err.print(f"note: no tool {key} is served by this profile now: an override names a tool by its public "
                  f"name on /mcp (namespace__tool; runtimectl tools lists them)", markup=False)
    if not detail.get("tools"):
        err.print("note: it serves no tool now: no running service's tool matches its selections", markup=False)
    out.print(f"wire a client to it: runtimectl bootstrap --profile {name}; a token that reaches only it: "
              f"runtimectl token create --profile {name}", markup=False)


# -- list, show ---------------------------------------------------------------------------------------------------

@profile_app.command("list")
def list_profiles(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """The profiles: name, mode, how many tools each serves, its endpoint."""
    profiles: list[dict[str, Any]] = client(ctx).get("/api/profiles")["profiles"]
    if as_json:
        emit_json(profiles)
        return
    if not profiles:
        out.print("no profiles (runtimectl profile create NAME --service GLOB makes one)", markup=False)
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("NAME", "MODE", "TOOLS", "ENDPOINT", "DESCRIPTION"):
        t.add_column(col, no_wrap=col != "DESCRIPTION")
    for p in profiles:
        mode = p["mode"] + (", pinned" if p.get("pinTools") else "")
        t.add_row(p["name"], mode, str(p["toolCount"]), p["endpoint"], shorten(p.get("description"), 50) or "-")
    out.print(t)


def _selection(sel: dict[str, Any] | None, everything: str) -> str:
    sel = sel or {}
    text = ", ".join(sel.get("include") or []) or everything
    if sel.get("exclude"):
        text += f"; except {', '.join(sel['exclude'])}"
    return text


def _override_words(o: dict[str, Any]) -> str:
    parts = []
    if o.get("hidden"):
        parts.append("hidden")
    if o.get("name"):
        parts.append(f"shown as {o['name']}")
    if o.get("description") is not None:
        parts.append(f"description {json.dumps(shorten(o['description'], 60), ensure_ascii=False)}")
    if o.get("annotations"):
        parts.append("annotations " + ", ".join(f"{k}={json.dumps(v)}" for k, v in o["annotations"].items()))
    return "; ".join(parts) or "no change"


@profile_app.command()
def show(ctx: typer.Context, name: str = _name_argument(), as_json: bool = JsonOpt) -> None:
    """One profile: its manifest in words and the tools it serves (shown name → original → service)."""
    p: dict[str, Any] = client(ctx).get(_path(name))
    if as_json:
        emit_json(p)
        return
    spec = (p.get("manifest") or {}).get("spec") or {}
    meta = (p.get("manifest") or {}).get("metadata") or {}
    lines = [f"profile {p['name']}: {p['endpoint']}"]
    if p.get("description"):
        lines.append(f"  description:    {p['description']}")
    mode = "full (every selected tool is listed)" if p["mode"] == "full" else \
        "search (clients see search_tools, describe_tool and call_tool over the tools below)"
    lines += [f"  mode:           {mode}",
              f"  services:       {_selection(spec.get('services'), 'every service')}",
              f"  tools:          {_selection(spec.get('tools'), 'every tool of those services')}",
              f"  prompts from:   {_selection(spec.get('prompts'), 'the selected services') if spec.get('prompts') is not None else 'the selected services'}",
              f"  resources from: {_selection(spec.get('resources'), 'the selected services') if spec.get('resources') is not None else 'the selected services'}",
              f"  pin tools:      {'yes: a changed tool is withheld until runtimectl approve' if p.get('pinTools') else 'no'}"]
    if meta.get("labels"):
        lines.append("  labels:         " + ", ".join(f"{k}={v}" for k, v in meta["labels"].items()))
    overrides = spec.get("overrides") or {}
    if overrides:
        lines.append("  overrides:")
        lines += [f"    {key}: {_override_words(o)}" for key, o in overrides.items()]
    for line in lines:
        out.print(line, markup=False)
    tools: list[dict[str, Any]] = p.get("tools") or []
    if not tools:
        out.print("serves no tool now (no running service's tool matches its selections)", markup=False)
        return
    out.print(f"serves {plural(len(tools), 'tool')}:", markup=False)
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("  NAME", "ORIGINAL", "SERVICE"):
        t.add_column(col, no_wrap=True)
    for tool in tools:
        original = tool.get("original") or tool["name"]
        t.add_row("  " + tool["name"], "→ " + original if original != tool["name"] else "(same)",
                  tool.get("service") or "-")
    out.print(t)


# -- edit, remove ------------------------------------------------------------------------------------------------

def _try_edit(c: DaemonClient, name: str, original: dict[str, Any],
              body: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the problem with the edited manifest, None) or (None, the daemon's answer with the changes; None:
    nothing to change)."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        return f"not valid JSON: {e}", None
    try:
        edited = parse_profile(doc)
    except ManifestError as e:
        return str(e), None
    if edited.name != name:
        return (f"metadata.name: a profile keeps its name here (its endpoint, tokens and client entries name it); "
                f"to rename, create {edited.name} and remove {name}"), None
    new = edited.public_dict()
    changes = field_changes(original, new)
    if not changes:
        return None, None
    try:
        res = save_profile(c, new)
    except DaemonError as e:
        if 400 <= e.status < 500:
            return str(e), None
        raise
    return None, {**res, "changes": changes}


@profile_app.command()
def edit(ctx: typer.Context, name: str = _name_argument(), as_json: bool = JsonOpt) -> None:
    """Edit a profile's manifest in $VISUAL or $EDITOR (default vi); it is checked before anything changes.

    A mistake opens the editor again, the problem written at the top (answer n to leave, nothing changed);
    an unchanged file changes nothing.
    """
    c = client(ctx)
    p = c.get(_path(name))
    original = parse_profile(p["manifest"]).public_dict()
    res = edit_until_valid(f"profile edit {p['name']}", f"profile edit {p['name']}", f"{p['name']}.json",
                           json.dumps(original, indent=2), lambda body: _try_edit(c, p["name"], original, body))
    if res is None:
        if as_json:
            emit_json({"profile": p, "changes": []})
        else:
            out.print(f"{p['name']}: no changes", markup=False)
        return
    if as_json:
        emit_json(res)
        return
    out.print(f"{p['name']}: {plural(len(res['changes']), 'change')} ({_mode_words(res['profile'])})", markup=False)
    say_changes(res["changes"])


@profile_app.command()
def remove(ctx: typer.Context, name: str = _name_argument(), as_json: bool = JsonOpt) -> None:
    """Remove a profile: its endpoint answers 404 from now on (on every replica)."""
    c = client(ctx)
    res: dict[str, Any] = c.delete(_path(name))
    if as_json:
        emit_json(res)
        return
    out.print(f"removed profile {res['removed']}", markup=False)
    try:
        tokens = [t for t in c.get("/api/tokens").get("tokens", []) if t.get("profile") == res["removed"]]
    except DaemonError:
        tokens = []  # not allowed to list them (or none kept): nothing to say
    if tokens:
        ids = ", ".join(t["id"] for t in tokens)
        err.print(f"note: {plural(len(tokens), 'scoped token')} ({ids}) still name it and reach nothing until a "
                  f"profile {res['removed']} exists again: runtimectl token revoke ID withdraws one", markup=False)
    out.print(f"a client wired to it by bootstrap: runtimectl bootstrap remove --profile {res['removed']}",
              markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``profile`` group to the root app."""
    app.add_typer(profile_app, name="profile")
