"""The ``runtimectl`` command line: the typer app and ``main``.

Owns building the root app (its help, ``-h``/``--help`` everywhere, shell
completion's ``--install-completion``/``--show-completion``, the global
``--url``/``--token``/``--version`` options from ``runtimectl.context``),
adding every command group explicitly and in the order ``--help`` lists them,
and ``main``: turning a
``ClientError`` into its message and exit code, and any other failure into
one line instead of a traceback. Must not: define commands (they live in
``runtimectl.commands``) or hold daemon logic. Nothing imports this module
except ``runtimectl.__main__`` and the ``runtimectl`` script.
"""

from __future__ import annotations

import os
import sys

import typer

from runtimectl.commands import (
    auth,
    bootstrap,
    daemon,
    doctor,
    gateway,
    imports,
    pins,
    profiles,
    services,
    show,
    tokens,
    tools,
)
from runtimectl.context import EXIT_FAILURE, err, global_options
from runtimed.errors import ClientError

app = typer.Typer(
    name="runtimectl",
    help="Control runtimed: register MCP services, drive their lifecycle, see what agents see.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.callback()(global_options)

services.register(app)  # add, set, edit, add-all, apply, list, status, start, stop, restart, unquarantine, introspect, remove
show.register(app)  # logs, show
tools.register(app)  # tools, call
pins.register(app)  # approve
profiles.register(app)  # profile create|list|show|edit|remove (group)
auth.register(app)  # auth login|status|logout (group)
tokens.register(app)  # token create|list|revoke (group)
bootstrap.register(app)  # bootstrap (group)
imports.register(app)  # import --from CLIENT|FILE
doctor.register(app)  # doctor
gateway.register(app)  # gateway serve --stdio (group)
daemon.register(app)  # daemon start|stop|status|install|uninstall (group)


def main() -> None:
    try:
        app(standalone_mode=True, prog_name="runtimectl")
    except ClientError as e:
        err.print(f"runtimectl: {e}", markup=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # never a traceback for the user
        err.print(f"runtimectl: unexpected error: {type(e).__name__}: {e}", markup=False)
        if os.environ.get("RUNTIMECTL_DEBUG"):
            raise
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
