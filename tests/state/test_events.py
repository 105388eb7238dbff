"""The state's event plumbing: rotation of the JSON Lines files (``JsonlLog``, which also holds
the call records) and the event bus's subscriptions (``EventBus``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from runtimed.state.events import EventBus, JsonlLog

# -- rotation -------------------------------------------------------------------

def test_jsonl_rotation_by_size(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    log = JsonlLog(path, max_bytes=1000, keep=2)
    for i in range(100):
        log.append({"i": i, "pad": "x" * 40})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["calls.jsonl", "calls.jsonl.1", "calls.jsonl.2"]  # keep=2: older ones are dropped
    for name in files:
        size = (tmp_path / name).stat().st_size
        assert 0 < size <= 1000
        lines = (tmp_path / name).read_text().splitlines()
        assert all(json.loads(line)["pad"] for line in lines)  # whole lines only
    newest = [json.loads(x)["i"] for x in path.read_text().splitlines()]
    older = [json.loads(x)["i"] for x in (tmp_path / "calls.jsonl.1").read_text().splitlines()]
    assert newest[-1] == 99 and older[-1] == newest[0] - 1  # .1 holds what came right before
    reopened = JsonlLog(path, max_bytes=1000, keep=2)
    tail = [r["i"] for r in reopened.tail(30)]
    assert tail == list(range(70, 100))  # newest last, across the rotated files
    reopened.append({"i": 100})
    assert json.loads(path.read_text().splitlines()[-1]) == {"i": 100}  # appended, not rewritten
    reopened.close()


def test_jsonl_tail_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "trunc')
    assert JsonlLog(path).tail(10) == [{"a": 1}, {"a": 2}]


async def test_subscription_registers_before_first_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.emit("transition", "svc", to="RUNNING")  # emitted before anyone awaits the subscription
    bus.notify("call", "svc", tool="t")  # live only: not in the ring
    first = await asyncio.wait_for(sub.__anext__(), 5)
    second = await asyncio.wait_for(sub.__anext__(), 5)
    await sub.aclose()
    assert (first.type, second.type) == ("transition", "call")
    assert [e.type for e in bus.recent()] == ["transition"]


async def test_a_subscription_for_some_types_only_receives_those() -> None:
    bus = EventBus()
    some, every = bus.subscribe(types=("transition", "interface")), bus.subscribe()
    bus.notify("call", "svc", tool="t")
    bus.emit("health", "svc", health="OK")
    bus.emit("interface", "svc", changed=True)
    got = await asyncio.wait_for(some.__anext__(), 5)
    assert got.type == "interface" and some._q.empty()  # "call" and "health" never queued
    assert [(await every.__anext__()).type for _ in range(3)] == ["call", "health", "interface"]
    await some.aclose()
    await every.aclose()
