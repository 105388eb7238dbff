"""The Redis store: one Redis shared by N replicas (``--store redis://HOST:PORT/DB``).

Owns the Redis layout of everything ``runtimed.state.store`` says a store keeps,
under one key prefix (``runtimed:``, or ``?prefix=NAME`` in the URL):

- ``registry`` (hash: service id -> JSON of ``Entry.to_json()``) and
  ``registry:revision`` (integer), changed together by one Lua script that
  checks the revision (``RegistryConflict``), replaces the hash, increments the
  revision and publishes the ``Change`` on ``changes``;
- ``intents`` (hash: service id -> JSON) and ``interfaces`` (hash: service id ->
  the newest interface snapshot and when it was taken);
- ``journal:<name>`` (streams, one field ``r`` holding the record's JSON, trimmed
  with ``MAXLEN ~``); appends are queued in memory and written by a background
  task, so a call never waits for Redis and a Redis outage costs no record
  (past the queue's bound the oldest are dropped and counted as ``lost``);
- ``rate:<service>`` (sorted set of admissions, a sliding window kept by a Lua
  script: atomic across replicas), ``cache:<service>:<sha256>`` (result cache
  entries with their TTL) and ``cache-index:<service>`` (sorted set that bounds
  their number);
- ``session:<id>`` (session-era session records, expiring when idle),
  ``pending:<session>:<request id>`` (which replica waits for a client's
  answer), ``answers:<replica>`` (the channel answers are passed on),
  ``replica:<replica>`` (each replica's announcement, expiring), and
  ``signing-key`` (the ``requestState`` key when none is configured: the first
  replica makes it, every replica reads the same one);
- ``docs:<collection>`` (hashes: ``profiles``, ``tokens``, ``pins``; key -> JSON;
  each change published as ``Change("docs")``);
- ``oauth`` (hash: service id -> its OAuth sign-in record: tokens and client
  registration, so every replica calls with the same sign-in; protect Redis
  accordingly) and ``oauth-flow:<state>`` (a pending sign-in, 10 minutes, taken
  once with GETDEL by whichever replica the browser's callback reaches).

Durability: a change is acknowledged only once Redis has it, and Redis must run
with ``appendonly yes`` and ``appendfsync always`` for "has it" to mean "on its
disk" (with ``always`` Redis replies only after the fsync; Redis 7.0 has no
``WAITAOF``). ``describe()["durability"]`` says what the server runs with;
anything else is logged as a warning at ``open``.

Failures: while Redis cannot be reached ``available`` is False (a task pings
every second and sets it back), changes raise ``StoreUnavailable`` (naming the
store, never its password), journal records wait in memory, and after the
change listener reconnects it delivers ``Change("resync")``, since pub/sub drops
what is published while a subscriber is away. ``open`` raises
``StoreUnavailable`` when Redis cannot be reached at start: the daemon does not
start without its store. A write whose reply is lost with the connection raises
``StoreUnavailable`` although Redis may have applied it: the resync after the
reconnect shows which.

Two clients: a blocking one for the methods the contract calls from threads or
before the loop runs, an asyncio one for the rest; the blocking ``XREAD`` that
follows the journals and the pub/sub subscription have connections of their
own. No command is retried by the client library (a retried ``INCR`` or
``XADD`` would be applied twice). Scripts touch keys they do not declare (cache
entries evicted by the index), so this runs on one Redis, not Redis Cluster.

Must not: decide lifecycle or policy, or import from outside ``runtimed.config``,
``runtimed.errors`` and ``runtimed.state``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.exceptions
import redis.retry
from redis.backoff import NoBackoff

from runtimed.errors import ConfigError, RegistryConflict, StoreUnavailable
from runtimed.state.registry import FORMAT_VERSION, Entry, LoadReport, parse_document
from runtimed.state.store import COLLECTIONS, JSON, Change, RegistryDoc, Store

log = logging.getLogger("runtimed.store")

T = TypeVar("T")

#: Connect and reply timeout of every command: nothing waits longer on a Redis that is gone.
TIMEOUT_S = 2.0
#: How long one blocking XREAD waits for records (below TIMEOUT_S: its connection's reply timeout).
FOLLOW_BLOCK_MS = 1000
#: How often the heartbeat pings (and refreshes the replica list); faster while Redis is away.
PING_EVERY_S = 1.0
PING_WHILE_DOWN_S = 0.5
#: Journal records kept in memory per journal while they wait to be written.
JOURNAL_QUEUE = 20000
JOURNAL_BATCH = 500
JOURNAL_MAXLEN = {"events": 10000, "calls": 50000}
JOURNAL_MAXLEN_DEFAULT = 10000
#: How long ``close`` waits for queued journal records to be written.
CLOSE_FLUSH_S = 1.0
DEFAULT_PREFIX = "runtimed"
#: The configured signing keys: ``KID:SECRET[,KID2:SECRET2...]``; a bare secret is key id ``k1``.
MIN_SECRET = 32
_KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
GENERATED_KID = "redis"

_DOWN: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# KEYS: registry hash, revision, changes channel. ARGV: expected revision, JSON of the replica id,
# then service id and entry JSON pairs. Returns {1, new revision} or {0, current revision}.
_COMMIT = """
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local revision = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], '{"kind": "registry", "service": null, "data": {"revision": ' .. revision ..
  '}, "replica": ' .. ARGV[2] .. '}')
return {1, revision}
"""

# Rate-limit admissions and cached results are kept in Redis's memory only (``set_repl(REPL_NONE)``:
# not written to the append-only file, not sent to Redis replicas). With ``appendfsync always`` a
# propagated write costs an fsync before Redis answers, on every rate-limited call (measured: a
# script call 0.41 ms p50 with it, 0.16 ms without); a Redis restart then forgets the windows (a
# service may get up to one more window's calls) and the cache (misses): neither is a record.
_EPHEMERAL = "redis.set_repl(redis.REPL_NONE)\n"

# KEYS: the admissions. ARGV: now, horizon (now - window), calls, member, expiry in ms.
# Nil: admitted; else the score of the admission that must leave the window first.
_RATE_ACQUIRE = _EPHEMERAL + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
local calls = tonumber(ARGV[3])
if n < calls then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return false
end
local oldest = redis.call('ZRANGE', KEYS[1], n - calls, n - calls, 'WITHSCORES')
return oldest[2]
"""

# KEYS: the admissions. ARGV: member ('' when unknown), admission time. Removes one admission.
_RATE_REFUND = _EPHEMERAL + """
if ARGV[1] ~= '' and redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  return 1
end
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[2], 'LIMIT', 0, 1)
if found[1] then
  return redis.call('ZREM', KEYS[1], found[1])
end
return 0
"""

# KEYS: the entry, the index. ARGV: value, ttl ms, now, index member, max entries, entry key prefix,
# horizon (entries stored before it have expired).
_CACHE_PUT = _EPHEMERAL + """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[7])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  local evicted = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, member in ipairs(evicted) do
    redis.call('DEL', ARGV[6] .. member)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""


# -- configuration ---------------------------------------------------------------------


def _parse_url(url: str) -> tuple[str, str, str]:
    """(URL for the client, URL to show: no credentials, no query; key prefix) of a store URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"store URL {redact_url(url)!r} is not valid: {e}") from None
    prefix = DEFAULT_PREFIX
    query: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value.strip().rstrip(":")
            if not prefix or not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", prefix):
                raise ConfigError(f"store URL {redact_url(url)!r}: prefix must be 1-100 letters, digits, '.', '_', "
                                  f"'-' or ':', not {value!r}")
        elif key != "protocol":  # RESP2: the replies are parsed as such
            query.append((key, value))
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    return client_url, redact_url(url, port), prefix


def redact_url(url: str, port: int | None = None) -> str:
    """``scheme://host:port/db`` of a store URL (``unix://path``): no user, password or query to leak."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        port = port or parts.port or 6379
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        db = parts.path.strip("/") or "0"
        return f"{parts.scheme}://{host}:{port}/{db}"
    except ValueError:
        return "(a store URL that cannot be parsed)"


def parse_signing_keys(spec: str) -> tuple[str, dict[str, bytes]]:
    """(current key id, key id -> key) of a configured ``KID:SECRET[,KID2:SECRET2...]`` (the first is
    current; each secret at least 32 characters); a bare secret is key id ``k1``. ``ConfigError``
    otherwise (never quoting a secret)."""
    items = [item.strip() for item in spec.split(",")]
    if not any(items):
        raise ConfigError("the signing key is empty: give KID:SECRET[,KID2:SECRET2...] (a secret of at least "
                          f"{MIN_SECRET} characters each), or none to share a generated one through the store")
    if len(items) == 1 and ":" not in items[0]:
        items = [f"k1:{items[0]}"]
    keys: dict[str, bytes] = {}
    for n, item in enumerate(items, 1):
        kid, sep, secret = item.partition(":")
        kid, secret = kid.strip(), secret.strip()
        if not sep or not kid:
            raise ConfigError(f"signing key {n} is not KID:SECRET (keys are separated by ',')")
        if not _KID.match(kid):
            raise ConfigError(f"signing key {n}: the key id {kid!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if len(secret) < MIN_SECRET:
            raise ConfigError(f"signing key {kid!r} is too short ({len(secret)} characters): a secret must have "
                              f"at least {MIN_SECRET}")
        if kid in keys:
            raise ConfigError(f"the key id {kid!r} is given twice among the signing keys")
        keys[kid] = secret.encode()
    return next(iter(keys)), keys


def _reason(e: BaseException) -> str:
    """A short reason for a connection failure, e.g. ``Connection refused``."""
    if isinstance(e, redis.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(e, redis.exceptions.BusyLoadingError):
        return "Redis is loading its data"
    err: BaseException | None = e
    for _ in range(5):  # redis-py wraps the OSError, sometimes twice
        if err is None:
            break
        if isinstance(err, OSError) and err.errno:
            return os.strerror(err.errno)
        err = err.__cause__ or err.__context__
    text = str(e).strip().rstrip(".")
    if ". " in text:  # "Error 111 connecting to 127.0.0.1:6379. Connection refused"
        text = text.rsplit(". ", 1)[1]
    return text or type(e).__name__


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


# -- the store -------------------------------------------------------------------------


class RedisStore(Store):
    """The state of N replicas in one Redis (see the module docstring for the layout)."""

    kind = "redis"
    shared = True

    def __init__(self, url: str, state_dir: Path, replica: str, signing_key: str | None = None) -> None:
        super().__init__(state_dir, replica)
        client_url, self.url, name = _parse_url(url)
        self.prefix = f"{name}:"
        self._configured_keys = parse_signing_keys(signing_key) if signing_key is not None else None
        self._client_url = client_url
        try:
            self._sync: redis.Redis = redis.Redis.from_url(
                client_url, decode_responses=True, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                retry=redis.retry.Retry(NoBackoff(), 0))
        except ValueError as e:
            raise ConfigError(f"store URL {self.url!r} is not valid: {e}") from None
        self._aio: redis.asyncio.Redis | None = None
        self._reader: redis.asyncio.Redis | None = None  # the blocking XREAD's own connection
        self._pubsub: Any = None
        self._available = True
        self._reason = ""
        self._outages = 0  # how many times Redis went away: a listener that saw fewer resubscribes
        self._running = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._on_change: Callable[[Change], Awaitable[None]] | None = None
        self._answer_callbacks: list[Callable[[str, JSON], None]] = []
        self._journals: dict[str, RedisJournal] = {}
        self._limiters: dict[str, RedisRateLimit] = {}
        self._caches: dict[str, RedisCache] = {}
        self._replicas: list[JSON] = []
        self._announced: JSON | None = None
        self._keys: tuple[str, dict[str, bytes]] | None = None
        self.durability = "unknown (not checked yet: the store is not open)"
        self._open_id = "0-0"  # the stream id of the time the store opened: following starts there
        self._commit = self._sync.register_script(_COMMIT)
        self.changes_channel = self.key("changes")
        self.answers_channel = self.key("answers", replica)

    def key(self, *parts: str) -> str:
        """The Redis key of ``parts`` under this store's prefix."""
        return self.prefix + ":".join(parts)

    # -- availability ------------------------------------------------------------
    @property
    def available(self) -> bool:
        return self._available

    def _down(self, e: BaseException) -> None:
        self._reason = _reason(e)
        if self._available:
            self._available = False
            self._outages += 1
            log.warning("the shared store %s cannot be reached (%s): calls go on from memory, changes are "
                        "refused until it is back", self.url, self._reason)

    def _up(self) -> None:
        if not self._available:
            self._available = True
            log.warning("the shared store %s is reachable again", self.url)

    def unavailable(self) -> StoreUnavailable:
        """The error a refused change raises while the store cannot be reached."""
        return StoreUnavailable(f"the shared store {self.url} cannot be reached ({self._reason or 'unknown'}): calls "
                                "go on from memory, changes are refused until it is back")

    def _call(self, fn: Callable[[], T]) -> T:
        """Run a blocking command: ``StoreUnavailable`` when Redis cannot be reached (at once while the
        heartbeat says it is away)."""
        if self._running and not self._available:
            raise self.unavailable()
        try:
            return fn()
        except _DOWN as e:
            self._down(e)
            raise self.unavailable() from None
        except redis.exceptions.ResponseError as e:
            raise self._refused(e) from None

    async def _acall(self, fn: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """Run an async command, like ``_call``."""
        if self._aio is None:
            raise StoreUnavailable(f"the shared store {self.url} is not open")
        if not self._available:
            raise self.unavailable()
        try:
            return await fn(self._aio)
        except _DOWN as e:
            self._down(e)
            raise self.unavailable() from None
        except redis.exceptions.ResponseError as e:
            raise self._refused(e) from None

    async def _best_effort(self, what: str, fn: Callable[[redis.asyncio.Redis], Awaitable[Any]]) -> Any:
        """Run an async command whose failure is only logged (None then)."""
        try:
            return await self._acall(fn)
        except (StoreUnavailable, redis.exceptions.RedisError) as e:
            log.debug("%s: not done (%s)", what, e)
            return None

    def _refused(self, e: redis.exceptions.ResponseError) -> Exception:
        """A command Redis refused: one it cannot persist (``MISCONF``, a full disk) is an unavailable
        store; anything else is a bug, raised as it is."""
        text = str(e)
        if text.startswith(("MISCONF", "READONLY", "OOM")) or "MISCONF" in text:
            return StoreUnavailable(f"the shared store {self.url} refuses writes ({text.split(chr(10))[0][:200]}): "
                                    "calls go on from memory, changes are refused until it is fixed")
        return e

    # -- lifetime ------------------------------------------------------------------
    async def open(self, on_change: Callable[[Change], Awaitable[None]]) -> None:
        """Connect, check durability, subscribe, and start the background tasks (heartbeat, change
        listener, journal writer and follower). Raises ``StoreUnavailable`` when Redis cannot be reached:
        the daemon does not start without its store."""
        self._on_change = on_change
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        opts: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": TIMEOUT_S,
                                "retry": redis.asyncio.retry.Retry(NoBackoff(), 0)}
        self._aio = redis.asyncio.Redis.from_url(self._client_url, socket_timeout=TIMEOUT_S, **opts)
        self._reader = redis.asyncio.Redis.from_url(
            self._client_url, socket_timeout=TIMEOUT_S + FOLLOW_BLOCK_MS / 1000, **opts)
        try:
            await self._aio.ping()
            self._pubsub = await self._subscribe()
            await self._check_durability()
            seconds, micros = await self._aio.time()
            self._open_id = f"{int(seconds) * 1000 + int(micros) // 1000}-0"
        except _DOWN as e:
            self._down(e)
            await self._release()
            raise StoreUnavailable(f"the shared store {self.url} cannot be reached ({self._reason}): runtimed does "
                                   "not start without it; start Redis or correct --store") from None
        self._running = True
        self._up()
        self._tasks = [asyncio.create_task(coro, name=f"store-{name}") for name, coro in (
            ("heartbeat", self._heartbeat()), ("listener", self._listen()), ("follower", self._follow()))]
        self._writer = asyncio.create_task(self._write_journals(), name="store-journal-writer")
        self._tasks.append(self._writer)

    async def close(self) -> None:
        """Stop the tasks, write what the journals still hold (waiting at most ``CLOSE_FLUSH_S``),
        withdraw this replica's announcement, close the connections."""
        self._closing = True
        if self._writer is not None and not self._writer.done():
            assert self._wake is not None
            self._wake.set()
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_FLUSH_S)
        for task in self._tasks:
            task.cancel()
        # The loops also stop on ``_closing``: a cancellation redis-py turns into a timeout is not lost.
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=TIMEOUT_S + 1)
            for task in pending:
                log.warning("the store's task %s did not stop", task.get_name())
        self._tasks = []
        self._running = False
        unwritten = sum(len(j.queue) for j in list(self._journals.values()))
        if unwritten:
            log.warning("%d journal records could not be written to %s before closing", unwritten, self.url)
            for j in list(self._journals.values()):
                j.lost += len(j.queue)
                j.queue.clear()
        if self._announced is not None and self._available:
            await self._best_effort("withdraw the announcement", lambda r: r.delete(self.key("replica", self.replica)))
        await self._release()

    async def _release(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        for client in (self._aio, self._reader):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._aio = self._reader = None
        with contextlib.suppress(Exception):
            self._sync.close()

    async def _check_durability(self) -> None:
        assert self._aio is not None
        try:
            conf = await self._aio.config_get("append*")
        except redis.exceptions.ResponseError as e:
            self.durability = (f"unknown (CONFIG GET is refused: {str(e)[:100]}); acknowledged changes are durable "
                               "only if Redis runs with appendonly yes and appendfsync always")
        else:
            appendonly, fsync = conf.get("appendonly"), conf.get("appendfsync")
            if appendonly != "yes":
                self.durability = ("none (appendonly is off: acknowledged changes since the last snapshot are lost "
                                   "when Redis stops); run Redis with appendonly yes and appendfsync always")
            elif fsync == "always":
                self.durability = "always"
            elif fsync == "everysec":
                self.durability = "everysec (an acknowledged change can be lost in the last second)"
            else:
                self.durability = (f"{fsync} (appendfsync {fsync}: the system decides when acknowledged changes reach "
                                   "the disk); run Redis with appendfsync always")
        if self.durability != "always":
            log.warning("the shared store %s: durability %s", self.url, self.durability)

    def describe(self) -> JSON:
        out: JSON = {
            **super().describe(),
            "url": self.url,
            "prefix": self.prefix,
            "available": self._available,
            "durability": self.durability,
            "lost": sum(j.lost for j in list(self._journals.values())),
        }
        if not self._available:
            out["error"] = str(self.unavailable())
        return out

    # -- background tasks -----------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Ping every second (twice while away): ``available`` follows; refresh the replica list."""
        while not self._closing:
            try:
                assert self._aio is not None
                if not self._available:  # connections Redis closed would each fail once: start afresh
                    for client in (self._aio, self._reader):
                        if client is not None:
                            await client.connection_pool.disconnect()
                    self._sync.connection_pool.disconnect()
                await self._aio.ping()
                self._up()
                await self._refresh_replicas()
            except _DOWN as e:
                self._down(e)
            except Exception:  # a bug must not stop the heartbeat
                log.exception("the store's heartbeat failed")
            await asyncio.sleep(PING_EVERY_S if self._available else PING_WHILE_DOWN_S)

    async def _subscribe(self) -> Any:
        """A pub/sub connection subscribed to the changes and this replica's answers, once Redis has
        confirmed both (a subscription sent on a connection the server closed raises nothing)."""
        assert self._aio is not None
        pubsub: Any = self._aio.pubsub()
        try:
            await pubsub.subscribe(self.changes_channel, self.answers_channel)
            confirmed: set[str] = set()
            deadline = time.monotonic() + TIMEOUT_S
            while len(confirmed) < 2:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise redis.exceptions.TimeoutError("no confirmation of the subscription")
                msg = await pubsub.get_message(timeout=left)
                if msg is not None and msg.get("type") == "subscribe":
                    confirmed.add(msg["channel"])
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _listen(self) -> None:
        """Deliver the changes and answers published by other replicas; after a reconnect (the messages
        published meanwhile are lost), a ``Change("resync")``."""
        seen_outages = self._outages
        while not self._closing:
            try:
                if self._pubsub is None or self._outages != seen_outages:
                    if self._pubsub is not None:
                        with contextlib.suppress(Exception):
                            await self._pubsub.aclose()
                        self._pubsub = None
                    seen_outages = self._outages
                    self._pubsub = await self._subscribe()
                    self._up()
                    log.info("the shared store %s: resubscribed, reloading everything", self.url)
                    await self._deliver(Change("resync"))
                    continue
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    await self._dispatch(msg["channel"], msg["data"])
            except asyncio.CancelledError:
                raise
            except _DOWN as e:
                self._down(e)
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()
                    self._pubsub = None
                await asyncio.sleep(PING_WHILE_DOWN_S)
            except Exception:
                log.exception("the store's change listener failed; listening on")
                await asyncio.sleep(PING_WHILE_DOWN_S)

    async def _dispatch(self, channel: str, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            log.warning("ignored a message on %s that is not JSON", channel)
            return
        if not isinstance(msg, dict):
            return
        if channel == self.answers_channel:
            session, message = msg.get("session"), msg.get("message")
            if isinstance(session, str) and isinstance(message, dict):
                for callback in list(self._answer_callbacks):
                    try:
                        callback(session, message)
                    except Exception:
                        log.exception("an answer callback failed")
            return
        change = Change(str(msg.get("kind", "?")), msg.get("service"), msg.get("data") or {}, str(msg.get("replica", "")))
        if change.replica == self.replica:
            return
        await self._deliver(change)

    async def _deliver(self, change: Change) -> None:
        if self._on_change is None:
            return
        try:
            await self._on_change(change)
        except Exception:
            log.exception("applying the change %s from replica %s failed", change.kind, change.replica or "?")

    def _wakeup(self) -> None:
        """A journal has records to write (from any thread)."""
        if self._wake is None or self._wake.is_set():
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        elif self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._wake.set)

    async def _write_journals(self) -> None:
        """Write the journals' queued records in pipelined batches; keep them while Redis is away."""
        assert self._wake is not None
        while not (self._closing and self._aio is None):
            batch = [(j, j.take(JOURNAL_BATCH)) for j in list(self._journals.values()) if j.queue]
            if not batch:
                if self._closing:
                    return
                self._wake.clear()
                if any(j.queue for j in list(self._journals.values())):
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            try:
                if not self._available:
                    raise redis.exceptions.ConnectionError(self._reason)
                assert self._aio is not None
                pipe = self._aio.pipeline(transaction=False)
                for j, records in batch:
                    for record in records:
                        pipe.xadd(j.stream, {"r": record}, maxlen=j.maxlen, approximate=True)
                await pipe.execute()
            except _DOWN as e:
                if self._available:
                    self._down(e)
                for j, records in batch:
                    j.put_back(records)
                if self._closing:
                    return
                await asyncio.sleep(PING_WHILE_DOWN_S)
            except Exception:
                log.exception("writing journal records to %s failed; they are dropped", self.url)
                for j, records in batch:
                    j.lost += len(records)

    async def _follow(self) -> None:
        """Hand the records other replicas append to the journals' ``follow`` callbacks."""
        while not self._closing:
            followed = {j.stream: j for j in list(self._journals.values()) if j.callbacks}
            if not followed:
                await asyncio.sleep(0.25)
                continue
            try:
                assert self._reader is not None
                for j in followed.values():
                    if j.last_id is None:
                        j.last_id = self._open_id
                streams: dict[Any, Any] = {s: j.last_id for s, j in followed.items()}
                reply: Any = await self._reader.xread(streams, count=JOURNAL_BATCH, block=FOLLOW_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except _DOWN as e:
                self._down(e)
                await asyncio.sleep(PING_WHILE_DOWN_S)
                continue
            except Exception:
                log.exception("following the journals in %s failed", self.url)
                await asyncio.sleep(PING_WHILE_DOWN_S)
                continue
            for stream, entries in reply or []:  # RESP2 (the URL's protocol is ignored)
                journal = followed.get(stream)
                if journal is None:
                    continue
                for entry_id, fields in entries:
                    journal.last_id = entry_id
                    record = _record(fields)
                    if record is None or record.get("replica") == self.replica:
                        continue
                    for callback in list(journal.callbacks):
                        try:
                            callback(record)
                        except Exception:
                            log.exception("a %s journal follower failed", journal.name)

    # -- the registry ------------------------------------------------------------------
    def load_registry(self) -> RegistryDoc:
        """The stored registry; an entry that does not parse (or repeats a name or an origin) is
        skipped and said in ``problems``. ``StoreUnavailable`` when Redis cannot be reached."""

        def read() -> tuple[dict[str, str], str | None]:
            pipe = self._sync.pipeline(transaction=True)
            pipe.hgetall(self.key("registry"))
            pipe.get(self.key("registry", "revision"))
            fields, revision = pipe.execute()
            return fields, revision

        fields, raw_revision = self._call(read)
        report = LoadReport()
        services: dict[str, Any] = {}
        for sid in sorted(fields):
            try:
                services[sid] = json.loads(fields[sid])
            except ValueError as e:
                report.problems.append(f"service {sid}: its stored entry is not JSON ({e}); skipped")
        try:
            revision = int(raw_revision or 0)
        except ValueError:
            revision = 0
            report.problems.append(f"the stored revision {raw_revision!r} is not an integer; read as 0")
        doc = {"formatVersion": FORMAT_VERSION, "generation": revision, "services": services}
        entries, _ = parse_document(json.dumps(doc).encode(), report)
        for problem in report.problems:
            log.warning("the registry in %s: %s", self.url, problem)
        return RegistryDoc(entries, revision, report.problems)

    def commit_registry(self, entries: dict[str, Entry], revision: int) -> int:
        """Replace the registry if it is still at ``revision`` (else ``RegistryConflict``), in one
        script that also publishes the ``Change``; durable when it returns (with ``appendfsync always``)."""
        args: list[Any] = [revision, json.dumps(self.replica)]
        for sid, entry in sorted(entries.items()):
            args += [sid, json.dumps(entry.to_json(), sort_keys=True)]
        keys = [self.key("registry"), self.key("registry", "revision"), self.changes_channel]
        ok, current = self._call(lambda: self._commit(keys=keys, args=args, client=self._sync))
        if not ok:
            raise RegistryConflict(f"another replica changed the registry first (it is at revision {current}, this "
                                   f"change was made on revision {revision}): reload it and try again")
        return int(current)

    # -- lifecycle intents ----------------------------------------------------------------
    def load_intents(self) -> dict[str, JSON]:
        fields: Any = self._call(lambda: self._sync.hgetall(self.key("intents")))
        out: dict[str, JSON] = {}
        for sid, raw in fields.items():
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            if isinstance(value, dict):
                out[sid] = value
            else:
                log.warning("ignored the stored intent of %s in %s: not a JSON object", sid, self.url)
        return out

    def save_intent(self, service_id: str, intent: JSON | None) -> None:
        change = _dumps({"kind": "intent", "service": service_id, "data": {"intent": intent}, "replica": self.replica})

        def write() -> None:
            pipe = self._sync.pipeline(transaction=True)
            if intent is None:
                pipe.hdel(self.key("intents"), service_id)
            else:
                pipe.hset(self.key("intents"), service_id, _dumps(intent))
            pipe.publish(self.changes_channel, change)
            pipe.execute()

        self._call(write)

    # -- interface snapshots ----------------------------------------------------------------
    def load_interface(self, service_id: str) -> tuple[JSON, float] | None:
        raw: Any = self._call(lambda: self._sync.hget(self.key("interfaces"), service_id))
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("interface"), dict):
            return None
        at = value.get("at")
        return value["interface"], float(at) if isinstance(at, (int, float)) else 0.0

    def save_interface(self, service_id: str, snapshot: JSON) -> None:
        data = _dumps({"interface": snapshot, "at": time.time()})
        self._call(lambda: self._sync.hset(self.key("interfaces"), service_id, data))

    def drop_interface(self, service_id: str) -> None:
        try:
            self._call(lambda: self._sync.hdel(self.key("interfaces"), service_id))
        except StoreUnavailable as e:
            log.debug("the interface snapshot of %s stays in %s: %s", service_id, self.url, e)

    # -- keyed collections: one hash each (key -> JSON) ----------------------------------------
    def load_docs(self, collection: str) -> dict[str, JSON]:
        assert collection in COLLECTIONS, collection
        raw: Any = self._call(lambda: self._sync.hgetall(self.key("docs", collection)))
        out: dict[str, JSON] = {}
        for k, v in (raw or {}).items():
            try:
                doc = json.loads(v)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out[k.decode() if isinstance(k, bytes) else str(k)] = doc
        return out

    def save_doc(self, collection: str, key: str, doc: JSON | None) -> None:
        assert collection in COLLECTIONS, collection
        change = _dumps({"kind": "docs", "data": {"collection": collection, "key": key}, "replica": self.replica})

        def write() -> None:
            pipe = self._sync.pipeline(transaction=True)
            if doc is None:
                pipe.hdel(self.key("docs", collection), key)
            else:
                pipe.hset(self.key("docs", collection), key, _dumps(doc))
            pipe.publish(self.changes_channel, change)
            pipe.execute()

        self._call(write)

    # -- OAuth sign-ins: one hash field per service; flows as keys with a TTL ---------------
    def load_credentials(self, service_id: str) -> JSON | None:
        raw: Any = self._call(lambda: self._sync.hget(self.key("oauth"), service_id))
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def save_credentials(self, service_id: str, record: JSON | None) -> None:
        if record is None:
            self._call(lambda: self._sync.hdel(self.key("oauth"), service_id))
        else:
            data = _dumps(record)
            self._call(lambda: self._sync.hset(self.key("oauth"), service_id, data))

    async def save_flow(self, state: str, record: JSON, ttl_s: float) -> None:
        value = _dumps(record)
        await self._acall(lambda r: r.set(self.key("oauth-flow", state), value, px=_ms(ttl_s)))

    async def take_flow(self, state: str) -> JSON | None:
        raw = await self._acall(lambda r: r.getdel(self.key("oauth-flow", state)))
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    # -- journals ------------------------------------------------------------------------
    def journal(self, name: str) -> RedisJournal:
        j = self._journals.get(name)
        if j is None:
            j = self._journals[name] = RedisJournal(self, name)
        return j

    # -- shared policy state -----------------------------------------------------------
    def rate_limiter(self, service_id: str) -> RedisRateLimit:
        limiter = self._limiters.get(service_id)
        if limiter is None:
            limiter = self._limiters[service_id] = RedisRateLimit(self, service_id)
        return limiter

    def result_cache(self, service_id: str) -> RedisCache:
        cache = self._caches.get(service_id)
        if cache is None:
            cache = self._caches[service_id] = RedisCache(self, service_id)
        return cache

    async def publish(self, change: Change) -> None:
        msg = _dumps({"kind": change.kind, "service": change.service, "data": change.data,
                      "replica": change.replica or self.replica})
        await self._best_effort(f"publish the change {change.kind}", lambda r: r.publish(self.changes_channel, msg))

    # -- sessions --------------------------------------------------------------------------
    async def save_session(self, session_id: str, record: JSON, ttl_s: float) -> None:
        value = _dumps(record)
        await self._acall(lambda r: r.set(self.key("session", session_id), value, px=_ms(ttl_s)))

    async def load_session(self, session_id: str) -> JSON | None:
        """The stored record, or None; ``StoreUnavailable`` when Redis cannot be reached (the session
        may exist: do not treat it as unknown)."""
        raw = await self._acall(lambda r: r.get(self.key("session", session_id)))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    async def touch_session(self, session_id: str, ttl_s: float) -> None:
        await self._best_effort("touch a session", lambda r: r.pexpire(self.key("session", session_id), _ms(ttl_s)))

    async def drop_session(self, session_id: str) -> None:
        await self._best_effort("drop a session", lambda r: r.delete(self.key("session", session_id)))

    # -- answers to server-to-client requests ------------------------------------------------
    def _pending_key(self, session_id: str, request_id: Any) -> str:
        return self.key("pending", session_id, json.dumps(request_id, sort_keys=True))

    async def claim_request(self, session_id: str, request_id: Any, ttl_s: float) -> None:
        key = self._pending_key(session_id, request_id)
        await self._best_effort("claim a request", lambda r: r.set(key, self.replica, px=_ms(ttl_s)))

    async def route_answer(self, session_id: str, request_id: Any, message: JSON) -> bool | None:
        """True: passed to the replica that asked; False: that replica is gone, or the store cannot be
        reached (the answer cannot be delivered); None: no replica asked it (or this one did)."""
        try:
            owner: Any = await self._acall(lambda r: r.get(self._pending_key(session_id, request_id)))
            if owner is None or owner == self.replica:
                return None
            body = _dumps({"session": session_id, "message": message})
            receivers = await self._acall(lambda r: r.publish(self.key("answers", owner), body))
        except StoreUnavailable as e:
            log.debug("an answer for session %s cannot be routed: %s", session_id, e)
            return False
        return bool(receivers)

    def on_answer(self, callback: Callable[[str, JSON], None]) -> None:
        self._answer_callbacks.append(callback)

    # -- replicas ----------------------------------------------------------------------------
    async def announce(self, info: JSON, ttl_s: float) -> None:
        self._announced = {**info, "replica": self.replica, "seen": time.time()}
        self._replicas = sorted([r for r in self._replicas if r.get("replica") != self.replica] + [self._announced],
                                key=lambda r: str(r.get("replica")))
        value = _dumps(self._announced)
        await self._best_effort("announce", lambda r: r.set(self.key("replica", self.replica), value, px=_ms(ttl_s)))

    def replicas(self) -> list[JSON]:
        """The live replicas as of the last heartbeat (at most a second old)."""
        return list(self._replicas)

    async def _refresh_replicas(self) -> None:
        assert self._aio is not None
        keys = [k async for k in self._aio.scan_iter(match=_glob_escape(self.key("replica")) + ":*", count=200)]
        found: list[JSON] = []
        if keys:
            for raw in await self._aio.mget(keys):
                try:
                    info = json.loads(raw) if raw is not None else None
                except ValueError:
                    info = None
                if isinstance(info, dict) and isinstance(info.get("replica"), str):
                    found.append(info)
        self._replicas = sorted(found, key=lambda r: str(r.get("replica")))

    # -- keys ----------------------------------------------------------------------------------
    def signing_keys(self) -> tuple[str, dict[str, bytes]]:
        """The configured keys, else the one kept in Redis (made by the first replica to ask: every
        replica signs and verifies with the same). ``StoreUnavailable`` when Redis cannot be reached."""
        if self._keys is not None:
            return self._keys
        if self._configured_keys is not None:
            self._keys = self._configured_keys
            return self._keys
        key = self.key("signing-key")
        fresh = f"{GENERATED_KID}:{secrets.token_hex(32)}"

        def get_or_make() -> Any:
            self._sync.set(key, fresh, nx=True)
            return self._sync.get(key)

        value = self._call(get_or_make) or ""
        kid, _, hexkey = value.partition(":")
        try:
            secret = bytes.fromhex(hexkey)
        except ValueError:
            secret = b""
        if not _KID.match(kid) or len(secret) < MIN_SECRET:
            raise ConfigError(f"the signing key kept in {self.url} ({key}) is malformed: delete that key (a new one is "
                              "made) or configure the signing key")
        self._keys = kid, {kid: secret}
        return self._keys


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _record(fields: Any) -> JSON | None:
    try:
        record = json.loads(fields["r"])
    except (KeyError, TypeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


# -- journals ------------------------------------------------------------------------------


class RedisJournal:
    """One journal: the stream ``journal:<name>``. Appends are queued (``JOURNAL_QUEUE`` at most: the
    oldest are dropped and counted in ``lost`` past it) and written by the store's writer task."""

    def __init__(self, store: RedisStore, name: str) -> None:
        self.store = store
        self.name = name
        self.stream = store.key("journal", name)
        self.maxlen = JOURNAL_MAXLEN.get(name, JOURNAL_MAXLEN_DEFAULT)
        self.queue: collections.deque[str] = collections.deque()
        self.lost = 0
        self.callbacks: list[Callable[[JSON], None]] = []
        #: The stream id following goes on from: the newest record ``tail`` returned before the store
        #: opened, else the time the store opened (Redis's clock, which also makes the ids).
        self.last_id: str | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"the stream {self.stream} in {self.store.url}"

    def append(self, record: JSON) -> None:
        self._queue([record])

    def append_many(self, records: list[JSON]) -> None:
        self._queue(records)

    def _queue(self, records: list[JSON]) -> None:
        replica = self.store.replica
        for record in records:
            line = _dumps({**record, "replica": replica})
            if len(self.queue) >= JOURNAL_QUEUE:
                with contextlib.suppress(IndexError):
                    self.queue.popleft()
                    self.lost += 1
            self.queue.append(line)
        self.store._wakeup()

    def take(self, limit: int) -> list[str]:
        out: list[str] = []
        with contextlib.suppress(IndexError):
            while len(out) < limit:
                out.append(self.queue.popleft())
        return out

    def put_back(self, records: list[str]) -> None:
        """Records a write failed for go back at the front (the oldest of them dropped past the bound)."""
        for line in reversed(records):
            if len(self.queue) >= JOURNAL_QUEUE:
                self.lost += 1
            else:
                self.queue.appendleft(line)

    def tail(self, limit: int = 100) -> list[JSON]:
        """The newest ``limit`` records of every replica, oldest first ([] when Redis cannot be reached)."""
        try:
            entries: Any = self.store._call(lambda: self.store._sync.xrevrange(self.stream, count=limit))
        except StoreUnavailable as e:
            log.warning("the %s journal cannot be read: %s", self.name, e)
            return []
        with self._lock:
            if self.last_id is None and not self.store._running:
                self.last_id = entries[0][0] if entries else "0-0"
        return [r for r in (_record(fields) for _, fields in reversed(entries)) if r is not None]

    def follow(self, callback: Callable[[JSON], None]) -> None:
        self.callbacks.append(callback)

    def close(self) -> None:
        """Write what is queued, at once, if the store's writer is not running (it flushes on the
        store's ``close``); best effort, bounded by ``CLOSE_FLUSH_S``."""
        if self.store._running or not self.queue:
            return
        deadline = time.monotonic() + CLOSE_FLUSH_S
        while self.queue and time.monotonic() < deadline:
            batch = self.take(JOURNAL_BATCH)
            try:
                pipe = self.store._sync.pipeline(transaction=False)
                for line in batch:
                    pipe.xadd(self.stream, {"r": line}, maxlen=self.maxlen, approximate=True)
                pipe.execute()
            except (redis.exceptions.RedisError, OSError) as e:
                self.put_back(batch)
                log.warning("the %s journal could not be written to %s (%s): %d records lost", self.name,
                            self.store.url, _reason(e), len(self.queue))
                break


# -- shared policy state -------------------------------------------------------------------


class RedisRateLimit:
    """A sliding-window rate limit for one service, shared by every replica: ``rate:<service>`` holds
    each admission (score: its wall time; member ``<time>:<random>``). ``try_acquire`` and ``used``
    raise ``StoreUnavailable`` when Redis cannot be reached (the caller falls back to its local
    limiter); ``refund`` and ``forget`` are best effort."""

    MEMBERS = 10000  # admissions remembered for an exact refund

    def __init__(self, store: RedisStore, service_id: str) -> None:
        self.store = store
        self.key = store.key("rate", service_id)
        self._members: collections.OrderedDict[float, str] = collections.OrderedDict()
        self._acquire: Any = None
        self._refund: Any = None

    def _scripts(self) -> tuple[Any, Any]:
        aio = self.store._aio
        if aio is None:
            raise StoreUnavailable(f"the shared store {self.store.url} is not open")
        if self._acquire is None or self._acquire.registered_client is not aio:
            self._acquire, self._refund = aio.register_script(_RATE_ACQUIRE), aio.register_script(_RATE_REFUND)
        return self._acquire, self._refund

    async def try_acquire(self, calls: int, window_s: float, now: float) -> float | None:
        acquire, _ = self._scripts()
        member = f"{now!r}:{secrets.token_hex(6)}"
        args = [repr(now), repr(now - window_s), calls, member, _ms(window_s) + 1000]
        oldest = await self.store._acall(lambda r: acquire(keys=[self.key], args=args, client=r))
        if oldest is None:
            self._members[now] = member
            while len(self._members) > self.MEMBERS:
                self._members.popitem(last=False)
            return None
        return float(oldest) + window_s

    async def refund(self, admitted_at: float) -> None:
        try:
            _, refund = self._scripts()
        except StoreUnavailable:
            return
        member = self._members.pop(admitted_at, "")
        await self.store._best_effort("refund an admission",
                                      lambda r: refund(keys=[self.key], args=[member, repr(admitted_at)], client=r))

    async def used(self, window_s: float, now: float) -> int:
        return int(await self.store._acall(lambda r: r.zcount(self.key, f"({now - window_s!r}", "+inf")))

    async def forget(self) -> None:
        self._members.clear()
        await self.store._best_effort("forget the admissions", lambda r: r.delete(self.key))


class RedisCache:
    """A result cache for one service, shared by every replica: ``cache:<service>:<sha256 of the key>``
    holds ``{"t": stored at (wall time), "r": result}`` with the entry's TTL, ``cache-index:<service>``
    bounds their number (the oldest are evicted). ``get`` answers None (a miss) and ``put`` does
    nothing when Redis cannot be reached; ``clear`` raises ``StoreUnavailable``."""

    def __init__(self, store: RedisStore, service_id: str) -> None:
        self.store = store
        self.entry_prefix = store.key("cache", service_id) + ":"
        self.index = store.key("cache-index", service_id)
        self._put: Any = None

    def _entry(self, key: str) -> tuple[str, str]:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.entry_prefix + digest, digest

    async def get(self, key: str) -> tuple[float, JSON] | None:
        entry, _ = self._entry(key)
        try:
            raw = await self.store._acall(lambda r: r.get(entry))
        except StoreUnavailable:
            return None
        try:
            value: Any = json.loads(raw) if raw is not None else None
            stored, result = float(value["t"]), value["r"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(result, dict):
            return None
        return max(0.0, time.time() - stored), result

    async def put(self, key: str, result: JSON, ttl_s: float, max_entries: int) -> None:
        aio = self.store._aio
        if aio is None:
            return
        if self._put is None or self._put.registered_client is not aio:
            self._put = aio.register_script(_CACHE_PUT)
        put = self._put
        entry, digest = self._entry(key)
        now = time.time()
        args = [_dumps({"t": now, "r": result}), _ms(ttl_s), repr(now), digest, max(1, max_entries),
                self.entry_prefix, repr(now - ttl_s)]
        await self.store._best_effort("cache a result", lambda r: put(keys=[entry, self.index], args=args, client=r))

    async def clear(self) -> None:
        async def wipe(r: redis.asyncio.Redis) -> None:
            members: Any = await r.zrange(self.index, 0, -1)
            keys = [self.entry_prefix + m for m in members]
            keys += [k async for k in r.scan_iter(match=_glob_escape(self.entry_prefix) + "*", count=500)]
            keys.append(self.index)
            for i in range(0, len(keys), 500):
                await r.delete(*keys[i:i + 500])

        await self.store._acall(wipe)
