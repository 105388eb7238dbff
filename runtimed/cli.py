"""The ``runtimed`` command: parse flags, validate settings, take the state
dir, bind the port and serve until SIGINT/SIGTERM.

Owns process start-up and shutdown order, what the daemon says on stderr while
it starts and stops (the signal it got, what it is waiting for, the services it
stops, that it exits), and the one-line error messages for everything that can
stop the daemon from starting: a port already served by another runtimed names
it (pid, state dir, address). Must not hold daemon logic.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

from runtimed import __version__
from runtimed.config.settings import Settings, load_settings
from runtimed.errors import ConfigError, RegistryError, StateDirBusy, StoreUnavailable
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
    p.add_argument("--store", help="where state is kept and shared: 'embedded' (default: the state dir) or "
                                    "redis://HOST:PORT/DB for several replicas (or RUNTIMED_STORE)")
    p.add_argument("--replica", help="this daemon's name among replicas (default host-pid-random; or RUNTIMED_REPLICA)")
    p.add_argument("--oauth-issuer", help="accept on /mcp the OAuth access tokens of this authorization server "
                                           "(or RUNTIMED_OAUTH_ISSUER; docs/spec/auth.md)")
    p.add_argument("--oauth-audience", help="the resource URI tokens must be issued for (default <base url>/mcp)")
    p.add_argument("--oauth-scopes", help="comma-separated scopes every token must carry")
    p.add_argument("--public-url", help="this daemon's address as browsers reach it (https behind a proxy): the "
                                        "redirect of OAuth sign-ins to upstreams, and the Client ID Metadata Document")
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
        if e.errno == errno.EADDRINUSE:
            raise SystemExit(_fail(_port_in_use(settings))) from None
        raise SystemExit(_fail(f"cannot listen on {settings.host}:{settings.port}: {e.strerror or e} "
                               "(choose another address with --host or port with --port)")) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _port_in_use(settings: Settings) -> str:
    """Who holds the port: another runtimed (named by its pid and state dir when it tells us), or
    another program."""
    import httpx

    host = settings.host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    base = f"http://{host if ':' not in host else f'[{host}]'}:{settings.port}"
    where = f"{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {settings.auth_token}"} if settings.auth_token else {}
    try:
        health = httpx.get(f"{base}/healthz", timeout=2.0).json()
        is_runtimed = isinstance(health, dict) and health.get("ok") is True and "version" in health
    except (httpx.HTTPError, ValueError):
        is_runtimed = False
    if not is_runtimed:
        return (f"cannot listen on {where}: the port is in use by another program (not a runtimed: it does not "
                "answer /healthz as one); stop it or choose another port with --port")
    try:
        r = httpx.get(f"{base}/api/status", headers=headers, timeout=2.0)
        status = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        status = None
    if not isinstance(status, dict):
        return (f"another runtimed (version {health.get('version')}) is already serving {base}; it asks for a "
                "token, so its pid and state dir are not shown (`runtimectl --token T status` shows them). Stop it, "
                "or choose another port with --port")
    pid, state_dir = status.get("pid"), status.get("stateDir")
    return (f"another runtimed (pid {pid}, state dir {state_dir}, version {status.get('version')}) is already "
            f"serving {base}; stop it (runtimectl daemon stop --state-dir {state_dir}, or kill {pid}) or choose "
            "another port with --port")


def _say(message: str) -> None:
    """One line on stderr, safe from a signal handler (one ``write``, no buffer to re-enter)."""
    try:
        os.write(2, f"runtimed: {message}\n".encode(errors="replace"))
    except OSError:
        pass


def _server_class(daemon: Any, grace: float) -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, saying which signal it got and what the shutdown waits for."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            name = signal.Signals(sig).name
            if not self.should_exit:
                calls = daemon.in_flight()
                waiting = (f"finishing {calls} in-flight call{'s' if calls != 1 else ''} (up to {grace:g}s)"
                           if calls else "no call in flight")
                again = "; Ctrl-C again stops at once" if sig == signal.SIGINT else ""
                _say(f"{name} received: shutting down: {waiting}, then stopping the services{again}")
            elif sig == signal.SIGINT:
                _say("SIGINT again: stopping at once")
            super().handle_exit(sig, frame)

    return Server


def _fail(message: str) -> int:
    print(f"runtimed: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {
        "host": args.host, "port": args.port, "state_dir": args.state_dir, "auth_token": args.auth_token,
        "log_level": args.log_level, "admin_tools": args.admin_tools, "store": args.store, "replica": args.replica,
        "oauth_issuer": args.oauth_issuer, "oauth_audience": args.oauth_audience, "public_url": args.public_url,
        "oauth_scopes": [x.strip() for x in args.oauth_scopes.split(",") if x.strip()] if args.oauth_scopes else None,
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

    # The state dir first: a second daemon on the same state dir (and so, usually, the same port)
    # is named by the lock's record rather than by "address already in use".
    lock = StateDirLock(settings.state_dir)
    try:
        lock.acquire()
    except StateDirBusy as e:
        return _fail(str(e))
    try:
        sock = _bind(settings)
    except SystemExit:
        lock.release()
        raise
    settings.port = sock.getsockname()[1]
    lock.record(settings.base_url)

    from runtimed.daemon import Daemon, build_app

    try:
        daemon = Daemon(settings, say=_say)
        problems = daemon.load()
    except (RegistryError, StoreUnavailable, ConfigError) as e:
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
    server = _server_class(daemon, settings.shutdown_grace_s)(config)
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
    _say("stopped; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
