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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.upstream import ServerProcess

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


class NodeServer(ServerProcess):
    """One running server-everything process (``tests.support.upstream.ServerProcess``)."""

    stop_wait_s = 3.0

    def __init__(self, port: int | None = None, mode: str = "streamableHttp") -> None:
        super().__init__("everything", port)
        self.mode = mode

    def command(self) -> tuple[list[str], dict[str, str], Path | None]:
        # express listens on every interface when given only a port; the tests reach it on loopback.
        return ["node", str(EVERYTHING_JS), self.mode], {**os.environ, "PORT": str(self.port)}, THIRDPARTY


@contextlib.contextmanager
def run_everything(port: int | None = None) -> Iterator[NodeServer]:
    """Run server-everything (streamable HTTP) on a free loopback port for the block."""
    require_everything()
    ev = NodeServer(port).start()
    try:
        yield ev
    finally:
        ev.stop()
