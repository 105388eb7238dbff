"""A real ``redis-server`` for tests, on a free loopback port, durable as the Redis store requires.

Owns starting ``redis-server`` (``appendonly yes``, ``appendfsync always``, no
snapshots, data in the given dir), waiting until it answers ``PING``, stopping
it (SIGTERM), killing it (SIGKILL) and starting it again on the same port and
dir (the data comes back from the append-only file). Must not mock anything:
the server is the real one from Debian. When ``redis-server`` is missing the
test is skipped, or fails when ``CI`` is set (CI installs it).

    with RedisServer(tmp_path / "redis") as server:
        server.url      # redis://127.0.0.1:P/0
        server.kill()   # kill -9
        server.start()  # same port, same data
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.upstream import free_port

START_TIMEOUT_S = 30.0


def redis_server_binary() -> str:
    """The path of ``redis-server``; skips the test (fails it under ``CI``) when it is not installed."""
    path = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None)
    if path is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port`` with its data in ``dir``."""

    def __init__(self, tmp_dir: Path, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.binary = redis_server_binary()
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra_args = list(extra_args or [])
        self.log_path = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (again) on the same port and dir; returns once it answers PING (its data loaded)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
                "--daemonize", "no", "--logfile", str(self.log_path), *self.extra_args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.proc.returncode}: {self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} within {START_TIMEOUT_S} s: "
                           f"{self.log_tail()}")

    def ping(self) -> bool:
        """True when the server answers PING with PONG (not LOADING, not refused)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM and wait (Redis finishes its append-only file)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (kill -9) and wait: only what Redis fsynced survives."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()
