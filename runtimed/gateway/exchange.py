"""One POSTed request's answer: one JSON body, or an SSE stream once the call emits.

Owns ``Exchange``: the call runs in the request's own task and, when its result
comes first (the common case), is answered with one ``application/json`` body
— no extra task, no waiter. The answer becomes ``text/event-stream`` (a writer
task draining the request's ``Stream``) as soon as the call emits something
before its result (progress, logs, a server-to-client request), or once it has
run ``PING_S`` without a result (the stream then keeps the connection alive
with comments); a resumable stream's answer starts with its priming event. Cancels the call when asked (``notifications/cancelled``, the
session ending: ``Exchange.cancel``) or, when ``cancel_on_close`` (stateless
era), when the client disconnects. Disconnects are watched from
``WATCH_AFTER_S`` into a call on (a client that left earlier is seen then: the
server keeps the disconnect for the next ``receive``), so a fast call costs no
watcher task. Must not: route, parse bodies, or know about eras or sessions
beyond the flags it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from runtimed.gateway.sessions import Stream
from runtimed.protocol.jsonrpc import dumps
from runtimed.protocol.types import JSON

PING_S = 15.0
WATCH_AFTER_S = 0.05
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform"),
               (b"x-accel-buffering", b"no")]


class Exchange:
    """The state of one request/answer exchange. ``cancel()`` stops its call (a no-op once it has finished)."""

    __slots__ = (
        "cancel_on_close",
        "cancel_requested",
        "gone",
        "receive",
        "running",
        "send",
        "stream",
        "task",
        "timer",
        "watcher",
        "writer",
    )

    def __init__(self, send: Callable[[JSON], Awaitable[None]], receive: Callable[[], Awaitable[JSON]],
                 stream: Stream, cancel_on_close: bool) -> None:
        self.send = send
        self.receive = receive
        self.stream = stream
        self.cancel_on_close = cancel_on_close
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.running = False
        self.cancel_requested = False
        self.gone = False  # the client disconnected
        self.writer: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self, msg: Any = None) -> bool:
        if not self.running or self.cancel_requested:
            return False
        self.cancel_requested = True
        self.task.cancel(msg)
        return True

    def done(self) -> bool:
        return not self.running

    async def run(self, call: Awaitable[JSON], status_of: Callable[[JSON], int]) -> None:
        """Await ``call`` (a JSON-RPC response) here and answer with it."""
        stream = self.stream
        loop = asyncio.get_running_loop()
        self.running = True
        stream.on_event = self._on_event
        self.timer = loop.call_later(WATCH_AFTER_S, self._watch_later)
        try:
            resp: JSON | None
            try:
                resp = await call
            except asyncio.CancelledError:
                # Ours (a cancellation was asked for): answer as a cancelled call; anyone else's: propagate.
                if self.cancel_requested and self.task.uncancel() == 0:
                    resp = None
                else:
                    raise
            else:
                if self.cancel_requested:  # the call swallowed the cancellation and answered anyway
                    self.task.uncancel()
            finally:
                self.running = False
                stream.on_event = None
            if self.writer is None and not self.gone and resp is not None:
                stream.close()
                data = dumps(resp)
                await self.send({"type": "http.response.start", "status": status_of(resp),
                                 "headers": [(b"content-type", b"application/json"),
                                             (b"content-length", str(len(data)).encode())]})
                await self.send({"type": "http.response.body", "body": data})
                return
            if resp is not None:
                stream.push(resp, final=True)  # kept for Last-Event-ID if the client left (session era)
            stream.close()
            if self.writer is None and not self.gone:
                self._start_writer()  # cancelled: an event stream without events, as before
            if self.writer is not None:
                await asyncio.wait((self.writer,))
        finally:
            if self.timer is not None:
                self.timer.cancel()
            if self.watcher is not None:
                self.watcher.cancel()

    # -- switching to SSE ----------------------------------------------------------
    def _on_event(self) -> None:
        if self.writer is None and not self.gone:
            self._start_writer()

    def _start_writer(self) -> None:
        self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        stream, seq = self.stream, 0
        try:
            await self.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            priming = stream.priming(seq)
            if priming:
                await self.send({"type": "http.response.body", "body": priming, "more_body": True})
            while True:
                events = stream.after(seq)
                if events:
                    seq = events[-1][0]
                    await self.send({"type": "http.response.body", "more_body": True,
                                     "body": b"".join(stream.frame(s, d) for s, d, _ in events)})
                elif not stream.closed:
                    await self.send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                if stream.closed and not stream.after(seq):
                    break
                await stream.wait_after(seq, PING_S)
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        except (asyncio.CancelledError, OSError):
            return  # the client left; session-era events stay buffered for Last-Event-ID

    # -- watching for the client to leave ----------------------------------------------
    def _watch_later(self) -> None:
        self.timer = None
        if not self.running:
            return
        self.watcher = asyncio.get_running_loop().create_task(self._watch())
        self.timer = asyncio.get_running_loop().call_later(PING_S - WATCH_AFTER_S, self._ping_later)

    def _ping_later(self) -> None:
        self.timer = None
        if self.running and self.writer is None and not self.gone:
            self._start_writer()  # a long call without events: keep the connection alive

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self.cancel_on_close:
            self.cancel()
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()
