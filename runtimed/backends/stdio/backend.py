"""Stdio MCP servers as a backend: a program the daemon runs and speaks MCP to
over the child's stdin and stdout (``npx ...``, ``uvx ...``, ``python -m ...``).

Owns: ``prepare_stdio_origin`` (registration checks: the program is found, the
working directory exists) and ``StdioBackend``: which session serves a call,
start (references resolved, the child started and initialized within the
start timeout), stop, probes (a ping; method-not-found means alive),
introspection (``introspection.read_interface``) and ``describe()`` (pid,
uptime, the command line, the stderr tail; references, never values).

Sessions. A stdio server holds exactly one session per process. With
``clientSessions: shared`` (the default) one child serves every client: it is
declared with sampling and elicitation only, never roots (a shared process
would keep one client's roots for all), a client's ``roots/list_changed`` is
not forwarded, and what the child asks outside a call, or while several
clients' calls are in flight, is refused (no one client can answer for
another); a client's ``logging/setLevel`` is not forwarded (it would set the
level for everyone). With ``per-client`` each session-era client gets a child of its own
(``sessions.ClientSessions``), declared with that client's info and
capabilities, so roots, log level and server-to-client requests are the
client's own. Stateless-era clients and the gateway's own work always use the
shared child; what it asks a stateless client mid-call comes back as an
input-required result (``parking``). Its ``secret_mask()`` masks the resolved
reference values the children get (in what they say, by ``masking``; in their
stderr, by ``process``). Must not: enforce call policies, or put a
secret value in a log line, an event, an exception or ``describe()``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from runtimed import __version__
from runtimed.backends.base import Backend, BackendHost, CallContext, Health, Interface, ProbeResult
from runtimed.backends.introspection import read_interface
from runtimed.backends.messages import error_text
from runtimed.backends.parking import ParkedCalls
from runtimed.backends.secrets import NO_SECRETS, SecretMask
from runtimed.backends.sessions import ClientHost, ClientSessions, close_quietly
from runtimed.backends.stdio import process
from runtimed.backends.stdio.session import SessionConfig, StdioSession
from runtimed.config.manifest import ServiceManifest, StdioOrigin
from runtimed.errors import BackendError, BackendFault, BackendStartError, InvalidOrigin, SecretError, UpstreamError
from runtimed.protocol.jsonrpc import METHOD_NOT_FOUND
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import is_stateless

CLIENT_INFO = {"name": "mcp-runtimed", "version": __version__}
# What the shared child is told its client can do: it relays sampling and elicitation to the
# client whose call asks; roots are per-client state a shared process would keep for everyone.
SHARED_CAPABILITIES: JSON = {"sampling": {}, "elicitation": {"form": {}}}
DEFAULT_START_TIMEOUT_S = 60.0  # npx and uvx may download the server first
PER_CLIENT_MAX = 32  # children for per-client sessions at once (least recently used closed first)
PER_CLIENT_IDLE_S = 600.0
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
STDERR_SHOWN = 10


def prepare_stdio_origin(manifest: ServiceManifest, settings: Any) -> ServiceManifest:
    """Registration-time checks: the working directory exists; the program can be found."""
    origin = manifest.spec.origin
    if not isinstance(origin, StdioOrigin):
        raise InvalidOrigin("not a stdio origin")
    name = manifest.name
    if origin.cwd is not None and not Path(origin.cwd).is_dir():
        raise InvalidOrigin(f"service {name!r}: the working directory {origin.cwd} does not exist (spec.origin.cwd)")
    if "/" in origin.command:
        program = Path(origin.cwd or ".", origin.command) if not origin.command.startswith("/") else Path(origin.command)
        if not program.is_file():
            raise InvalidOrigin(f"service {name!r}: the program {origin.command} does not exist")
        if not os.access(program, os.X_OK):
            raise InvalidOrigin(f"service {name!r}: the program {origin.command} is not executable (chmod +x it)")
    elif shutil.which(origin.command) is None:
        raise InvalidOrigin(f"service {name!r}: {origin.command!r} was not found on the daemon's PATH "
                            "(install it, or give its absolute path)")
    return manifest


class StdioBackend(Backend):
    """One stdio service: its shared child and, in per-client mode, one child per client."""

    def __init__(self, manifest: ServiceManifest, host: BackendHost) -> None:
        super().__init__(manifest, host)
        self._shared: StdioSession | None = None
        self._clients: ClientSessions[StdioSession] | None = None
        self._config: SessionConfig | None = None
        self._parked = ParkedCalls()
        self._children_started = 0
        self._mask = NO_SECRETS  # the resolved env: / file: values its children get

    @property
    def origin(self) -> StdioOrigin:
        origin = self.manifest.spec.origin
        assert isinstance(origin, StdioOrigin)
        return origin

    def _default_timeout_s(self) -> float:
        return (self.manifest.spec.policy.timeoutMs or self.host.settings.policy.timeoutMs) / 1000.0

    def _max_payload(self) -> int:
        return int(self.manifest.spec.policy.maxPayloadBytes or self.host.settings.policy.maxPayloadBytes)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        origin = self.origin
        state_dir = self.host.state_dir
        try:
            env, secrets = process.child_environment(origin, state_dir)
        except SecretError as e:
            raise BackendStartError(f"cannot start {self.manifest.name!r}: {e}") from None
        self._mask = SecretMask(secrets)
        cwd = origin.cwd or str(Path(state_dir, "run", self.manifest.id))
        if origin.cwd is None:
            Path(cwd).mkdir(parents=True, exist_ok=True)
        limits = origin.limits
        self._config = SessionConfig(
            origin=origin, env=env, secrets=secrets, cwd=cwd, state_dir=state_dir, service=self.manifest.name,
            stderr_path=Path(state_dir, "logs", f"{self.manifest.name}.stderr.log"), client_info=CLIENT_INFO,
            client_capabilities=SHARED_CAPABILITIES, line_limit=self._max_payload(),
            start_timeout_s=(limits.startTimeoutMs / 1000.0) if limits.startTimeoutMs else DEFAULT_START_TIMEOUT_S,
            default_timeout_s=self._default_timeout_s(),
        )
        session = StdioSession(self._config, self.host)
        try:
            await session.open()
        except BackendError as e:
            raise BackendStartError(f"cannot start {self.manifest.name!r}: {error_text(e)}") from None
        self._children_started += 1
        self._shared = session
        if origin.clientSessions == "per-client":
            self._clients = ClientSessions(self._open_client_session, _close_children, max_sessions=PER_CLIENT_MAX,
                                           idle_s=PER_CLIENT_IDLE_S, is_alive=lambda s: s.alive)
        self.host.log("info", f"started {origin.command_line()} (pid {session.pid}, protocol {session.protocol_version})")

    async def stop(self) -> None:
        self._parked.close()
        clients, shared = self._clients, self._shared
        self._clients, self._shared = None, None
        if clients is not None:
            await clients.close_all()
        if shared is not None:
            await shared.close()

    def _require_shared(self) -> StdioSession:
        if self._shared is None:
            raise BackendFault(f"service {self.manifest.name!r} is not started", kind="connect", safe_to_retry=True)
        return self._shared

    # -- health --------------------------------------------------------------------------------
    async def probe(self) -> ProbeResult:
        hc = self.manifest.spec.healthCheck
        timeout_s = (hc.timeoutMs or self.host.settings.probe_timeout_ms) / 1000.0
        started = time.monotonic()
        try:
            await self._require_shared().ping(timeout_s)
        except BackendFault as e:
            return ProbeResult(Health.TIMEOUT if e.kind == "timeout" else Health.UNREACHABLE, str(e))
        except UpstreamError as e:
            latency = (time.monotonic() - started) * 1000
            if e.code == METHOD_NOT_FOUND:
                return ProbeResult(Health.HEALTHY, "alive (the server does not implement ping)", latency)
            return ProbeResult(Health.DEGRADED, f"ping answered with error {e.code}: {e.message}", latency)
        except Exception as e:  # must not raise
            return ProbeResult(Health.UNREACHABLE, f"probe failed: {type(e).__name__}")
        return ProbeResult(Health.HEALTHY, "ping ok", (time.monotonic() - started) * 1000)

    async def introspect(self) -> Interface:
        shared = self._require_shared()
        return await read_interface(shared.request, shared.capabilities, shared.server_info, shared.instructions,
                                    timeout_s=self._default_timeout_s(), max_response_bytes=self._max_payload(),
                                    log=self.host.log)

    # -- calls ---------------------------------------------------------------------------------
    async def call(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        shared = self._require_shared()
        if method == "logging/setLevel" and self._clients is None:
            return {}  # one client would set the shared child's level for all: not forwarded (docs/spec)
        if ctx.client_id is not None and self._clients is not None:
            return await (await self._clients.get(ctx.client_id, ctx)).request(method, params, ctx)
        if (method in INPUT_REQUIRED_METHODS and is_stateless(ctx.protocol_version)
                and (ctx.request_state is None or self._parked.owns(ctx.request_state))):
            upstream = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}
            return await self._parked.call(ctx, params, lambda inner: shared.request(method, upstream, inner))
        return await shared.request(method, params, ctx)

    async def _open_client_session(self, client_id: str, ctx: CallContext) -> StdioSession:
        assert self._config is not None
        config = replace(self._config, client_info=ctx.client_info or CLIENT_INFO,
                         client_capabilities=dict(ctx.client_capabilities or {}))
        session = StdioSession(config, ClientHost(self.host, client_id))
        await session.open()  # closes the child itself when it fails
        self._children_started += 1
        return session

    async def release_client(self, client_id: str) -> None:
        if self._clients is not None:
            await self._clients.release(client_id)

    async def notify(self, method: str, params: JSON, client_id: str | None = None) -> None:
        """Only a client's own child hears its notifications (roots/list_changed): the shared
        child was declared without roots."""
        session = self._clients.peek(client_id) if self._clients is not None and client_id is not None else None
        if session is None or not session.alive:
            return
        try:
            await session.notify(method, params)
        except BackendError as e:
            self.host.log("warning", f"forwarding {method} failed: {error_text(e)}")

    def secret_mask(self) -> SecretMask:
        return self._mask

    def describe(self) -> JSON:
        """``process`` holds the shared child's facts (the page and ``show`` render it for any kind)."""
        origin = self.origin
        shared = self._shared
        proc: JSON = {"command": origin.command_line(), "cwd": self._config.cwd if self._config else origin.cwd,
                      "pid": None, "uptimeSeconds": None, "stderrTail": []}
        if shared is not None:
            proc.update(shared.describe())
            proc["stderrTail"] = list(shared.stderr.tail)[-STDERR_SHOWN:]
        out: JSON = {
            "transport": "stdio",
            "protocolVersion": shared.protocol_version if shared is not None else None,
            "env": dict(origin.env),  # literals (never credentials: the manifest refuses those) and references
            "clientSessions": origin.clientSessions,
            "childrenStarted": self._children_started,
            "process": proc,
            "parkedCalls": len(self._parked),
        }
        if self._clients is not None:
            out["clientChildren"] = self._clients.describe()
        return out


async def _close_children(session: StdioSession) -> None:
    await close_quietly(session, 10.0)  # the shutdown sequence takes up to ~4 s, then SIGKILL
