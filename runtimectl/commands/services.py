"""The service commands: ``add``, ``set``, ``edit``, ``add-all``, ``apply`` (the profiles of a
file too, through ``profiles``),
``list``, ``status``, ``start``/``stop``/``restart``/``unquarantine``,
``introspect`` and ``remove``.

Owns these commands' options, their human and ``--json`` renderings and exit
codes (1 when a service ends up CRASHED or QUARANTINED, or a file of a batch
failed), how ``add`` reads its command line (``add [OPTIONS] TARGET`` or
``add [OPTIONS] -- COMMAND [ARGS...]``), and changing a registered service
without wiping what was not mentioned: ``add`` (and ``add-all``) of an origin
that is registered already, ``set`` and ``edit`` (the editor loop) send the
daemon a merge patch (``PATCH /api/services/{ref}``). Manifests and patches
from flags and files come from ``manifests``; ``show`` and ``logs`` live in
``show``. Must not: hold daemon logic or import ``runtimectl.cli``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from runtimectl.client import DaemonClient
from runtimectl.commands.editor import edit_until_valid
from runtimectl.commands.manifests import (
    STDIO_LIMIT_FLAGS,
    StdioFlags,
    build_manifest,
    combine,
    is_profile,
    is_target_like,
    load_manifest_file,
    oauth_options,
    parse_env,
    parse_labels,
    parse_rate,
    parse_size,
    relative_paths_in,
    split_list,
    stdio_hint,
    unset_patch,
    update_patch,
)
from runtimectl.commands.profiles import save_profile, say_saved
from runtimectl.commands.show import interface_counts
from runtimectl.context import (
    EXIT_FAILURE,
    JsonOpt,
    client,
    emit_json,
    err,
    fail,
    out,
    plural,
    say_changes,
    service_argument,
    usage,
)
from runtimed.config.changes import make_patch
from runtimed.config.manifest import parse_manifest
from runtimed.errors import ClientError, DaemonError, DaemonUnavailable, ManifestError

_FAILED_STATES = ("CRASHED", "QUARANTINED")


def _apply(ctx: typer.Context, manifest: dict[str, Any], start: bool | None,
           keep_unreachable: bool = True) -> dict[str, Any]:
    params = {} if start is None else {"start": str(start).lower()}
    if not keep_unreachable:
        params["keepUnreachable"] = "false"
    res: dict[str, Any] = client(ctx).post("/api/services", json=manifest, params=params)
    return res


def _say_applied(res: dict[str, Any]) -> None:
    svc = res["service"]
    verb = "added" if res.get("created") else "updated"
    extra = f" ({svc['lastError']})" if svc.get("lastError") else ""
    out.print(f"{verb} {svc['name']} ({svc['id']}): {svc['state']}{extra}", markup=False)
    backend, origin = svc.get("backend") or {}, svc.get("origin") or {}
    if backend.get("transportInUse") == "sse" and origin.get("transport") != "sse":
        out.print(f"note: {origin.get('url')} speaks the older HTTP+SSE transport, not Streamable HTTP: runtimed "
                  f"falls back to it at each start (runtimectl set {svc['name']} --transport sse skips the first "
                  f"try)", markup=False)


def _say_sign_in(svc: dict[str, Any]) -> None:
    """The hint for a service that waits for an OAuth sign-in (``authRef: "oauth"``, stopped or refused)."""
    waiting = svc.get("state") == "STOPPED" or (svc.get("health") == "UNAUTHORIZED" and svc.get("state") != "RUNNING")
    if (svc.get("origin") or {}).get("authRef") == "oauth" and waiting:
        out.print(f"{svc['name']} needs a sign-in: runtimectl auth login {svc['name']}", markup=False)


_STDIO_ARGV = "runtimectl.add.stdio_argv"  # ctx.meta key: the words after --, when there is a --


class AddCommand(TyperCommand):
    """``add``'s parsing: the words after the first ``--`` are a stdio server's command line, kept whole for
    ``add`` (click would read them as more TARGETs); a command given without ``--`` gets a hint instead of
    click's "unexpected extra argument" or "no such option: -y"."""

    # ``ctx`` is typer's vendored click Context (Any: the vendored module is private).
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta[_STDIO_ARGV] = list(args[cut + 1:])
            args = list(args[:cut])
        else:
            options, words = self._split_options(args)
            if len(words) > 1 and not words[0].startswith("-") and not is_target_like(words[0]):
                raise usage(f"TARGET is one .wasm/.wat file or http(s) URL, and {shlex.join(words)!r} looks like a "
                            f"command: {stdio_hint(words, options)}")
        return super().parse_args(ctx, args)

    def _split_options(self, args: list[str]) -> tuple[list[str], list[str]]:
        """``args`` split into ``add``'s own options (with their values) and the other words, in order."""
        takes_value: dict[str, bool] = {}
        for param in self.params:
            if param.param_type_name == "option":
                for opt in (*param.opts, *param.secondary_opts):
                    takes_value[opt] = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        options: list[str] = []
        words: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            key, eq, _ = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if key in takes_value:
                n = 2 if takes_value[key] and not eq else 1
                options += args[i:i + n]
                i += n
            else:
                words.append(arg)
                i += 1
        return options, words

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- COMMAND [ARGS]...]"]


def add(
    ctx: typer.Context,
    target: str | None = typer.Argument(
        None, show_default=False, metavar="TARGET",
        help="a .wasm/.wat file, or the http(s) URL of a remote MCP server; for a stdio server give no TARGET "
             "but its command after --: runtimectl add [OPTIONS] -- npx -y PACKAGE"),
    name: str | None = typer.Option(None, "--name", help="service name (default: derived from TARGET or the command)"),
    namespace: str | None = typer.Option(None, "--namespace", help="tool namespace (default: the name)"),
    transport: str | None = typer.Option(None, "--transport", help="streamable_http (default) or sse"),
    auth_ref: str | None = typer.Option(None, "--auth-ref", "--auth", help="env:VAR, file:relative/path, "
                                        "header_env:Header:VAR, or oauth (the gateway signs in: runtimectl auth login)"),
    oauth_client_id: str | None = typer.Option(None, "--oauth-client-id", metavar="ID",
                                               help="--auth oauth: a client registered beforehand with the "
                                                    "authorization server (default: registered by the gateway)"),
    oauth_client_secret_ref: str | None = typer.Option(None, "--oauth-client-secret-ref", metavar="REF",
                                                       help="--auth oauth: that client's secret, env:VAR or "
                                                            "file:relative/path"),
    oauth_scopes: str | None = typer.Option(None, "--oauth-scopes", metavar="A,B",
                                            help="--auth oauth: scopes to ask for (default: what the server asks)"),
    oauth_grant: str | None = typer.Option(None, "--oauth-grant", metavar="GRANT",
                                           help="--auth oauth: authorization_code (a user signs in; the default) or "
                                                "client_credentials (the client id and secret; no user)"),
    timeout_ms: int | None = typer.Option(None, "--timeout-ms", help="per-call timeout"),
    allow_tools: str | None = typer.Option(None, "--allow-tools", help="comma-separated names or globs"),
    deny_tools: str | None = typer.Option(None, "--deny-tools", help="comma-separated names or globs"),
    read_only: bool = typer.Option(False, "--read-only", help="expose only tools annotated readOnlyHint"),
    pin_tools: bool | None = typer.Option(None, "--pin-tools/--no-pin-tools", show_default=False,
                                          help="withhold a tool whose definition changed since it was first seen "
                                               "until it is approved (runtimectl approve)"),
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
    env: list[str] = typer.Option([], "--env", help="stdio: KEY=VALUE for the server's environment (repeatable); "
                                  "VALUE may be env:VAR (the daemon's variable) or file:relative/path (under the "
                                  "state dir's secrets/), and must be one for a credential (…_TOKEN, …_KEY...)"),
    cwd: str | None = typer.Option(None, "--cwd", help="stdio: the server's working folder (relative to here; "
                                   "default: a folder of its own under the daemon's state dir)"),
    per_client: bool = typer.Option(False, "--per-client", help="stdio: one server process per client session "
                                    "(default: one shared by every client)"),
    memory_bytes: str | None = typer.Option(None, "--memory-bytes", help="stdio: address-space limit, e.g. 4G "
                                            "(Node and the JVM reserve a lot: several GiB, or leave unset)"),
    cpu_seconds: int | None = typer.Option(None, "--cpu-seconds", help="stdio: CPU time limit over the process's life"),
    open_files: int | None = typer.Option(None, "--open-files", help="stdio: open file descriptors limit"),
    start_timeout_ms: int | None = typer.Option(None, "--start-timeout-ms",
                                                help="stdio: how long the server may take to answer initialize"),
    as_json: bool = JsonOpt,
) -> None:
    """Register a service (and start it unless --no-start).

    TARGET is a .wasm/.wat file or an http(s) URL. A stdio server is given by its command after --, run
    without a shell: runtimectl add --name files -- npx -y @modelcontextprotocol/server-filesystem /srv.
    Options go before the --; everything after it belongs to the command.
    """
    policy = policy_flags(transport=transport, restart=restart, timeout_ms=timeout_ms, allow_tools=allow_tools,
                          deny_tools=deny_tools, read_only=read_only or None, max_payload_bytes=max_payload_bytes,
                          max_concurrency=max_concurrency, max_queue=max_queue, queue_timeout_ms=queue_timeout_ms,
                          rate_limit=rate_limit, cache_ttl=cache_ttl, cache_tools=cache_tools, cache_needs_ttl=True)
    command: list[str] | None = ctx.meta.get(_STDIO_ARGV)
    stdio = StdioFlags(env=tuple(env), cwd=cwd, per_client=per_client, limits={
        "memoryBytes": parse_size(memory_bytes, "--memory-bytes") if memory_bytes is not None else None,
        "cpuSeconds": cpu_seconds, "openFiles": open_files, "startTimeoutMs": start_timeout_ms})
    oauth = oauth_options(is_oauth=auth_ref == "oauth", client_id=oauth_client_id,
                          client_secret_ref=oauth_client_secret_ref, scopes=oauth_scopes, grant=oauth_grant)
    here = Path.cwd()
    manifest = build_manifest(target, name, namespace, transport, auth_ref, policy, description, label, restart,
                              max_restarts, autostart=not no_autostart, command=command, stdio=stdio, here=here,
                              oauth=oauth, pin_tools=pin_tools)
    if command is not None and cwd is None:
        for arg in relative_paths_in(command[1:], here):
            err.print(f"runtimectl: note: {arg} is relative, and the server does not run here (it runs in a folder "
                      f"of its own under the daemon's state dir): add --cwd . to run it from {here}", markup=False)
    try:
        res = _add_or_update(ctx, manifest, name_given=name is not None, autostart_given=no_autostart,
                             no_start=no_start, keep_unreachable=False)
    except DaemonError as e:
        if e.status != 502:
            raise
        res = _unreachable(ctx, manifest, str(e))
    if as_json:
        emit_json(res)
    elif res["created"] or res["changes"]:
        _say_applied(res)
        say_changes(res.get("changes") or [])
        _say_sign_in(res["service"])
    else:
        svc = res["service"]
        out.print(f"{svc['name']} ({svc['id']}) is already registered: nothing changed ({svc['state']}); "
                  f"runtimectl set {svc['name']} --FLAG VALUE changes a field, runtimectl edit {svc['name']} "
                  f"the whole manifest", markup=False)
    if res["service"]["state"] in _FAILED_STATES:
        raise typer.Exit(EXIT_FAILURE)


def _unreachable(ctx: typer.Context, manifest: dict[str, Any], why: str) -> dict[str, Any]:
    """The daemon refused to keep a new service whose origin cannot be reached (``why``: the cause and what
    to check). At a terminal the user is asked whether to register it anyway, without starting it; else (or
    answered no) nothing is registered: exit 1."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise fail(f"{why} (--no-start registers it without trying)")
    err.print(f"runtimectl: {why}", markup=False)
    try:
        keep = typer.confirm("Register it anyway, without starting it?", default=False, err=True)
    except typer.Abort:
        keep = False
    if not keep:
        raise typer.Exit(EXIT_FAILURE)
    res = _apply(ctx, manifest, start=False)
    name = res["service"]["name"]
    err.print(f"runtimectl: registered, not started: runtimectl start {name} once the server is up", markup=False)
    return res


def _add_or_update(ctx: typer.Context, manifest: dict[str, Any], *, name_given: bool, autostart_given: bool,
                   no_start: bool, keep_unreachable: bool = True) -> dict[str, Any]:
    """Register ``manifest``; when its origin is registered already (one origin is one service), change only
    what the flags gave (issue 14, item 9) and start it unless ``no_start``. The daemon's answer, with the
    changed fields under ``changes`` for an update. ``keep_unreachable=False``: a new service whose origin
    cannot be reached is not kept (the daemon answers 502, ``DaemonError``)."""
    existing = _registered_as(ctx, manifest)
    if existing is None:
        return _apply(ctx, manifest, start=False if no_start else None, keep_unreachable=keep_unreachable)
    patch = update_patch(manifest, name_given=name_given, autostart_given=autostart_given)
    res: dict[str, Any] = client(ctx).patch(f"/api/services/{existing['id']}", json=patch,
                                            params={} if no_start else {"start": "true"})
    return res


def policy_flags(*, transport: str | None, restart: str | None, timeout_ms: int | None, allow_tools: str | None,
                 deny_tools: str | None, read_only: bool | None, max_payload_bytes: int | None,
                 max_concurrency: int | None, max_queue: int | None, queue_timeout_ms: int | None,
                 rate_limit: str | None, cache_ttl: float | None, cache_tools: str | None,
                 cache_needs_ttl: bool) -> dict[str, Any]:
    """The policy flags of ``add`` and ``set`` checked (a usage error says which is wrong) and as the manifest's
    ``policy`` (None: not given)."""
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
    if cache_tools and not cache_ttl and cache_needs_ttl:
        raise usage("--cache-tools needs --cache-ttl")
    cache: dict[str, Any] | None = None
    if cache_ttl or cache_tools is not None:
        cache = {"ttlSeconds": cache_ttl} if cache_ttl else {}
        if cache_tools is not None or cache_needs_ttl:
            cache["tools"] = split_list(cache_tools) or []
    return {
        "timeoutMs": timeout_ms, "allowedTools": split_list(allow_tools), "deniedTools": split_list(deny_tools),
        "readOnly": read_only, "maxPayloadBytes": max_payload_bytes, "maxConcurrency": max_concurrency,
        "maxQueue": max_queue, "queueTimeoutMs": queue_timeout_ms,
        "rateLimit": parse_rate(rate_limit) if rate_limit else None, "cache": cache,
    }


def _registered_as(ctx: typer.Context, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The registered service with this manifest's origin (one origin is one service), or None. A manifest
    the schema refuses is for the daemon to refuse, with its own words: None."""
    try:
        sid = parse_manifest(manifest).id
    except ManifestError:
        return None
    try:
        found: dict[str, Any] = client(ctx).get(f"/api/services/{sid}")
    except DaemonError as e:
        if e.status == 404:
            return None
        raise
    return found


def set_(
    ctx: typer.Context,
    service: str = service_argument(),
    name: str | None = typer.Option(None, "--name", help="rename (a tool namespace that followed the name follows it)"),
    namespace: str | None = typer.Option(None, "--namespace", help="tool namespace"),
    description: str | None = typer.Option(None, "--description"),
    label: list[str] = typer.Option([], "--label", help="key=value, added to the others (repeatable)"),
    transport: str | None = typer.Option(None, "--transport", help="remote: streamable_http or sse"),
    auth_ref: str | None = typer.Option(None, "--auth-ref", "--auth", help="remote: env:VAR, file:relative/path, "
                                        "header_env:Header:VAR, or oauth (runtimectl auth login signs it in)"),
    oauth_client_id: str | None = typer.Option(None, "--oauth-client-id", metavar="ID",
                                               help="--auth oauth: a client registered beforehand with the "
                                                    "authorization server (default: registered by the gateway)"),
    oauth_client_secret_ref: str | None = typer.Option(None, "--oauth-client-secret-ref", metavar="REF",
                                                       help="--auth oauth: that client's secret, env:VAR or "
                                                            "file:relative/path"),
    oauth_scopes: str | None = typer.Option(None, "--oauth-scopes", metavar="A,B",
                                            help="--auth oauth: scopes to ask for (default: what the server asks)"),
    oauth_grant: str | None = typer.Option(None, "--oauth-grant", metavar="GRANT",
                                           help="--auth oauth: authorization_code (a user signs in; the default) or "
                                                "client_credentials (the client id and secret; no user)"),
    timeout_ms: int | None = typer.Option(None, "--timeout-ms", help="per-call timeout"),
    allow_tools: str | None = typer.Option(None, "--allow-tools", help="comma-separated names or globs"),
    deny_tools: str | None = typer.Option(None, "--deny-tools", help="comma-separated names or globs"),
    read_only: bool | None = typer.Option(None, "--read-only/--no-read-only",
                                          help="expose only tools annotated readOnlyHint", show_default=False),
    pin_tools: bool | None = typer.Option(None, "--pin-tools/--no-pin-tools", show_default=False,
                                          help="withhold a tool whose definition changed since it was approved, "
                                               "until it is approved again (runtimectl approve)"),
    max_payload_bytes: int | None = typer.Option(None, "--max-payload-bytes"),
    max_concurrency: int | None = typer.Option(None, "--max-concurrency"),
    max_queue: int | None = typer.Option(None, "--max-queue"),
    queue_timeout_ms: int | None = typer.Option(None, "--queue-timeout-ms"),
    rate_limit: str | None = typer.Option(None, "--rate-limit", help="e.g. 10/day, 5/second"),
    cache_ttl: float | None = typer.Option(None, "--cache-ttl", help="seconds to keep cacheable results"),
    cache_tools: str | None = typer.Option(None, "--cache-tools", help="comma-separated cacheable tools (globs)"),
    restart: str | None = typer.Option(None, "--restart", help="never, on-failure or always"),
    max_restarts: int | None = typer.Option(None, "--max-restarts"),
    autostart: bool | None = typer.Option(None, "--autostart/--no-autostart", help="start when the daemon boots",
                                          show_default=False),
    enabled: bool | None = typer.Option(None, "--enable/--disable", help="a disabled service is stopped and never "
                                        "started", show_default=False),
    env: list[str] = typer.Option([], "--env", help="stdio: KEY=VALUE, added to the others (repeatable; a "
                                  "credential must be env:VAR or file:relative/path)"),
    per_client: bool | None = typer.Option(None, "--per-client/--shared", help="stdio: one server process per "
                                           "client session, or one for all", show_default=False),
    memory_bytes: str | None = typer.Option(None, "--memory-bytes", help="stdio: address-space limit, e.g. 4G"),
    cpu_seconds: int | None = typer.Option(None, "--cpu-seconds", help="stdio: CPU time limit"),
    open_files: int | None = typer.Option(None, "--open-files", help="stdio: open file descriptors limit"),
    start_timeout_ms: int | None = typer.Option(None, "--start-timeout-ms", help="stdio: how long initialize may take"),
    unset: list[str] = typer.Option([], "--unset", metavar="FLAG", help="give a field back its default: a flag's "
                                    "name without -- (rate-limit, deny-tools...), label:KEY or env:KEY (repeatable)"),
    as_json: bool = JsonOpt,
) -> None:
    """Change fields of a registered service; everything else stays as it is.

    runtimectl set crm --timeout-ms 20000 --unset rate-limit. The daemon checks the whole manifest before
    anything changes; a running service keeps running (a changed origin restarts it, --disable stops it).
    """
    pol = policy_flags(transport=transport, restart=restart, timeout_ms=timeout_ms, allow_tools=allow_tools,
                       deny_tools=deny_tools, read_only=read_only, max_payload_bytes=max_payload_bytes,
                       max_concurrency=max_concurrency, max_queue=max_queue, queue_timeout_ms=queue_timeout_ms,
                       rate_limit=rate_limit, cache_ttl=cache_ttl, cache_tools=cache_tools, cache_needs_ttl=False)
    for key, value in (("memoryBytes", memory_bytes), ("cpuSeconds", cpu_seconds), ("openFiles", open_files),
                       ("startTimeoutMs", start_timeout_ms)):
        if isinstance(value, int) and value <= 0:
            raise usage(f"{STDIO_LIMIT_FLAGS[key]} must be greater than 0, not {value}")
    limits = {"memoryBytes": parse_size(memory_bytes, "--memory-bytes") if memory_bytes is not None else None,
              "cpuSeconds": cpu_seconds, "openFiles": open_files, "startTimeoutMs": start_timeout_ms}
    labels = parse_labels(label)
    oauth_flags = {"client_id": oauth_client_id, "client_secret_ref": oauth_client_secret_ref, "scopes": oauth_scopes,
                   "grant": oauth_grant}
    # Checked again below once the service's own auth is known; here: the flags alone (a grant's name, --auth).
    oauth = oauth_options(is_oauth=auth_ref in (None, "oauth"), **oauth_flags)
    origin: dict[str, Any] = {"transport": transport, "authRef": auth_ref, "env": parse_env(env) or None,
                              "limits": {k: v for k, v in limits.items() if v is not None} or None,
                              "clientSessions": None if per_client is None else ("per-client" if per_client else "shared")}
    origin_patch = {k: v for k, v in origin.items() if v is not None}
    if oauth is not None:
        origin_patch["oauth"] = oauth
    elif auth_ref is not None and auth_ref != "oauth":
        origin_patch["oauth"] = None  # another auth: the oauth options go (the daemon refuses them without it)
    spec: dict[str, Any] = {
        "toolNamespace": namespace, "autostart": autostart, "enabled": enabled, "pinTools": pin_tools,
        "policy": {k: v for k, v in pol.items() if v is not None} or None,
        "restartPolicy": {k: v for k, v in (("mode", restart), ("maxRestarts", max_restarts)) if v is not None} or None,
        "origin": origin_patch or None,
    }
    meta = {"name": name, "description": description, "labels": labels or None}
    patch: dict[str, Any] = {}
    if any(v is not None for v in meta.values()):
        patch["metadata"] = {k: v for k, v in meta.items() if v is not None}
    if any(v is not None for v in spec.values()):
        patch["spec"] = {k: v for k, v in spec.items() if v is not None}
    patch = combine(patch, unset_patch(unset))
    if not patch:
        raise usage("nothing to change: give the flags to change (runtimectl set SERVICE --timeout-ms 5000), "
                    "--unset FLAG, or runtimectl edit SERVICE")
    c = client(ctx)
    current = c.get(f"/api/services/{service}")
    kind = current["origin"]["type"]
    _only_for(kind, "stdio", [f for f, given in (("--env", env), ("--per-client/--shared", per_client is not None),
                                                  *((STDIO_LIMIT_FLAGS[k], v is not None) for k, v in limits.items()))
                              if given], "stdio servers (a command after --)")
    oauth_given = [f"--oauth-{k.replace('_', '-')}" for k, v in oauth_flags.items() if v is not None]
    _only_for(kind, "remote_mcp", [f for f, given in (("--transport", transport), ("--auth-ref", auth_ref)) if given]
              + oauth_given, "remote URLs")
    if oauth is not None and auth_ref is None:  # the flags change the oauth options of a service that has them
        oauth_options(is_oauth=current["origin"].get("authRef") == "oauth", **oauth_flags)
    res = c.patch(f"/api/services/{service}", json=patch)
    if as_json:
        emit_json(res)
        return
    svc, changes = res["service"], res["changes"]
    if not changes:
        out.print(f"{svc['name']}: nothing changed", markup=False)
        return
    out.print(f"{svc['name']}: {plural(len(changes), 'change')}", markup=False)
    say_changes(changes)
    _say_sign_in(svc)


_KIND_WORDS = {"stdio": "stdio servers", "remote_mcp": "remote URLs", "local_wasm": "WASM files"}


def _only_for(kind: str, wanted: str, flags: list[str], what: str) -> None:
    if flags and kind != wanted:
        verb = "applies" if len(flags) == 1 else "apply"
        raise usage(f"{', '.join(flags)} {verb} to {what}, not to {_KIND_WORDS.get(kind, kind)}")


def edit(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Edit a service's manifest in $VISUAL or $EDITOR (default vi); it is checked before anything changes.

    A mistake opens the editor again, the problem written at the top (answer n to leave, nothing changed);
    an unchanged file changes nothing.
    """
    c = client(ctx)
    svc = c.get(f"/api/services/{service}")
    original: dict[str, Any] = svc["manifest"]
    res = edit_until_valid(f"edit {svc['name']} ({svc['id']})", f"edit {svc['name']}", f"{svc['name']}.json",
                           json.dumps(original, indent=2), lambda body: _try_edit(c, svc, original, body))
    if res is None:
        out.print(f"{svc['name']}: no changes", markup=False)
    elif as_json:
        emit_json(res)
    elif not res["changes"]:
        out.print(f"{res['service']['name']}: no changes", markup=False)
    else:
        out.print(f"{res['service']['name']}: {plural(len(res['changes']), 'change')}", markup=False)
        say_changes(res["changes"])


def _try_edit(c: DaemonClient, svc: dict[str, Any], original: dict[str, Any],
              body: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the problem with the edited manifest, None) or (None, the daemon's answer; None: nothing to change)."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        return f"not valid JSON: {e}", None
    try:
        parse_manifest(doc)
    except ManifestError as e:
        return str(e), None
    patch = make_patch(original, doc)
    if not patch:
        return None, None
    try:
        res: dict[str, Any] = c.patch(f"/api/services/{svc['id']}", json=patch)
    except DaemonError as e:
        if 400 <= e.status < 500:
            return str(e), None
        raise
    return None, res


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
            res = _add_or_update(ctx, manifest, name_given=False, autostart_given=False, no_start=no_start)
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
    file: str = typer.Option(..., "-f", "--file", help="manifest file (.json or .toml; - for stdin): MCPService and "
                             "MCPProfile documents; a relative WASM path or stdio cwd in it is taken from its "
                             "folder (for -, from here)"),
    no_start: bool = typer.Option(False, "--no-start"),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update services and profiles from a manifest file (each document whole)."""
    results: list[dict[str, Any]] = []
    failed = 0
    for m in load_manifest_file(file):
        try:
            if is_profile(m):
                results.append(save_profile(client(ctx), m))
            else:
                results.append(_apply(ctx, m, start=False if no_start else None))
        except DaemonUnavailable:
            raise
        except ClientError as e:
            failed += 1
            name = (m.get("metadata") or {}).get("name") if isinstance(m.get("metadata"), dict) else None
            results.append({"error": str(e), "name": name, "kind": m.get("kind")})
    if as_json:
        emit_json({"results": results, "failed": failed})
    else:
        for r in results:
            if "error" in r:
                what = f"profile {r['name']}" if r.get("kind") == "MCPProfile" and r.get("name") else r.get("name")
                err.print(f"runtimectl: {what or 'manifest'}: {r['error']}", markup=False)
            elif "profile" in r:
                say_saved(r)
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


def start(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Start a service."""
    _lifecycle(ctx, "start", service, as_json)


def stop(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Stop a service."""
    _lifecycle(ctx, "stop", service, as_json)


def restart(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Restart a service (reloads a changed WASM file)."""
    _lifecycle(ctx, "restart", service, as_json)


def unquarantine(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Lift a quarantine and start the service again."""
    _lifecycle(ctx, "unquarantine", service, as_json)


def introspect(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Refresh a service's cached interface from the service itself."""
    c = client(ctx, timeout=120)
    c.post(f"/api/services/{service}/introspect")
    iface = c.get(f"/api/services/{service}/interface")
    if as_json:
        emit_json(iface)
        return
    out.print(f"revision {iface['revision']}: {interface_counts(iface)}", markup=False)
    if iface.get("lastDiff"):
        out.print(f"last change: {json.dumps(iface['lastDiff'])}", markup=False)


def remove(
    ctx: typer.Context,
    service: str = service_argument(),
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
    app.command(cls=AddCommand)(add)
    app.command("set")(set_)
    app.command()(edit)
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
