"""``runtimectl daemon``: run ``runtimed`` in the background, and install it to start at login.

Owns ``daemon start`` (a detached ``runtimed`` in its own session, its output
appended to ``<state-dir>/runtimed.log``, rotated at 5 MiB; waits until it
answers or reports the daemon's own words when it does not start), ``daemon
stop`` (SIGTERM to the pid the daemon recorded, waiting until it has let go of
its state dir), ``daemon status``, and ``daemon install``/``uninstall``: the
content of a systemd user unit or a launchd agent, written to the user's
directory for them. The pid file is the daemon's own ``runtimed.pid``, valid
while the daemon holds ``runtimed.lock`` (``StateDirLock``); the state dir is
found as ``runtimed`` finds it (``resolve_state_dir``). Must not: call
``systemctl`` or ``launchctl`` (it prints the commands to run), write a secret
into a unit, signal a process that does not hold the state dir, or import
``runtimectl.cli``.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from runtimectl.client import resolve_url
from runtimectl.context import EXIT_FAILURE, EXIT_USAGE, emit_json, fail, out, usage
from runtimed.config.settings import resolve_state_dir, user_config_path
from runtimed.errors import ConfigError
from runtimed.state.registry import StateDirLock

LOG_NAME = "runtimed.log"
LOG_MAX_BYTES = 5 * 1024 * 1024
UNIT_NAME = "runtimed.service"
LAUNCHD_LABEL = "io.mcpruntime.runtimed"
PLATFORMS = ("linux", "macos")

daemon_app = typer.Typer(help="Run runtimed in the background; install it to start at login.", no_args_is_help=True)

StateDirOpt = typer.Option(None, "--state-dir", help="the daemon's state dir (default: as runtimed finds it: "
                                                     "RUNTIMED_STATE_DIR, ~/.config/runtimed/config.toml, "
                                                     "~/.local/state/runtimed)")


def _state_dir(flag: Path | None) -> Path:
    try:
        return resolve_state_dir(flag)
    except ConfigError as e:
        raise fail(str(e), EXIT_USAGE) from None


def _running(state_dir: Path) -> dict[str, Any] | None:
    """What the running daemon of ``state_dir`` recorded (pid, address, since), or None."""
    if not state_dir.is_dir():
        return None
    try:
        return StateDirLock(state_dir).holder()
    except OSError as e:
        raise fail(f"cannot tell whether runtimed runs: {state_dir} is not readable: {e.strerror or e}") from None


def _healthy(address: str | None) -> tuple[bool, str | None]:
    if not address:
        return False, None
    try:
        r = httpx.get(f"{address}/healthz", timeout=3.0)
        body = r.json()
        return r.status_code == 200 and body.get("ok") is True, body.get("version")
    except (httpx.HTTPError, ValueError, AttributeError):
        return False, None


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# -- start, stop, status ------------------------------------------------------------------------

@daemon_app.command("start")
def start(
    state_dir: Path | None = StateDirOpt,
    host: str | None = typer.Option(None, "--host", help="address to bind (runtimed's --host)"),
    port: int | None = typer.Option(None, "--port", help="port (runtimed's --port; 0 picks a free one)"),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning or error"),
    wait: float = typer.Option(30.0, "--wait", min=1.0, help="seconds to wait for the daemon to answer"),
) -> None:
    """Start runtimed in the background (its output goes to <state-dir>/runtimed.log)."""
    state = _state_dir(state_dir)
    held = _running(state)
    if held is not None:
        out.print(f"runtimed is already running (pid {held.get('pid')}) at {held.get('address')}; "
                  f"state dir {state}", markup=False)
        return
    try:
        state.mkdir(parents=True, exist_ok=True)
        log_path = state / LOG_NAME
        if log_path.exists() and log_path.stat().st_size > LOG_MAX_BYTES:
            os.replace(log_path, log_path.with_name(LOG_NAME + ".1"))
        log = open(log_path, "ab")  # noqa: SIM115 -- handed to the child; ours is closed below
    except OSError as e:
        raise fail(f"state dir {state} is not usable: {e.strerror or e}") from None
    offset = log.tell()
    cmd = [sys.executable, "-m", "runtimed", "--state-dir", str(state)]
    for flag, value in (("--host", host), ("--port", port), ("--log-level", log_level)):
        if value is not None:
            cmd += [flag, str(value)]
    with log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=state, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            said = _read_from(log_path, offset).strip() or "(nothing)"
            raise fail(f"runtimed did not start (exit status {code}); it said: {said}\n"
                       f"(its output is in {log_path})")
        held = _running(state)
        if held is not None and held.get("pid") == proc.pid and _healthy(held.get("address"))[0]:
            address = str(held.get("address"))
            out.print(f"started runtimed (pid {proc.pid}) at {address}; state dir {state}; log {log_path}",
                      markup=False)
            if address != resolve_url(None):
                out.print(f"the other commands reach it with --url {address} (or RUNTIMED_URL={address})",
                          markup=False)
            return
        time.sleep(0.1)
    raise fail(f"runtimed (pid {proc.pid}) has not answered within {wait:g}s; it may still be starting: "
               f"`runtimectl daemon status`; its output is in {log_path}")


def _read_from(path: Path, offset: int, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


@daemon_app.command("stop")
def stop(
    state_dir: Path | None = StateDirOpt,
    timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="seconds to wait for it to stop"),
    force: bool = typer.Option(False, "--force", help="SIGKILL it if it has not stopped in --timeout"),
) -> None:
    """Stop the runtimed of this state dir (SIGTERM: in-flight calls finish, services stop)."""
    state = _state_dir(state_dir)
    held = _running(state)
    if held is None:
        out.print(f"runtimed is not running (state dir {state})", markup=False)
        return
    pid = held.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise fail(f"a runtimed holds {state} but {state / 'runtimed.pid'} does not say its pid")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise fail(f"runtimed (pid {pid}) belongs to another user; stop it as that user") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running(state) is None:
            out.print(f"stopped runtimed (pid {pid})", markup=False)
            return
        time.sleep(0.1)
    if force:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        out.print(f"killed runtimed (pid {pid}) after {timeout:g}s", markup=False)
        return
    raise fail(f"runtimed (pid {pid}) is still stopping after {timeout:g}s (it waits for calls in flight); "
               "`runtimectl daemon stop --force` kills it")


@daemon_app.command("status")
def status(state_dir: Path | None = StateDirOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether the runtimed of this state dir runs: pid, address, uptime, log file (exit 1 if not)."""
    state = _state_dir(state_dir)
    held = _running(state)
    log_path = state / LOG_NAME
    units = [p for p in (_unit_path("linux"), _unit_path("macos")) if p.exists()]
    info: dict[str, Any] = {"running": held is not None, "stateDir": str(state),
                            "logFile": str(log_path) if log_path.exists() else None,
                            "installed": [str(p) for p in units]}
    if held is not None:
        healthy, version = _healthy(held.get("address"))
        info.update(pid=held.get("pid"), address=held.get("address"), since=held.get("since"), healthy=healthy,
                    version=version)
    if as_json:
        emit_json(info)
    elif held is None:
        out.print(f"runtimed is not running (state dir {state})", markup=False)
    else:
        since = held.get("since")
        up = f", up {_duration(time.time() - since)}" if isinstance(since, int | float) else ""
        answer = "" if info["healthy"] else " — NOT answering /healthz"
        out.print(f"runtimed is running (pid {held.get('pid')}{up}) at {held.get('address')}{answer}", markup=False)
        out.print(f"state dir: {state}", markup=False)
    if not as_json:
        if info["logFile"]:
            out.print(f"log:       {log_path}", markup=False)
        for unit in units:
            out.print(f"installed: {unit}", markup=False)
    if held is None:
        raise typer.Exit(EXIT_FAILURE)


# -- install: a systemd user unit or a launchd agent ----------------------------------------------

def _platform(value: str | None) -> str:
    chosen = value or ("macos" if sys.platform == "darwin" else "linux")
    if chosen not in PLATFORMS:
        raise usage(f"--platform must be linux or macos, not {chosen!r}")
    return chosen


def _unit_path(platform: str) -> Path:
    if platform == "macos":
        return Path(os.environ.get("HOME") or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    return user_config_path().parent.parent / "systemd" / "user" / UNIT_NAME


def _systemd_escape(value: str, quote: bool = False) -> str:
    """A value as systemd reads it back: ``%`` doubled (specifiers), and double-quoted with ``\\`` and
    ``"`` escaped when it has anything but plain characters (or ``quote``)."""
    value = value.replace("%", "%%")
    if not quote and value and all(c.isalnum() or c in "-_./:=+,@" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _command(state: Path, host: str | None, port: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "runtimed", "--state-dir", str(state)]
    if host is not None:
        cmd += ["--host", host]
    if port is not None:
        cmd += ["--port", str(port)]
    return cmd


def systemd_unit(command: list[str], path_env: str, env_file: Path) -> str:
    """The text of the systemd user unit running ``command``."""
    exec_start = " ".join(_systemd_escape(a.replace("$", "$$")) for a in command)
    return "\n".join([
        "# Written by `runtimectl daemon install`; `runtimectl daemon uninstall` removes it.",
        "[Unit]",
        "Description=MCP Runtime daemon (runtimed): one /mcp endpoint for your MCP services",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
        # The shell's PATH, so stdio services (npx, uvx, ...) are found as they are from a terminal.
        f"Environment={_systemd_escape('PATH=' + path_env, quote=True)}",
        # Variables the daemon and its services need (RUNTIMED_AUTH_TOKEN, env: references), if the file exists.
        f"EnvironmentFile=-{str(env_file).replace('%', '%%')}",
        "Restart=on-failure",
        "RestartSec=2",
        "TimeoutStopSec=60",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ])


def launchd_plist(command: list[str], path_env: str, log_path: Path) -> bytes:
    """The launchd agent (a property list) running ``command`` at login."""
    return plistlib.dumps({
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": command,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "EnvironmentVariables": {"PATH": path_env},
        "StandardOutPath": str(log_path),
        "StandardErrorPath": str(log_path),
        "ProcessType": "Background",
    })


def _next_steps(platform: str, path: Path) -> list[str]:
    if platform == "macos":
        return ["to start runtimed now and at every login:",
                f"  launchctl bootstrap gui/$(id -u) {path}",
                f"stop it: launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL}; status: runtimectl daemon status"]
    return ["to start runtimed now and at every login:",
            "  systemctl --user daemon-reload",
            "  systemctl --user enable --now runtimed",
            "to keep it running when you are logged out: loginctl enable-linger $USER",
            "its output: journalctl --user -u runtimed; status: runtimectl daemon status"]


@daemon_app.command("install")
def install(
    state_dir: Path | None = StateDirOpt,
    host: str | None = typer.Option(None, "--host", help="written into the unit's runtimed command"),
    port: int | None = typer.Option(None, "--port", help="written into the unit's runtimed command"),
    platform: str | None = typer.Option(None, "--platform", help="linux (systemd) or macos (launchd); default: this one"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the file, write nothing"),
) -> None:
    """Write a systemd user unit (Linux) or a launchd agent (macOS) that starts runtimed at login."""
    chosen = _platform(platform)
    state = _state_dir(state_dir)
    command = _command(state, host, port)
    path_env = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if chosen == "macos":
        data = launchd_plist(command, path_env, state / LOG_NAME)
    else:
        data = systemd_unit(command, path_env, user_config_path().parent / "env").encode()
    path = _unit_path(chosen)
    if dry_run:
        sys.stdout.write(f"# {path}\n" + data.decode())
        return
    try:
        unchanged = path.exists() and path.read_bytes() == data
        if not unchanged:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    except OSError as e:
        raise fail(f"cannot write {path}: {e.strerror or e}") from None
    out.print(f"{'unchanged' if unchanged else 'wrote'} {path}", markup=False)
    for line in _next_steps(chosen, path):
        out.print(line, markup=False)


@daemon_app.command("uninstall")
def uninstall(
    platform: str | None = typer.Option(None, "--platform", help="linux (systemd) or macos (launchd); default: this one"),
) -> None:
    """Remove the unit or agent `daemon install` wrote (the state dir stays)."""
    chosen = _platform(platform)
    path = _unit_path(chosen)
    if chosen == "linux" and (path.parent / "default.target.wants" / UNIT_NAME).exists():
        raise fail(f"{UNIT_NAME} is enabled: run `systemctl --user disable --now runtimed` first, "
                   "then `runtimectl daemon uninstall` again")
    if not path.exists():
        out.print(f"nothing to remove: {path} does not exist", markup=False)
        return
    try:
        path.unlink()
    except OSError as e:
        raise fail(f"cannot remove {path}: {e.strerror or e}") from None
    out.print(f"removed {path}", markup=False)
    if chosen == "macos":
        out.print(f"if it is loaded: launchctl bootout gui/$(id -u)/{LAUNCHD_LABEL}", markup=False)
    else:
        out.print("then: systemctl --user daemon-reload", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``daemon`` group to the root app."""
    app.add_typer(daemon_app, name="daemon")
