"""Input-required results for stateless-era clients over a session-era upstream
session: the shared layer every backend with sessions uses (remote today;
stdio next).

A session-era upstream asks its client things in the middle of a call
(``sampling/createMessage``, ``elicitation/create``, ``roots/list``). A
stateless-era client cannot be asked that way: the 2026-07-28 way is an
input-required result (multi round-trip requests). ``ParkedCalls`` bridges
the two: the upstream call runs in a task of its own whose relay, instead of
asking the client, parks the upstream's request and wakes the caller; the
caller raises ``InputRequired`` with the parked requests and a state naming
the parked call; the client's retry (same method, ``inputResponses`` and the
gateway-signed ``requestState``) resumes it: each answer is handed to the
waiting upstream request, and the call goes on until it ends or asks again.
A parked call that is not resumed within ``ttl_s`` is cancelled.

Owns the parked calls, their relay, their expiry, and the check that a
client is only asked what it declared (``sampling``, ``elicitation``,
``roots``). Must not: speak a transport, sign or verify state (the gateway
signs what it hands out; the state here is an unguessable id), or outlive
the backend (``close``).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from runtimed.backends.base import CallContext, NullRelay, Relay
from runtimed.errors import InputRequired, RelayUnavailable, UpstreamError
from runtimed.protocol.jsonrpc import INVALID_PARAMS
from runtimed.protocol.types import JSON

PREFIX = "parked:"
DEFAULT_TTL_S = 300.0
# Which client capability a server-to-client request needs (2026-07-28 MRTR: a server must not
# ask what the client did not declare).
CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


@dataclass(eq=False)
class _Parked:
    downstream: Relay
    capabilities: JSON
    pending: dict[str, tuple[str, JSON, asyncio.Future[JSON]]] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)  # keys already handed to the client
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[JSON] | None = None
    expiry: asyncio.TimerHandle | None = None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class _ParkingRelay:
    """The relay a parked call's upstream request talks back through."""

    def __init__(self, parked: _Parked) -> None:
        self._parked = parked

    async def notify(self, method: str, params: JSON) -> None:
        try:  # progress and log messages go to whichever request of the client is current
            await self._parked.downstream.notify(method, params)
        except Exception:
            pass

    async def request(self, method: str, params: JSON) -> JSON:
        parked = self._parked
        need = CAPABILITY_OF.get(method)
        if need is None or need not in parked.capabilities:
            raise RelayUnavailable(f"{method}: the client did not declare the {need or method!r} capability")
        fut: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        parked.pending[f"r{next(parked.ids)}"] = (method, params, fut)
        parked.wake.set()
        return await fut


class ParkedCalls:
    """The parked calls of one backend."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._calls: dict[str, _Parked] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def owns(self, request_state: str | None) -> bool:
        """Whether a retry's state names a call parked here (else it is the upstream's own)."""
        return isinstance(request_state, str) and request_state.startswith(PREFIX)

    async def call(self, ctx: CallContext, params: JSON, start: Callable[[CallContext], Awaitable[JSON]]) -> JSON:
        """Start a call (``start(ctx)`` with the parking relay) or resume the parked one the
        retry's state names, with the client's ``inputResponses``."""
        if self.owns(ctx.request_state):
            assert ctx.request_state is not None
            key = ctx.request_state[len(PREFIX):]
            parked = self._calls.pop(key, None)
            if parked is None:
                raise UpstreamError(INVALID_PARAMS, "the call this input answers has ended or expired (or is "
                                                    "held by another replica of the gateway); call the tool again")
            if parked.expiry is not None:
                parked.expiry.cancel()
            parked.downstream = ctx.relay
            self._answer(parked, params.get("inputResponses"))
        else:
            parked = _Parked(downstream=ctx.relay, capabilities=dict(ctx.client_capabilities or {}))
            loop = asyncio.get_running_loop()
            # The call outlives this request (it waits for the client's input): its own deadline.
            inner = replace(ctx, relay=_ParkingRelay(parked), deadline=loop.time() + self.ttl_s, request_state=None)
            parked.task = asyncio.ensure_future(start(inner))
        return await self._wait(parked)

    @staticmethod
    def _answer(parked: _Parked, responses: Any) -> None:
        """Hand each answer to its waiting upstream request; unanswered ones are asked again."""
        answers = responses if isinstance(responses, dict) else {}
        for key in list(parked.pending):
            method, _, fut = parked.pending[key]
            if key in answers and not fut.done():
                answer = answers[key]
                if isinstance(answer, dict):
                    fut.set_result(answer)
                else:
                    fut.set_exception(UpstreamError(INVALID_PARAMS, f"the client's answer to {method} is not an object"))
                del parked.pending[key]
        parked.asked.clear()

    async def _wait(self, parked: _Parked) -> JSON:
        task = parked.task
        assert task is not None
        while True:
            fresh = {k: v for k, v in parked.pending.items() if k not in parked.asked}
            if fresh and not task.done():
                self._park(parked)
            parked.wake.clear()
            waker = asyncio.ensure_future(parked.wake.wait())
            try:
                await asyncio.wait({task, waker}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # The client's request went away (cancelled, timed out) before anything was parked.
                task.cancel()
                raise
            finally:
                waker.cancel()
            if task.done():
                return task.result()

    def _park(self, parked: _Parked) -> NoReturn:
        key = secrets.token_urlsafe(16)
        self._calls[key] = parked
        parked.expiry = asyncio.get_running_loop().call_later(self.ttl_s, self._expire, key)
        requests = {k: {"method": m, "params": p} for k, (m, p, _) in parked.pending.items()}
        parked.asked.update(requests)
        parked.downstream = NullRelay()
        raise InputRequired(requests, PREFIX + key)

    def _expire(self, key: str) -> None:
        parked = self._calls.pop(key, None)
        if parked is not None and parked.task is not None:
            parked.task.cancel()

    def close(self) -> None:
        for key in list(self._calls):
            self._expire(key)
