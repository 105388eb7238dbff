"""The downstream side of one call: the ``Relay`` a backend talks back through.

Owns ``ExchangeRelay``: progress and log notifications go onto the request's
own SSE stream (with the downstream's progress token); server-to-client
requests (sampling, elicitation, roots) go to the same client on that stream
and wait for its POSTed answer (session era), or raise ``RelayUnavailable``
in the stateless era so the backend answers with ``InputRequired``.
Must not: pick the response format (the transport decides JSON or SSE) or
call backends.
"""

from __future__ import annotations

from typing import Any

from runtimed.errors import RelayUnavailable
from runtimed.gateway.sessions import Session, Stream
from runtimed.protocol.jsonrpc import notification
from runtimed.protocol.types import JSON


class ExchangeRelay:
    __slots__ = ("can_stream", "progress_token", "session", "stream")

    def __init__(self, stream: Stream, session: Session | None, progress_token: Any, can_stream: bool) -> None:
        self.stream = stream
        self.session = session  # None in the stateless era
        self.progress_token = progress_token
        self.can_stream = can_stream  # the client accepts text/event-stream

    async def notify(self, method: str, params: JSON) -> None:
        if not self.can_stream or self.stream.closed:
            return
        if method == "notifications/progress":
            if self.progress_token is None:
                return
            params = {**params, "progressToken": self.progress_token}
        self.stream.push(notification(method, params))

    async def request(self, method: str, params: JSON) -> JSON:
        if self.session is None:
            raise RelayUnavailable(f"{method}: a stateless-era client is asked through an input-required result")
        if not self.can_stream:
            raise RelayUnavailable(f"{method}: the client does not accept text/event-stream answers")
        if not self.session.has_capability(method):
            raise RelayUnavailable(f"{method}: the client did not declare that capability")
        return await self.session.ask(self.stream, method, params)
