"""``deploy/systemd/runtimed@.service``: systemd accepts it, and its ``ExecStart=`` starts a real
replica (issue 15, deployment).

The command line is rendered from the unit as systemd would (``%i``, ``%S``, ``${NAME}`` from
``Environment=`` and the environment files) and run with this interpreter in place of
``/usr/bin/env runtimed``. Every flag it uses must be one ``runtimed --help`` lists.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cluster import UNIT, runtimed_flags, unit_argv, unit_environment
from tests.support.daemon import DaemonProc

ENV_FILES = {  # what /etc/runtimed/cluster.env and /etc/runtimed/r1.env would hold, on loopback
    "RUNTIMED_STORE": "embedded",
    "RUNTIMED_HOST": "127.0.0.1",
    "RUNTIMED_PORT": "0",
}


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    instance = tmp_path / "runtimed@r1.service"  # a template is verified as one of its instances
    instance.write_text(UNIT.read_text())
    r = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True, timeout=60)
    about_unit = [line for line in (r.stdout + r.stderr).splitlines() if instance.name in line]
    assert r.returncode == 0 and not about_unit, r.stdout + r.stderr


def test_exec_start_uses_only_flags_runtimed_has() -> None:
    argv = unit_argv(UNIT, "r1", unit_environment(UNIT.read_text(), ENV_FILES), Path("/var/lib"))
    assert argv[:2] == ["/usr/bin/env", "runtimed"], argv
    assert argv[argv.index("--replica") + 1] == "r1"
    assert argv[argv.index("--state-dir") + 1] == "/var/lib/runtimed/r1"
    flags = {a for a in argv[2:] if a.startswith("--")}
    known = runtimed_flags()
    assert flags - known == set(), f"the unit uses flags runtimed does not have: {flags - known}"


def test_exec_start_defaults_and_environment_files() -> None:
    """Environment= gives defaults (loopback, 4707); the environment files win."""
    text = UNIT.read_text()
    default = unit_argv(UNIT, "r2", unit_environment(text, {"RUNTIMED_STORE": "embedded"}), Path("/var/lib"))
    assert default[default.index("--host") + 1] == "127.0.0.1" and default[default.index("--port") + 1] == "4707"
    mine = unit_argv(UNIT, "r2", unit_environment(text, {"RUNTIMED_HOST": "10.0.0.12", "RUNTIMED_PORT": "4800"}),
                     Path("/var/lib"))
    assert mine[mine.index("--host") + 1] == "10.0.0.12" and mine[mine.index("--port") + 1] == "4800"


def test_a_replica_starts_as_the_unit_starts_it(tmp_path: Path) -> None:
    env = unit_environment(UNIT.read_text(), ENV_FILES)
    argv = unit_argv(UNIT, "r1", env, tmp_path)
    flags = argv[2:]
    state_dir = tmp_path / "runtimed" / "r1"
    # DaemonProc puts its own --port 0 --state-dir first; the unit's flags come after and win.
    d = DaemonProc(state_dir, args=flags, env=env).start()
    try:
        status = d.api("GET", "/api/status").json()
        assert Path(status["stateDir"]) == state_dir.resolve()
        assert status["store"]["replica"] == "r1" and status["store"]["kind"] == "embedded"
        assert d.url.startswith("http://127.0.0.1:")
    finally:
        d.stop()
