"""A stdio service's child process: how it is started, bounded, watched and ended.

Owns: the child's environment (``child_environment``: only ``PATH``, ``HOME``
and the locale of the daemon's own environment, plus what the manifest names,
its ``env:``/``file:`` references resolved at each start; the daemon's token
and secrets are never inherited), the start itself (``spawn``: no shell, its
own session and process group, resource limits by ``setrlimit``, on Linux a
parent-death signal so a daemon that dies takes its children along), the
stderr log (``StderrLog``: bounded file under ``<state_dir>/logs/`` with one
older file kept, the last lines in memory, every line with the resolved secret
values masked), the end (``terminate``: close stdin, wait, SIGTERM, wait,
SIGKILL to the whole group) and the pid files that let a daemon restarted
after ``kill -9`` end the children a previous daemon left (``reap_stale``).
Must not: speak MCP (``session``), or put a secret value in a log line,
``describe()`` or an error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from runtimed.backends.secrets import resolve_reference
from runtimed.config.manifest import StdioLimits, StdioOrigin, is_env_reference

# What a child gets of the daemon's own environment (everything else is left out).
INHERITED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ")
INHERITED_PREFIXES = ("LC_",)
DEFAULT_STDERR_BYTES = 1 << 20
STDERR_TAIL_LINES = 40
MAX_STDERR_LINE = 4096
SHUTDOWN_STDIN_S = 2.0  # after closing stdin, before SIGTERM
SHUTDOWN_TERM_S = 2.0  # after SIGTERM, before SIGKILL
PIDS_DIR = ("run", "children")
_PR_SET_PDEATHSIG = 1


def child_environment(origin: StdioOrigin, state_dir: str, environ: Mapping[str, str] | None = None,
                      ) -> tuple[dict[str, str], list[str]]:
    """The child's environment and the secret values in it (to mask in its output).

    Raises ``SecretError`` naming the variable and the reference (never a value)."""
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if k in INHERITED or k.startswith(INHERITED_PREFIXES)}
    secrets: list[str] = []
    for name, value in origin.env.items():
        if is_env_reference(value):
            resolved = resolve_reference(value, state_dir, f"env {name} ({value})", source)
            env[name] = resolved
            secrets.append(resolved)
        else:
            env[name] = value
    return env, secrets


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def _preexec(limits: StdioLimits, parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: only async-signal-safe-ish C calls, nothing
    allocated here that needs a lock another thread of the daemon may hold."""
    rlimits: list[tuple[int, int]] = []
    if limits.memoryBytes:
        rlimits.append((resource.RLIMIT_AS, limits.memoryBytes))
    if limits.cpuSeconds:
        rlimits.append((resource.RLIMIT_CPU, limits.cpuSeconds))
    if limits.openFiles:
        rlimits.append((resource.RLIMIT_NOFILE, limits.openFiles))
    prctl = _PRCTL

    def run() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # the daemon died before the line above
                os._exit(1)
        for which, value in rlimits:
            _soft, hard = resource.getrlimit(which)
            cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (cap, cap))

    return run


async def spawn(origin: StdioOrigin, env: dict[str, str], cwd: str, line_limit: int) -> asyncio.subprocess.Process:
    """Start the child (its own session and process group). Raises ``OSError`` when the
    program cannot be run (not found, not executable, a bad cwd)."""
    return await asyncio.create_subprocess_exec(
        origin.command, *origin.args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=cwd, start_new_session=True, close_fds=True, limit=line_limit,
        preexec_fn=_preexec(origin.limits, os.getpid()),
    )


def start_error(origin: StdioOrigin, e: OSError, cwd: str) -> str:
    """What to tell the user when the program could not be started."""
    if isinstance(e, FileNotFoundError):
        if not Path(cwd).is_dir():
            return f"the working directory {cwd} does not exist"
        return (f"{origin.command!r} was not found on the daemon's PATH (the child gets the daemon's PATH): "
                "install it, or give its absolute path")
    if isinstance(e, PermissionError):
        return f"{origin.command!r} is not executable (permission denied)"
    return f"{origin.command!r} could not be started: {e.strerror or type(e).__name__}"


class StderrLog:
    """The child's standard error: appended to a bounded file, the last lines kept in memory,
    each line also handed to ``emit`` (the service's log), secret values masked everywhere."""

    def __init__(self, path: Path, max_bytes: int, secrets: list[str], emit: Callable[[str], None]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._secrets = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)
        self._emit = emit
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        path.parent.mkdir(parents=True, exist_ok=True)

    def mask(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "[secret]")
        return text

    def line(self, raw: bytes) -> None:
        text = self.mask(raw[:MAX_STDERR_LINE].decode("utf-8", "replace").rstrip("\r\n"))
        if len(raw) > MAX_STDERR_LINE:
            text += " [line cut]"
        self.tail.append(text)
        self._emit(text)
        try:
            if self.path.exists() and self.path.stat().st_size > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")
        except OSError:
            pass  # a full disk must not stop the child's service

    async def pump(self, stream: asyncio.StreamReader) -> None:
        """Read ``stream`` to its end, line by line (an over-long line is cut, not fatal)."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line past the reader's limit: take what is buffered
                raw = await stream.read(MAX_STDERR_LINE)
                await _discard_line(stream)
            except (ConnectionError, OSError):
                return
            if not raw:
                return
            self.line(raw)


async def _discard_line(stream: asyncio.StreamReader) -> None:
    while True:
        try:
            await stream.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as e:
            await stream.readexactly(e.consumed)
        except asyncio.IncompleteReadError:
            return


# -- the end of a child ------------------------------------------------------------------------
def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_group(pgid: int) -> None:
    """SIGKILL the child's whole process group at once (it flooded, or it must go now)."""
    _signal_group(pgid, signal.SIGKILL)


async def terminate(proc: asyncio.subprocess.Process, stdin_s: float = SHUTDOWN_STDIN_S,
                    term_s: float = SHUTDOWN_TERM_S) -> str:
    """The stdio transport's shutdown: close stdin, wait; SIGTERM, wait; SIGKILL. Signals go to
    the child's whole process group (``npx`` runs the server as a grandchild). Returns how it
    ended ("exited", "terminated", "killed"). Must not raise."""
    pgid = proc.pid  # the leader of its own session and group
    how = "exited"
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), stdin_s)
    except TimeoutError:
        how = "terminated"
        _signal_group(pgid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), term_s)
        except TimeoutError:
            how = "killed"
    except BaseException:
        how = "killed"
    # Whatever is left of the group (the leader, or grandchildren that outlived it) is killed.
    _signal_group(pgid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 2.0)
    return how


# -- pid files: children of a daemon that died ---------------------------------------------------
def _proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(process group, session, start time in clock ticks) of a live process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    try:
        return int(fields[2]), int(fields[3]), int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_dir(state_dir: str) -> Path:
    return Path(state_dir).joinpath(*PIDS_DIR)


def record_child(state_dir: str, pid: int, service: str) -> Path | None:
    """Write the child's pid file (its group is its pid); None when it could not be written."""
    stat = _proc_stat(pid)
    path = pid_dir(state_dir) / f"{pid}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": pid, "start": stat[2] if stat else None, "service": service,
                                    "daemon": os.getpid()}))
    except OSError:
        return None
    return path


def forget_child(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _group_members(pgid: int) -> list[int]:
    """Live processes in the group and session ``pgid`` (a child's group outlives its leader)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] == pgid and stat[1] == pgid:
                out.append(int(entry.name))
    return out


def reap_stale(state_dir: str) -> list[str]:
    """End the children a previous daemon left running (it was killed before it could stop them)
    and remove their pid files. A pid now used by an unrelated process is left alone: the
    process must still be the leader of its own session (or that session's survivor) and, when
    the leader lives, have the recorded start time. Returns a line per child ended."""
    ended: list[str] = []
    directory = pid_dir(state_dir)
    if not directory.is_dir():
        return ended
    for path in directory.glob("*.json"):
        try:
            rec = json.loads(path.read_text())
            pid = int(rec["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            forget_child(path)
            continue
        if rec.get("daemon") == os.getpid():
            continue  # ours
        stat = _proc_stat(pid)
        leader_ok = stat is not None and stat[0] == pid and stat[1] == pid and stat[2] == rec.get("start")
        members = _group_members(pid) if (stat is None or leader_ok) and Path("/proc").is_dir() else []
        if members:
            _signal_group(pid, signal.SIGKILL)
            ended.append(f"ended {len(members)} process(es) of {rec.get('service')!s} left by a previous daemon "
                         f"(pid {pid})")
        forget_child(path)
    return ended
