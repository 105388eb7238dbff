"""Session-era sessions and the SSE streams of both eras.

Owns ``Stream`` (an ordered buffer of SSE events with ids, bounded in count
and bytes, which a
writer drains and a client may resume with ``Last-Event-ID``; a session's
streams are ``resumable`` and their writers start with a priming event: an id
and a ``retry`` field, empty data, per the 2025-11-25 transport), ``Session``
(negotiated version, client info and capabilities, the GET stream, open POST
streams, requests in flight, server-to-client requests awaiting an answer,
resource subscriptions), ``SessionStore`` (ids minted with
``secrets.token_urlsafe``, lookup, end, idle expiry, the cap on how many are
held: at the cap the session idle the longest is evicted, and with none idle a
new one is refused with ``SessionLimit``) and ``Listener`` (one stateless-era
``subscriptions/listen`` stream). A session is idle when nothing of it is in
flight and no GET stream of it is open. Must not: route calls, know about
services, or write HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtimed.errors import RpcError, UpstreamError
from runtimed.protocol.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, SERVER_ERROR, dumps
from runtimed.protocol.types import JSON

STREAM_KEEP = 1000  # events kept per stream for resumption
STREAM_KEEP_BYTES = 4 * 1024 * 1024  # and at most these bytes of them (the newest event always)
PRIMING_RETRY_MS = 1000  # the ``retry`` of a priming event: how long a client waits before resuming
RECENT_STREAMS = 64  # finished POST streams kept per session for resumption
RECENT_STREAM_BYTES = 1024 * 1024  # of those, the events kept past the newest finished one
SESSION_IDLE_S = 3600.0  # the default of settings.session_idle_s
MAX_SESSIONS = 1000  # the default of settings.max_sessions


class Stream:
    """One SSE stream's events: ``id: <stream>.<seq>``; the last one may be final."""

    __slots__ = ("_bytes", "_waiters", "closed", "events", "id", "on_event", "resumable", "seq")

    def __init__(self, stream_id: str | None = None) -> None:
        self.id = stream_id or secrets.token_hex(6)
        self.resumable = False  # a session's stream: GET with Last-Event-ID resumes it (the stateless era has none)
        self.seq = 0
        self.events: collections.deque[tuple[int, bytes, bool]] = collections.deque()
        self._bytes = 0  # of the events kept
        self.closed = False
        # Called on each event that is not the final one (the exchange then switches to SSE).
        self.on_event: Callable[[], None] | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def push(self, msg: JSON, final: bool = False) -> None:
        if self.closed:
            return
        self.seq += 1
        data = dumps(msg)
        self.events.append((self.seq, data, final))
        self._bytes += len(data)
        while len(self.events) > STREAM_KEEP or (self._bytes > STREAM_KEEP_BYTES and len(self.events) > 1):
            self._bytes -= len(self.events.popleft()[1])
        if final:
            self.closed = True
        elif self.on_event is not None:
            self.on_event()
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def nbytes(self) -> int:
        """The bytes of the events kept."""
        return self._bytes

    def after(self, seq: int) -> list[tuple[int, bytes, bool]]:
        if not self.events or self.events[-1][0] <= seq:
            return []
        return [e for e in self.events if e[0] > seq]

    async def wait_after(self, seq: int, timeout: float | None) -> list[tuple[int, bytes, bool]]:
        """Events after ``seq``; waits up to ``timeout`` for one. [] on timeout or when closed."""
        ready = self.after(seq)
        if ready or self.closed:
            return ready
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
        return self.after(seq)

    def frame(self, seq: int, data: bytes) -> bytes:
        return b"id: " + f"{self.id}.{seq}".encode() + b"\nevent: message\ndata: " + data + b"\n\n"

    def priming(self, seq: int) -> bytes:
        """The first event a writer sends from after ``seq``: an id to resume from and a ``retry``, with
        empty data (clients do not dispatch it). Empty for a stream that cannot be resumed."""
        if not self.resumable:
            return b""
        return b"id: " + f"{self.id}.{seq}".encode() + f"\nretry: {PRIMING_RETRY_MS}\ndata:\n\n".encode()


class Session:
    def __init__(self, session_id: str, version: str, client_info: JSON, capabilities: JSON, scope: str | None) -> None:
        self.id = session_id
        self.version = version
        self.client_info = client_info
        self.capabilities = capabilities
        self.scope = scope  # None: the aggregate endpoint; else the service name
        self.created = self.last_seen = time.monotonic()
        self.end_reason: str | None = None  # set when it ends: deleted, expired, evicted, shutdown
        self.initialized = False
        self.standalone = Stream("g" + secrets.token_hex(5))
        self.standalone.resumable = True
        self.get_writer = 0  # increments per GET; an older writer stops
        self.get_connected = 0
        self.streams: collections.OrderedDict[str, Stream] = collections.OrderedDict()
        self.inflight: dict[Any, Any] = {}  # request id -> its call, with cancel() (``exchange.Exchange``)
        self.pending: dict[Any, asyncio.Future[JSON]] = {}
        self.subscriptions: set[str] = set()
        self.log_level: str | None = None
        self._ids = itertools.count(1)

    def add_stream(self, stream: Stream) -> None:
        """Keep ``stream`` for resumption, dropping the oldest finished ones past ``RECENT_STREAMS``
        or past ``RECENT_STREAM_BYTES`` of events (the newest finished one is always kept)."""
        stream.resumable = True
        self.streams[stream.id] = stream
        while len(self.streams) > RECENT_STREAMS:
            oldest = next(iter(self.streams))
            if not self.streams[oldest].closed:
                break
            self.streams.popitem(last=False)
        finished = [s for s in self.streams.values() if s.closed]
        kept = sum(s.nbytes() for s in finished[:-1])
        for old in finished[:-1]:
            if kept <= RECENT_STREAM_BYTES:
                break
            kept -= old.nbytes()
            del self.streams[old.id]

    @property
    def idle(self) -> bool:
        """Nothing in flight and no GET stream open: the client may have left."""
        return not self.inflight and not self.get_connected

    def find_stream(self, stream_id: str) -> Stream | None:
        if stream_id == self.standalone.id:
            return self.standalone
        return self.streams.get(stream_id)

    def has_capability(self, method: str) -> bool:
        need = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}.get(method)
        return need is None or self.capabilities.get(need) is not None

    async def ask(self, stream: Stream, method: str, params: JSON) -> JSON:
        """Send a server-to-client request on ``stream``; await the client's POSTed answer."""
        req_id = f"rt-{next(self._ids)}"
        fut: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        try:
            stream.push({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
            reply = await fut
        finally:
            self.pending.pop(req_id, None)
        if "error" in reply:
            err = reply["error"] if isinstance(reply["error"], dict) else {}
            code = err.get("code")
            # A client's malformed error (a code that is not an integer) is still an error, never a crash.
            code = code if isinstance(code, int) and not isinstance(code, bool) else INTERNAL_ERROR
            raise UpstreamError(code, str(err.get("message", "client error")), err.get("data"))
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    def answer(self, msg: JSON) -> bool:
        fut = self.pending.get(msg.get("id"))
        if fut is None or fut.done():
            return False
        fut.set_result(msg)
        return True

    def close(self) -> None:
        for task in list(self.inflight.values()):
            task.cancel()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result({"error": {"code": SERVER_ERROR, "message": "session ended"}})
        self.standalone.close()
        for s in self.streams.values():
            s.close()


@dataclass(eq=False)
class Listener:
    """One stateless-era ``subscriptions/listen`` stream."""

    stream: Stream
    scope: str | None
    agreed: JSON
    meta: JSON


class SessionLimit(RpcError):
    """Every one of ``max_sessions`` sessions is active: a new one is refused (HTTP 503)."""

    def __init__(self, held: int) -> None:
        noun = "session" if held == 1 else "sessions"
        super().__init__(SERVER_ERROR, f"the gateway holds {held} {noun}, its limit, and none is idle (each has a "
                         "call in flight or an open GET stream): retry once a client ends its session (DELETE), or "
                         "raise max_sessions (RUNTIMED_MAX_SESSIONS)", http_status=503)


def check_client_size(client_info: JSON, capabilities: JSON, limit: int) -> None:
    """Refuse (-32602) an initialize whose clientInfo and capabilities take more than ``limit``
    bytes as JSON: a session keeps both for its lifetime, and nothing is cut from them (the
    gateway relays what a client declared, so a trimmed copy would misstate it)."""
    size = len(dumps(client_info)) + len(dumps(capabilities))
    if size > limit:
        raise RpcError(INVALID_PARAMS, f"Invalid params: the client's capabilities and clientInfo take {size} bytes "
                       f"as JSON, more than the {limit} a session keeps; send smaller ones, or raise "
                       "session_client_max_bytes (RUNTIMED_SESSION_CLIENT_MAX_BYTES)")


class SessionStore:
    def __init__(self, on_end: Callable[[Session], None] | None = None, idle_s: float = SESSION_IDLE_S,
                 max_sessions: int = MAX_SESSIONS, on_start: Callable[[Session], None] | None = None) -> None:
        self.sessions: dict[str, Session] = {}
        self._on_end = on_end
        self._on_start = on_start
        self.idle_s = idle_s
        self.max_sessions = max_sessions

    def create(self, version: str, client_info: JSON, capabilities: JSON, scope: str | None) -> Session:
        """A new session; at the cap, first ends the one idle the longest. Raises ``SessionLimit``."""
        self.expire()
        while len(self.sessions) >= self.max_sessions:
            idle = [s for s in self.sessions.values() if s.idle]
            if not idle:
                raise SessionLimit(len(self.sessions))
            self.end(min(idle, key=lambda s: s.last_seen).id, "evicted")
        sid = secrets.token_urlsafe(24)
        s = Session(sid, version, client_info, capabilities, scope)
        self.sessions[sid] = s
        if self._on_start is not None:
            self._on_start(s)
        return s

    def get(self, sid: str) -> Session | None:
        s = self.sessions.get(sid)
        if s is not None:
            s.last_seen = time.monotonic()
        return s

    def end(self, sid: str, reason: str = "deleted") -> Session | None:
        s = self.sessions.pop(sid, None)
        if s is not None:
            s.end_reason = reason
            s.close()
            if self._on_end is not None:
                self._on_end(s)
        return s

    def expire(self) -> int:
        """End the sessions idle for longer than ``idle_s``; returns how many."""
        now = time.monotonic()
        ended = 0
        for sid, s in list(self.sessions.items()):
            if now - s.last_seen > self.idle_s and s.idle:
                self.end(sid, "expired")
                ended += 1
        return ended

    def __len__(self) -> int:
        return len(self.sessions)

    def all(self) -> list[Session]:
        return list(self.sessions.values())

    def close_all(self) -> None:
        for sid in list(self.sessions):
            self.end(sid, "shutdown")
