"""Start a real ``runtimed`` process on a free loopback port with its own state dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


class DaemonProc:
    def __init__(self, state_dir: Path, args: list[str] | None = None, env: dict[str, str] | None = None,
                 token: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.args = list(args or [])
        self.token = token
        self.env = dict(os.environ)
        self.env.pop("RUNTIMED_AUTH_TOKEN", None)
        self.env.pop("RUNTIMED_URL", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = self.state_dir.parent / f"{self.state_dir.name}.daemon.log"

    def start(self, timeout: float = 20.0) -> DaemonProc:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.state_dir / "runtimed.pid"
        try:
            pidfile.unlink()
        except OSError:
            pass
        cmd = [sys.executable, "-m", "runtimed", "--port", "0", "--state-dir", str(self.state_dir), *self.args]
        if self.token:
            cmd += ["--auth-token", self.token]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- the daemon's output for its lifetime; closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runtimed exited with {self.proc.returncode}: {self.log()}")
            try:
                info = json.loads(pidfile.read_text())
                if info.get("pid") == self.proc.pid:
                    self.url = info["address"]
                    r = httpx.get(self.url + "/healthz", timeout=2)
                    if r.status_code == 200:
                        return self
            except (OSError, ValueError, httpx.HTTPError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"runtimed did not become ready: {self.log()}")

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A request to the daemon as runtimectl sends it: JSON (every change says so, body or not)."""
        json_type = {"Content-Type": "application/json"} if method.upper() not in ("GET", "HEAD") else {}
        headers = {**self.headers(), **json_type, **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=kw.pop("timeout", 30), **kw)

    def wait_for(self, predicate: Any, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last value {last!r}; daemon log: {self.log()[-3000:]}")

    def service(self, ref: str) -> dict[str, Any]:
        r = self.api("GET", f"/api/services/{ref}")
        r.raise_for_status()
        return r.json()

    def wait_state(self, ref: str, state: str, timeout: float = 20.0) -> dict[str, Any]:
        return self.wait_for(lambda: (s := self.service(ref))["state"] == state and s, timeout,
                             what=f"{ref} to reach {state}")

    def env_for_cli(self) -> dict[str, str]:
        env = dict(self.env)
        env["RUNTIMED_URL"] = self.url
        if self.token:
            env["RUNTIMED_AUTH_TOKEN"] = self.token
        return env

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> DaemonProc:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_cli(daemon: DaemonProc | None, *args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``runtimectl`` as a real process against ``daemon``."""
    base = daemon.env_for_cli() if daemon else dict(os.environ)
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "runtimectl", *args], capture_output=True, text=True,
                          env=base, cwd=REPO, timeout=timeout, input=input)
