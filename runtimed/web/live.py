"""Server-Sent Events of the daemon's event stream (``GET /api/events`` with
``Accept: text/event-stream``). Owns the SSE framing and replay-after-id; must
not filter secrets (events never hold any) or hold lifecycle logic.
"""

from __future__ import annotations

import json

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from ..events import EventBus


async def event_stream(request: Request, bus: EventBus, service: str | None = None, after: int = 0) -> EventSourceResponse:
    last = request.headers.get("last-event-id")
    if last and last.isdigit():
        after = max(after, int(last))

    async def gen():
        sub = bus.subscribe()
        try:
            for ev in bus.recent(limit=500, service=service, after=after):
                yield {"id": str(ev.id), "event": ev.type, "data": json.dumps(ev.to_json())}
            async for ev in sub:
                if service is None or ev.service == service:
                    yield {"id": str(ev.id), "event": ev.type, "data": json.dumps(ev.to_json())}
        finally:
            await sub.aclose()

    return EventSourceResponse(gen(), ping=15)
