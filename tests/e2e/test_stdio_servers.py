"""Issue 13: stdio MCP servers run by the daemon as child processes, behind ``/mcp``, through a
real ``runtimed`` and the official SDK ``Client`` in both eras (``mode="auto"``: 2026-07-28,
``mode="legacy"``: 2025-11-25).

Servers (each registered as a ``stdio`` service of one module-wide daemon):
- ``sdk``: tests/upstreams/stdio_server.py, written with the official SDK (shared child);
- ``sdkpc``: the same with ``clientSessions: per-client`` (a child per session-era client);
- ``fm``: tests/upstreams/fastmcp_stdio_server.py (FastMCP over stdio, its default transport);
- ``fs``: ``@modelcontextprotocol/server-filesystem`` (npm, stdio-only) serving a temp folder;
- ``ev``: ``@modelcontextprotocol/server-everything`` in stdio mode (npm).
The lifecycle tests (crash, quarantine, stop, daemon kill -9, a flood, a child ignoring SIGTERM)
start a daemon of their own and check the process table, not only what the daemon says.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from tests.support.daemon import DaemonProc
from tests.support.foundation import events
from tests.support.mcpclient import GUARD, call, call_text, client, elicitation, roots_of, sampling, text_of
from tests.support.thirdparty import FILESYSTEM, everything_stdio_argv, filesystem_argv, package_problem, require_package

pytestmark = pytest.mark.filterwarnings("ignore:The .* capability is deprecated as of 2026-07-28")

UPSTREAMS = Path(__file__).resolve().parents[1] / "upstreams"
SDK_SERVER = [sys.executable, str(UPSTREAMS / "stdio_server.py")]
FASTMCP_SERVER = [sys.executable, str(UPSTREAMS / "fastmcp_stdio_server.py")]
MODES = ("auto", "legacy")
DAEMON_TOKEN = "daemon-only-f4k3-t0k3n"  # in the daemon's environment: must never reach a child
CHILD_SECRET = "child-secret-9s8d7f6g"  # given to the child by reference only
EXIT_LINE = "fatal: missing configuration FOO"  # tests/upstreams/stdio_server.py --exit-at-once


def stdio_manifest(name: str, argv: list[str], **origin: Any) -> dict[str, Any]:
    spec = origin.pop("spec", {})
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "stdio", "command": argv[0], "args": argv[1:], **origin}, **spec}}


def register_stdio(d: DaemonProc, name: str, argv: list[str], state: str | None = "RUNNING", **origin: Any) -> None:
    r = d.api("POST", "/api/services", json=stdio_manifest(name, argv, **origin))
    assert r.status_code in (200, 201), r.text
    if state is not None:
        d.wait_state(name, state, timeout=90)


def process_of(d: DaemonProc, name: str) -> dict[str, Any]:
    return d.service(name)["backend"].get("process") or {}


def alive(pid: int) -> bool:
    """A live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def group_alive(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid`` (a child's group: itself and what it started)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(pid), f"process group {pid} still has {group_alive(pid)}"


# -- the module's daemon ---------------------------------------------------------------------

class Stdio:
    def __init__(self, daemon: DaemonProc, files: Path, services: set[str]) -> None:
        self.daemon = daemon
        self.files = files
        self.services = services

    def url(self, service: str) -> str:
        if service not in self.services:
            require_package(FILESYSTEM if service == "fs" else "@modelcontextprotocol/server-everything")
        return f"{self.daemon.mcp_url}/{service}"


@pytest.fixture(scope="module")
def stdio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stdio]:
    tmp = tmp_path_factory.mktemp("stdio")
    files = tmp / "files"
    (files / "alpha").mkdir(parents=True)
    (files / "beta").mkdir()
    (files / "alpha" / "hello.txt").write_text("hello from alpha\n")
    (files / "beta" / "other.txt").write_text("beta's file\n")
    d = DaemonProc(tmp / "state", env={"FAKE_DAEMON_TOKEN": DAEMON_TOKEN, "CHILD_SECRET_SOURCE": CHILD_SECRET}).start()
    try:
        register_stdio(d, "sdk", SDK_SERVER, env={"API_TOKEN": "env:CHILD_SECRET_SOURCE", "GREETING": "hi"})
        register_stdio(d, "sdkpc", [*SDK_SERVER, "--name", "per-client"], clientSessions="per-client")
        register_stdio(d, "fm", FASTMCP_SERVER)
        services = {"sdk", "sdkpc", "fm"}
        if package_problem(FILESYSTEM) is None:
            register_stdio(d, "fs", filesystem_argv(str(files / "alpha"), str(files / "beta")))
            register_stdio(d, "fspc", filesystem_argv(str(files / "alpha"), str(files / "beta")),
                           cwd=str(files), clientSessions="per-client")
            services |= {"fs", "fspc"}
        if package_problem("@modelcontextprotocol/server-everything") is None:
            register_stdio(d, "ev", everything_stdio_argv())
            services.add("ev")
        yield Stdio(d, files, services)
    finally:
        d.stop()


# == list and call, every server, both eras ===================================================

CALLS = [
    pytest.param("sdk", "echo", {"text": "over stdio"}, "over stdio", id="sdk"),
    pytest.param("fm", "echo", {"text": "over stdio"}, "over stdio", id="fastmcp"),
    pytest.param("ev", "echo", {"message": "over stdio"}, "Echo: over stdio", id="everything"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("service", "tool", "args", "expected"), CALLS)
async def test_list_and_call(stdio: Stdio, mode: str, service: str, tool: str, args: dict[str, Any],
                             expected: str) -> None:
    async with client(stdio.url(service), mode) as c:
        tools = {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
        assert tool in tools, tools
        assert await call_text(c, tool, args) == expected


@pytest.mark.parametrize("mode", MODES)
async def test_read_a_file_through_the_filesystem_server(stdio: Stdio, mode: str) -> None:
    async with client(stdio.url("fs"), mode) as c:
        path = str(stdio.files / "alpha" / "hello.txt")
        assert await call_text(c, "read_text_file", {"path": path}) == "hello from alpha\n"
        # Outside the folders it serves: the server's own refusal, as a tool error.
        refused = await call_text(c, "read_text_file", {"path": "/etc/hostname"})
        assert refused.startswith("<isError>") and "denied" in refused.lower(), refused


@pytest.mark.parametrize("mode", MODES)
async def test_aggregate_endpoint_lists_stdio_tools_with_the_others(stdio: Stdio, mode: str) -> None:
    async with client(stdio.daemon.mcp_url, mode) as c:
        names = {t.name for t in (await asyncio.wait_for(c.list_tools(), GUARD)).tools}
        assert {"sdk__echo", "fm__echo"} <= names, names
        assert text_of(await call(c, "sdk__echo", {"text": "aggregate"})) == "aggregate"


@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_prompts(stdio: Stdio, mode: str) -> None:
    async with client(stdio.url("sdk"), mode) as c:
        res = await asyncio.wait_for(c.read_resource("stdio://info"), GUARD)
        info = json.loads(res.contents[0].text)  # type: ignore[union-attr]
        assert info["server"] == "stdio-upstream" and info["pid"] == process_of(stdio.daemon, "sdk")["pid"]
        prompt = await asyncio.wait_for(c.get_prompt("greet", {"name": "Ada"}), GUARD)
        assert "Ada" in prompt.messages[0].content.text  # type: ignore[union-attr]


# == progress, sampling, elicitation, logging ======================================================

PROGRESS = [
    pytest.param("sdk", "slow", {"seconds": 0.2, "steps": 4}, "slept 0.2", id="sdk"),
    pytest.param("fm", "slow", {"seconds": 0.2, "steps": 4}, "slept 0.2", id="fastmcp"),
    pytest.param("ev", "trigger-long-running-operation", {"duration": 0.4, "steps": 4}, "completed", id="everything"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("service", "tool", "args", "expected"), PROGRESS)
async def test_progress(stdio: Stdio, mode: str, service: str, tool: str, args: dict[str, Any], expected: str) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with client(stdio.url(service), mode) as c:
        r = await call(c, tool, args, progress_callback=on_progress)
        assert expected in text_of(r), text_of(r)
    assert seen == [1, 2, 3, 4], seen


BACKCHANNEL = [
    pytest.param("sdk", "ask_sampling", {"prompt": "meaning of life?"}, "forty-two", id="sdk-sampling"),
    pytest.param("sdk", "ask_elicitation", {"message": "favourite colour?"}, '"answer": "blue"', id="sdk-elicitation"),
    pytest.param("fm", "sample", {"prompt": "meaning of life?"}, "model said: forty-two", id="fastmcp-sampling"),
    pytest.param("fm", "ask", {"question": "favourite colour?"}, "user answered: blue", id="fastmcp-elicitation"),
    pytest.param("ev", "trigger-sampling-request", {"prompt": "meaning of life?"}, "forty-two", id="everything-sampling"),
    pytest.param("ev", "trigger-elicitation-request", {}, "Ada Lovelace", id="everything-elicitation"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("service", "tool", "args", "expected"), BACKCHANNEL)
async def test_sampling_and_elicitation_reach_the_calling_client(stdio: Stdio, mode: str, service: str, tool: str,
                                                                 args: dict[str, Any], expected: str) -> None:
    """The shared child asks mid-call; the gateway relays it to the client whose call is in flight
    (session era: on the call's stream; stateless era: as an input-required result)."""
    async with client(stdio.url(service), mode, sampling_callback=sampling, elicitation_callback=elicitation) as c:
        got = await call_text(c, tool, args)
    assert expected in got and not got.startswith("<"), got


async def test_log_messages_of_a_call_reach_its_client(stdio: Stdio) -> None:
    got: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        got.append(params.data)

    async with client(stdio.url("sdk"), "legacy", logging_callback=on_log) as c:
        assert await call_text(c, "log", {"message": "written during the call"}) == "logged"
    assert any("written during the call" in str(d) for d in got), got


# == one client's state never reaches another ======================================================

async def test_a_shared_child_is_never_asked_for_roots(stdio: Stdio) -> None:
    """The shared child was not declared the roots capability: a client's roots would be kept by
    a process every client uses. Its roots/list is refused, whoever calls."""
    async with client(stdio.url("sdk"), "legacy", list_roots_callback=roots_of("file:///work/alpha")) as c:
        got = await call_text(c, "roots")
    assert got == "<error -32601: roots/list: this client did not declare the 'roots' capability>", got


async def test_per_client_children_keep_each_clients_roots(stdio: Stdio) -> None:
    url = stdio.url("sdkpc")
    async with client(url, "legacy", list_roots_callback=roots_of("file:///work/alpha")) as a, \
            client(url, "legacy", list_roots_callback=roots_of("file:///work/beta")) as b:
        assert json.loads(await call_text(a, "roots")) == ["file:///work/alpha"]
        assert json.loads(await call_text(b, "roots")) == ["file:///work/beta"]
        pid_a, pid_b = await call_text(a, "pid"), await call_text(b, "pid")
        assert pid_a != pid_b  # a process each
        backend = stdio.daemon.service("sdkpc")["backend"]
        assert backend["clientChildren"]["open"] == 2, backend
    # The clients left: their children are ended.
    stdio.daemon.wait_for(lambda: stdio.daemon.service("sdkpc")["backend"]["clientChildren"]["open"] == 0,
                          what="the per-client children to be released")
    for pid in (int(pid_a), int(pid_b)):
        wait_gone(pid)


async def test_filesystem_server_per_client_follows_each_clients_roots(stdio: Stdio) -> None:
    """server-filesystem narrows its folders to the client's roots: per client, each sees its own;
    the shared child (declared without roots) keeps the folders of its command line."""
    url = stdio.url("fspc")
    alpha, beta = (stdio.files / "alpha").as_uri(), (stdio.files / "beta").as_uri()
    async with client(url, "legacy", list_roots_callback=roots_of(alpha)) as a, \
            client(url, "legacy", list_roots_callback=roots_of(beta)) as b:
        for _ in range(100):  # the server asks roots/list right after initialized, asynchronously
            seen_a = await call_text(a, "list_allowed_directories")
            seen_b = await call_text(b, "list_allowed_directories")
            if "beta" not in seen_a and "alpha" not in seen_b:
                break
            await asyncio.sleep(0.05)
        assert "alpha" in seen_a and "beta" not in seen_a, seen_a
        assert "beta" in seen_b and "alpha" not in seen_b, seen_b
    async with client(stdio.url("fs"), "legacy", list_roots_callback=roots_of(alpha)) as shared:
        seen = await call_text(shared, "list_allowed_directories")
        assert "alpha" in seen and "beta" in seen, seen


# == the child's environment ======================================================================

async def test_the_child_gets_no_daemon_environment_and_its_references_resolved(stdio: Stdio) -> None:
    async with client(stdio.url("sdk"), "auto") as c:
        env = json.loads(await call_text(c, "environment"))
        pid = int(await call_text(c, "pid"))
    assert DAEMON_TOKEN not in json.dumps(env) and "FAKE_DAEMON_TOKEN" not in env
    # The gateway masks the resolved value in what the child says (issue 14 item 8); the child has it.
    assert env["API_TOKEN"] == "[secret]" and env["GREETING"] == "hi"
    own = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    assert own["API_TOKEN"] == CHILD_SECRET
    assert set(env) <= {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "API_TOKEN", "GREETING"} | {
        k for k in env if k.startswith("LC_")}, sorted(env)
    # The secret's value appears nowhere the daemon shows.
    d = stdio.daemon
    shows_reference = ("/api/services", "/api/services/sdk")  # the page may redact even the reference
    for path in (*shows_reference, "/api/ui/services/sdk/summary", "/status/services/sdk", "/api/events?limit=2000", "/api/services/sdk/logs?limit=1000",
                 "/api/ui/services/sdk/logs"):
        body = d.api("GET", path).text
        assert CHILD_SECRET not in body, path
        assert "env:CHILD_SECRET_SOURCE" in body or path not in shows_reference, path


# == lifecycle: each test runs its own daemon =====================================================

def fast_restarts(max_restarts: int = 5) -> dict[str, Any]:
    return {"restartPolicy": {"maxRestarts": max_restarts, "backoff": {"initialMs": 100, "maxMs": 200}}}


@pytest.mark.parametrize("mode", MODES)
async def test_kill_9_of_the_child_crashes_restarts_and_serves_again(make_daemon, mode: str) -> None:
    d = make_daemon()
    register_stdio(d, "svc", SDK_SERVER, spec=fast_restarts())
    old = process_of(d, "svc")["pid"]
    os.kill(old, signal.SIGKILL)
    d.wait_for(lambda: d.service("svc")["restarts"] >= 1 and d.service("svc")["state"] == "RUNNING",
               what="the service to be restarted")
    states = [(e["from"], e["to"]) for e in events(d, "svc", ("transition",))]
    assert ("RUNNING", "CRASHED") in states and ("CRASHED", "STARTING") in states, states
    crashed = next(e for e in events(d, "svc", ("transition",)) if e["to"] == "CRASHED")
    assert "killed by signal 9" in crashed["reason"], crashed
    new = process_of(d, "svc")["pid"]
    assert new != old and alive(new)
    async with client(d.mcp_url + "/svc", mode) as c:
        assert await call_text(c, "echo", {"text": "again"}) == "again"


def test_a_child_that_exits_at_once_is_quarantined_with_its_stderr(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "bad", [*SDK_SERVER, "--exit-at-once"], state=None, spec=fast_restarts(2))
    svc = d.wait_state("bad", "QUARANTINED", timeout=60)
    assert EXIT_LINE in svc["quarantineReason"] and "status 3" in svc["quarantineReason"], svc
    assert svc["restarts"] == 2, svc
    # The stderr log is on disk, where the daemon keeps logs across restarts.
    assert EXIT_LINE in (d.state_dir / "logs" / "bad.stderr.log").read_text()


def test_stop_leaves_no_process(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "svc", SDK_SERVER)
    pid = process_of(d, "svc")["pid"]
    assert d.api("POST", "/api/services/svc/stop", headers={"Content-Type": "application/json"}).status_code == 200
    wait_gone(pid, timeout=1.0)  # stop returns once the process group is gone
    assert process_of(d, "svc").get("pid") is None
    assert not list((d.state_dir / "run" / "children").glob("*.json"))


def test_a_child_ignoring_sigterm_and_eof_is_killed_at_stop(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "stubborn", [*SDK_SERVER, "--ignore-sigterm"])
    pid = process_of(d, "stubborn")["pid"]
    r = d.api("POST", "/api/services/stubborn/stop", headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["state"] == "STOPPED", r.text
    wait_gone(pid, timeout=1.0)
    assert any("stopped (killed)" in line["message"] for line in
               d.api("GET", "/api/services/stubborn/logs?limit=1000").json()["lines"])


def test_daemon_kill_9_leaves_no_orphan_and_a_restart_starts_a_fresh_child(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "plain", SDK_SERVER)
    # This one ignores SIGTERM (the parent-death signal) and stdin's end: it outlives the daemon.
    register_stdio(d, "stubborn", [*SDK_SERVER, "--ignore-sigterm"])
    plain, stubborn = process_of(d, "plain")["pid"], process_of(d, "stubborn")["pid"]
    d.kill()
    wait_gone(plain)  # the parent-death signal and its stdin closing end it
    assert alive(stubborn)
    d.start()
    wait_gone(stubborn)  # the new daemon found its pid file and ended it
    for name, old in (("plain", plain), ("stubborn", stubborn)):
        d.wait_state(name, "RUNNING", timeout=60)
        new = process_of(d, name)["pid"]
        assert new != old and alive(new)
    assert any("left by a previous daemon" in e.get("message", "") for e in events(d, None, ("daemon.leftovers",)))


def test_an_endless_stdout_line_ends_the_child_not_the_daemon(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "flood", SDK_SERVER, spec={**fast_restarts(), "policy": {"maxPayloadBytes": 1 << 20}})
    old = process_of(d, "flood")["pid"]

    async def scenario() -> str:
        async with client(d.mcp_url + "/flood", "auto") as c:
            return await call_text(c, "endless")

    got = asyncio.run(scenario())
    assert got.startswith("<") and "line of more than" in got, got
    d.wait_for(lambda: d.service("flood")["state"] == "RUNNING" and process_of(d, "flood")["pid"] not in (None, old),
               what="the flooding child to be replaced")
    wait_gone(old)
    assert d.api("GET", "/healthz").status_code == 200

    async def again() -> str:
        async with client(d.mcp_url + "/flood", "legacy") as c:
            return await call_text(c, "echo", {"text": "fine"})

    assert asyncio.run(again()) == "fine"


def test_lines_that_are_not_json_rpc_are_skipped(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "noisy", [*SDK_SERVER, "--noise"])

    async def scenario() -> tuple[str, str]:
        async with client(d.mcp_url + "/noisy", "legacy") as c:
            return await call_text(c, "noisy"), await call_text(c, "echo", {"text": "still fine"})

    assert asyncio.run(scenario()) == ("noisy", "still fine")
    lines = [e["message"] for e in d.api("GET", "/api/services/noisy/logs?limit=1000").json()["lines"]]
    assert any("skipped a line that is not JSON-RPC: Server starting..." in m for m in lines), lines
    assert d.service("noisy")["restarts"] == 0


def test_a_child_that_never_answers_initialize_fails_its_start_in_time(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "mute", [sys.executable, "-c", "import time; time.sleep(600)"], state=None,
                   limits={"startTimeoutMs": 1000}, spec={"restartPolicy": {"mode": "never"}})
    svc = d.wait_state("mute", "CRASHED", timeout=30)
    assert "did not answer initialize within 1 s" in svc["lastError"], svc


def test_a_program_that_does_not_exist_is_refused_at_registration(make_daemon) -> None:
    d = make_daemon()
    r = d.api("POST", "/api/services", json=stdio_manifest("nope", ["no-such-mcp-server-xyz", "--flag"]))
    assert r.status_code == 422 and "'no-such-mcp-server-xyz' was not found on the daemon's PATH" in r.text, r.text
    assert d.api("GET", "/api/services/nope").status_code == 404


def test_a_child_that_stops_answering_is_restarted_by_its_probes(make_daemon) -> None:
    d = make_daemon()
    register_stdio(d, "frozen", SDK_SERVER, spec={**fast_restarts(),
                                                   "healthCheck": {"intervalSeconds": 0.2, "timeoutMs": 300}})
    old = process_of(d, "frozen")["pid"]
    os.kill(old, signal.SIGSTOP)  # alive, but answers nothing
    try:
        d.wait_for(lambda: d.service("frozen")["restarts"] >= 1 and d.service("frozen")["state"] == "RUNNING",
                   timeout=30, what="the frozen child to be replaced")
    finally:
        if alive(old):
            os.kill(old, signal.SIGCONT)
    crashed = next(e for e in events(d, "frozen", ("transition",)) if e["to"] == "CRASHED")
    assert "3 failed probes" in crashed["reason"], crashed
    wait_gone(old)  # SIGKILL reaches a stopped process's group too
    assert process_of(d, "frozen")["pid"] != old


def test_show_and_the_registry_name_references_never_values(make_daemon, tmp_path: Path) -> None:
    from tests.support.daemon import run_cli

    d = make_daemon(env={"CHILD_SECRET_SOURCE": CHILD_SECRET})
    register_stdio(d, "svc", FASTMCP_SERVER, env={"API_TOKEN": "env:CHILD_SECRET_SOURCE"})
    d.wait_for(lambda: process_of(d, "svc").get("stderrTail"), what="FastMCP's start-up line on stderr")
    shown = run_cli(d, "show", "svc")
    assert shown.returncode == 0, shown.stderr
    pid = process_of(d, "svc")["pid"]
    assert f"process:    pid {pid}, up " in shown.stdout and "stderr (last lines):" in shown.stdout, shown.stdout
    assert "API_TOKEN=env:…" in shown.stdout
    for text in (shown.stdout, (d.state_dir / "registry.json").read_text()):
        assert CHILD_SECRET not in text
