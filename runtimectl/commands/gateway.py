"""``runtimectl gateway serve --stdio``: the gateway for clients that only speak stdio.

Owns the command (its options, the endpoint it bridges: the daemon's ``/mcp``,
``/mcp/<service>`` or a profile's ``/mcp/@NAME``); the relaying itself is
``runtimectl.bridge``. Must not: relay anything itself, write to stdout (the bridge owns it), or import
``runtimectl.cli``.
"""

from __future__ import annotations

import asyncio

import typer

from runtimectl.bridge import run_bridge
from runtimectl.context import EXIT_USAGE, fail, options

gateway_app = typer.Typer(help="The gateway as seen by clients.", no_args_is_help=True)


@gateway_app.command("serve")
def serve(
    ctx: typer.Context,
    stdio: bool = typer.Option(False, "--stdio", help="relay MCP over stdin/stdout to the daemon's /mcp"),
    service: str | None = typer.Option(None, "--service", help="bridge /mcp/<service> instead of the aggregate"),
    profile: str | None = typer.Option(None, "--profile", metavar="NAME",
                                       help="bridge profile NAME's endpoint, /mcp/@NAME, instead of the aggregate"),
) -> None:
    """Serve the gateway to a client that only speaks stdio."""
    if not stdio:
        raise fail("only --stdio is offered (HTTP clients use the daemon's /mcp directly)", EXIT_USAGE)
    if service and profile:
        raise fail("give --service or --profile, not both", EXIT_USAGE)
    opts = options(ctx)
    endpoint = f"{opts.base_url}/mcp" + (f"/{service}" if service else f"/@{profile}" if profile else "")
    try:
        asyncio.run(run_bridge(endpoint, opts.resolved_token))
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add the ``gateway`` group to the root app."""
    app.add_typer(gateway_app, name="gateway")
