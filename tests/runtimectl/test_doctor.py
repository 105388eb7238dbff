"""``runtimectl doctor`` as a real process: the daemon down, a crashed service, a client
config that drifted (HOME and CODEX_HOME in temp dirs)."""

from __future__ import annotations

from pathlib import Path

from tests.support.daemon import DaemonProc, run_cli
from tests.support.foundation import temp_homes


def test_doctor_reports_daemon_down_and_port_free(tmp_path: Path) -> None:
    env = {**temp_homes(tmp_path), "RUNTIMED_URL": "http://127.0.0.1:9", "RUNTIMED_STATE_DIR": str(tmp_path / "st")}
    r = run_cli(None, "doctor", env=env)
    assert r.returncode == 1
    assert "✗ daemon" in r.stdout and "start it with: runtimectl daemon start" in r.stdout
    assert "Traceback" not in r.stderr


def test_doctor_flags_a_crashed_service_and_drift(daemon: DaemonProc, tmp_path: Path) -> None:
    env = temp_homes(tmp_path)
    r = daemon.api("POST", "/api/services", json={
        "metadata": {"name": "gone"},
        "spec": {"origin": {"type": "remote_mcp", "url": "http://127.0.0.1:9/mcp"}, "restartPolicy": {"mode": "never"}}})
    assert r.status_code == 201
    daemon.wait_state("gone", "CRASHED")
    run_cli(daemon, "bootstrap", "--clients", "codex", "--endpoint", "http://127.0.0.1:1/mcp", env=env)
    doctor = run_cli(daemon, "doctor", env=env)
    assert doctor.returncode == 1
    assert "✗ service gone: CRASHED" in doctor.stdout
    assert "✗ bootstrap codex" in doctor.stdout and "points at http://127.0.0.1:1/mcp" in doctor.stdout
