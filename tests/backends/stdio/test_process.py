"""The stdio child's process handling (``runtimed.backends.stdio.process``), with real child
processes: the environment rule, the stderr log (masking, bounds), the shutdown sequence
against a child that ignores SIGTERM and one that leaves a grandchild, and the reaping of
children a killed daemon left behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtimed.backends.stdio import process
from runtimed.config.manifest import StdioOrigin
from runtimed.errors import SecretError


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_child_environment_keeps_only_path_home_locale_and_the_manifests_names(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "gh").write_text("ghp_from_file\n")
    origin = StdioOrigin(command="x", env={"PLAIN": "1", "API_TOKEN": "env:DAEMON_SECRET", "GH_TOKEN": "file:gh"})
    daemon_env = {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "LC_ALL": "C", "RUNTIMED_AUTH_TOKEN": "daemon-token",
                  "DAEMON_SECRET": "s3cr3t-value", "AWS_SECRET_ACCESS_KEY": "nope"}
    env, secrets = process.child_environment(origin, str(tmp_path), daemon_env)
    assert env == {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "LC_ALL": "C", "PLAIN": "1",
                   "API_TOKEN": "s3cr3t-value", "GH_TOKEN": "ghp_from_file"}
    assert sorted(secrets) == ["ghp_from_file", "s3cr3t-value"]


def test_an_unresolved_reference_names_the_variable_never_a_value(tmp_path: Path) -> None:
    origin = StdioOrigin(command="x", env={"API_TOKEN": "env:MISSING_VAR"})
    with pytest.raises(SecretError) as e:
        process.child_environment(origin, str(tmp_path), {"OTHER": "value-not-shown"})
    assert "MISSING_VAR" in str(e.value) and "API_TOKEN" in str(e.value) and "value-not-shown" not in str(e.value)


def test_stderr_log_masks_secrets_keeps_a_tail_and_stays_bounded(tmp_path: Path) -> None:
    emitted: list[str] = []
    log = process.StderrLog(tmp_path / "logs" / "svc.stderr.log", 2000, ["s3cr3t-value"], emitted.append)
    for i in range(200):
        log.line(f"line {i} token=s3cr3t-value\n".encode())
    assert all("s3cr3t-value" not in line and "[secret]" in line for line in emitted)
    assert list(log.tail)[-1] == "line 199 token=[secret]"
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["svc.stderr.log", "svc.stderr.log.1"]
    assert all((tmp_path / "logs" / f).stat().st_size < 2000 + 100 for f in files)
    assert "s3cr3t-value" not in (tmp_path / "logs" / "svc.stderr.log").read_text()


STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print(child.pid, flush=True)
sys.stdin.read()  # EOF when the daemon closes stdin: ignored, keeps running
time.sleep(600)
"""


def test_terminate_ends_a_child_that_ignores_eof_and_sigterm_and_its_grandchild(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, int, int]:
        origin = StdioOrigin(command=sys.executable, args=["-c", STUBBORN])
        proc = await process.spawn(origin, {"PATH": os.environ["PATH"]}, str(tmp_path), 1 << 16)
        assert proc.stdout is not None
        grandchild = int((await proc.stdout.readline()).decode())
        how = await process.terminate(proc, stdin_s=0.3, term_s=0.3)
        return how, proc.pid, grandchild

    how, pid, grandchild = asyncio.run(scenario())
    assert how == "killed"
    deadline = time.monotonic() + 5
    while (_alive(pid) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid) and not _alive(grandchild)


def test_a_child_that_exits_on_eof_is_not_signalled(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, int | None]:
        origin = StdioOrigin(command=sys.executable, args=["-c", "import sys; sys.stdin.read()"])
        proc = await process.spawn(origin, {"PATH": os.environ["PATH"]}, str(tmp_path), 1 << 16)
        return await process.terminate(proc), proc.returncode

    assert asyncio.run(scenario()) == ("exited", 0)


def test_limits_are_applied_to_the_child(tmp_path: Path) -> None:
    script = "import resource, json; print(json.dumps([resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NOFILE)]))"

    async def scenario() -> list[list[int]]:
        origin = StdioOrigin(command=sys.executable, args=["-c", script],
                             limits={"memoryBytes": 2 << 30, "cpuSeconds": 77, "openFiles": 99})
        proc = await process.spawn(origin, {"PATH": os.environ["PATH"]}, str(tmp_path), 1 << 16)
        out, _ = await proc.communicate()
        return json.loads(out)

    assert asyncio.run(scenario()) == [[2 << 30, 2 << 30], [77, 77], [99, 99]]


def test_reap_stale_ends_the_group_a_dead_daemon_left_and_spares_others(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # A "previous daemon" (a python process) starts a child in its own session, writes its pid
    # file as the backend does, and is then killed -9: the child (which ignores SIGTERM and has no
    # parent-death signal here) survives it.
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        path = process.record_child(str(state), leftover.pid, "svc")
        assert path is not None
        rec = json.loads(path.read_text())
        rec["daemon"] = 1  # not this process: a previous daemon
        path.write_text(json.dumps(rec))
        # A pid file whose pid is now some unrelated process (its start time differs) is left alone.
        fake = process.pid_dir(str(state)) / f"{bystander.pid}.json"
        fake.write_text(json.dumps({"pid": bystander.pid, "start": 1, "service": "old", "daemon": 1}))
        ended = process.reap_stale(str(state))
        assert len(ended) == 1 and "svc" in ended[0], ended
        leftover.wait(timeout=5)
        assert leftover.returncode == -signal.SIGKILL
        assert bystander.poll() is None
        assert list(process.pid_dir(str(state)).iterdir()) == []
    finally:
        for p in (leftover, bystander):
            p.kill()
            p.wait()
