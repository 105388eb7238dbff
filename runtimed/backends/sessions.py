"""Per-client upstream sessions of one service: the shared layer every kind of
backend with sessions uses (remote today; stdio next).

Owns ``ClientSessions``: one upstream session per downstream client id
(``CallContext.client_id``), opened lazily by the backend's factory on that
client's first request that needs the upstream (concurrent first requests
share one opening), closed when the backend releases the client (its
downstream session ended) or when it has been idle for ``idle_s``, and at
most ``max_sessions`` at once (the least recently used one is closed to make
room); one that died (``is_alive``) is replaced on the client's next request. Also ``ClientHost``: the ``BackendHost`` a per-client session reports
to, which tags server-to-client traffic with its client id so the gateway
answers it from that client only. Must not: know a transport, decide which
clients get a session of their own (the backend does), or share one client's
session with another.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from runtimed.backends.base import BackendHost, CallContext, HostProxy
from runtimed.protocol.types import JSON

S = TypeVar("S")

DEFAULT_MAX_SESSIONS = 256
DEFAULT_IDLE_S = 30 * 60.0


class ClientSessions(Generic[S]):
    """``client id -> upstream session``, opened by ``open_session(client_id, ctx)`` (``ctx``:
    the first call's context, whose client info and capabilities the session declares) and
    closed by ``close_session(session)`` (which must not raise)."""

    def __init__(
        self,
        open_session: Callable[[str, CallContext], Awaitable[S]],
        close_session: Callable[[S], Awaitable[None]],
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        idle_s: float = DEFAULT_IDLE_S,
        is_alive: Callable[[S], bool] | None = None,
    ) -> None:
        self._open = open_session
        self._close = close_session
        self._is_alive = is_alive  # a session that died (its process exited) is replaced on next use
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self._sessions: OrderedDict[str, tuple[S, float]] = OrderedDict()  # least recently used first
        self._opening: dict[str, asyncio.Future[S]] = {}
        self.opened = 0  # sessions opened over the backend's life (handshakes made for clients)

    def __len__(self) -> int:
        return len(self._sessions)

    async def get(self, client_id: str, ctx: CallContext) -> S:
        """The client's session, opened on first use."""
        entry = self._sessions.get(client_id)
        now = time.monotonic()
        if entry is not None and self._is_alive is not None and not self._is_alive(entry[0]):
            await self.release(client_id)
            entry = None
        if entry is not None:
            self._sessions[client_id] = (entry[0], now)
            self._sessions.move_to_end(client_id)
            return entry[0]
        pending = self._opening.get(client_id)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[S] = asyncio.get_running_loop().create_future()
        self._opening[client_id] = fut
        try:
            session = await self._open(client_id, ctx)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: a lone opener must not leave "never retrieved" noise
            raise
        finally:
            self._opening.pop(client_id, None)
        fut.set_result(session)
        self._sessions[client_id] = (session, time.monotonic())
        self.opened += 1
        await self._evict()
        return session

    def peek(self, client_id: str) -> S | None:
        """The client's session if one is open; never opens one."""
        entry = self._sessions.get(client_id)
        return entry[0] if entry is not None else None

    async def release(self, client_id: str) -> None:
        entry = self._sessions.pop(client_id, None)
        if entry is not None:
            await self._close(entry[0])

    async def close_all(self) -> None:
        entries = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(self._close(s) for s, _ in entries), return_exceptions=True)

    async def _evict(self) -> None:
        """Close sessions idle too long, then the least recently used beyond the bound."""
        now = time.monotonic()
        stale = [cid for cid, (_, used) in self._sessions.items() if now - used > self.idle_s]
        while len(self._sessions) - len(stale) > self.max_sessions:
            for cid in self._sessions:
                if cid not in stale:
                    stale.append(cid)
                    break
        for cid in stale:
            await self.release(cid)

    def describe(self) -> JSON:
        return {"open": len(self._sessions), "opened": self.opened, "max": self.max_sessions}


async def close_quietly(session: Any, timeout_s: float = 3.0) -> None:
    """``await session.close()`` within ``timeout_s``; whatever happens is swallowed (a close
    callback of ``ClientSessions`` must not raise)."""
    try:
        await asyncio.wait_for(session.close(), timeout=timeout_s)
    except BaseException:
        pass


class ClientHost(HostProxy):
    """The ``BackendHost`` a client's own upstream session reports to: list changes and logs go
    to the service's host as usual; server-to-client requests and notifications carry the
    client id, so only that client is asked or told; a failure of one client's session is a
    line in the service's log, not a failure of the service."""

    def __init__(self, host: BackendHost, client_id: str) -> None:
        super().__init__(host)
        self.client_id = client_id

    def on_notification(self, method: str, params: JSON, client_id: str | None = None) -> None:
        self._host.on_notification(method, params, self.client_id)

    def on_failure(self, reason: str) -> None:
        self._host.log("warning", f"a client's upstream session failed: {reason}")

    async def on_server_request(self, method: str, params: JSON, client_id: str | None = None) -> JSON:
        return await self._host.on_server_request(method, params, self.client_id)
