"""The event stream: every lifecycle transition, health change, interface diff
and registry change, as one append-only record.

Owns: the ``Event`` shape, the in-memory ring that ``/api/events`` and the
status page read, live subscribers (SSE, the gateway's ``list_changed``), and
append-only JSON Lines files rotated by size (``JsonlLog``, also used for the
call audit). Must not: hold secrets (callers pass only safe data), block the
event loop on slow subscribers (their queues drop the oldest), or rewrite a
whole file per event.
"""

from __future__ import annotations

import asyncio
import collections
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtimed.state.store import Journal


@dataclass
class Event:
    id: int
    time: float
    type: str
    service: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "type": self.type, "service": self.service, **self.data}


class JsonlLog:
    """Append-only JSON Lines file, rotated when it passes ``max_bytes``.

    Keeps ``keep`` rotated files (``name.1`` newest). Each record is one
    ``write`` of one line, so a crash loses at most the line being written.
    """

    def __init__(self, path: Path, max_bytes: int = 5 * 1024 * 1024, keep: int = 3) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = io.FileIO(path, "ab")  # what open(path, "ab", buffering=0) returns; held open for appends

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            if self._fh.tell() + len(line) > self.max_bytes and self._fh.tell() > 0:
                self._rotate()
            self._fh.write(line)

    def append_many(self, records: list[dict[str, Any]]) -> None:
        """Append several records with one ``write`` (a batch; may pass ``max_bytes`` by one batch)."""
        if not records:
            return
        data = b"".join((json.dumps(r, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode()
                        for r in records)
        with self._lock:
            if self._fh.tell() + len(data) > self.max_bytes and self._fh.tell() > 0:
                self._rotate()
            self._fh.write(data)

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = io.FileIO(self.path, "ab")

    def tail(self, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` records, newest last (reads the current and rotated files)."""
        out: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        files = [self.path.with_name(f"{self.path.name}.{i}") for i in range(self.keep, 0, -1)] + [self.path]
        for p in files:
            try:
                with open(p, "rb") as f:
                    for line in f:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            continue  # a torn last line after a crash
            except OSError:
                continue
        return list(out)

    @property
    def where(self) -> str:
        """Where the records are kept, for a user to read (``store.Journal``)."""
        return str(self.path)

    def follow(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Records other writers append: a file of one daemon has none (``store.Journal``)."""

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class EventBus:
    """``journal``: where events are kept (``Store.journal("events")``); with a shared store it also
    brings the events of the other replicas, which join the ring and the live subscribers as they
    arrive (each with a local ``id`` and the ``replica`` that emitted it)."""

    def __init__(self, journal: Journal | None = None, ring: int = 2000) -> None:
        self._ring: collections.deque[Event] = collections.deque(maxlen=ring)
        self._ids = itertools.count(1)
        # Each live subscriber's queue -> the event types it wants (None: all).
        self._subs: dict[asyncio.Queue[Event], frozenset[str] | None] = {}
        self._file = journal
        if journal is not None:
            journal.follow(self.receive)

    def receive(self, record: dict[str, Any]) -> None:
        """An event another replica emitted (a journal record): kept and sent on, not written again."""
        try:
            data = {k: v for k, v in record.items() if k not in ("id", "time", "type", "service")}
            ev = Event(next(self._ids), float(record.get("time") or time.time()), str(record.get("type")),
                       record.get("service") if isinstance(record.get("service"), str) else None, data)
        except (TypeError, ValueError):
            return
        self._ring.append(ev)
        self._fan_out(ev)

    def emit(self, type: str, service: str | None = None, **data: Any) -> Event:
        ev = Event(next(self._ids), time.time(), type, service, data)
        self._ring.append(ev)
        if self._file is not None:
            try:
                self._file.append(ev.to_json())
            except OSError:
                pass
        self._fan_out(ev)
        return ev

    def notify(self, type: str, service: str | None = None, **data: Any) -> Event:
        """Send an event to live subscribers only: not kept in the ring or the
        file (high-rate facts such as one per tool call, recorded elsewhere)."""
        ev = Event(next(self._ids), time.time(), type, service, data)
        self._fan_out(ev)
        return ev

    def _fan_out(self, ev: Event) -> None:
        for q, types in list(self._subs.items()):
            if types is not None and ev.type not in types:
                continue  # not woken for events it ignores (e.g. one "call" per tool call)
            if q.full():
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            q.put_nowait(ev)

    def recent(self, limit: int = 200, service: str | None = None, types: Iterable[str] | None = None,
               after: int = 0) -> list[Event]:
        wanted = set(types) if types else None
        out = [
            e for e in self._ring
            if e.id > after and (service is None or e.service == service) and (wanted is None or e.type in wanted)
        ]
        return out[-limit:]

    def subscribe(self, maxsize: int = 1000, types: Iterable[str] | None = None) -> Subscription:
        """A live subscription, registered now (no event emitted after this
        call is missed); iterate it with ``async for``, end it with ``aclose()``.
        ``types`` limits it to events of those types (default: every event)."""
        return Subscription(self._subs, maxsize, frozenset(types) if types is not None else None)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Subscription:
    """One subscriber's queue; an async iterator of events until ``aclose()``."""

    def __init__(self, subs: dict[asyncio.Queue[Event], frozenset[str] | None], maxsize: int,
                 types: frozenset[str] | None = None) -> None:
        self._subs = subs
        self._q: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        subs[self._q] = types

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self._q not in self._subs and self._q.empty():
            raise StopAsyncIteration
        return await self._q.get()

    async def aclose(self) -> None:
        self._subs.pop(self._q, None)
