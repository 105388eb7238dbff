"""Per-service admission limits: the concurrency gate with its FIFO wait queue,
and the rate limiter (a sliding-window log, persisted when it must survive a
restart).

Owns: counting calls in flight and waiting, handing slots over in arrival
order, and counting calls per window. Must not: know about MCP methods, tools,
results or backends; build user-facing messages (``runtimed.policy`` does);
touch any file but the one rate-limit state file it is given.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtimed.errors import QueueFull, QueueTimeout, StoreUnavailable

if TYPE_CHECKING:
    from runtimed.state.store import SharedRateLimit

log = logging.getLogger("runtimed.policy")
SAVE_AFTER_S = 0.1  # a rate limiter's log reaches its file at most this long after an admission

PER_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


class ConcurrencyGate:
    """At most ``limit`` holders; up to ``max_queue`` more wait, first come first served.

    A released slot is handed directly to the oldest waiter, so a late arrival
    can never overtake a caller already in the queue. Limits may change while
    calls are in flight (``configure``); counters are kept.
    """

    def __init__(self, limit: int, max_queue: int) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.peak_queued = 0

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def configure(self, limit: int, max_queue: int) -> None:
        self.limit, self.max_queue = limit, max_queue
        self._wake()

    async def acquire(self, timeout: float | None) -> None:
        """Take a slot, waiting in line at most ``timeout`` seconds.

        Raises ``QueueFull`` at once when the line is full, ``QueueTimeout``
        when the wait ran out. Cancellation while waiting leaves no trace.
        """
        if self.in_flight < self.limit and not self.queued:
            self.in_flight += 1
            return
        if self.queued >= self.max_queue:
            raise QueueFull()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.peak_queued = max(self.peak_queued, self.queued)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(fut)
        except TimeoutError:
            if self._abandon(fut):
                raise QueueTimeout() from None
            return  # granted just as the wait expired: keep the slot
        except asyncio.CancelledError:
            if not self._abandon(fut):
                self.release()  # granted, but the caller is gone: pass it on
            raise

    def _abandon(self, fut: asyncio.Future[None]) -> bool:
        """Leave the line. False when the slot had already been granted."""
        if fut.done():
            return False
        fut.cancel()
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self.in_flight += 1
            fut.set_result(None)


class RateLimiter:
    """At most ``calls`` admissions in any window of ``per`` (sliding-window log).

    The log holds the wall-clock time of each admission still inside the
    window, so the state is at most ``calls`` timestamps. A sliding window
    never lets through more than ``calls`` in *any* span of that length, so it
    stays within an upstream's quota however the upstream counts (rolling or
    calendar windows). When ``path`` is given the log is written there
    (temp file + rename, no fsync) at most ``SAVE_AFTER_S`` after an admission
    or refund, in one write for every change since the last (the log holds
    every admission of the window: writing it per call would cost per call what
    the window holds), and at ``flush`` (the daemon stopping): it survives a
    restart, and a crash loses at most the last ``SAVE_AFTER_S`` of admissions;
    not a power cut. Without a running event loop it is written at once.
    """

    def __init__(self, calls: int, per: str, path: Path | None = None, shared: SharedRateLimit | None = None) -> None:
        """``shared``: the store's cluster-wide limiter (several replicas): the limit holds across them, and
        the log here only mirrors this replica's admissions (kept as the fallback while the store is down)."""
        self.shared = shared
        self.calls = calls
        self.per = per
        self.window = PER_SECONDS[per]
        self.path = path
        self._log: collections.deque[float] = collections.deque()
        self._save_handle: asyncio.TimerHandle | None = None
        self._shared_error: str | None = None
        self.persist_error: str | None = None
        if path is not None:
            self._load()

    def configure(self, calls: int, per: str) -> None:
        """New limits; the admissions already made still count."""
        self.calls, self.per, self.window = calls, per, PER_SECONDS[per]

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        while self._log and self._log[0] <= horizon:
            self._log.popleft()

    def used(self, now: float | None = None) -> int:
        self._trim(time.time() if now is None else now)
        return len(self._log)

    def resumes_at(self, now: float | None = None) -> float | None:
        """Wall time at which the next call would be admitted, or None if one may go now."""
        now = time.time() if now is None else now
        self._trim(now)
        if len(self._log) >= self.calls:
            # The (len - calls + 1)-th oldest admission must leave the window.
            return self._log[len(self._log) - self.calls] + self.window
        return None

    def try_acquire(self, now: float | None = None) -> float | None:
        """Admit one call (None), or return the wall time at which one will be admitted."""
        now = time.time() if now is None else now
        at = self.resumes_at(now)
        if at is not None:
            return at
        self._log.append(now)
        self._save()
        return None

    async def acquire(self, now: float | None = None) -> tuple[float | None, float | None]:
        """(admitted at, None) for an admitted call, or (None, wall time at which one will be admitted).
        With a shared limiter that cannot be reached, this replica's own log decides (and says so once)."""
        now = time.time() if now is None else now
        if self.shared is not None:
            try:
                resume = await self.shared.try_acquire(self.calls, self.window, now)
            except StoreUnavailable as e:  # the limit holds per replica meanwhile
                if self._shared_error is None:
                    log.warning("shared rate limit unavailable (%s): counting on this replica until it is back", e)
                self._shared_error = str(e)
            else:
                self._shared_error = None
                if resume is not None:
                    return None, resume
                self._log.append(now)
                self._trim(now)
                return now, None
        resume = self.try_acquire(now)
        return (None, resume) if resume is not None else (now, None)

    async def give_back(self, admitted_at: float) -> None:
        """``refund`` of an admission made by ``acquire``."""
        self.refund(admitted_at)
        if self.shared is not None and self._shared_error is None:
            try:
                await self.shared.refund(admitted_at)
            except StoreUnavailable as e:
                log.warning("could not refund a shared rate-limit admission: %s", e)

    def refund(self, admitted_at: float | None = None) -> None:
        """Give back an admission whose call never reached the upstream."""
        if not self._log:
            return
        if admitted_at is not None:
            try:
                self._log.remove(admitted_at)
            except ValueError:
                return
        else:
            self._log.pop()
        self._save()

    def last_admission(self) -> float | None:
        return self._log[-1] if self._log else None

    # -- persistence -----------------------------------------------------
    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            times = sorted(float(t) for t in data.get("rateLimit", {}).get("admissions", []))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as e:
            self.persist_error = f"ignored unreadable rate-limit state {self.path.name}: {e}"
            return
        self._log.extend(times)
        self._trim(time.time())

    def _save(self) -> None:
        """Write the log soon (``SAVE_AFTER_S``), once for every change until then."""
        if self.path is None or self._save_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        self._save_handle = loop.call_later(SAVE_AFTER_S, self.flush)

    def flush(self) -> None:
        """Write the log now if a write is pending (the daemon is stopping)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
            self._write()

    def discard(self) -> None:
        """The service was removed: a pending write is dropped (its file is deleted by the caller)."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None

    def _write(self) -> None:
        if self.path is None:
            return
        body: dict[str, Any] = {
            "rateLimit": {"calls": self.calls, "per": self.per, "admissions": list(self._log)},
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(body, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
            self.persist_error = None
        except OSError as e:
            self.persist_error = f"could not persist rate-limit state: {e}"
