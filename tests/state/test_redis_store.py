"""The Redis store (``runtimed.state.redis.RedisStore``): two replicas on one real ``redis-server``.

Each test starts its own Redis (``redis_server``, AOF with ``appendfsync always``) and opens two
stores on it, replicas ``a`` and ``b``, as two daemons would. What one does, the other must see:
registry commits and intents (with their ``Change``), journal records, rate-limit admissions,
cached results, sessions, answers routed to the replica that asked, the signing key. Then the
failures: Redis killed (changes refused with a clear message, journal records kept and written
when it is back, a ``resync`` after the reconnect) and a ``kill -9`` losing nothing acknowledged.
Waits poll with generous deadlines; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from runtimed.config.manifest import parse_manifest
from runtimed.errors import ConfigError, RegistryConflict, StoreUnavailable
from runtimed.state.redis import RedisStore, parse_signing_keys
from runtimed.state.registry import Entry
from runtimed.state.store import Change
from tests.support.foundation import closed_port, remote_manifest
from tests.support.redisserver import RedisServer

DEADLINE_S = 20.0


class Replica:
    """A store opened as one daemon opens it, keeping the changes it is told."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.changes: list[Change] = []
        self.answers: list[tuple[str, dict[str, Any]]] = []
        store.on_answer(lambda sid, msg: self.answers.append((sid, msg)))

    async def on_change(self, change: Change) -> None:
        self.changes.append(change)

    def kinds(self) -> list[str]:
        return [c.kind for c in self.changes]


async def wait_until(what: str, pred: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s")
        await asyncio.sleep(0.05)


async def opened(url: str, tmp: Path, name: str, **kw: Any) -> Replica:
    store = RedisStore(url, tmp / name, name, **kw)
    replica = Replica(store)
    await store.open(replica.on_change)
    return replica


@pytest.fixture
async def pair(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica]]:
    a = await opened(redis_server.url, tmp_path, "a")
    b = await opened(redis_server.url, tmp_path, "b")
    yield a, b
    await a.store.close()
    await b.store.close()


def entry(name: str, port: int) -> Entry:
    m = parse_manifest(remote_manifest(name, f"http://127.0.0.1:{port}/mcp"))
    return Entry(m, 1000.0, 2000.0)


def as_json(entries: dict[str, Entry]) -> dict[str, Any]:
    return {sid: e.to_json() for sid, e in entries.items()}


# -- the registry and intents ------------------------------------------------------------

async def test_a_commit_on_one_replica_reaches_the_other(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    alpha, beta = entry("alpha", 1001), entry("beta", 1002)
    entries = {alpha.manifest.id: alpha, beta.manifest.id: beta}
    assert await asyncio.to_thread(a.store.commit_registry, entries, 0) == 1
    change = await wait_until("b to hear of the commit", lambda: next((c for c in b.changes if c.kind == "registry"), None))
    assert (change.data, change.replica) == ({"revision": 1}, "a")
    doc = await asyncio.to_thread(b.store.load_registry)
    assert (doc.revision, as_json(doc.entries), doc.problems) == (1, as_json(entries), [])

    # b commits on top; a's next commit, still on revision 1, is refused.
    del entries[beta.manifest.id]
    assert await asyncio.to_thread(b.store.commit_registry, entries, 1) == 2
    with pytest.raises(RegistryConflict, match=r"revision 2.*revision 1.*reload"):
        await asyncio.to_thread(a.store.commit_registry, {}, 1)
    await wait_until("a to hear of b's commit", lambda: any(c.data == {"revision": 2} for c in a.changes))
    assert (await asyncio.to_thread(a.store.load_registry)).entries.keys() == {alpha.manifest.id}
    assert [c for c in a.changes if c.replica == "a"] == [] and [c for c in b.changes if c.replica == "b"] == []


async def test_an_entry_that_does_not_parse_is_skipped_and_said(pair: tuple[Replica, Replica], redis_server: RedisServer) -> None:
    a, _ = pair
    alpha = entry("alpha", 1001)
    await asyncio.to_thread(a.store.commit_registry, {alpha.manifest.id: alpha}, 0)
    raw = redis.Redis.from_url(redis_server.url)
    raw.hset("runtimed:registry", "svc_broken", "{not json")
    raw.hset("runtimed:registry", "svc_bad", '{"manifest": {"kind": "nope"}}')
    raw.close()
    doc = await asyncio.to_thread(a.store.load_registry)
    assert list(doc.entries) == [alpha.manifest.id]
    assert len(doc.problems) == 2 and any("svc_broken" in p for p in doc.problems)


async def test_intents_are_shared(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    await asyncio.to_thread(a.store.save_intent, "svc_1", {"desired": "stopped", "by": "test"})
    got = await wait_until("the intent change", lambda: [c for c in b.changes if c.kind == "intent"])
    assert (got[0].service, got[0].data) == ("svc_1", {"intent": {"desired": "stopped", "by": "test"}})
    assert await asyncio.to_thread(b.store.load_intents) == {"svc_1": {"desired": "stopped", "by": "test"}}
    await asyncio.to_thread(a.store.save_intent, "svc_1", None)
    await wait_until("the cleared intent", lambda: len([c for c in b.changes if c.kind == "intent"]) == 2)
    assert b.changes[-1].data == {"intent": None}
    assert await asyncio.to_thread(b.store.load_intents) == {}


async def test_keyed_documents_are_shared(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    await asyncio.to_thread(a.store.save_doc, "profiles", "coding", {"kind": "MCPProfile", "n": 1})
    got = await wait_until("the docs change", lambda: [c for c in b.changes if c.kind == "docs"])
    assert got[0].data == {"collection": "profiles", "key": "coding"}
    assert await asyncio.to_thread(b.store.load_docs, "profiles") == {"coding": {"kind": "MCPProfile", "n": 1}}
    assert await asyncio.to_thread(b.store.load_docs, "tokens") == {}
    await asyncio.to_thread(a.store.save_doc, "profiles", "coding", None)
    await wait_until("the removal", lambda: len([c for c in b.changes if c.kind == "docs"]) == 2)
    assert await asyncio.to_thread(b.store.load_docs, "profiles") == {}


# -- journals ----------------------------------------------------------------------------

async def test_journal_records_reach_the_other_replica(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    ja, jb = a.store.journal("events"), b.store.journal("events")
    assert a.store.journal("events") is ja
    ja.append({"type": "first", "nested": {"list": [1, {"x": None}]}})
    await wait_until("a's first record written", lambda: jb.tail(10))
    seen: list[dict[str, Any]] = []
    jb.follow(seen.append)  # after the record: following starts at the store's open, so it is delivered
    ja.append_many([{"type": "second"}, {"type": "third"}])
    jb.append({"type": "from-b"})
    await wait_until("three records at b", lambda: len(seen) == 3)
    assert [r["type"] for r in seen] == ["first", "second", "third"] and {r["replica"] for r in seen} == {"a"}
    assert seen[0]["nested"] == {"list": [1, {"x": None}]}
    tail = await wait_until("four records in the stream", lambda: len(ja.tail(10)) == 4 and ja.tail(10))
    assert sorted((r["type"], r["replica"]) for r in tail) == [
        ("first", "a"), ("from-b", "b"), ("second", "a"), ("third", "a")]
    assert [r["type"] for r in ja.tail(2)] == [r["type"] for r in tail[-2:]]  # the newest, oldest first
    await asyncio.sleep(0.3)
    assert len(seen) == 3  # b's own record is not handed back to b
    assert a.store.describe()["lost"] == 0


# -- shared policy state -------------------------------------------------------------------

async def test_a_rate_limit_holds_across_replicas(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    la, lb = a.store.rate_limiter("svc_rl"), b.store.rate_limiter("svc_rl")
    base = time.time()
    nows = [base + i / 1000 for i in range(20)]
    results = await asyncio.gather(*((la if i % 2 else lb).try_acquire(10, 60.0, now) for i, now in enumerate(nows)))
    admitted = [now for now, r in zip(nows, results, strict=True) if r is None]
    refused = [r for r in results if r is not None]
    assert len(admitted) == 10 and len(refused) == 10
    assert set(refused) == {min(admitted) + 60.0}  # when the oldest admission leaves the window
    assert await la.used(60.0, base + 1) == 10 and await lb.used(60.0, base + 1) == 10
    await la.refund(admitted[0])  # this store may not have made it: found by its time
    assert await lb.used(60.0, base + 1) == 9
    assert await lb.try_acquire(10, 60.0, base + 1) is None
    assert await la.try_acquire(10, 60.0, base + 1) is not None
    assert await la.try_acquire(10, 60.0, base + 61) is None  # the first ones left the window
    await lb.forget()
    assert await la.used(60.0, base + 61) == 0


async def test_a_cached_result_serves_the_other_replica(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    ca, cb = a.store.result_cache("svc_c"), b.store.result_cache("svc_c")
    result = {"content": [{"type": "text", "text": "hi"}], "isError": False}
    await ca.put("tools/call:t:{}", result, 60.0, 100)
    got = await cb.get("tools/call:t:{}")
    assert got is not None and got[1] == result and 0.0 <= got[0] < 60.0
    assert await cb.get("another key") is None
    for i in range(3):  # at most 2 entries: the oldest goes
        await cb.put(f"k{i}", {"i": i}, 60.0, 2)
    assert await ca.get("k0") is None and await ca.get("k1") is not None and await ca.get("k2") is not None
    await ca.put("short", {"s": 1}, 0.2, 100)
    await wait_until_async("the short entry to expire", lambda: ca.get("short"), expect_none=True)
    await cb.clear()
    assert [await ca.get(k) for k in ("tools/call:t:{}", "k1", "k2")] == [None, None, None]
    other = a.store.result_cache("svc_other")
    await other.put("k", {"x": 1}, 60.0, 10)
    await ca.clear()
    assert await other.get("k") is not None  # one service's clear leaves the others'


async def wait_until_async(what: str, get: Callable[[], Any], expect_none: bool = False) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = await get()
        if (value is None) == expect_none:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {DEADLINE_S} s")
        await asyncio.sleep(0.05)


# -- sessions and answers --------------------------------------------------------------------

async def test_sessions_are_shared_and_expire(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    record = {"version": "2025-06-18", "client": {"name": "c"}, "logLevel": "info", "subscriptions": ["r://x"]}
    await a.store.save_session("s1", record, 60.0)
    assert await b.store.load_session("s1") == record
    assert await b.store.load_session("unknown") is None
    await b.store.touch_session("s1", 60.0)
    await b.store.drop_session("s1")
    assert await a.store.load_session("s1") is None
    await a.store.save_session("s2", record, 60.0)
    assert await b.store.load_session("s2") == record
    await b.store.touch_session("s2", 0.3)  # its idle time starts again, with the TTL given
    await wait_until_async("the idle session to expire", lambda: b.store.load_session("s2"), expect_none=True)


async def test_an_answer_is_routed_to_the_replica_that_asked(pair: tuple[Replica, Replica], redis_server: RedisServer,
                                                              tmp_path: Path) -> None:
    a, b = pair
    await b.store.claim_request("s1", 7, 30.0)
    answer = {"jsonrpc": "2.0", "id": 7, "result": {"action": "accept"}}
    assert await a.store.route_answer("s1", 7, answer) is True
    await wait_until("b to get the answer", lambda: b.answers)
    assert b.answers == [("s1", answer)] and a.answers == []
    assert await a.store.route_answer("s1", "7", answer) is None  # another request id
    assert await a.store.route_answer("s2", 7, answer) is None
    assert await b.store.route_answer("s1", 7, answer) is None  # b asked it itself
    c = await opened(redis_server.url, tmp_path, "c")
    await c.store.claim_request("s3", "r-1", 30.0)
    await c.store.close()  # c is gone: its claim outlives it, nobody listens
    assert await a.store.route_answer("s3", "r-1", answer) is False


# -- replicas and keys ---------------------------------------------------------------------

async def test_replicas_see_each_other(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    await a.store.announce({"address": "127.0.0.1:1"}, 10.0)
    assert [r["replica"] for r in a.store.replicas()] == ["a"]  # at once, before the heartbeat
    await b.store.announce({"address": "127.0.0.1:2"}, 10.0)
    both = await wait_until("a to see b", lambda: len(a.store.replicas()) == 2 and a.store.replicas())
    assert [(r["replica"], r["address"]) for r in both] == [("a", "127.0.0.1:1"), ("b", "127.0.0.1:2")]
    await b.store.close()
    await wait_until("b to leave a's list", lambda: [r["replica"] for r in a.store.replicas()] == ["a"])


async def test_the_signing_key_is_agreed_or_configured(pair: tuple[Replica, Replica], redis_server: RedisServer,
                                                        tmp_path: Path) -> None:
    a, b = pair
    kid, keys = await asyncio.to_thread(a.store.signing_keys)
    assert (kid, keys) == await asyncio.to_thread(b.store.signing_keys)
    assert len(keys[kid]) == 32
    new, old = "n" * 32, "o" * 40
    store = RedisStore(redis_server.url, tmp_path / "c", "c", signing_key=f"new:{new}, old:{old}")
    assert store.signing_keys() == ("new", {"new": new.encode(), "old": old.encode()})
    assert parse_signing_keys("s" * 32) == ("k1", {"k1": b"s" * 32})
    for bad, says in [("k:short", "too short"), (f"new:{new},{old}", "not KID:SECRET"), ("", "empty"),
                      (f"a b:{new}", "key id"), (f"k:{new},k:{old}", "twice")]:
        with pytest.raises(ConfigError, match=says) as err:
            RedisStore(redis_server.url, tmp_path / "d", "d", signing_key=bad)
        assert new not in str(err.value) and old not in str(err.value)


# -- failures --------------------------------------------------------------------------------

async def test_redis_down_refuses_changes_keeps_records_and_resyncs(pair: tuple[Replica, Replica],
                                                                    redis_server: RedisServer) -> None:
    a, b = pair
    alpha = entry("alpha", 1001)
    await asyncio.to_thread(a.store.commit_registry, {alpha.manifest.id: alpha}, 0)
    seen: list[dict[str, Any]] = []
    b.store.journal("calls").follow(seen.append)
    redis_server.kill()
    await wait_until("a to notice", lambda: not a.store.available)
    # The first failure may be the server closing a connection; the pings that follow are refused.
    await wait_until("a refused connection", lambda: "(Connection refused)" in a.store.describe().get("error", ""))
    with pytest.raises(StoreUnavailable) as err:
        await asyncio.to_thread(a.store.commit_registry, {}, 1)
    assert str(err.value) == (f"the shared store redis://127.0.0.1:{redis_server.port}/0 cannot be reached "
                              "(Connection refused): calls go on from memory, changes are refused until it is back")
    with pytest.raises(StoreUnavailable):
        await asyncio.to_thread(a.store.save_intent, "svc_1", {"desired": "stopped"})
    with pytest.raises(StoreUnavailable):
        await a.store.save_session("s", {}, 10.0)
    with pytest.raises(StoreUnavailable):
        await a.store.load_session("s")
    assert await a.store.result_cache("svc").get("k") is None
    with pytest.raises(StoreUnavailable):
        await a.store.rate_limiter("svc").try_acquire(10, 60.0, time.time())
    await a.store.publish(Change("breaker", "svc_1", {"until": 1.0}))  # never raises
    calls = a.store.journal("calls")
    for i in range(3):
        calls.append({"n": i})
    assert a.store.describe()["available"] is False and "cannot be reached" in a.store.describe()["error"]

    resyncs = len([c for c in a.changes if c.kind == "resync"])
    redis_server.start()
    await wait_until("a to reconnect", lambda: a.store.available and b.store.available)
    await wait_until("a resync at both", lambda: "resync" in b.kinds() and
                     len([c for c in a.changes if c.kind == "resync"]) > resyncs)
    await wait_until("the queued records at b", lambda: len(seen) == 3)
    assert [r["n"] for r in seen] == [0, 1, 2]
    assert await asyncio.to_thread(a.store.commit_registry, {}, 1) == 2
    await wait_until("b to hear of it", lambda: any(c.data == {"revision": 2} for c in b.changes))


async def test_acknowledged_changes_survive_kill_9(redis_server: RedisServer, tmp_path: Path) -> None:
    a = await opened(redis_server.url, tmp_path, "a")
    assert a.store.describe()["durability"] == "always"
    alpha = entry("alpha", 1001)
    await asyncio.to_thread(a.store.commit_registry, {alpha.manifest.id: alpha}, 0)
    await asyncio.to_thread(a.store.save_intent, alpha.manifest.id, {"desired": "quarantined"})
    await a.store.close()
    redis_server.kill()
    redis_server.start()
    b = await opened(redis_server.url, tmp_path, "b")
    doc = await asyncio.to_thread(b.store.load_registry)
    assert (doc.revision, as_json(doc.entries)) == (1, as_json({alpha.manifest.id: alpha}))
    assert await asyncio.to_thread(b.store.load_intents) == {alpha.manifest.id: {"desired": "quarantined"}}
    raw = redis.Redis.from_url(redis_server.url)
    raw.config_set("appendfsync", "everysec")
    raw.close()
    c = await opened(redis_server.url, tmp_path, "c")
    assert c.store.describe()["durability"].startswith("everysec (an acknowledged change can be lost")
    await b.store.close()
    await c.store.close()


async def test_an_unreachable_store_refuses_to_open_without_its_password(tmp_path: Path) -> None:
    port = closed_port()
    store = RedisStore(f"redis://:s3cretpw@127.0.0.1:{port}/2?prefix=t1", tmp_path, "a")
    assert store.describe()["url"] == f"redis://127.0.0.1:{port}/2"
    with pytest.raises(StoreUnavailable, match=f"redis://127.0.0.1:{port}/2 cannot be reached .*does not start") as err:
        await store.open(Replica(store).on_change)
    assert "s3cretpw" not in str(err.value)


async def test_a_prefix_keeps_stores_apart(redis_server: RedisServer, tmp_path: Path) -> None:
    one = await opened(redis_server.url + "?prefix=one", tmp_path, "a")
    two = await opened(redis_server.url + "?prefix=two", tmp_path, "b")
    alpha = entry("alpha", 1001)
    await asyncio.to_thread(one.store.commit_registry, {alpha.manifest.id: alpha}, 0)
    assert (await asyncio.to_thread(two.store.load_registry)).revision == 0
    assert (await asyncio.to_thread(one.store.load_registry)).revision == 1
    await one.store.close()
    await two.store.close()


async def test_journal_records_past_the_bound_are_counted_and_close_writes_the_rest(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runtimed.state.redis.JOURNAL_QUEUE", 3)
    store = RedisStore(redis_server.url, tmp_path, "a")  # never opened: no writer task
    journal = store.journal("events")
    journal.append_many([{"n": i} for i in range(5)])
    assert store.describe()["lost"] == 2  # the two oldest
    journal.close()  # written at once, the store's writer not running
    assert [r["n"] for r in journal.tail(10)] == [2, 3, 4]
