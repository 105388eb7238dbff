"""Real upstream MCP servers for tests: start one on a free loopback port.

Owns starting ``tests/upstreams/<script>.py --port P`` as a subprocess, waiting
until the port accepts connections, restarting it on the same port, and
killing it at exit. Must not mock anything: the servers are real.

    with run_upstream("echo_server", "--name", "a") as up:
        up.url          # http://127.0.0.1:P/mcp   (streamable HTTP)
        up.base_url     # http://127.0.0.1:P
        up.restart()    # same port, fresh process (sessions are lost)

For the old HTTP+SSE server the endpoint is ``up.base_url + "/sse"`` (``up.sse_url``).

Stdio upstreams are not started here: ``stdio_argv("stdio_server", "--noise")`` is the argv of
``tests/upstreams/<script>.py`` as a stdio child (this interpreter by its absolute path, so it
runs without PATH or an activated venv), for whoever spawns it.
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


class ServerProcess:
    """A test server run as a subprocess on a loopback port: start and wait until it listens,
    the tail of its output, stop, restart on the same port. Subclasses say what to run."""

    stop_wait_s = 1.0  # how long a graceful stop may take before the process is killed

    def __init__(self, name: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"upstream-{name}-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/mcp"

    @property
    def sse_url(self) -> str:
        return self.base_url + "/sse"

    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        """The argv, the environment and the working directory (None: inherited)."""
        raise NotImplementedError

    def start(self) -> ServerProcess:
        cmd, env, cwd = self.command()
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.proc)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"{e}; its output ends with:\n{self.log_tail()}") from None
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
            proc.wait(timeout=self.stop_wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port (every session is lost)."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class Upstream(ServerProcess):
    """One ``tests/upstreams/<script>.py`` process. uvicorn's graceful shutdown waits for open
    streams (a daemon's GET stream never ends by itself), so a stop does not wait long."""

    def __init__(self, script: str, args: tuple[str, ...], port: int | None = None, env: dict[str, str] | None = None) -> None:
        path = UPSTREAMS / (script if script.endswith(".py") else script + ".py")
        if not path.exists():
            raise FileNotFoundError(path)
        super().__init__(path.stem, port)
        self.script = path
        self.args = args
        self.env = env

    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        env = {**os.environ, **(self.env or {})}
        env.setdefault("PYTHONUNBUFFERED", "1")
        return [sys.executable, str(self.script), "--port", str(self.port), *self.args], env, None


def stdio_argv(script: str, *args: str) -> list[str]:
    """The argv of ``tests/upstreams/<script>.py`` run as a stdio child (``args`` are its flags)."""
    path = UPSTREAMS / (script if script.endswith(".py") else script + ".py")
    if not path.exists():
        raise FileNotFoundError(path)
    return [str(Path(sys.executable).absolute()), str(path), *args]


@contextlib.contextmanager
def run_upstream(script: str, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> Iterator[Upstream]:
    """Run ``tests/upstreams/<script>.py`` on a free loopback port for the block."""
    up = Upstream(script, tuple(args), port=port, env=env).start()
    try:
        yield up
    finally:
        up.stop()
