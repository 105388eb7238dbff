"""Server-Sent Events (``text/event-stream``) decoding, sans I/O.

Owns the one SSE parser of the code base: bytes in, complete events out, with
CR, LF and CRLF line ends (a CR at the end of a chunk waits for the next one),
comments, ``event``/``data``/``id``/``retry`` fields (the stream's latest
``retry`` is kept on the decoder: it applies even on an event that is not
dispatched) and a bound on one event's size. Used by the remote backend (reading upstreams), the stdio bridge
and ``runtimectl call`` (reading the gateway). Must not: do I/O, know about
JSON-RPC, or decide what a caller does with a malformed stream (it raises
``SSEDecodeError`` and the caller turns that into its own error).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_MAX_EVENT = 16 * 1024 * 1024


class SSEDecodeError(ValueError):
    """The stream is not valid SSE: an event over the size bound, or bytes that are not UTF-8."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed(chunk)`` yields the events the chunk completed, in order
    (an error in a later line is raised after the events before it)."""

    def __init__(self, max_event: int = DEFAULT_MAX_EVENT) -> None:
        self.max_event = max_event
        self._buf = bytearray()
        self._event = SSEEvent()
        self._data: list[str] = []
        self.retry: int | None = None  # the latest ``retry`` field (reconnection time, ms)

    def feed(self, chunk: bytes) -> Iterator[SSEEvent]:
        self._buf.extend(chunk)
        if len(self._buf) > self.max_event:
            raise SSEDecodeError(f"one SSE event is larger than {self.max_event} bytes", too_large=True)
        while True:
            eol = self._find_eol()
            if eol is None:
                return
            end, skip = eol
            raw = bytes(self._buf[:end])
            del self._buf[: end + skip]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SSEDecodeError("the event stream is not valid UTF-8") from None
            ev = self.feed_line(line)
            if ev is not None:
                yield ev

    def feed_line(self, line: str) -> SSEEvent | None:
        """One decoded line (without its line end); returns the event a blank line completes."""
        if line == "":
            ev, data = self._event, self._data
            self._event, self._data = SSEEvent(), []
            if data or ev.id is not None or ev.event != "message":
                ev.data = "\n".join(data)
                return ev
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event.event = value or "message"
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._event.id = value
        elif name == "retry" and value.isdigit():
            self._event.retry = self.retry = int(value)
        return None

    def _find_eol(self) -> tuple[int, int] | None:
        i_n = self._buf.find(b"\n")
        i_r = self._buf.find(b"\r")
        if i_r < 0 or (0 <= i_n < i_r):
            return (i_n, 1) if i_n >= 0 else None
        if i_r + 1 < len(self._buf):
            return (i_r, 2) if self._buf[i_r + 1] == 0x0A else (i_r, 1)
        return None  # wait: it may be \r\n split across chunks
