"""The stdio upstreams the gateway's stdio services run as children, spoken to directly (no
gateway): proof that each fixture does what its docstring says.

- ``tests/upstreams/stdio_server.py`` (official SDK ``MCPServer`` over stdio) and
  ``tests/upstreams/fastmcp_stdio_server.py`` (FastMCP over stdio), through the SDK's stdio
  client (``mcp.client.stdio.stdio_client`` + ``StdioServerParameters`` under ``mcp.Client``);
- the npm servers ``@modelcontextprotocol/server-filesystem`` and server-everything's stdio
  mode (``tests/support/thirdparty.py``), the same way;
- the misbehaviour flags (exit at once, noise, ignoring SIGTERM and EOF, an endless line, stderr
  chatter, a crash) through a plain subprocess spoken to by hand (``RawChild``).

Waits are bounded only as hang guards, never assertions on speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from tests.support.thirdparty import everything_stdio_argv, filesystem_argv
from tests.support.upstream import stdio_argv

GUARD = 30.0  # hang guard for one step
STDIO_SERVER_TOOLS = {"echo", "environment", "cwd", "pid", "slow", "ask_sampling", "ask_elicitation", "roots", "log",
                      "noisy", "endless", "crash"}
# tests/upstreams/stdio_server.py's constants (it is a script, not a module to import)
EXIT_LINE = "fatal: missing configuration FOO"
NOISE_LINES = ["Server starting...", "not json: listening on stdio"]
EOF_LINE = "stdin closed; staying alive"


def text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


# -- the SDK's stdio client ---------------------------------------------------------------
@asynccontextmanager
async def connect(argv: list[str], errlog: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None,
                  mode: str = "legacy", **callbacks: Any) -> Any:
    """An SDK ``Client`` on ``argv`` run as a stdio child; its stderr goes to ``errlog``.
    ``mode="legacy"`` (initialize): the back-channel tools need the session era (see
    test_auto_mode_and_session_only)."""
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)
    with open(errlog, "a") as err:
        async with Client(stdio_client(params, errlog=err), mode=mode, read_timeout_seconds=GUARD,  # type: ignore[arg-type]
                          **callbacks) as client:
            yield client


async def answer_sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    prompt = params.messages[0].content
    said = getattr(prompt, "text", "")
    return types.CreateMessageResult(role="assistant", model="test-model",
                                     content=types.TextContent(type="text", text=f"reply to {said}"))


# -- a child spoken to by hand -------------------------------------------------------------
class RawChild:
    """A stdio child with pipes read by threads: stdout kept as bytes (at most ``keep`` of them:
    an endless line is read, not hoarded), stderr as lines. Killed (its process group, which
    it leads) at the end."""

    def __init__(self, argv: list[str], keep: int = 4 << 20) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.out = bytearray()
        self.err: list[str] = []
        self.keep = keep
        self.lock = threading.Lock()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            with self.lock:
                self.out += chunk
                if len(self.out) >= self.keep:
                    return  # stop reading: the child blocks on a full pipe

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.lock:
                self.err.append(line.decode(errors="replace").rstrip("\n"))

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def lines(self) -> list[str]:
        """The complete lines written on stdout so far."""
        with self.lock:
            data = bytes(self.out)
        return [line.decode(errors="replace") for line in data.split(b"\n")[:-1]]

    def messages(self) -> list[dict[str, Any]]:
        found = []
        for line in self.lines():
            try:
                found.append(json.loads(line))
            except ValueError:
                pass
        return found

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = GUARD) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.02)
        raise AssertionError(f"no {what} within {timeout} s; stdout lines {self.lines()[-5:]}, stderr {self.err[-10:]}")

    def response(self, request_id: int) -> dict[str, Any]:
        return self.wait_for(f"response {request_id}",
                             lambda: next((m for m in self.messages() if m.get("id") == request_id and "method" not in m), None))

    def stderr_line(self, line: str, timeout: float = GUARD) -> None:
        self.wait_for(f"stderr line {line!r}", lambda: any(line in e for e in self.err), timeout)

    def handshake(self) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                              "clientInfo": {"name": "raw", "version": "0"}}})
        result = self.response(1)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def call(self, request_id: int, tool: str, arguments: dict[str, Any] | None = None) -> None:
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments or {}}})

    def wait_exit(self, timeout: float = GUARD) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this child leads (start_new_session)
            self.proc.wait(10)


@contextmanager
def raw(argv: list[str], **kw: Any) -> Iterator[RawChild]:
    child = RawChild(argv, **kw)
    try:
        yield child
    finally:
        child.kill()


# -- tests/upstreams/stdio_server.py through the SDK client ----------------------------------
async def test_sdk_server_tools_resource_prompt_cwd_pid(tmp_path: Path) -> None:
    async with connect(stdio_argv("stdio_server", "--name", "s1"), tmp_path / "err.log", cwd=tmp_path) as c:
        assert c.server_info is not None and c.server_info.name == "s1"
        assert {t.name for t in (await c.list_tools()).tools} == STDIO_SERVER_TOOLS
        assert text(await c.call_tool("echo", {"text": "hello"})) == "hello"
        assert text(await c.call_tool("cwd", {})) == str(tmp_path)
        pid = int(text(await c.call_tool("pid", {})))
        assert pid != os.getpid()
        info = await c.read_resource("stdio://info")
        assert json.loads(info.contents[0].text) == {"server": "s1", "pid": pid}  # type: ignore[union-attr]
        prompt = await c.get_prompt("greet", {"name": "Ada"})
        assert "Ada" in prompt.messages[0].content.text  # type: ignore[union-attr]


async def test_sdk_server_environment_is_only_what_the_parent_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARENT_ONLY_SECRET", "must-not-leak")
    async with connect(stdio_argv("stdio_server"), tmp_path / "err.log", env={"GIVEN": "yes"}) as c:
        env = json.loads(text(await c.call_tool("environment", {})))
    assert env["GIVEN"] == "yes"
    assert "PARENT_ONLY_SECRET" not in env
    # the SDK client passes only its default allowlist (HOME, LOGNAME, PATH, SHELL, TERM, USER) besides
    # `env`; Python itself may add LC_CTYPE (PEP 538 locale coercion)
    assert set(env) <= {"GIVEN", "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LC_CTYPE"}


async def test_sdk_server_progress(tmp_path: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(p: float, total: float | None, message: str | None) -> None:
        seen.append((p, total, message))

    async with connect(stdio_argv("stdio_server"), tmp_path / "err.log") as c:
        result = await c.call_tool("slow", {"seconds": 0.2, "steps": 4}, progress_callback=progress)
    assert text(result) == "slept 0.2"
    assert [s[0] for s in seen] == [1, 2, 3, 4] and seen[-1][1] == 4 and seen[0][2] == "step 1 of 4"


async def test_sdk_server_back_channel_sampling_elicitation_roots_log(tmp_path: Path) -> None:
    asked: list[str] = []
    logs: list[Any] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "forty-two"})

    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/a", name="a"), types.Root(uri="file:///srv/b")])

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with connect(stdio_argv("stdio_server"), tmp_path / "err.log", sampling_callback=answer_sampling,
                       elicitation_callback=elicit, list_roots_callback=roots, logging_callback=log) as c:
        assert text(await c.call_tool("ask_sampling", {"prompt": "hi"})) == "reply to hi"
        assert json.loads(text(await c.call_tool("ask_elicitation", {"message": "the answer?"}))) == {
            "action": "accept", "content": {"answer": "forty-two"}}
        assert asked == ["the answer?"]
        assert json.loads(text(await c.call_tool("roots", {}))) == ["file:///srv/a", "file:///srv/b"]
        assert text(await c.call_tool("log", {"message": "to the client"})) == "logged"
        with anyio.fail_after(GUARD):
            while not logs:
                await anyio.sleep(0.01)
    assert logs == ["to the client"]


async def test_auto_mode_and_session_only(tmp_path: Path) -> None:
    """The SDK client's default ``mode="auto"`` probes ``server/discover``: an ``MCPServer`` over
    stdio answers it, the connection is 2026-07-28 and the session-API back-channel fails; with
    ``--session-only`` the probe gets -32601 (as from the TypeScript servers) and the client falls
    back to initialize, where sampling works."""
    async with connect(stdio_argv("stdio_server"), tmp_path / "err.log", mode="auto", sampling_callback=answer_sampling) as c:
        assert c.protocol_version == "2026-07-28"
        with pytest.raises(MCPError, match="no back-channel for server-initiated requests"):
            await c.call_tool("ask_sampling", {"prompt": "hi"})
    async with connect(stdio_argv("stdio_server", "--session-only"), tmp_path / "err.log", mode="auto",
                       sampling_callback=answer_sampling) as c:
        assert c.protocol_version == "2025-11-25"
        assert text(await c.call_tool("ask_sampling", {"prompt": "hi"})) == "reply to hi"


async def test_sdk_client_survives_noise_and_sees_a_crash(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def handler(message: Any) -> None:
        seen.append(message)

    async with connect(stdio_argv("stdio_server", "--noise"), tmp_path / "err.log", message_handler=handler) as c:
        assert text(await c.call_tool("noisy", {})) == "noisy"
        assert text(await c.call_tool("echo", {"text": "still fine"})) == "still fine"
        # the SDK client hands each non-JSON line to the message handler as an exception
        with anyio.fail_after(GUARD):
            while sum(isinstance(m, Exception) for m in seen) < 4:
                await anyio.sleep(0.01)
        with pytest.raises(MCPError, match="Connection closed"), anyio.fail_after(GUARD):
            await c.call_tool("crash", {})


# -- misbehaviour, by hand -------------------------------------------------------------------
def test_exit_at_once() -> None:
    done = subprocess.run(stdio_argv("stdio_server", "--exit-at-once"), stdin=subprocess.PIPE, capture_output=True,
                          timeout=GUARD)
    assert done.returncode == 3
    assert done.stderr.decode().splitlines() == [EXIT_LINE]
    assert done.stdout == b""


def test_noise_before_and_between_messages() -> None:
    with raw(stdio_argv("stdio_server", "--noise")) as child:
        child.wait_for("the startup noise", lambda: len(child.lines()) >= 2)
        assert child.lines() == NOISE_LINES  # before anything was asked
        child.handshake()
        child.call(2, "noisy")
        assert child.response(2)["result"]["content"][0]["text"] == "noisy"
        lines = child.lines()
        assert lines[0:2] == NOISE_LINES and lines[3:5] == NOISE_LINES  # line 2: initialize's response
        assert json.loads(lines[5])["id"] == 2


def test_crash_exits_7() -> None:
    with raw(stdio_argv("stdio_server")) as child:
        child.handshake()
        child.call(2, "crash")
        assert child.wait_exit() == 7
        assert not any(m.get("id") == 2 for m in child.messages())


def test_ignore_sigterm_survives_eof_and_sigterm() -> None:
    with raw(stdio_argv("stdio_server", "--ignore-sigterm")) as child:
        child.handshake()
        child.close_stdin()
        child.stderr_line(EOF_LINE)  # the SDK server loop ended; the process goes on
        os.kill(child.proc.pid, signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait_exit(timeout=1.0)
        os.kill(child.proc.pid, signal.SIGKILL)
        assert child.wait_exit() == -signal.SIGKILL


def test_a_well_behaved_child_exits_0_on_eof_and_dies_on_sigterm() -> None:
    with raw(stdio_argv("stdio_server")) as child:
        child.handshake()
        child.close_stdin()
        assert child.wait_exit() == 0
    with raw(stdio_argv("stdio_server")) as child:
        child.handshake()
        os.kill(child.proc.pid, signal.SIGTERM)
        assert child.wait_exit() == -signal.SIGTERM


def endless(child: RawChild, size: int) -> bytes:
    """What follows the last newline, once it is ``size`` bytes long."""
    def tail() -> bytes | None:
        with child.lock:
            data = bytes(child.out)
        rest = data[data.rfind(b"\n") + 1:]
        return rest if len(rest) >= size else None
    return child.wait_for(f"{size} bytes without a newline", tail)


def test_endless_line_from_the_start() -> None:
    with raw(stdio_argv("stdio_server", "--endless-line"), keep=2 << 20) as child:
        child.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
        rest = endless(child, 2 << 20)
        assert b"\n" not in bytes(child.out) and set(rest) == {ord("x")}


def test_endless_tool_mid_session() -> None:
    with raw(stdio_argv("stdio_server"), keep=2 << 20) as child:
        child.handshake()
        child.call(2, "echo", {"text": "before"})
        assert child.response(2)["result"]["content"][0]["text"] == "before"
        child.call(3, "endless")
        rest = endless(child, 1 << 20)
        assert set(rest) == {ord("x")}
        assert not any(m.get("id") == 3 for m in child.messages())


def test_stderr_chatter_while_serving() -> None:
    with raw(stdio_argv("stdio_server", "--stderr-chatter")) as child:
        child.handshake()
        child.call(2, "echo", {"text": "over the chatter"})
        assert child.response(2)["result"]["content"][0]["text"] == "over the chatter"
        child.stderr_line("chatter 5")
        assert child.err[:5] == [f"chatter {n}" for n in range(1, 6)]


# -- FastMCP over stdio ------------------------------------------------------------------------
async def test_fastmcp_stdio_server(tmp_path: Path) -> None:
    seen: list[float] = []

    async def progress(p: float, total: float | None, message: str | None) -> None:
        seen.append(p)

    async with connect(stdio_argv("fastmcp_stdio_server"), tmp_path / "err.log", sampling_callback=answer_sampling) as c:
        assert c.server_info is not None and c.server_info.name == "fastmcp-stdio-upstream"
        assert {"echo", "sample", "ask", "roots", "slow", "pid"} <= {t.name for t in (await c.list_tools()).tools}
        assert text(await c.call_tool("echo", {"text": "fm"})) == "fm"
        assert text(await c.call_tool("slow", {"seconds": 0.2, "steps": 4}, progress_callback=progress)) == "slept 0.2"
        assert text(await c.call_tool("sample", {"prompt": "hey"})) == "model said: reply to hey"
    assert seen == [1, 2, 3, 4]


# -- @modelcontextprotocol/server-filesystem ---------------------------------------------------
async def test_filesystem_reads_its_directory_only(tmp_path: Path) -> None:
    served, other = tmp_path / "served", tmp_path / "other"
    served.mkdir()
    other.mkdir()
    (served / "a.txt").write_text("hello from a\n")
    (other / "b.txt").write_text("secret\n")
    async with connect(filesystem_argv(served), tmp_path / "err.log") as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"read_text_file", "list_directory", "write_file", "list_allowed_directories"} <= names
        result = await c.call_tool("read_text_file", {"path": str(served / "a.txt")})
        assert not result.is_error and text(result) == "hello from a\n"
        refused = await c.call_tool("read_text_file", {"path": str(other / "b.txt")})
        assert refused.is_error and "secret" not in text(refused)
    assert "Secure MCP Filesystem Server running on stdio" in (tmp_path / "err.log").read_text()


async def test_filesystem_replaces_its_directories_with_the_clients_roots(tmp_path: Path) -> None:
    """A client that declares roots is asked roots/list right after initialized, and its roots
    replace the directories of the command line."""
    served, root = tmp_path / "served", tmp_path / "root"
    served.mkdir()
    root.mkdir()
    (root / "r.txt").write_text("from the root\n")
    asked = anyio.Event()

    async def roots(context: Any) -> types.ListRootsResult:
        asked.set()
        return types.ListRootsResult(roots=[types.Root(uri=root.as_uri(), name="root")])

    async with connect(filesystem_argv(served), tmp_path / "err.log", list_roots_callback=roots) as c:
        with anyio.fail_after(GUARD):
            await asked.wait()
            while str(root) not in text(await c.call_tool("list_allowed_directories", {})):
                await anyio.sleep(0.02)
        assert str(served) not in text(await c.call_tool("list_allowed_directories", {}))
        assert text(await c.call_tool("read_text_file", {"path": str(root / "r.txt")})) == "from the root\n"
    assert "Updated allowed directories from MCP roots: 1 valid directories" in (tmp_path / "err.log").read_text()


# -- server-everything, stdio mode --------------------------------------------------------------
async def test_everything_stdio(tmp_path: Path) -> None:
    notes: list[Any] = []
    logs: list[Any] = []
    progress: list[float] = []
    asked = anyio.Event()

    async def handler(message: Any) -> None:
        notes.append(message)

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def roots(context: Any) -> types.ListRootsResult:
        asked.set()
        return types.ListRootsResult(roots=[types.Root(uri=tmp_path.as_uri(), name="tmp")])

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    async with connect(everything_stdio_argv(), tmp_path / "err.log", message_handler=handler, logging_callback=log,
                       sampling_callback=answer_sampling, list_roots_callback=roots) as c:
        assert c.server_info is not None and c.server_info.name == "mcp-servers/everything"
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"echo", "trigger-long-running-operation", "trigger-sampling-request", "get-roots-list"} <= names
        assert text(await c.call_tool("echo", {"message": "hi"})) == "Echo: hi"
        done = await c.call_tool("trigger-long-running-operation", {"duration": 0.5, "steps": 5}, progress_callback=on_progress)
        assert "completed" in text(done) and progress == [1, 2, 3, 4, 5]
        sampled = await c.call_tool("trigger-sampling-request", {"prompt": "ping"})
        assert "reply to Resource trigger-sampling-request context: ping" in text(sampled)
        # unprompted: tools/list_changed after initialized, then roots/list and a log message about it
        with anyio.fail_after(GUARD):
            await asked.wait()
            while not logs:
                await anyio.sleep(0.02)
    assert any(isinstance(n, types.ToolListChangedNotification) for n in notes)
    assert logs == ["Roots updated: 1 root(s) received from client"]
    assert "Starting default (STDIO) server..." in (tmp_path / "err.log").read_text()


@pytest.mark.parametrize("which", ["filesystem", "everything"])
def test_thirdparty_stdio_exits_0_on_eof(which: str, tmp_path: Path) -> None:
    argv = filesystem_argv(tmp_path) if which == "filesystem" else everything_stdio_argv()
    with raw(argv) as child:
        assert child.handshake()["result"]["protocolVersion"] == "2025-11-25"
        child.send({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": {}})
        assert child.response(2)["error"]["code"] == -32601
        child.close_stdin()
        assert child.wait_exit() == 0
