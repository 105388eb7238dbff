"""runtimectl: the command line for runtimed.

``cli`` builds the typer app and has ``main``; ``context`` holds what every
command shares (the global options via ``ctx.obj``, the daemon client, output
and exit codes); ``client`` is the only way to reach the daemon's ``/api``;
``bridge`` relays stdio to ``/mcp``; ``commands`` holds one module per command
group. Must not: hold daemon logic (that is ``runtimed``'s).
"""

from runtimed import __version__  # noqa: F401  (runtimectl.__version__ is the daemon's version)
