"""Issue 14, item 16: an origin that cannot be reached, added by mistake.

``runtimectl add`` of a remote origin that cannot be reached (nothing listens, the name does not
resolve, no MCP endpoint at that path) says so with the cause and registers nothing; at a terminal it
asks first (yes: registered without starting it); ``--no-start`` registers without trying. A
quarantine outlives a daemon restart: the service is not retried at boot, and the daemon says so
(its log, the service's state reason). ``doctor`` suggests what fits the cause (is the server
running; check the URL) rather than ``unquarantine`` alone. Real processes: daemon, upstream,
runtimectl (at a pseudo-terminal for the question).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from tests.support.daemon import REPO, DaemonProc, run_cli
from tests.support.foundation import closed_port
from tests.support.upstream import free_port, run_upstream

GUARD = 60.0  # a bound for a process to finish (not a timing assertion)


def cli(d, *args: str, code: int = 0, **kw) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, **kw)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def names(d: DaemonProc) -> list[str]:
    return [s["name"] for s in json.loads(cli(d, "list", "--json").stdout)]


def at_a_terminal(d: DaemonProc, args: list[str], answer: str) -> tuple[int, str]:
    """runtimectl with its stdin, stdout and stderr on a pseudo-terminal; ``answer`` typed when it asks."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runtimectl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=d.env_for_cli(), cwd=REPO, close_fds=True)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed: the process is done
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    code = proc.wait(GUARD)
    os.close(master)
    return code, seen.decode(errors="replace")


def test_add_of_an_origin_nothing_listens_at_registers_nothing(daemon: DaemonProc) -> None:
    d = daemon
    port = closed_port()
    url = f"http://127.0.0.1:{port}/mcp"
    res = cli(d, "add", url, "--name", "gone", code=1)
    assert res.stdout == "", res.stdout
    assert f"gone: {url} cannot be reached" in res.stderr, res.stderr
    assert "connection refused" in res.stderr.lower() and f"is the server running at 127.0.0.1:{port}" in res.stderr
    assert "nothing was registered" in res.stderr and "--no-start registers it without trying" in res.stderr
    assert names(d) == []
    res = cli(d, "add", url, "--name", "gone", "--no-start")
    assert res.stdout.strip().endswith(": REGISTERED")
    assert names(d) == ["gone"]


def test_add_of_a_wrong_path_says_check_the_url(daemon: DaemonProc) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        res = cli(d, "add", up.base_url + "/nope", "--name", "typo", code=1)
        assert "HTTP 404" in res.stderr and "check the URL's path" in res.stderr, res.stderr
        assert names(d) == []
        cli(d, "add", up.url, "--name", "right")  # a reachable one is added as before
        assert names(d) == ["right"]


def test_at_a_terminal_add_asks_first(daemon: DaemonProc) -> None:
    d = daemon
    url = f"http://127.0.0.1:{closed_port()}/mcp"
    code, text = at_a_terminal(d, ["add", url, "--name", "later"], "y")
    assert "cannot be reached" in text and "Register it anyway, without starting it?" in text, text
    assert code == 0, text
    assert "added later (svc_" in text and "REGISTERED" in text and "runtimectl start later" in text, text
    assert d.service("later")["state"] == "REGISTERED"
    code, text = at_a_terminal(d, ["add", f"http://127.0.0.1:{closed_port()}/mcp", "--name", "no"], "n")
    assert code == 1 and "nothing was registered" in text, text
    assert names(d) == ["later"]


def test_a_quarantine_outlives_a_restart_and_doctor_names_the_cause(make_daemon) -> None:
    d = make_daemon()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    cli(d, "add", url, "--name", "flaky", "--no-start", "--max-restarts", "0")
    cli(d, "start", "flaky", code=1)
    d.wait_state("flaky", "QUARANTINED")
    res = cli(d, "doctor", "--json", code=1)
    check = next(c for c in json.loads(res.stdout)["checks"] if c["check"] == "service flaky")
    assert check["status"] == "fail" and "QUARANTINED" in check["detail"]
    assert f"is the server running at 127.0.0.1:{port}" in check["hint"], check
    assert "runtimectl unquarantine flaky" in check["hint"]  # once it runs, this is what helps
    assert d.service("flaky")["lastErrorCause"] == "refused"

    d.stop()
    d.start()  # the same state dir: the quarantine is remembered, and nothing is retried
    svc = d.service("flaky")
    assert svc["state"] == "QUARANTINED", svc
    assert "before the daemon restarted" in svc["stateReason"] and "runtimectl unquarantine flaky" in svc["stateReason"]
    assert svc["restarts"] == 0 and svc["health"] != "HEALTHY"
    assert "flaky" in d.log() and "stays quarantined" in d.log()

    with run_upstream("echo_server", port=port):
        res = cli(d, "unquarantine", "flaky")
        assert res.stdout.strip() == "flaky: RUNNING"
        d.stop()
        d.start()
        d.wait_state("flaky", "RUNNING")  # released: it starts at boot again


def test_doctor_on_a_wrong_path_says_check_the_url_not_unquarantine(daemon: DaemonProc) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        cli(d, "add", up.base_url + "/nope", "--name", "typo", "--no-start", "--restart", "never")
        cli(d, "start", "typo", code=1)
        res = cli(d, "doctor", "--json", code=1)
        check = next(c for c in json.loads(res.stdout)["checks"] if c["check"] == "service typo")
        assert "check the URL's path" in check["hint"] and "unquarantine" not in check["hint"], check
        assert "runtimectl remove typo" in check["hint"]
