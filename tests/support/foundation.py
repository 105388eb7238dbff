"""Helpers shared by the foundation tests (registry, daemon, CLI, security, lifecycle).

Owns: closed loopback ports (a real address nothing listens on), manifest
builders, skip markers for backends still being written, running ``runtimed``
as a process that is expected to refuse to start, and reading events. Must
not mock any part of the product.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.daemon import REPO, DaemonProc


def closed_port() -> int:
    """A loopback port that was just free and is now closed: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remote_manifest(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "runtimed/v1",
        "kind": "MCPService",
        "metadata": {"name": name},
        "spec": {"origin": {"type": "remote_mcp", "url": url}, **spec},
    }


def register_remote(d: DaemonProc, name: str, url: str, **spec: Any) -> None:
    """Register (or update) a remote service through the API; fails the test unless it is accepted."""
    r = d.api("POST", "/api/services", json=remote_manifest(name, url, **spec))
    assert r.status_code in (200, 201), r.text


def events(d: DaemonProc, service: str | None = None, types: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 2000}
    if service:
        params["service"] = service
    r = d.api("GET", "/api/events", params=params)
    assert r.status_code == 200, r.text
    evs = r.json()["events"]
    return [e for e in evs if not types or e["type"] in types]


def transitions(d: DaemonProc, service: str) -> list[tuple[str, str]]:
    return [(e["from"], e["to"]) for e in events(d, service, ("transition",))]


def run_daemon_expect_exit(state_dir: Path, *args: str, env: dict[str, str] | None = None,
                           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``runtimed`` where it must refuse to start; returns the finished process."""
    e = dict(os.environ)
    e.pop("RUNTIMED_AUTH_TOKEN", None)
    e.update(env or {})
    cmd = [sys.executable, "-m", "runtimed", "--port", "0", "--state-dir", str(state_dir), *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # it started instead of refusing
        raise AssertionError(f"runtimed did not refuse to start: {exc.stderr!r}") from None


def symlink_loop(dir_: Path, name: str = "loop") -> Path:
    """A symlink pointing at itself: resolving it is a loop."""
    dir_.mkdir(parents=True, exist_ok=True)
    link = dir_ / name
    os.symlink(link, link)
    return link


def temp_homes(tmp_path: Path) -> dict[str, str]:
    """HOME and CODEX_HOME under ``tmp_path`` (for ``runtimectl bootstrap`` and ``doctor``)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "CODEX_HOME": str(home / ".codex")}


def read_registry(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / "registry.json").read_text())


def registry_names(state_dir: Path) -> set[str]:
    return {item["manifest"]["metadata"]["name"] for item in read_registry(state_dir)["services"].values()}
