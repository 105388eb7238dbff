"""Third-party MCP servers for tests, installed from npm by ``.ci/run`` (``npm ci --prefix
tests/thirdparty``, pinned by ``tests/thirdparty/package-lock.json``): server-everything and
server-filesystem. (The same install pins ``oidc-provider``, the authorization server that
``tests/support/oauth.py`` runs.)

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

Stdio children (argv only: the caller spawns them; ``node`` by its absolute path, no npx):

    filesystem_argv(dir1, dir2)   # [node, .../server-filesystem/dist/index.js, dir1, dir2]
    everything_stdio_argv()       # [node, .../server-everything/dist/index.js, "stdio"]

``@modelcontextprotocol/server-filesystem`` (2026.8.31; serverInfo ``secure-filesystem-server``
0.2.0) is stdio-only and serves the directories named on its command line (tools
``read_text_file``, ``list_directory``, ``write_file``, ``list_allowed_directories``, ...; paths
outside them are refused). At start it writes ``Secure MCP Filesystem Server running on stdio``
to stderr. If the client declared the roots capability it sends ``roots/list`` right after
``notifications/initialized`` and, when the answer names at least one existing directory,
REPLACES its allowed directories with those roots (and again on each
``notifications/roots/list_changed``). Answers ``server/discover`` with -32601; exits 0 when its
stdin closes, dies on SIGTERM.

server-everything over stdio (``dist/index.js stdio``; ``stdio`` is also its default) writes
``Starting default (STDIO) server...`` to stderr. Right after ``notifications/initialized`` it
sends one ``notifications/tools/list_changed`` per tool it registers for the client's
capabilities (4 when sampling, elicitation and roots are declared, 1 when none is), then, 350 ms later when
roots were declared, a ``roots/list`` request followed by a ``notifications/message`` (info,
``"Roots updated: N root(s) received from client"``), all unprompted. Answers
``server/discover`` with -32601; exits 0 when its stdin closes, dies on SIGTERM.
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
FILESYSTEM = "@modelcontextprotocol/server-filesystem"
FILESYSTEM_DIR = THIRDPARTY / "node_modules" / FILESYSTEM
FILESYSTEM_JS = FILESYSTEM_DIR / "dist" / "index.js"
INSTALL_HINT = "npm ci --prefix tests/thirdparty"


def pinned_version(package: str) -> str:
    lock = json.loads((THIRDPARTY / "package-lock.json").read_text())
    return lock["packages"][f"node_modules/{package}"]["version"]


def package_problem(package: str, entry: str = "dist/index.js") -> str | None:
    """Why the npm ``package`` (its ``entry`` file) cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    directory = THIRDPARTY / "node_modules" / package
    if not (directory / entry).exists():
        return f"{package} is not installed ({INSTALL_HINT})"
    installed = json.loads((directory / "package.json").read_text())["version"]
    if installed != pinned_version(package):
        return f"{package} {installed} is installed, the lockfile pins {pinned_version(package)} ({INSTALL_HINT})"
    return None


def everything_problem() -> str | None:
    """Why server-everything cannot run here, or None when it can."""
    return package_problem(EVERYTHING)


def require_package(package: str, entry: str = "dist/index.js") -> None:
    """Skip (fail under CI=true) when ``package`` (its ``entry`` file) is not installed as pinned."""
    problem = package_problem(package, entry)
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"third-party server missing in CI: {problem}")
    pytest.skip(problem)


def require_everything() -> None:
    """Skip (fail under CI=true) when server-everything is not installed as pinned."""
    require_package(EVERYTHING)


def node_binary() -> str:
    """The absolute path of ``node`` (a stdio child may be given an environment without PATH)."""
    node = shutil.which("node")
    if node is None:  # require_package skipped already; this is for callers that did not ask
        pytest.skip("node is not installed")
    return str(Path(node).resolve())


def filesystem_argv(*dirs: str | os.PathLike[str]) -> list[str]:
    """The argv of server-filesystem as a stdio child serving ``dirs`` (skips when not installed)."""
    require_package(FILESYSTEM)
    return [node_binary(), str(FILESYSTEM_JS), *(str(d) for d in dirs)]


def everything_stdio_argv() -> list[str]:
    """The argv of server-everything as a stdio child (skips when not installed)."""
    require_package(EVERYTHING)
    return [node_binary(), str(EVERYTHING_JS), "stdio"]


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
