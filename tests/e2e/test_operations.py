"""Running the daemon day to day (issue 14, item 15), each through real processes: service logs that
survive a restart, what the daemon says on SIGINT/SIGTERM, a second daemon on a port already served,
``runtimectl daemon start|stop|status|install``."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.daemon import DaemonProc, run_cli

WASM = Path(__file__).resolve().parents[2] / "examples" / "wasm" / "upper.wat"


def _register_wasm(d: DaemonProc, name: str = "up") -> None:
    r = d.api("POST", "/api/services", json={
        "apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
        "spec": {"origin": {"type": "local_wasm", "path": str(WASM)}}})
    assert r.status_code == 201, r.text
    d.wait_state(name, "RUNNING")


def test_service_logs_survive_a_daemon_restart(make_daemon) -> None:
    d = make_daemon("state")
    _register_wasm(d)
    before = d.api("GET", "/api/services/up/logs").json()
    assert any("STARTING -> RUNNING" in line["message"] for line in before["lines"]), before
    d.stop()
    persisted = d.state_dir / "logs" / "up.log"
    assert persisted.is_file()

    d.start()
    d.wait_state("up", "RUNNING")
    after = d.api("GET", "/api/services/up/logs", params={"limit": 1000}).json()
    messages = [line["message"] for line in after["lines"]]
    old = [line["message"] for line in before["lines"]]
    assert messages[:len(old)] == old  # the previous daemon's lines, first
    assert any("daemon" in m and "stop" in m for m in messages), messages  # the shutdown, said
    seqs = [line["seq"] for line in after["lines"]]
    assert seqs == sorted(set(seqs))
    newer = d.api("GET", "/api/services/up/logs", params={"after": before["last"]}).json()["lines"]
    assert newer and all(line["seq"] > before["last"] for line in newer)

    res = run_cli(d, "logs", "up")
    assert res.returncode == 0 and old[0] in res.stdout, res.stdout + res.stderr

    # removing the service removes its log: a new service of that name starts with an empty one
    assert d.api("DELETE", "/api/services/up").status_code == 200
    assert not persisted.exists()


# -- what the daemon says when it is asked to stop ---------------------------------------------

def _stop_and_read(d: DaemonProc, sig: int) -> tuple[int | None, str]:
    code = d.stop(sig)
    return code, d.log()


def test_sigterm_and_sigint_say_what_the_daemon_is_doing(make_daemon) -> None:
    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
        d = make_daemon(f"state-{name}")
        _register_wasm(d)
        code, out = _stop_and_read(d, sig)
        assert code == 0, out
        lines = out[out.index("listening on"):].splitlines()[1:]
        said = "\n".join(lines)
        assert f"{name} received: shutting down" in said, said
        assert "stopping 1 service" in said, said
        assert "stopped; exiting" in said.splitlines()[-1], said
        assert "Traceback" not in out


# -- a second daemon on a port that is already served --------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_second_daemon_on_the_same_port_names_the_running_one(make_daemon, tmp_path: Path) -> None:
    from tests.support.foundation import run_daemon_expect_exit

    first = make_daemon("first")
    port = first.url.rsplit(":", 1)[1]
    pid = first.proc.pid

    # another state dir, the same port
    res = run_daemon_expect_exit(tmp_path / "second", "--port", port)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "Address already in use" not in res.stderr
    assert f"runtimed (pid {pid}" in res.stderr and str(first.state_dir) in res.stderr, res.stderr
    assert "runtimectl daemon stop" in res.stderr or "--port" in res.stderr

    # the same state dir and the same port: the state dir's holder is named
    res = run_daemon_expect_exit(first.state_dir, "--port", port)
    assert res.returncode == 1 and f"pid {pid}" in res.stderr and "Address already in use" not in res.stderr, res.stderr


def test_a_port_held_by_another_program_says_so(tmp_path: Path) -> None:
    import socket

    from tests.support.foundation import run_daemon_expect_exit

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = run_daemon_expect_exit(tmp_path / "state", "--port", str(port))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"127.0.0.1:{port}" in res.stderr and "not a runtimed" in res.stderr and "--port" in res.stderr, res.stderr
