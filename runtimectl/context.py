"""What every ``runtimectl`` command shares: the global options, the daemon
client built from them, and the output conventions.

Owns the ``--url``/``--token`` options (``RUNTIMED_URL``/``RUNTIMED_AUTH_TOKEN``)
and ``--version``, how they reach a command (typer's context object,
``ctx.obj``), building the ``DaemonClient`` from them, the SERVICE argument
(completed from the daemon's service names: ``service_argument``), the two
consoles (stdout for results, stderr for messages), ``--json`` output, the
text helpers every table shares (``plural``, ``shorten``), a manifest's changes
(``say_changes``), and the exit codes
(0 ok, 1 failure, 2 usage). Must not: define commands, talk to the daemon
itself (completion's one quiet lookup aside), or import ``runtimectl.cli`` or
any command module (they import this one).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from runtimectl.client import DaemonClient, resolve_token, resolve_url
from runtimed import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# Piped output is for grep and scripts: never cut a URL to fit 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4096)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = typer.Option(False, "--json", help="machine-readable output")


@dataclass(frozen=True)
class GlobalOptions:
    """The root command's options, as given (None: not given; the client falls back to the environment)."""

    url: str | None = None
    token: str | None = None

    @property
    def base_url(self) -> str:
        return resolve_url(self.url)

    @property
    def resolved_token(self) -> str | None:
        return resolve_token(self.token)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"runtimectl {__version__}\n")
        raise typer.Exit()


# The root callback (no docstring: the app's help text is the Typer's own).
def global_options(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", envvar="RUNTIMED_URL", help="daemon URL (default http://127.0.0.1:4707)"),
    token: str | None = typer.Option(None, "--token", envvar="RUNTIMED_AUTH_TOKEN", help="bearer token", show_default=False),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print runtimectl's version and exit"),
) -> None:
    ctx.obj = GlobalOptions(url, token)


def complete_service(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of a SERVICE argument: the daemon's service names starting with ``incomplete``.
    Quiet and quick: no daemon (or any error) completes nothing rather than printing into the shell."""
    root = ctx.find_root()
    try:
        services = DaemonClient(root.params.get("url"), root.params.get("token"), timeout=1.0).get("/api/services")
        names = [s["name"] for s in services["services"]]
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def service_argument(default: Any = ..., help: str = "name or id") -> Any:
    """The SERVICE argument of a command (a name or an id), completed from the daemon's service names."""
    return typer.Argument(default, help=help, autocompletion=complete_service, show_default=False)


def options(ctx: typer.Context) -> GlobalOptions:
    """The global options of this invocation (sub-command contexts inherit the root's ``obj``)."""
    found = ctx.find_object(GlobalOptions)
    return found if found is not None else GlobalOptions()


def client(ctx: typer.Context, timeout: float = 60.0) -> DaemonClient:
    """The daemon client for this invocation; raises ``ClientError`` for a URL that is not http(s)."""
    opts = options(ctx)
    return DaemonClient(opts.url, opts.token, timeout=timeout)


def usage(message: str) -> typer.Exit:
    """Print a usage error on the stderr console; the caller raises the returned exit (code 2)."""
    err.print(f"runtimectl: {message}", markup=False)
    return typer.Exit(EXIT_USAGE)


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``runtimectl: message`` to stderr as plain text; the caller raises the returned exit."""
    print(f"runtimectl: {message}", file=sys.stderr)
    return typer.Exit(code)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 tool``, ``2 tools`` (``many``: the plural when it is not ``word + "s"``)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def shorten(text: str | None, width: int = 80) -> str:
    """A description's first line in at most ``width`` characters, cut at a word with an ellipsis
    (also when later lines were left out)."""
    lines = (text or "").strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) <= width and len(lines) <= 1:
        return first
    if len(first) > width - 1:
        cut = first[:width - 1]
        space = cut.rfind(" ")
        first = (cut[:space] if space > width // 2 else cut).rstrip()
    return first + "…"


def _change_value(value: Any) -> str:
    if value is None:
        return "(default)"
    return value if isinstance(value, str) else json.dumps(value)


def say_changes(changes: list[dict[str, Any]]) -> None:
    """A manifest's changes (``runtimed.config.changes.field_changes``), one line each:
    ``  spec.policy.timeoutMs: (default) → 5000``."""
    for c in changes:
        out.print(f"  {c['field']}: {_change_value(c['from'])} → {_change_value(c['to'])}", markup=False)


def emit_json(data: Any) -> None:
    """The ``--json`` rendering: indented, keys in the order given."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
