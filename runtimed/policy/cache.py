"""The per-service result cache for cacheable tools.

Owns: storing successful ``tools/call`` results for a TTL, keyed by tool name
and canonical arguments (sorted-keys JSON), evicting the least recently used
entry beyond ``maxEntries``, and marking hits in ``_meta``. Must not: decide
which tools are cacheable (``runtimed.policy`` does), cache ``isError``
results, or touch the disk (the cache lives and dies with the daemon).
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from runtimed.errors import StoreUnavailable
from runtimed.protocol.types import JSON

if TYPE_CHECKING:
    from runtimed.state.store import SharedCache

log = logging.getLogger("runtimed.policy")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class ResultCache:
    """Results by (tool, canonical arguments), fresh for ``ttl`` seconds, at most ``max_entries``.

    ``shared``: the store's cluster-wide cache (several replicas): ``lookup``/``keep`` go there (a hit on
    one replica serves the others); while it cannot be reached they miss and keep nothing.
    """

    def __init__(self, ttl_seconds: float, max_entries: int, shared: SharedCache | None = None) -> None:
        self.shared = shared
        self._tasks: set[asyncio.Task[None]] = set()
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: collections.OrderedDict[str, tuple[float, JSON]] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def configure(self, ttl_seconds: float, max_entries: int) -> None:
        self.ttl, self.max_entries = ttl_seconds, max_entries
        self._evict()

    @staticmethod
    def key(tool: str, arguments: Any) -> str:
        return canonical_json([tool, arguments if arguments is not None else {}])

    async def lookup(self, key: str) -> JSON | None:
        """``get``, from the shared cache when there is one."""
        if self.shared is None:
            return self.get(key)
        try:
            found = await self.shared.get(key)
        except StoreUnavailable as e:  # a miss
            log.debug("shared cache unavailable: %s", e)
            found = None
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return self._hit(found[1], found[0])

    async def keep(self, key: str, result: JSON) -> bool:
        """``put``, into the shared cache when there is one."""
        if self.shared is None:
            return self.put(key, result)
        if result.get("isError"):
            return False
        try:
            await self.shared.put(key, result, self.ttl, self.max_entries)
        except StoreUnavailable as e:
            log.debug("shared cache unavailable: %s", e)
            return False
        return True

    def get(self, key: str, now: float | None = None) -> JSON | None:
        """A copy of the cached result marked as a hit, or None (counted as a miss)."""
        now = time.monotonic() if now is None else now
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] >= self.ttl:
            del self._entries[key]
            entry = None
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        stored_at, result = entry
        return self._hit(result, now - stored_at)

    def _hit(self, result: JSON, age: float) -> JSON:
        out = copy.deepcopy(result)
        meta = out.setdefault("_meta", {})
        if not isinstance(meta, dict):
            meta = out["_meta"] = {}
        mark = meta.setdefault("runtimed", {})
        if isinstance(mark, dict):
            mark.update({"cache": "hit", "ageSeconds": round(age, 3), "ttlSeconds": self.ttl})
        return out

    def put(self, key: str, result: JSON, now: float | None = None) -> bool:
        if result.get("isError"):
            return False
        now = time.monotonic() if now is None else now
        self._entries[key] = (now, copy.deepcopy(result))
        self._entries.move_to_end(key)
        self._evict()
        return True

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        if self.shared is not None:
            try:
                task = asyncio.get_running_loop().create_task(self._clear_shared(self.shared))
            except RuntimeError:
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _clear_shared(shared: SharedCache) -> None:
        try:
            await shared.clear()
        except StoreUnavailable as e:
            log.warning("could not clear the shared cache: %s", e)

    def __len__(self) -> int:
        return len(self._entries)
