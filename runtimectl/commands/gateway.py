"""``runtimectl gateway serve --stdio``: the gateway for clients that only speak stdio.

Owns the command (its options, the endpoint it bridges: the daemon's ``/mcp``,
``/mcp/<service>`` or a profile's ``/mcp/@NAME``, and the token it sends:
``--token``/``RUNTIMED_AUTH_TOKEN``, or with ``--token-env VAR`` the variable
VAR only, so that entries side by side each send their own scoped token); the relaying itself is
``runtimectl.bridge``. Must not: relay anything itself, write to stdout (the bridge owns it), or import
``runtimectl.cli``.
"""

from __future__ import annotations

import asyncio
import os
import re

import typer

from runtimectl.bridge import run_bridge
from runtimectl.context import EXIT_USAGE, fail, options

_TOKEN_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # as runtimed.bootstrap.entries.TOKEN_ENV_PATTERN

gateway_app = typer.Typer(help="The gateway as seen by clients.", no_args_is_help=True)


@gateway_app.command("serve")
def serve(
    ctx: typer.Context,
    stdio: bool = typer.Option(False, "--stdio", help="relay MCP over stdin/stdout to the daemon's /mcp"),
    service: str | None = typer.Option(None, "--service", help="bridge /mcp/<service> instead of the aggregate"),
    profile: str | None = typer.Option(None, "--profile", metavar="NAME",
                                       help="bridge profile NAME's endpoint, /mcp/@NAME, instead of the aggregate"),
    token_env: str | None = typer.Option(None, "--token-env", metavar="VAR",
                                         help="send the token in environment variable VAR (not --token or "
                                              "RUNTIMED_AUTH_TOKEN)"),
) -> None:
    """Serve the gateway to a client that only speaks stdio."""
    if not stdio:
        raise fail("only --stdio is offered (HTTP clients use the daemon's /mcp directly)", EXIT_USAGE)
    if service and profile:
        raise fail("give --service or --profile, not both", EXIT_USAGE)
    opts = options(ctx)
    token = opts.resolved_token
    if token_env is not None:
        if not _TOKEN_ENV_RE.fullmatch(token_env):
            raise fail(f"--token-env {token_env!r}: an environment variable name is a letter or '_' followed by "
                       "at most 127 letters, digits or '_'", EXIT_USAGE)
        token = os.environ.get(token_env) or None
        if token is None:
            raise fail(f"--token-env {token_env}: {token_env} is not set in this environment (export it where "
                       "the client starts, e.g. with a token from runtimectl token create --profile NAME)")
    endpoint = f"{opts.base_url}/mcp" + (f"/{service}" if service else f"/@{profile}" if profile else "")
    try:
        asyncio.run(run_bridge(endpoint, token))
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add the ``gateway`` group to the root app."""
    app.add_typer(gateway_app, name="gateway")
