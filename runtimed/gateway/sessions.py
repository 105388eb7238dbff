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
new one is refused with ``SessionLimit``; with a shared state store, each
session's record is kept there too, so that any replica serves any session:
``find`` adopts a session another replica created, and a server-to-client
request is claimed so that the client's answer reaching another replica is
routed back here) and ``Listener`` (one stateless-era
``subscriptions/listen`` stream). A session is idle when nothing of it is in
flight and no GET stream of it is open. Must not: route calls, know about
services, or write HTTP.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtimed.errors import RpcError, StoreUnavailable, UpstreamError
from runtimed.protocol.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, SERVER_ERROR, dumps
from runtimed.protocol.types import JSON

if TYPE_CHECKING:
    from runtimed.state.store import Store

log = logging.getLogger("runtimed.gateway")

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
        self.subscribed: dict[str, str] = {}  # uri -> id of the service holding the upstream subscription
        self.log_level: str | None = None
        self.adopted = False  # created by another replica (its streams' events are not here)
        self.principal: str | None = None  # ``Principal.key`` of who initialized it (OAuth); None without
        self.saved_at = 0.0  # monotonic time its shared record was last written or touched
        # Called with (session, request id) before a server-to-client request is sent: a shared
        # store then routes the client's answer here, whichever replica it reaches.
        self.claim: Callable[[Session, str], Awaitable[None]] | None = None
        self._prefix = secrets.token_hex(3)  # request ids unique across replicas serving this session
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
        req_id = f"rt-{self._prefix}-{next(self._ids)}"
        fut: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        try:
            if self.claim is not None:
                await self.claim(self, req_id)
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
                 max_sessions: int = MAX_SESSIONS, on_start: Callable[[Session], None] | None = None,
                 store: Store | None = None, on_adopt: Callable[[Session], None] | None = None) -> None:
        """``store``: the state store; when replicas share it, session records are kept there
        (``on_adopt``: a session another replica created is served here from now on)."""
        self.store = store
        self.shared = store is not None and store.shared
        self._on_adopt = on_adopt
        self._tasks: set[asyncio.Task[None]] = set()
        self.sessions: dict[str, Session] = {}
        self._on_end = on_end
        self._on_start = on_start
        self.idle_s = idle_s
        self.max_sessions = max_sessions

    def _make_room(self) -> None:
        """Below the cap: the expired sessions end, then, at the cap, the one idle the longest.
        Raises ``SessionLimit`` when every session is active."""
        self.expire()
        while len(self.sessions) >= self.max_sessions:
            idle = [s for s in self.sessions.values() if s.idle]
            if not idle:
                raise SessionLimit(len(self.sessions))
            self.end(min(idle, key=lambda s: s.last_seen).id, "evicted")

    def create(self, version: str, client_info: JSON, capabilities: JSON, scope: str | None) -> Session:
        """A new session; at the cap, first ends the one idle the longest. Raises ``SessionLimit``."""
        self._make_room()
        sid = secrets.token_urlsafe(24)
        s = Session(sid, version, client_info, capabilities, scope)
        self.sessions[sid] = s
        if self._on_start is not None:
            self._on_start(s)
        return s

    # -- shared records (several replicas) ---------------------------------------------
    async def open(self, version: str, client_info: JSON, capabilities: JSON, scope: str | None,
                   principal: str | None = None) -> Session:
        """``create``, and the record kept in a shared store (when it cannot be reached the session
        still works, on this replica only, and that is logged). ``principal``: who it belongs to."""
        s = self.create(version, client_info, capabilities, scope)
        s.principal = principal
        if self.shared:
            s.claim = self._claim
            await self.save(s)
        return s

    @staticmethod
    def record(s: Session) -> JSON:
        """What another replica needs to serve ``s``."""
        return {"version": s.version, "clientInfo": s.client_info, "capabilities": s.capabilities, "scope": s.scope,
                "initialized": s.initialized, "logLevel": s.log_level, "subscriptions": s.subscribed,
                "principal": s.principal}

    async def save(self, s: Session) -> None:
        """Write ``s``'s record (after initialized, logging/setLevel, a subscription change). Best effort."""
        if not self.shared or self.store is None:
            return
        try:
            await self.store.save_session(s.id, self.record(s), self.idle_s)
            s.saved_at = time.monotonic()
        except StoreUnavailable as e:
            log.warning("session %s…: its record could not be kept in the shared store (%s): only this replica "
                        "serves it until the next change", s.id[:8], e)

    def saved(self, s: Session) -> None:
        """``save`` in the background."""
        if self.shared:
            self._spawn(self.save(s))

    async def find(self, sid: str) -> Session | None:
        """``get``; with a shared store, a session another replica created is adopted from its record."""
        s = self.get(sid)
        if s is not None:
            if self.shared and s.last_seen - s.saved_at > min(60.0, self.idle_s / 4):
                s.saved_at = s.last_seen
                self._spawn(self._touch(sid))
            return s
        if not self.shared or self.store is None:
            return None
        try:
            rec = await self.store.load_session(sid)
        except StoreUnavailable as e:
            log.warning("could not look session %s… up in the shared store: %s", sid[:8], e)
            return None
        if not isinstance(rec, dict) or not isinstance(rec.get("version"), str):
            return None
        s = self.sessions.get(sid)
        if s is not None:  # adopted meanwhile by a concurrent request
            return s
        self._make_room()
        info, caps = rec.get("clientInfo"), rec.get("capabilities")
        scope = rec.get("scope")
        s = Session(sid, rec["version"], info if isinstance(info, dict) else {}, caps if isinstance(caps, dict) else {},
                    scope if isinstance(scope, str) else None)
        s.initialized = bool(rec.get("initialized", True))
        level = rec.get("logLevel")
        s.log_level = level if isinstance(level, str) else None
        subs = rec.get("subscriptions")
        if isinstance(subs, dict):
            s.subscribed = {str(k): str(v) for k, v in subs.items()}
            s.subscriptions = set(s.subscribed)
        principal = rec.get("principal")
        s.principal = principal if isinstance(principal, str) else None
        s.adopted = True
        s.saved_at = time.monotonic()
        s.claim = self._claim
        self.sessions[sid] = s
        if self._on_adopt is not None:
            self._on_adopt(s)
        return s

    async def close(self, sid: str) -> Session | None:
        """The client ended its session (DELETE): here, and for every replica."""
        s = self.end(sid, "deleted")
        if self.shared and self.store is not None:
            try:
                await self.store.drop_session(sid)
            except StoreUnavailable as e:
                log.warning("could not drop session %s… from the shared store: %s", sid[:8], e)
        return s

    async def _touch(self, sid: str) -> None:
        if self.store is not None:
            try:
                await self.store.touch_session(sid, self.idle_s)
            except StoreUnavailable as e:
                log.debug("could not touch session %s…: %s", sid[:8], e)

    async def _claim(self, s: Session, req_id: str) -> None:
        if self.store is not None:
            try:
                await self.store.claim_request(s.id, req_id, self.idle_s)
            except StoreUnavailable as e:
                log.warning("the answer to %s may not find this replica: %s", req_id, e)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
