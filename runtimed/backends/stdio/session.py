"""One MCP session over a child process's stdio (the spec's stdio transport).

Owns ``StdioSession``: the child (started through ``process``), the
newline-delimited JSON-RPC on its stdin and stdout (a line that is not
JSON-RPC is logged and skipped; a line past the limit ends the child), the
handshake (``initialize`` at the newest session-era version, then
``notifications/initialized``), requests with their progress tokens,
deadlines and cancellation (``notifications/cancelled``), and what the child
sends besides answers: a call's progress goes to that call; a server-to-client
request or a log message goes to the one client whose calls are in flight, and
otherwise to the host (a client's own child: that client; the shared child:
nobody is asked, since no one client can answer for another). When the child
exits, every pending request fails with its exit status and the last lines of
its stderr, and the host hears ``on_failure``. Must not: decide which client
gets which session (the backend does), enforce call policies, or put a secret
value in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimed.backends.base import BackendHost, CallContext, NullRelay
from runtimed.backends.messages import (
    answer_server_request,
    handle_unsolicited_notification,
    is_notification,
    is_request,
    is_response,
    relay_call_notification,
    result_of,
    spawn_guarded,
    swap_progress_token,
)
from runtimed.backends.parking import CAPABILITY_OF
from runtimed.backends.stdio import process
from runtimed.config.manifest import StdioOrigin
from runtimed.errors import BackendFault
from runtimed.protocol import jsonrpc
from runtimed.protocol.jsonrpc import METHOD_NOT_FOUND
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import LATEST_SESSION, UPSTREAM_HANDSHAKE_VERSIONS

log = logging.getLogger("runtimed.backends.stdio")


@dataclass(eq=False)
class _Pending:
    future: asyncio.Future[tuple[JSON, int]]
    ctx: CallContext
    own_token: str | None
    method: str


@dataclass(frozen=True)
class SessionConfig:
    """What a session is started with; one per service, copied for a client's own child."""

    origin: StdioOrigin
    env: dict[str, str]
    secrets: list[str]
    cwd: str
    state_dir: str
    service: str  # the service's name, for pid files and messages
    stderr_path: Path
    client_info: JSON
    client_capabilities: JSON
    line_limit: int  # the longest stdout line accepted (the service's maxPayloadBytes)
    start_timeout_s: float
    default_timeout_s: float


class StdioSession:
    """One child and the MCP session over its stdin and stdout."""

    def __init__(self, config: SessionConfig, host: BackendHost) -> None:
        self.config = config
        self.host = host
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.started_at: float | None = None
        self.exit_status: int | None = None
        self.protocol_version: str | None = None
        self.capabilities: JSON = {}
        self.server_info: JSON = {}
        self.instructions: str | None = None
        self.skipped_lines = 0
        self.stderr = process.StderrLog(
            config.stderr_path, config.origin.limits.stderrBytes or process.DEFAULT_STDERR_BYTES, config.secrets,
            lambda line: host.log("info", f"stderr: {line}"))
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._pid_file: Path | None = None
        self._closing = False
        self._ended: str | None = None  # why the child is gone, once it is

    @property
    def alive(self) -> bool:
        return self.proc is not None and self._ended is None

    # -- start and end -------------------------------------------------------------------------
    async def open(self) -> None:
        """Start the child and complete the handshake within the start timeout; raise
        ``BackendFault`` saying why not (with the child's last stderr lines)."""
        cfg = self.config
        try:
            self.proc = await process.spawn(cfg.origin, cfg.env, cfg.cwd, cfg.line_limit)
        except OSError as e:
            raise BackendFault(process.start_error(cfg.origin, e, cfg.cwd), kind="connect") from None
        self.pid = self.proc.pid
        self.started_at = time.time()
        self._pid_file = process.record_child(cfg.state_dir, self.proc.pid, cfg.service)
        assert self.proc.stderr is not None
        self._stderr_task = asyncio.ensure_future(self.stderr.pump(self.proc.stderr))
        self._reader = asyncio.ensure_future(self._read_loop())
        params = {"protocolVersion": LATEST_SESSION, "capabilities": cfg.client_capabilities,
                  "clientInfo": cfg.client_info}
        try:
            ctx = CallContext(deadline=asyncio.get_running_loop().time() + cfg.start_timeout_s)
            result = await self.request("initialize", params, ctx, what="the MCP handshake (initialize)")
        except BackendFault as e:
            if e.kind == "timeout":
                e = BackendFault(f"the process did not answer initialize within {cfg.start_timeout_s:g} s"
                                 f"{self._stderr_hint()}", kind="timeout")
            await self.close()
            raise e from None
        except BaseException:
            await self.close()
            raise
        version = result.get("protocolVersion")
        if version not in UPSTREAM_HANDSHAKE_VERSIONS:
            await self.close()
            raise BackendFault(f"the process chose protocol version {version!r}, which this gateway does not speak "
                               f"({', '.join(UPSTREAM_HANDSHAKE_VERSIONS)})", kind="protocol")
        self.protocol_version = version
        self.capabilities = dict(result.get("capabilities") or {})
        self.server_info = dict(result.get("serverInfo") or {})
        instructions = result.get("instructions")
        self.instructions = instructions if isinstance(instructions, str) else None
        await self.notify("notifications/initialized", None)

    async def close(self) -> None:
        """The stdio shutdown sequence (``process.terminate``); must not raise."""
        self._closing = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            how = await process.terminate(proc)
            self.host.log("info", f"process {proc.pid} stopped ({how})")
        self._end("the service was stopped", notify=False)
        for t in (self._reader, self._stderr_task, *self._tasks):
            if t is not None and not t.done():
                t.cancel()
        process.forget_child(self._pid_file)
        self._pid_file = None

    def _end(self, reason: str, *, notify: bool) -> None:
        """The child is gone: fail what waits, once; tell the host unless we ended it."""
        if self._ended is not None:
            return
        self._ended = reason
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(BackendFault(reason, kind="connect"))
                pending.future.exception()
        self._pending.clear()
        if notify and not self._closing:
            self.host.on_failure(reason)

    def _stderr_hint(self) -> str:
        tail = [line for line in self.stderr.tail if line.strip()][-5:]
        return ("; its stderr ends with: " + " | ".join(tail)) if tail else ""

    # -- reading -------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        reason: str | None = None  # set when the gateway ends the child for what it wrote
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # longer than the limit, no newline within it
                    reason = (f"the process wrote a line of more than {self.config.line_limit} bytes on stdout "
                              "(the service's maxPayloadBytes); it was ended")
                    self.host.log("error", reason)
                    process.kill_group(proc.pid)
                    break
                if not line:
                    break
                text = line.strip()
                if text:
                    self._dispatch(text, len(line))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the reader must end in _end, whatever happened
            reason = f"reading the process's stdout failed: {type(e).__name__}"
        if self._closing:
            self._end("the service was stopped", notify=False)
            return
        try:
            self.exit_status = await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            self.exit_status = None
        if self._stderr_task is not None:  # the last stderr lines explain the exit
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 0.5)
        if reason is None:
            status = self.exit_status
            reason = ("the process closed its stdout" if status is None else
                      f"the process exited with status {status}" if status >= 0 else
                      f"the process was killed by signal {-status}") + self._stderr_hint()
        self._end(reason, notify=True)

    def _dispatch(self, text: bytes, size: int) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        messages = msg if isinstance(msg, list) else [msg]
        if not messages or not all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in messages):
            self.skipped_lines += 1
            shown = self.stderr.mask(text[:200].decode("utf-8", "replace"))
            self.host.log("warning", f"stdout: skipped a line that is not JSON-RPC: {shown}")
            return
        for m in messages:
            if is_response(m):
                pending = self._pending.get(m.get("id"))
                if pending is not None and not pending.future.done():
                    pending.future.set_result((m, size))
            elif is_request(m):
                spawn_guarded(self._tasks, self._answer(m), f"answering {m.get('method')}")
            elif is_notification(m):
                spawn_guarded(self._tasks, self._notified(m), f"relaying {m.get('method')}")

    def _calls(self) -> list[_Pending]:
        """The pending requests made for a client (not the gateway's own: probes, lists)."""
        return [p for p in self._pending.values() if not isinstance(p.ctx.relay, NullRelay)]

    def _asker(self) -> CallContext | None:
        """The call a server-to-client message belongs to: stdio does not say, so it is the one
        client's whose calls are in flight; None when there are none or several clients'."""
        calls = self._calls()
        if len(calls) == 1:
            return calls[0].ctx
        owners = {p.ctx.client_id for p in calls}
        if calls and len(owners) == 1 and None not in owners:
            return calls[0].ctx
        return None

    async def _answer(self, msg: JSON) -> None:
        method = msg.get("method")
        need = CAPABILITY_OF.get(method) if isinstance(method, str) else None
        if need is not None and need not in self.config.client_capabilities:
            # Never asked of anyone: this session did not declare it (the shared child has no roots).
            reply = jsonrpc.error_response(msg.get("id"), METHOD_NOT_FOUND,
                                           f"{method}: this client did not declare the {need!r} capability")
        else:
            reply = await answer_server_request(msg, self._asker(), self.host)
        await self._write(reply)

    async def _notified(self, msg: JSON) -> None:
        method = msg.get("method", "")
        params = msg.get("params") or {}
        if method == "notifications/progress":
            token = params.get("progressToken")
            for p in self._calls():
                if p.own_token is not None and p.own_token == token:
                    await relay_call_notification(msg, p.ctx, p.own_token, self.host)
            return
        ctx = self._asker() if method == "notifications/message" else None
        if ctx is not None:
            await relay_call_notification(msg, ctx, None, self.host)
        else:
            handle_unsolicited_notification(method, params, self.host)

    # -- writing -------------------------------------------------------------------------------
    async def _write(self, message: JSON) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or self._ended is not None:
            raise BackendFault(self._ended or "the process is not running", kind="connect", safe_to_retry=True)
        data = jsonrpc.dumps(message) + b"\n"
        async with self._write_lock:
            try:
                proc.stdin.write(data)
                await proc.stdin.drain()
            except (ConnectionError, RuntimeError, OSError):
                raise BackendFault("the process closed its stdin (it is exiting)", kind="connect") from None

    async def request(self, method: str, params: JSON | None, ctx: CallContext, *, what: str | None = None) -> JSON:
        """Send one request and return its ``result``; ``UpstreamError`` for the child's error,
        ``BackendFault`` for a timeout, an over-limit answer or a gone child."""
        what = what or method
        rid = next(self._ids)
        params = dict(params or {})
        meta = dict(params.get("_meta") or {})
        own_token = swap_progress_token(meta, ctx, rid, enabled=method != "initialize")
        if meta:
            params["_meta"] = meta
        else:
            params.pop("_meta", None)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[JSON, int]] = loop.create_future()
        self._pending[rid] = _Pending(future, ctx, own_token, method)
        timeout = (ctx.deadline - loop.time()) if ctx.deadline is not None else self.config.default_timeout_s
        try:
            await self._write(jsonrpc.request(rid, method, params))
            try:
                reply, size = await asyncio.wait_for(asyncio.shield(future), max(timeout, 0.001))
            except TimeoutError:
                self._cancel_upstream(rid, "timed out at the gateway")
                raise BackendFault(f"{what}: no answer within {max(timeout, 0):.1f} s", kind="timeout") from None
        except asyncio.CancelledError:
            self._cancel_upstream(rid, "cancelled by the gateway (client cancel or timeout)")
            raise
        finally:
            self._pending.pop(rid, None)
        if ctx.max_response_bytes is not None and size > ctx.max_response_bytes:
            raise BackendFault(f"{what}: the answer ({size} bytes) is larger than the limit of "
                               f"{ctx.max_response_bytes} bytes", kind="payload")
        return result_of(reply, what)

    def _cancel_upstream(self, rid: int, reason: str) -> None:
        if self._ended is None:
            spawn_guarded(self._tasks, self._write(jsonrpc.notification(
                "notifications/cancelled", {"requestId": rid, "reason": reason})), "sending notifications/cancelled")

    async def notify(self, method: str, params: JSON | None) -> None:
        await self._write(jsonrpc.notification(method, params))

    async def ping(self, timeout_s: float) -> None:
        ctx = CallContext(deadline=asyncio.get_running_loop().time() + timeout_s)
        await self.request("ping", {}, ctx)

    def describe(self) -> JSON:
        """The child's facts (no secrets: its stderr lines are masked)."""
        return {
            "pid": self.pid if self.alive else None,
            "startedAt": self.started_at,
            "uptimeSeconds": round(time.time() - self.started_at, 1) if self.started_at and self.alive else None,
            "exitStatus": self.exit_status,
            "skippedStdoutLines": self.skipped_lines,
            "stderrLog": str(self.stderr.path),
        }
