"""Several ``runtimed`` replicas behind a real HAProxy, run with the files users run (``deploy/``).

Owns: finding the distribution's ``haproxy`` and ``redis-server`` (skip when missing, fail under
``CI``, where ``.ci/run`` installs them), running
``haproxy -c`` on a config, starting ``haproxy -f deploy/haproxy.cfg -db`` in the foreground
on a free loopback port with the replicas' addresses in its environment (the variables the
config documents) and waiting until it serves; starting N ``DaemonProc`` replicas; and turning
the ``ExecStart=`` of ``deploy/systemd/runtimed@.service`` into the argv systemd would run, so a
test can start a replica exactly as the unit does. Must not mock anything (the programs are
real) nor write its own copy of a deploy file: the tests check the files users get.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.daemon import REPO, DaemonProc
from tests.support.upstream import free_port

DEPLOY = REPO / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
UNIT = DEPLOY / "systemd" / "runtimed@.service"
START_TIMEOUT_S = 20.0  # a bound for start-up, not a timing assertion


# -- calls through a balancer -----------------------------------------------------------------------

S = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": S, "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "deploy-test", "version": "1"}}
BOUND = 30.0  # the most any one request may take before it counts as a hang (a bound, not a timing claim)


def stateless_call(client: httpx.Client | None, url: str, name: str, arguments: dict[str, Any],
                   timeout: float = BOUND) -> httpx.Response:
    """A stateless-era ``tools/call`` as a raw POST, with the headers the daemon requires."""
    headers = {"MCP-Protocol-Version": S, "Mcp-Method": "tools/call", "Mcp-Name": name,
               "Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": META}}
    if client is None:
        return httpx.post(url, json=body, headers=headers, timeout=timeout)
    return client.post(url, json=body, headers=headers, timeout=timeout)


def answer_of(r: httpx.Response) -> Any:
    """The structured result of a successful tools/call response (None when it is not one)."""
    if r.status_code != 200:
        return None
    result = r.json().get("result") or {}
    return None if result.get("isError") else (result.get("structuredContent") or {}).get("result")



def _required(what: str, problem: str) -> None:
    """Skip the test, or fail it under CI (where .ci/run installs ``what``)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI (.ci/run installs it): {problem}")
    pytest.skip(problem)


def system_binary(name: str) -> str:
    """The path of a program from the distribution (``haproxy``, ``redis-server``); Debian puts some
    in /usr/sbin, often not on a user's PATH. Skips the test when missing (fails it under CI)."""
    found = shutil.which(name) or next((p for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
                                        if os.access(p := f"{d}/{name}", os.X_OK)), None)
    if found is None:
        _required(name, f"{name} is not installed (apt-get install {name})")
        raise AssertionError("unreachable")  # pytest.skip and pytest.fail raise
    return found


def haproxy_binary() -> str:
    return system_binary("haproxy")


def lb_env(replicas: list[str], bind: str | None = None) -> dict[str, str]:
    """The variables ``deploy/haproxy.cfg`` reads: ``RUNTIMED_REPLICA_<n>`` (``host:port``) and
    ``RUNTIMED_LB_BIND``; the RUNTIMED_* variables of this process are left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIMED_")}
    for i, address in enumerate(replicas, 1):
        env[f"RUNTIMED_REPLICA_{i}"] = address
    if bind is not None:
        env["RUNTIMED_LB_BIND"] = bind
    return env


def haproxy_check(cfg: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``haproxy -c -f cfg`` with ``env``: exit code 0 when HAProxy accepts the configuration."""
    return subprocess.run([haproxy_binary(), "-c", "-f", str(cfg)], env=dict(env), capture_output=True, text=True,
                          timeout=30)


def address_of(url: str) -> str:
    """``host:port`` of an ``http://host:port`` URL (a replica's address as HAProxy wants it)."""
    return url.removeprefix("http://").rstrip("/")


class HAProxy:
    """``haproxy -f <cfg> -db`` (foreground) on a free loopback port in front of ``replicas``."""

    def __init__(self, cfg_path: Path, replicas: list[str], tmp_dir: Path) -> None:
        self.cfg_path = Path(cfg_path)
        self.replicas = list(replicas)
        self.tmp_dir = Path(tmp_dir)
        self.port = free_port()
        self.env = lb_env(self.replicas, bind=f"127.0.0.1:{self.port}")
        self.log_path = self.tmp_dir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def start(self, timeout: float = START_TIMEOUT_S) -> HAProxy:
        """Start it and wait until it accepts and its health checks see a replica up (its
        ``/healthz`` answers 200 through the balancer: HAProxy answers 503 while none is up)."""
        binary = haproxy_binary()
        checked = haproxy_check(self.cfg_path, self.env)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy -c refused {self.cfg_path}: {checked.stdout}{checked.stderr}")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([binary, "-f", str(self.cfg_path), "-db"], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}: {self.log()}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return self
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not serve /healthz within {timeout} s (last: {last}): {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # hard stop: the test is over, nothing to let finish
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> HAProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_replicas(base: Path, n: int, args: list[str] | None = None, env: dict[str, str] | None = None,
                   token: str | None = None) -> list[DaemonProc]:
    """``n`` real daemons on free loopback ports (``--port 0``; their addresses are read back
    before anything else needs them), state dirs ``base/r1`` .. ``base/r<n>``. On a failure the
    ones started are stopped."""
    started: list[DaemonProc] = []
    try:
        for i in range(1, n + 1):
            started.append(DaemonProc(base / f"r{i}", args=args, env=env, token=token).start())
    except BaseException:
        for d in started:
            d.stop()
        raise
    return started


# -- the systemd unit's command line ------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def unit_setting(unit_text: str, key: str) -> list[str]:
    """The values of ``key=`` in a unit file, in order (comments and blank lines skipped;
    no line continuations are used in our units)."""
    out = []
    for line in unit_text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and line.partition("=")[0].strip() == key:
            out.append(line.partition("=")[2].strip())
    return out


def unit_environment(unit_text: str, files: Mapping[str, str]) -> dict[str, str]:
    """What systemd gives the service: ``Environment=`` (defaults), then the ``EnvironmentFile=``
    contents (``files``: what the test would have written there), which win."""
    env: dict[str, str] = {}
    for value in unit_setting(unit_text, "Environment"):
        for assignment in shlex.split(value):
            k, _, v = assignment.partition("=")
            env[k] = v
    env.update(files)
    return env


def unit_argv(unit_path: Path, instance: str, env: Mapping[str, str], state_root: Path) -> list[str]:
    """``ExecStart=`` of ``unit_path`` as systemd runs it for ``instance``: ``%i``/``%I`` is the
    instance, ``%S`` the state root (``/var/lib`` under systemd; ``state_root`` here), ``%%`` a
    percent sign; ``${NAME}`` is one word (systemd: empty when unset; here an unset one is an error,
    so a variable the unit needs and the test forgot fails the test), ``$NAME`` splits on spaces."""
    text = Path(unit_path).read_text()
    lines = unit_setting(text, "ExecStart")
    if len(lines) != 1:
        raise ValueError(f"{unit_path}: expected one ExecStart=, found {len(lines)}")
    specifiers = {"i": instance, "I": instance, "S": str(state_root), "%": "%"}

    def spec(m: re.Match[str]) -> str:
        if m.group(1) not in specifiers:
            raise ValueError(f"{unit_path}: specifier %{m.group(1)} is not rendered by this helper")
        return specifiers[m.group(1)]

    argv: list[str] = []
    for word in shlex.split(re.sub(r"%(.)", spec, lines[0])):
        whole = re.fullmatch(r"\$(\w+)", word)
        if whole:  # $NAME: split into words
            argv.extend(_lookup(env, whole.group(1), unit_path).split())
            continue
        argv.append(_VAR.sub(lambda m: _lookup(env, m.group(1) or m.group(2), unit_path), word))
    return argv


def _lookup(env: Mapping[str, str], name: str, unit_path: Path) -> str:
    if name not in env:
        raise KeyError(f"{unit_path} uses ${{{name}}}, which the environment files do not set")
    return env[name]


def runtimed_flags() -> set[str]:
    """The long flags ``runtimed --help`` lists today."""
    out = subprocess.run([sys.executable, "-m", "runtimed", "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out))
