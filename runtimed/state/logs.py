"""A service's log: its last lines in memory, every line appended to
``<state-dir>/logs/<name>.log``, so ``runtimectl logs`` survives a daemon restart.

Owns ``ServiceLog``: the line shape (``seq``, ``time``, ``level``, ``message``),
the in-memory ring the API and the status page read, the file (a ``JsonlLog``
from ``events``, bounded and rotated by size: ``<name>.log`` and ``<name>.log.1``),
reading the file's last lines back when a daemon starts (``seq`` goes on from
there), moving it when a service is renamed, and deleting it when the service
is removed. Must not: decide what is logged (the service and its backend do),
hold secrets (callers mask them, as the stdio stderr log does), or fail a
caller: a file that cannot be written leaves the lines in memory only.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtimed.state.events import JsonlLog

RING = 1000
MAX_BYTES = 1024 * 1024
KEEP = 1


class ServiceLog:
    """One service's log lines: the last ``ring`` in memory, all of them in a rotated file."""

    def __init__(self, path: Path | None, ring: int = RING, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._keep = keep
        self._lines: collections.deque[dict[str, Any]] = collections.deque(maxlen=ring)
        self._file: JsonlLog | None = None
        if path is not None:
            self._open(path, load=True)

    def _open(self, path: Path, load: bool) -> None:
        try:
            self._file = JsonlLog(path, self._max_bytes, self._keep)
        except OSError:
            self._file = None  # memory only: a log must never stop a service
            return
        if load:
            for entry in self._file.tail(self._lines.maxlen or RING):
                if isinstance(entry, dict) and isinstance(entry.get("seq"), int):
                    self._lines.append(entry)

    def _files(self, path: Path) -> list[Path]:
        return [path, *(path.with_name(f"{path.name}.{i}") for i in range(1, self._keep + 1))]

    # -- writing ---------------------------------------------------------
    def append(self, level: str, message: str) -> dict[str, Any]:
        entry = {"seq": self.last_seq + 1, "time": time.time(), "level": level, "message": message}
        self._lines.append(entry)
        if self._file is not None:
            try:
                self._file.append(entry)
            except (OSError, ValueError):
                pass  # a full disk keeps the line in memory only
        return entry

    def move(self, path: Path) -> None:
        """The service was renamed: its file (and the rotated one) follow the name."""
        old = self.path
        self.close()
        self.path = path
        if old is not None and old != path:
            for src, dst in zip(self._files(old), self._files(path), strict=True):
                with contextlib.suppress(OSError):
                    os.replace(src, dst)
        self._open(path, load=False)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def delete(self) -> None:
        """The service was removed: its log goes with it."""
        self.close()
        if self.path is not None:
            for p in self._files(self.path):
                with contextlib.suppress(OSError):
                    p.unlink()

    # -- reading ---------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest line (0 before the first)."""
        return int(self._lines[-1]["seq"]) if self._lines else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._lines))

    def __len__(self) -> int:
        return len(self._lines)
