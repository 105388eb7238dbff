"""The ``runtimed`` command: parse flags, validate settings, take the state
dir, bind the port and serve until SIGINT/SIGTERM.

Owns process start-up and shutdown order and the one-line error messages for
everything that can stop the daemon from starting. Must not hold daemon logic.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

from runtimed import __version__
from runtimed.config.settings import Settings, load_settings
from runtimed.errors import ConfigError, RegistryError, StateDirBusy
from runtimed.state.registry import StateDirLock


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="runtimed",
        description="MCP Runtime daemon: one /mcp endpoint in front of your MCP services.",
        epilog="Every flag also reads RUNTIMED_<NAME> (e.g. RUNTIMED_PORT), <state-dir>/config.toml and "
               "~/.config/runtimed/config.toml ($XDG_CONFIG_HOME), in that order after the flags.",
    )
    p.add_argument("--host", help="address to bind (default 127.0.0.1; non-loopback needs a token)")
    p.add_argument("--port", type=int, help="port (default 4707; 0 picks a free one)")
    p.add_argument("--state-dir", help="state directory (default $XDG_STATE_HOME/runtimed, or state_dir in ~/.config/runtimed/config.toml)")
    p.add_argument("--auth-token", help="bearer token required on /api and /mcp (or RUNTIMED_AUTH_TOKEN)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--admin-tools", action="store_true", default=None,
                   help="offer the mutating runtime__* tools on /mcp")
    p.add_argument("--version", action="version", version=f"runtimed {__version__}")
    return p


def _bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host.strip("[]"), settings.port))
    except OSError as e:
        sock.close()
        raise SystemExit(_fail(f"cannot listen on {settings.host}:{settings.port}: {e.strerror or e} "
                               "(is another program using the port? choose one with --port)")) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _fail(message: str) -> int:
    print(f"runtimed: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {
        "host": args.host, "port": args.port, "state_dir": args.state_dir, "auth_token": args.auth_token,
        "log_level": args.log_level, "admin_tools": args.admin_tools,
    }
    try:
        settings = load_settings(flags)
    except ConfigError as e:
        print(f"runtimed: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # Library request logs would repeat every upstream URL per call; keep them for --log-level debug.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if settings.log_level == "debug" else logging.WARNING)
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.state_dir, 0o700)
    except OSError as e:
        return _fail(f"state dir {settings.state_dir} is not usable: {e}")

    lock = StateDirLock(settings.state_dir)
    sock = _bind(settings)
    settings.port = sock.getsockname()[1]
    try:
        lock.acquire(settings.base_url)
    except StateDirBusy as e:
        sock.close()
        return _fail(str(e))

    from runtimed.daemon import Daemon, build_app

    try:
        daemon = Daemon(settings)
        problems = daemon.load()
    except RegistryError as e:
        lock.release()
        return _fail(str(e))
    for p in problems:
        print(f"runtimed: WARNING: registry: {p}", file=sys.stderr)

    import uvicorn

    config = uvicorn.Config(
        build_app(daemon),
        log_level="warning" if settings.log_level == "info" else settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
        access_log=settings.log_level == "debug",
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    print(f"runtimed {__version__} listening on {settings.base_url} (state dir {settings.state_dir}; "
          f"MCP endpoint {settings.base_url}/mcp)", file=sys.stderr, flush=True)
    # uvicorn re-raises the captured SIGINT/SIGTERM after its graceful shutdown;
    # with the default handlers that would kill the process (exit -15) after a
    # clean stop. A no-op handler makes a requested shutdown exit 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
