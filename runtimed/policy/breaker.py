"""The per-service circuit breaker.

Owns: counting consecutive upstream faults, the closed / open / half-open
states and their timing, and counting trips so repeated trips can be reported
as a crash. Must not: classify errors (``runtimed.policy`` decides what is an
upstream fault: never client mistakes or policy refusals), call the
supervisor, or build user-facing results.

closed: calls pass; ``threshold`` consecutive faults open it.
open: calls fail fast until ``cooldown`` has passed, then half-open.
half-open: exactly one probe call passes; its success closes the breaker,
its fault opens it again (a new trip).
"""

from __future__ import annotations

import collections
import time
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown_s: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown_s
        self._state = CLOSED
        self.consecutive = 0
        self.opened_at: float | None = None  # monotonic
        self.opened_wall: float | None = None
        self.probe_in_flight = False
        self.trips: collections.deque[float] = collections.deque()  # monotonic times of trips
        self.total_trips = 0
        self.last_fault: str | None = None
        self.subject: Any = None  # the backend instance that tripped it

    def configure(self, threshold: int, cooldown_s: float) -> None:
        self.threshold, self.cooldown = threshold, cooldown_s

    def state(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if self._state == OPEN and self.opened_at is not None and now - self.opened_at >= self.cooldown:
            self._state = HALF_OPEN
            self.probe_in_flight = False
        return self._state

    def retry_in(self, now: float | None = None) -> float:
        """Seconds until a probe call will be let through (0 when one may pass now)."""
        now = time.monotonic() if now is None else now
        if self.state(now) == OPEN and self.opened_at is not None:
            return max(0.0, self.cooldown - (now - self.opened_at))
        return 0.0

    def allow(self, now: float | None = None) -> bool:
        """May a call go through? In half-open, True for the single probe only."""
        st = self.state(now)
        if st == CLOSED:
            return True
        if st == HALF_OPEN and not self.probe_in_flight:
            self.probe_in_flight = True
            return True
        return False

    def release_probe(self) -> None:
        """The call let through never reached the upstream (refused later): not a verdict."""
        self.probe_in_flight = False

    def success(self) -> None:
        self.consecutive = 0
        self._state = CLOSED
        self.probe_in_flight = False
        self.opened_at = None
        self.opened_wall = None

    def fault(self, reason: str, now: float | None = None) -> bool:
        """Count an upstream fault; True when this fault tripped the breaker open."""
        now = time.monotonic() if now is None else now
        self.last_fault = reason
        self.consecutive += 1
        st = self.state(now)
        if st == HALF_OPEN or (st == CLOSED and self.consecutive >= self.threshold):
            self._state = OPEN
            self.opened_at = now
            self.opened_wall = time.time()
            self.probe_in_flight = False
            self.trips.append(now)
            self.total_trips += 1
            return True
        return False

    def open_until(self, until_wall: float, reason: str) -> None:
        """Another replica tripped this service's breaker: open here too until ``until_wall`` (wall clock),
        then half-open as if tripped here (a trip already later here is kept). Not counted as a trip here."""
        left = until_wall - time.time()
        if left <= 0:
            return
        opened_at = time.monotonic() - max(0.0, self.cooldown - left)
        if self._state == OPEN and self.opened_at is not None and self.opened_at >= opened_at:
            return
        self._state = OPEN
        self.opened_at = opened_at
        self.opened_wall = time.time()
        self.probe_in_flight = False
        self.last_fault = reason

    def recent_trips(self, window_s: float, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        while self.trips and self.trips[0] < now - window_s:
            self.trips.popleft()
        return len(self.trips)

    def reset(self) -> None:
        """A fresh backend (restart): start closed, keep the trip history."""
        self.success()

    def describe(self) -> dict[str, Any]:
        st = self.state()
        out: dict[str, Any] = {
            "state": st,
            "consecutiveFaults": self.consecutive,
            "threshold": self.threshold,
            "cooldownMs": int(self.cooldown * 1000),
            "trips": self.total_trips,
            "lastFault": self.last_fault,
        }
        if st == OPEN and self.opened_wall is not None:
            out["openedAt"] = self.opened_wall
            out["retryInSeconds"] = round(self.retry_in(), 3)
        return out
