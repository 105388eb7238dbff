"""Server-Sent Events of the daemon's event stream (``GET /api/events`` with
``Accept: text/event-stream``). Owns the SSE framing and replay-after-id; must
not filter secrets (events never hold any) or hold lifecycle logic.

The subscription is registered before the replay is read, so no event falls
between the two; an event seen in both is sent once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from runtimed.state.events import Event, EventBus

REPLAY_LIMIT = 500


def _frame(ev: Event) -> dict[str, Any]:
    return {"id": str(ev.id), "event": ev.type, "data": json.dumps(ev.to_json(), default=str)}


async def event_stream(request: Request, bus: EventBus, service: str | None = None, after: int = 0) -> EventSourceResponse:
    last = request.headers.get("last-event-id")
    if last and last.isdigit():
        after = max(after, int(last))

    async def gen() -> AsyncIterator[dict[str, Any]]:
        sub = bus.subscribe()
        try:
            newest = bus.recent(limit=1)
            start = after
            if newest and after > newest[-1].id:
                start = 0  # an id from an earlier daemon run: everything of this run is new
            sent = start
            for ev in bus.recent(limit=REPLAY_LIMIT, service=service, after=start):
                sent = max(sent, ev.id)
                yield _frame(ev)
            # A first frame even with nothing to replay: the client knows it is connected.
            yield {"event": "hello", "data": json.dumps({"replayedUpTo": sent})}
            async for ev in sub:
                if ev.id <= sent:
                    continue
                if service is None or ev.service == service:
                    yield _frame(ev)
        finally:
            await sub.aclose()

    return EventSourceResponse(gen(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
