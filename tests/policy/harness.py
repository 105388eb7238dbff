"""In-process harness for the policy engine tests.

``ScriptedUpstream`` is a real ``Backend`` subclass standing in for an
*upstream* (not for the policy engine under test): its ``call`` really
awaits, blocks on events, raises the backend errors a remote or WASM backend
raises, and counts what reached it. ``Svc`` is the part of ``ServiceRuntime``
the engine uses (name, id, manifest, policy, backend, interface, state, log).
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

from runtimed.backends import Backend, BackendFault, CallContext, Health, Interface, ProbeResult, UpstreamError
from runtimed.config.manifest import parse_manifest
from runtimed.config.settings import PolicyDefaults, Settings
from runtimed.errors import PolicyRefusal
from runtimed.gateway.errors import tool_refusal
from runtimed.policy.engine import PolicyEngine
from runtimed.policy.service import ServicePolicy

TOOLS = [
    {"name": "echo", "annotations": {"readOnlyHint": True}, "inputSchema": {"type": "object"}},
    {"name": "lookup", "annotations": {"readOnlyHint": True, "idempotentHint": True}, "inputSchema": {"type": "object"}},
    {"name": "write", "annotations": {"readOnlyHint": False}, "inputSchema": {"type": "object"}},
    {"name": "admin_delete", "inputSchema": {"type": "object"}},
    {"name": "admin_list", "annotations": {"readOnlyHint": True}, "inputSchema": {"type": "object"}},
    {"name": "block", "inputSchema": {"type": "object"}},
    {"name": "big", "inputSchema": {"type": "object"}},
    {"name": "flaky", "inputSchema": {"type": "object"}},
    {"name": "flaky_idem", "annotations": {"idempotentHint": True}, "inputSchema": {"type": "object"}},
    {"name": "connect_fail", "inputSchema": {"type": "object"}},
    {"name": "bad_args", "inputSchema": {"type": "object"}},
    {"name": "tool_fail", "inputSchema": {"type": "object"}},
    {"name": "stream_big", "inputSchema": {"type": "object"}},
]


class ScriptedUpstream(Backend):
    """An upstream whose behaviour per tool is scripted by the test."""

    def __init__(self, manifest: Any, host: Any) -> None:
        super().__init__(manifest, host)
        self.attempts: collections.Counter[str] = collections.Counter()
        self.started: list[str] = []  # order in which calls reached the upstream
        self.cancelled = 0
        self.gates: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)
        self.fail_times: dict[str, int] = {}  # tool -> how many more times to fault
        self.down = False  # every call faults (HTTP 500) while True
        self.seen_ctx: list[CallContext] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def probe(self) -> ProbeResult:
        return ProbeResult(Health.HEALTHY)

    async def introspect(self) -> Interface:
        return Interface(tools=list(TOOLS))

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params.get("name", method)
        args = params.get("arguments") or {}
        self.attempts[name] += 1
        self.seen_ctx.append(ctx)
        if self.down:
            raise BackendFault("HTTP 500 from upstream", kind="http", status=500)
        if method != "tools/call":
            if self.fail_times.get(method, 0) > 0:
                self.fail_times[method] -= 1
                raise BackendFault("upstream reset the connection", kind="protocol")
            return {"contents": [{"uri": params.get("uri", ""), "text": "resource"}]}
        self.started.append(args.get("tag", name))
        if name == "block":
            try:
                await self.gates[args.get("gate", "default")].wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return _text(f"released {args.get('tag', '')}")
        if name == "big":
            return _text("x" * int(args.get("size", 10)))
        if name == "stream_big":
            raise BackendFault(f"response exceeded {ctx.max_response_bytes} bytes", kind="payload")
        if name in ("flaky", "flaky_idem", "connect_fail"):
            if self.fail_times.get(name, 0) > 0:
                self.fail_times[name] -= 1
                if name == "connect_fail":
                    raise BackendFault("connection refused", kind="connect", safe_to_retry=True)
                raise BackendFault("HTTP 502 from upstream", kind="http", status=502)
            return _text(f"{name} ok")
        if name == "bad_args":
            raise UpstreamError(-32602, "invalid params: missing 'q'")
        if name == "tool_fail":
            return {"content": [{"type": "text", "text": "the tool failed"}], "isError": True}
        return _text(f"{name}: {args}")


def _text(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


class State:
    value = "RUNNING"


class Svc:
    """The slice of ``ServiceRuntime`` the policy engine reads."""

    def __init__(self, manifest: Any, settings: Settings) -> None:
        self.manifest = manifest
        self.policy = ServicePolicy(manifest, settings)
        self.backend: ScriptedUpstream | None = ScriptedUpstream(manifest, self)
        self.interface = Interface(tools=list(TOOLS))
        self.state = State()
        self.state_reason: str | None = None
        self.logs: list[tuple[str, str]] = []

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def id(self) -> str:
        return self.manifest.id

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    @property
    def up(self) -> ScriptedUpstream:
        assert self.backend is not None
        return self.backend


def make_settings(state_dir: Path, **policy: Any) -> Settings:
    return Settings(state_dir=state_dir, policy=PolicyDefaults(**policy))


def make_manifest(name: str = "svc", port: int = 9, **policy: Any) -> Any:
    return parse_manifest({
        "metadata": {"name": name},
        "spec": {"origin": {"type": "remote_mcp", "url": f"http://127.0.0.1:{port}/{name}/mcp"}, "policy": policy},
    })


class Harness:
    def __init__(self, state_dir: Path, defaults: dict[str, Any] | None = None) -> None:
        self.settings = make_settings(state_dir, **(defaults or {}))
        self.faults: list[tuple[str, str]] = []
        self.records: list[dict[str, Any]] = []
        self.engine = PolicyEngine(self.settings, report_fault=lambda svc, reason: self.faults.append((svc.name, reason)))
        self.engine.call_sinks.append(self.records.append)

    def service(self, name: str = "svc", **policy: Any) -> Svc:
        return Svc(make_manifest(name, **policy), self.settings)

    async def tool(self, svc: Svc, name: str, ctx: CallContext | None = None, **args: Any) -> dict[str, Any]:
        """A ``tools/call`` as the client gets it: a policy's refusal is the gateway's ``isError`` result."""
        try:
            return await self.engine.call(svc, "tools/call", {"name": name, "arguments": args}, ctx or CallContext())
        except PolicyRefusal as e:
            return tool_refusal(e)


def text_of(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def meta_of(result: dict[str, Any]) -> dict[str, Any]:
    return (result.get("_meta") or {}).get("runtimed") or {}


async def until(predicate: Any, what: str = "condition", limit: int = 2000) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded by iterations, not time)."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")
