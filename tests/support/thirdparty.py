"""Third-party MCP servers for tests, installed from npm by ``.ci/run`` (``npm ci --prefix
tests/thirdparty``, pinned by ``tests/thirdparty/package-lock.json``).

Owns starting the TypeScript reference server ``@modelcontextprotocol/server-everything``
in streamable HTTP mode (``node dist/index.js streamableHttp`` with ``PORT``) on a free
loopback port, waiting until it listens, restarting it on the same port, and stopping it.
Must not mock anything and must not install anything (a missing install skips the tests
outside CI and fails them in CI, naming the command that installs it).

    with run_everything() as ev:
        ev.url          # http://127.0.0.1:P/mcp  (session-only: initialize, Mcp-Session-Id)
        ev.restart()    # same port, fresh process: every session is lost

What it is (version 2026.8.31): session-only; answers an unknown session with HTTP 400 and
JSON-RPC -32000 "Bad Request: No valid session ID provided"; tools ``echo``
(``{"message"}`` -> ``"Echo: <message>"``), ``trigger-long-running-operation`` (progress),
and, registered only when the client declared the capability at initialize,
``trigger-sampling-request``, ``trigger-elicitation-request``, ``get-roots-list`` (roots cached
per session). Advertises ``tools.listChanged: true`` and ``logging``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.upstream import free_port, wait_for_port

THIRDPARTY = Path(__file__).resolve().parent.parent / "thirdparty"
EVERYTHING = "@modelcontextprotocol/server-everything"
EVERYTHING_DIR = THIRDPARTY / "node_modules" / EVERYTHING
EVERYTHING_JS = EVERYTHING_DIR / "dist" / "index.js"
INSTALL_HINT = "npm ci --prefix tests/thirdparty"


def pinned_version(package: str) -> str:
    lock = json.loads((THIRDPARTY / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def everything_problem() -> str | None:
    """Why server-everything cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not EVERYTHING_JS.exists():
        return f"{EVERYTHING} is not installed ({INSTALL_HINT})"
    installed = json.loads((EVERYTHING_DIR / "package.json").read_text())["version"]
    if installed != pinned_version(EVERYTHING):
        return f"{EVERYTHING} {installed} is installed, the lockfile pins {pinned_version(EVERYTHING)} ({INSTALL_HINT})"
    return None


def require_everything() -> None:
    """Skip (fail under CI=true) when server-everything is not installed as pinned."""
    problem = everything_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"third-party server missing in CI: {problem}")
    pytest.skip(problem)


class NodeServer:
    """One running server-everything process (the same surface as ``tests.support.upstream.Upstream``)."""

    def __init__(self, port: int | None = None, mode: str = "streamableHttp") -> None:
        self.port = port or free_port()
        self.mode = mode
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="upstream-everything-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/mcp"

    def start(self) -> NodeServer:
        env = dict(os.environ)
        env["PORT"] = str(self.port)
        # express listens on every interface when given only a port; the tests reach it on loopback.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(["node", str(EVERYTHING_JS), self.mode], env=env, cwd=THIRDPARTY,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
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
            proc.wait(timeout=3)
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


@contextlib.contextmanager
def run_everything(port: int | None = None) -> Iterator[NodeServer]:
    """Run server-everything (streamable HTTP) on a free loopback port for the block."""
    require_everything()
    ev = NodeServer(port).start()
    try:
        yield ev
    finally:
        ev.stop()
