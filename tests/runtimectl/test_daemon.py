"""``runtimectl daemon``: start, stop and status of a background ``runtimed`` (a real process, its
pid file and log file in the state dir), and ``install``/``uninstall`` of the systemd user unit and
the launchd agent (the files' content; systemctl and launchctl are never called)."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import plistlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import run_cli


def cli(*args: str, code: int = 0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    res = run_cli(None, *args, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state dir; whatever daemon a test left running in it is ended afterwards (by its recorded pid)."""
    state = tmp_path / "state"
    yield state
    with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
        os.kill(json.loads((state / "runtimed.pid").read_text())["pid"], signal.SIGKILL)


def test_start_status_stop_a_background_daemon(state: Path) -> None:
    res = cli("daemon", "status", "--state-dir", str(state), code=1)
    assert "not running" in res.stdout + res.stderr

    res = cli("daemon", "start", "--state-dir", str(state), "--port", "0")
    info = json.loads((state / "runtimed.pid").read_text())
    pid, url = info["pid"], info["address"]
    assert f"pid {pid}" in res.stdout and url in res.stdout and str(state / "runtimed.log") in res.stdout, res.stdout
    assert httpx.get(url + "/healthz", timeout=5).json()["ok"] is True
    # the daemon outlives the command that started it, detached from its session
    assert os.getsid(pid) == pid
    log = (state / "runtimed.log").read_text()
    assert "listening on" in log

    status = json.loads(cli("daemon", "status", "--state-dir", str(state), "--json").stdout)
    assert status["running"] is True and status["pid"] == pid and status["address"] == url
    assert status["healthy"] is True and status["logFile"] == str(state / "runtimed.log")
    res = cli("daemon", "status", "--state-dir", str(state))
    assert f"running (pid {pid}" in res.stdout and url in res.stdout

    # a second start finds it running and leaves it alone
    res = cli("daemon", "start", "--state-dir", str(state), "--port", "0")
    assert "already running" in res.stdout and f"pid {pid}" in res.stdout
    assert json.loads((state / "runtimed.pid").read_text())["pid"] == pid

    res = cli("daemon", "stop", "--state-dir", str(state))
    assert f"stopped runtimed (pid {pid})" in res.stdout, res.stdout
    assert not (state / "runtimed.pid").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/healthz", timeout=2)
    assert "SIGTERM received" in (state / "runtimed.log").read_text()  # what it said is in its log

    res = cli("daemon", "stop", "--state-dir", str(state))
    assert "not running" in res.stdout
    cli("daemon", "status", "--state-dir", str(state), code=1)


def test_the_state_dir_comes_from_the_environment_as_for_runtimed(state: Path) -> None:
    env = {"RUNTIMED_STATE_DIR": str(state), "RUNTIMED_PORT": "0"}
    cli("daemon", "start", env=env)
    assert json.loads(cli("daemon", "status", "--json", env=env).stdout)["stateDir"] == str(state.resolve())
    cli("daemon", "stop", env=env)


def test_a_daemon_that_cannot_start_is_reported_with_its_own_words(state: Path) -> None:
    state.mkdir()
    (state / "config.toml").write_text("[policy]\ntimout_ms = 5\n")
    res = cli("daemon", "start", "--state-dir", str(state), "--port", "0", code=1)
    assert "did you mean policy.timeout_ms?" in res.stderr and str(state / "runtimed.log") in res.stderr, res.stderr


# -- install: the files, never systemctl or launchctl ----------------------------------------------

def _homes(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "PATH": "/opt/node/bin:/usr/bin:/bin"}


def test_install_writes_a_systemd_user_unit(tmp_path: Path) -> None:
    env = _homes(tmp_path)
    state = tmp_path / "my state" / "100%"  # a space and a % need quoting in a unit
    res = cli("daemon", "install", "--platform", "linux", "--state-dir", str(state), "--port", "4800", env=env)
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "runtimed.service"
    assert str(unit) in res.stdout
    assert "systemctl --user daemon-reload" in res.stdout and "systemctl --user enable --now runtimed" in res.stdout
    text = unit.read_text()
    parsed = configparser.ConfigParser(interpolation=None, strict=True)
    parsed.optionxform = str  # type: ignore[assignment,method-assign]
    parsed.read_string(text)
    service = parsed["Service"]
    quoted_state = '"' + str(state.resolve()).replace("%", "%%") + '"'
    assert service["ExecStart"] == f"{sys.executable} -m runtimed --state-dir {quoted_state} --port 4800"
    assert service["Restart"] == "on-failure"
    assert service["Environment"] == '"PATH=/opt/node/bin:/usr/bin:/bin"'
    assert service["EnvironmentFile"] == "-" + str(Path(env["XDG_CONFIG_HOME"]) / "runtimed" / "env")
    assert parsed["Install"]["WantedBy"] == "default.target"
    assert "Description" in parsed["Unit"]
    assert "TOKEN" not in text.upper()  # no secret is written into the unit

    # again: the same file, said so; uninstall removes it
    res = cli("daemon", "install", "--platform", "linux", "--state-dir", str(state), "--port", "4800", env=env)
    assert "unchanged" in res.stdout
    # enabled (what `systemctl --user enable` makes): uninstall says to disable it first, and keeps the file
    wants = unit.parent / "default.target.wants"
    wants.mkdir()
    (wants / "runtimed.service").symlink_to(unit)
    res = cli("daemon", "uninstall", "--platform", "linux", env=env, code=1)
    assert "systemctl --user disable --now runtimed" in res.stderr and unit.exists()
    (wants / "runtimed.service").unlink()
    res = cli("daemon", "uninstall", "--platform", "linux", env=env)
    assert not unit.exists() and "systemctl --user daemon-reload" in res.stdout


def test_install_writes_a_launchd_agent_on_macos(tmp_path: Path) -> None:
    env = _homes(tmp_path)
    state = tmp_path / "state"
    res = cli("daemon", "install", "--platform", "macos", "--state-dir", str(state), env=env)
    plist_path = Path(env["HOME"]) / "Library" / "LaunchAgents" / "io.mcpruntime.runtimed.plist"
    assert str(plist_path) in res.stdout and "launchctl bootstrap gui/" in res.stdout
    plist = plistlib.loads(plist_path.read_bytes())
    assert plist["Label"] == "io.mcpruntime.runtimed"
    assert plist["ProgramArguments"] == [sys.executable, "-m", "runtimed", "--state-dir", str(state.resolve())]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == plist["StandardOutPath"] == str(state.resolve() / "runtimed.log")
    assert plist["EnvironmentVariables"] == {"PATH": "/opt/node/bin:/usr/bin:/bin"}
    res = cli("daemon", "uninstall", "--platform", "macos", env=env)
    assert not plist_path.exists() and "launchctl bootout" in res.stdout


def test_install_dry_run_prints_the_file_and_writes_nothing(tmp_path: Path) -> None:
    env = _homes(tmp_path)
    res = cli("daemon", "install", "--platform", "linux", "--state-dir", str(tmp_path / "s"), "--dry-run", env=env)
    assert "[Service]" in res.stdout and "ExecStart=" in res.stdout
    assert not (Path(env["XDG_CONFIG_HOME"]) / "systemd").exists()
    cli("daemon", "install", "--platform", "windows", env=env, code=2)


def test_the_readme_operations_sections_name_commands_that_exist() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = readme.index("## Running in the background"), readme.index("## The manifest")
    text = readme[start:end]
    for heading in ("## Running in the background", "## Upgrading", "## Uninstalling"):
        assert heading in text
    commands = set()
    for m in re.finditer(r"runtimectl((?: [a-z][a-z-]*)+)", text):
        words = m.group(1).split()
        commands.add(tuple(w for w in words[:2] if w not in ("again", "works", "checks", "is")))
    assert ("daemon", "install") in commands and ("bootstrap", "remove") in commands
    for words in sorted(commands):
        res = run_cli(None, *words, "--help")
        assert res.returncode == 0, (words, res.stdout, res.stderr)
