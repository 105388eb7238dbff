"""Running the daemon day to day (issue 14, item 15), each through real processes: service logs that
survive a restart, what the daemon says on SIGINT/SIGTERM, a second daemon on a port already served,
``runtimectl daemon start|stop|status|install``."""

from __future__ import annotations

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
