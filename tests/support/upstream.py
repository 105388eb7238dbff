"""Real upstream MCP servers for tests: start one on a free loopback port.

Owns starting ``tests/upstreams/<script>.py --port P`` as a subprocess, waiting
until the port accepts connections, restarting it on the same port, and
killing it at exit. Must not mock anything: the servers are real.

    with run_upstream("echo_server", "--name", "a") as up:
        up.url          # http://127.0.0.1:P/mcp   (streamable HTTP)
        up.base_url     # http://127.0.0.1:P
        up.restart()    # same port, fresh process (sessions are lost)

For the old HTTP+SSE server the endpoint is ``up.base_url + "/sse"`` (``up.sse_url``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

UPSTREAMS = Path(__file__).resolve().parent.parent / "upstreams"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"upstream exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"upstream did not listen on 127.0.0.1:{port} within {timeout} s")


class Upstream:
    """One running upstream subprocess."""

    def __init__(self, script: str, args: tuple[str, ...], port: int | None = None, env: dict[str, str] | None = None) -> None:
        path = UPSTREAMS / (script if script.endswith(".py") else script + ".py")
        if not path.exists():
            raise FileNotFoundError(path)
        self.script = path
        self.args = args
        self.port = port or free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"upstream-{path.stem}-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def sse_url(self) -> str:
        return self.base_url + "/sse"

    def start(self) -> Upstream:
        env = dict(os.environ)
        env.update(self.env or {})
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), "--port", str(self.port), *self.args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),  # noqa: SIM115 -- the child's stderr for its lifetime; the parent's copy is left to the GC, as before
        )
        try:
            wait_for_port(self.port, self.proc)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"{e}; its stderr ends with:\n{self.log_tail()}") from None
        return self

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            # uvicorn's graceful shutdown waits for open streams (a daemon's GET stream never
            # ends by itself), so do not wait long: the process is killed either way.
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port (upstream sessions are lost)."""
        self.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the port may linger briefly
            try:
                self.start()
                return
            except RuntimeError:
                time.sleep(0.2)
        self.start()


@contextlib.contextmanager
def run_upstream(script: str, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> Iterator[Upstream]:
    """Run ``tests/upstreams/<script>.py`` on a free loopback port for the block."""
    up = Upstream(script, tuple(args), port=port, env=env).start()
    try:
        yield up
    finally:
        up.stop()
