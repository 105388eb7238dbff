"""The policy engine in process: every policy against a scripted upstream backend.

See tests/policy/harness.py: the backend is a real ``Backend`` subclass acting
as the upstream; the engine, the limits, the cache and the breaker are the
product code under test. End-to-end tests through a daemon live in
tests/policy/test_e2e.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from runtimed.backends import BackendFault, CallContext, UpstreamError
from runtimed.policy.engine import PolicyRefusal
from tests.policy.harness import Harness, meta_of, text_of, until


# -- timeout -------------------------------------------------------------
async def test_timeout_gives_clear_result_and_cancels_the_backend(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(timeoutMs=100)
    result = await h.tool(svc, "block")
    assert result["isError"] is True
    assert "timed out after 100 ms" in text_of(result) and "timeoutMs" in text_of(result)
    assert meta_of(result)["policy"] == "timeoutMs"
    assert svc.up.cancelled == 1  # the backend task was cancelled (remote sends notifications/cancelled)
    ctx = svc.up.seen_ctx[-1]
    assert ctx.deadline is not None and ctx.max_response_bytes == svc.policy.max_payload
    assert h.records[-1]["outcome"] == "timeout" and h.records[-1]["policy"] == "timeoutMs"


async def test_timeout_on_other_methods_raises_backend_fault(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(timeoutMs=100, retries=0)

    async def hang(method, params, ctx):
        await asyncio.Event().wait()

    svc.up.call = hang  # the upstream never answers resources/read
    with pytest.raises(BackendFault) as e:
        await h.engine.call(svc, "resources/read", {"uri": "x://y"}, CallContext())
    assert e.value.kind == "timeout" and "timeoutMs" in str(e.value)


# -- visibility ------------------------------------------------------------
async def test_allow_deny_globs_hide_and_refuse(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(allowedTools=["echo", "admin_*", "lookup"], deniedTools=["admin_del*"])
    visible = [t["name"] for t in svc.policy.visible_tools(svc.interface.tools)]
    assert visible == ["echo", "lookup", "admin_list"]
    for name, policy in (("write", "allowedTools"), ("admin_delete", "deniedTools")):
        result = await h.tool(svc, name)
        assert result["isError"] and meta_of(result)["policy"] == policy
        assert f"refused by policy {policy}" in text_of(result)
    assert svc.up.attempts["write"] == 0 and svc.up.attempts["admin_delete"] == 0
    ok = await h.tool(svc, "admin_list")
    assert not ok.get("isError")
    assert [r["outcome"] for r in h.records] == ["refused", "refused", "ok"]
    assert h.records[0]["policy"] == "allowedTools"


async def test_read_only_exposes_only_read_only_hint_tools(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(readOnly=True)
    visible = {t["name"] for t in svc.policy.visible_tools(svc.interface.tools)}
    assert visible == {"echo", "lookup", "admin_list"}
    result = await h.tool(svc, "write", value=1)
    assert result["isError"] and meta_of(result)["policy"] == "readOnly"
    assert svc.up.attempts["write"] == 0
    assert not (await h.tool(svc, "echo", text="hi")).get("isError")


async def test_tools_list_through_the_engine_is_filtered(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(deniedTools=["admin_*"])

    async def listing(method, params, ctx):
        return {"tools": [{"name": "echo"}, {"name": "admin_delete"}]}

    svc.up.call = listing
    result = await h.engine.call(svc, "tools/list", {}, CallContext())
    assert [t["name"] for t in result["tools"]] == ["echo"]


# -- payload ---------------------------------------------------------------
async def test_request_payload_refused_before_calling(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(maxPayloadBytes=200)
    result = await h.tool(svc, "echo", text="y" * 300)
    assert result["isError"] and meta_of(result)["policy"] == "maxPayloadBytes"
    assert "over the limit of 200" in text_of(result)
    assert svc.up.attempts["echo"] == 0
    with pytest.raises(PolicyRefusal) as e:
        await h.engine.call(svc, "resources/read", {"uri": "x://" + "z" * 300}, CallContext())
    assert e.value.policy == "maxPayloadBytes"


async def test_response_payload_checked_after_and_while_streaming(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(maxPayloadBytes=1000)
    small = await h.tool(svc, "big", size=100)
    assert not small.get("isError") and h.records[-1]["bytesOut"] > 100
    result = await h.tool(svc, "big", size=5000)  # a backend that cannot stream: checked after
    assert result["isError"] and meta_of(result)["policy"] == "maxPayloadBytes"
    assert "over the limit of 1000" in text_of(result)
    streamed = await h.tool(svc, "stream_big")  # a backend that stopped reading at the limit
    assert streamed["isError"] and meta_of(streamed)["policy"] == "maxPayloadBytes"
    assert svc.up.seen_ctx[-1].max_response_bytes == 1000
    assert svc.policy.breaker.consecutive == 0  # a policy refusal, not a fault of the service
    assert h.records[-1]["outcome"] == "refused"


# -- concurrency -------------------------------------------------------------
async def test_queue_is_fifo_then_busy(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(maxConcurrency=1, maxQueue=2, queueTimeoutMs=60_000)
    first = asyncio.create_task(h.tool(svc, "block", tag="a", gate="a"))
    await until(lambda: svc.up.started == ["a"], "first call in flight")
    waiting = []
    for tag in ("b", "c"):
        waiting.append(asyncio.create_task(h.tool(svc, "block", tag=tag, gate=tag)))
        await until(lambda n=len(waiting): svc.policy.gate.queued == n, f"{tag} queued")
    assert svc.policy.describe()["inFlight"] == 1 and svc.policy.describe()["queued"] == 2
    busy = await h.tool(svc, "block", tag="d")
    assert busy["isError"] and meta_of(busy)["policy"] == "maxConcurrency"
    assert "busy" in text_of(busy) and "maxQueue 2" in text_of(busy)
    assert h.records[-1]["outcome"] == "busy"
    for tag in ("a", "b", "c"):
        svc.up.gates[tag].set()
    results = await asyncio.gather(first, *waiting)
    assert [text_of(r) for r in results] == ["released a", "released b", "released c"]
    assert svc.up.started == ["a", "b", "c"]  # in arrival order, "d" never reached the upstream
    assert svc.policy.gate.in_flight == 0 and svc.policy.gate.queued == 0


async def test_queue_timeout_gives_clear_result(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(maxConcurrency=1, maxQueue=5, queueTimeoutMs=50)
    first = asyncio.create_task(h.tool(svc, "block", tag="a"))
    await until(lambda: svc.up.started == ["a"], "first call in flight")
    result = await h.tool(svc, "block", tag="late")
    assert result["isError"] and meta_of(result)["policy"] == "queueTimeoutMs"
    assert "waited 50 ms" in text_of(result)
    assert svc.up.started == ["a"]
    svc.up.gates["default"].set()
    await first
    assert svc.policy.gate.in_flight == 0 and svc.policy.gate.queued == 0


async def test_stuck_service_does_not_delay_another(tmp_path):
    h = Harness(tmp_path)
    stuck = h.service("stuck", maxConcurrency=1, maxQueue=10)
    other = h.service("other", maxConcurrency=1)
    blocked = [asyncio.create_task(h.tool(stuck, "block", tag=str(i))) for i in range(4)]
    await until(lambda: stuck.policy.gate.queued == 3, "stuck service's queue filled")
    for i in range(5):
        r = await h.tool(other, "echo", text=str(i))
        assert not r.get("isError")
    assert stuck.up.started == ["0"]
    for t in blocked:
        t.cancel()
    await asyncio.gather(*blocked, return_exceptions=True)
    assert stuck.policy.gate.in_flight == 0 and stuck.policy.gate.queued == 0


async def test_cancelled_waiter_leaves_the_queue(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(maxConcurrency=1, maxQueue=1)
    first = asyncio.create_task(h.tool(svc, "block", tag="a"))
    await until(lambda: svc.up.started == ["a"], "first in flight")
    waiter = asyncio.create_task(h.tool(svc, "block", tag="b"))
    await until(lambda: svc.policy.gate.queued == 1, "queued")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert svc.policy.gate.queued == 0
    assert h.records[-1]["outcome"] == "cancelled"
    svc.up.gates["default"].set()
    await first
    assert (await h.tool(svc, "echo"))["isError"] is False


# -- rate limit ---------------------------------------------------------------
async def test_rate_limit_says_when_calls_resume_and_persists(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(rateLimit={"calls": 3, "per": "day"})
    for i in range(3):
        assert not (await h.tool(svc, "echo", text=str(i))).get("isError")
    refused = await h.tool(svc, "echo", text="4th")
    meta = meta_of(refused)
    assert refused["isError"] and meta["policy"] == "rateLimit"
    assert "3 calls per day" in text_of(refused) and "calls resume in" in text_of(refused)
    assert meta["resumesAt"] in text_of(refused) and meta["resumesAt"].endswith("Z")
    assert 86000 < meta["retryAfterSeconds"] <= 86400
    assert svc.up.attempts["echo"] == 3
    assert h.records[-1]["outcome"] == "rate_limited"
    await until(lambda: svc.policy.state_path.exists()
                and len(json.loads(svc.policy.state_path.read_text())["rateLimit"]["admissions"]) == 3,
                "the log written, at most SAVE_AFTER_S late")
    assert svc.policy.describe()["rateLimit"]["remaining"] == 0
    # A new daemon (new engine, new policy object) remembers today's calls.
    h2 = Harness(tmp_path)
    svc2 = h2.service(rateLimit={"calls": 3, "per": "day"})
    again = await h2.tool(svc2, "echo", text="after restart")
    assert again["isError"] and meta_of(again)["policy"] == "rateLimit"
    assert svc2.up.attempts["echo"] == 0


def test_rate_limit_window_slides():
    from runtimed.policy.limits import RateLimiter

    rl = RateLimiter(2, "minute")
    assert rl.try_acquire(now=1000.0) is None
    assert rl.try_acquire(now=1030.0) is None
    assert rl.try_acquire(now=1059.0) == 1060.0  # the first admission leaves the window at 1060
    assert rl.try_acquire(now=1060.0) is None  # slid: one slot free again
    assert rl.try_acquire(now=1080.0) == 1090.0
    rl.configure(3, "minute")  # a higher limit keeps the admissions made
    assert rl.try_acquire(now=1080.0) is None and rl.used(now=1080.0) == 3


def test_rate_limit_state_file_unreadable_is_ignored(tmp_path):
    from runtimed.policy.limits import RateLimiter

    path = tmp_path / "policy" / "svc_x.json"
    path.parent.mkdir()
    path.write_text("{not json")
    rl = RateLimiter(1, "day", path)
    assert rl.persist_error and "ignored unreadable" in rl.persist_error
    assert rl.try_acquire() is None
    assert len(json.loads(path.read_text())["rateLimit"]["admissions"]) == 1


async def test_busy_refusal_refunds_the_rate_limit(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(rateLimit={"calls": 5, "per": "day"}, maxConcurrency=1, maxQueue=0)
    first = asyncio.create_task(h.tool(svc, "block"))
    await until(lambda: svc.up.started == ["block"], "in flight")
    busy = await h.tool(svc, "echo")
    assert meta_of(busy)["policy"] == "maxConcurrency"
    assert svc.policy.rate.used() == 1  # the refused call did not use the quota
    svc.up.gates["default"].set()
    await first


# -- cache ---------------------------------------------------------------------
async def test_cache_hit_marked_and_does_not_consume_rate(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(cache={"ttlSeconds": 600, "tools": ["ech*"]}, rateLimit={"calls": 10, "per": "day"})
    first = await h.tool(svc, "echo", q="sales", days=3)
    assert "_meta" not in first or meta_of(first).get("cache") != "hit"
    again = await h.tool(svc, "echo", days=3, q="sales")  # same arguments, other key order
    assert text_of(again) == text_of(first)
    assert meta_of(again)["cache"] == "hit" and meta_of(again)["ageSeconds"] >= 0
    assert svc.up.attempts["echo"] == 1
    assert svc.policy.rate.used() == 1
    assert [r["cache"] for r in h.records] == ["miss", "hit"]
    assert h.records[0]["argsHash"] == h.records[1]["argsHash"] and len(h.records[0]["argsHash"]) == 16
    other = await h.tool(svc, "echo", q="sales", days=2)
    assert meta_of(other).get("cache") != "hit" and svc.up.attempts["echo"] == 2
    d = svc.policy.describe()["cache"]
    assert d["entries"] == 2 and d["hits"] == 1


async def test_eleventh_identical_question_from_cache_new_one_refused(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(cache={"ttlSeconds": 3600, "tools": ["echo"]}, rateLimit={"calls": 10, "per": "day"})
    for day in range(10):
        assert not (await h.tool(svc, "echo", day=day)).get("isError")
    eleventh = await h.tool(svc, "echo", day=4)
    assert not eleventh.get("isError") and meta_of(eleventh)["cache"] == "hit"
    new = await h.tool(svc, "echo", day=99)
    assert new["isError"] and meta_of(new)["policy"] == "rateLimit" and "resume" in text_of(new)
    assert svc.up.attempts["echo"] == 10


async def test_cache_never_keeps_errors_and_respects_ttl_and_size(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(cache={"ttlSeconds": 0.05, "tools": ["*"], "maxEntries": 2})
    await h.tool(svc, "tool_fail")
    await h.tool(svc, "tool_fail")
    assert svc.up.attempts["tool_fail"] == 2  # isError results are not cached
    assert h.records[-1]["outcome"] == "tool_error"
    await h.tool(svc, "echo", n=1)
    await until(lambda: svc.policy.cache.get(svc.policy.cache.key("echo", {"n": 1})) is None, "TTL to expire")
    await h.tool(svc, "echo", n=1)
    assert svc.up.attempts["echo"] == 2
    svc.policy.cache.configure(3600, 2)
    for n in range(2, 6):
        await h.tool(svc, "echo", n=n)
    assert len(svc.policy.cache) == 2


async def test_cache_read_only_hint_opt_in(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(cache={"ttlSeconds": 600, "readOnlyHint": True})
    await h.tool(svc, "lookup", k=1)
    assert meta_of(await h.tool(svc, "lookup", k=1))["cache"] == "hit"
    await h.tool(svc, "write", v=1)
    await h.tool(svc, "write", v=1)
    assert svc.up.attempts["write"] == 2  # not readOnlyHint: never cached


# -- retries -------------------------------------------------------------------
async def test_retries_only_where_safe(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(retries=2)
    svc.up.fail_times = {"connect_fail": 2, "flaky_idem": 1, "flaky": 1, "resources/read": 1}
    assert not (await h.tool(svc, "connect_fail")).get("isError")  # never reached the upstream
    assert svc.up.attempts["connect_fail"] == 3
    assert not (await h.tool(svc, "flaky_idem")).get("isError")  # idempotentHint
    assert svc.up.attempts["flaky_idem"] == 2
    failed = await h.tool(svc, "flaky")  # not idempotent: one try only
    assert failed["isError"] and meta_of(failed)["outcome"] == "upstream_fault"
    assert svc.up.attempts["flaky"] == 1
    read = await h.engine.call(svc, "resources/read", {"uri": "x://1"}, CallContext())  # a read
    assert read["contents"] and svc.up.attempts["resources/read"] == 2
    assert h.records[0]["attempts"] == 3


async def test_retries_are_bounded(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(retries=1)
    svc.up.fail_times = {"connect_fail": 5}
    result = await h.tool(svc, "connect_fail")
    assert result["isError"] and "after 2 attempts" in text_of(result)
    assert svc.up.attempts["connect_fail"] == 2


async def test_upstream_error_passes_through_and_is_not_retried(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(retries=3)
    with pytest.raises(UpstreamError) as e:
        await h.tool(svc, "bad_args")
    assert e.value.code == -32602
    assert svc.up.attempts["bad_args"] == 1
    assert h.records[-1]["outcome"] == "tool_error"


# -- circuit breaker -----------------------------------------------------------
def set_cooldown(h: Harness, svc, ms: int) -> None:
    """Change the daemon-wide cool-down the way a config reload would."""
    h.settings.policy.breakerCooldownMs = ms
    svc.policy.update(svc.manifest)


async def test_breaker_opens_half_opens_and_closes(tmp_path):
    h = Harness(tmp_path, {"breakerThreshold": 2, "breakerCooldownMs": 600_000})
    svc = h.service(retries=0)
    svc.up.down = True
    for _ in range(2):
        r = await h.tool(svc, "echo")
        assert meta_of(r)["outcome"] == "upstream_fault"
    assert svc.policy.describe()["breaker"]["state"] == "open"
    fast = await h.tool(svc, "echo")
    assert fast["isError"] and meta_of(fast)["policy"] == "breaker"
    assert "refused for" in text_of(fast) and svc.up.attempts["echo"] == 2
    assert h.records[-1]["outcome"] == "unavailable" and h.records[-1]["policy"] == "breaker"
    with pytest.raises(PolicyRefusal) as e:
        await h.engine.call(svc, "resources/read", {"uri": "x://"}, CallContext())
    assert e.value.policy == "breaker"
    set_cooldown(h, svc, 20)
    await until(lambda: svc.policy.breaker.state() == "half_open", "cool-down to pass")
    set_cooldown(h, svc, 600_000)
    # Half-open, still failing: the probe fails and the breaker re-opens.
    r = await h.tool(svc, "echo")
    assert meta_of(r)["outcome"] == "upstream_fault" and svc.up.attempts["echo"] == 3
    assert svc.policy.breaker.state() == "open" and svc.policy.breaker.total_trips == 2
    set_cooldown(h, svc, 20)
    await until(lambda: svc.policy.breaker.state() == "half_open", "cool-down to pass again")
    svc.up.down = False
    # Exactly one probe passes while half-open.
    probe = asyncio.create_task(h.tool(svc, "block"))
    await until(lambda: svc.up.started[-1:] == ["block"], "probe in flight")
    second = await h.tool(svc, "echo")
    assert meta_of(second)["policy"] == "breaker"
    svc.up.gates["default"].set()
    assert not (await probe).get("isError")
    assert svc.policy.breaker.state() == "closed"
    assert not (await h.tool(svc, "echo")).get("isError")
    assert svc.policy.describe()["breaker"]["trips"] == 2


async def test_breaker_ignores_client_mistakes_and_refusals(tmp_path):
    h = Harness(tmp_path, {"breakerThreshold": 2})
    svc = h.service(deniedTools=["write"], maxPayloadBytes=500)
    for _ in range(5):
        with pytest.raises(UpstreamError):
            await h.tool(svc, "bad_args")
        await h.tool(svc, "write")
        await h.tool(svc, "echo", text="z" * 600)
        await h.tool(svc, "tool_fail")
    assert svc.policy.breaker.state() == "closed" and svc.policy.breaker.consecutive == 0


async def test_timeouts_count_as_faults(tmp_path):
    h = Harness(tmp_path, {"breakerThreshold": 2})
    svc = h.service(timeoutMs=50)
    await h.tool(svc, "block")
    await h.tool(svc, "block")
    assert svc.policy.breaker.state() == "open"


async def test_repeated_trips_are_reported_as_a_fault(tmp_path):
    h = Harness(tmp_path, {"breakerThreshold": 1, "breakerCooldownMs": 20})
    svc = h.service(retries=0)
    svc.up.down = True
    for trip in range(3):
        await until(lambda: svc.policy.breaker.state() != "open", "breaker to allow a call")
        await h.tool(svc, "echo")
        assert svc.policy.breaker.total_trips == trip + 1
    assert len(h.faults) == 1
    name, reason = h.faults[0]
    assert name == "svc" and "tripped 3 times" in reason
    # The supervisor restarts the service with a new backend: it starts closed.
    svc.backend = type(svc.up)(svc.manifest, svc)
    assert not (await h.tool(svc, "echo")).get("isError")


# -- records and misc ----------------------------------------------------------
async def test_call_record_fields_and_sink_failure(tmp_path):
    h = Harness(tmp_path)

    def broken(rec):
        raise RuntimeError("sink bug")

    h.engine.call_sinks.insert(0, broken)
    svc = h.service()
    ctx = CallContext(protocol_version="2026-07-28", client_info={"name": "claude-code", "version": "2"})
    result = await h.tool(svc, "echo", ctx=ctx, text="hello")
    assert not result.get("isError")
    rec = h.records[-1]
    for key in ("time", "service", "tool", "durationMs", "outcome", "policy", "bytesIn", "bytesOut", "argsHash",
                "cache", "era", "client"):
        assert key in rec
    assert rec["service"] == "svc" and rec["tool"] == "echo" and rec["outcome"] == "ok"
    assert rec["era"] == "stateless" and rec["client"] == "claude-code" and rec["cache"] is None
    assert rec["bytesIn"] > 0 and rec["bytesOut"] > 0 and rec["policy"] is None
    ctx2 = CallContext(protocol_version="2025-06-18", client_info={"name": "codex"})
    await h.tool(svc, "echo", ctx=ctx2)
    assert h.records[-1]["era"] == "session"


async def test_service_not_running(tmp_path):
    h = Harness(tmp_path)
    svc = h.service()
    svc.backend = None
    svc.state.value = "STOPPED"
    svc.state_reason = "waiting for a sign-in: run `runtimectl auth login svc`"
    r = await h.tool(svc, "echo")
    assert r["isError"] and h.records[-1]["outcome"] == "unavailable"
    assert text_of(r) == "service 'svc' is not running (STOPPED: waiting for a sign-in: run `runtimectl auth login svc`)"
    with pytest.raises(PolicyRefusal):
        await h.engine.call(svc, "prompts/get", {"name": "p"}, CallContext())


async def test_update_keeps_counters_and_changes_limits(tmp_path):
    h = Harness(tmp_path)
    svc = h.service(maxConcurrency=1, maxQueue=4, rateLimit={"calls": 1, "per": "day"})
    assert not (await h.tool(svc, "echo")).get("isError")
    assert meta_of(await h.tool(svc, "echo", n=2))["policy"] == "rateLimit"
    from tests.policy.harness import make_manifest

    svc.policy.update(make_manifest(maxConcurrency=3, maxQueue=4, rateLimit={"calls": 2, "per": "day"}))
    assert svc.policy.describe()["maxConcurrency"] == 3
    assert not (await h.tool(svc, "echo", n=3)).get("isError")  # one more allowed, the first still counts
    assert meta_of(await h.tool(svc, "echo", n=4))["policy"] == "rateLimit"


async def test_arguments_and_result_in_record_only_when_capture_enabled(tmp_path):
    h = Harness(tmp_path)
    svc = h.service()
    await h.tool(svc, "echo", text="secret-ish")
    assert "arguments" not in h.records[-1] and "result" not in h.records[-1]
    h.settings.capture_arguments = True
    await h.tool(svc, "echo", text="captured")
    assert h.records[-1]["arguments"] == {"text": "captured"}
    assert h.records[-1]["result"]["content"][0]["text"].endswith("{'text': 'captured'}")


# -- the request size and argsHash (canonical JSON of the arguments computed once) ----
@pytest.mark.parametrize("params", [
    {"name": "echo", "arguments": {"text": "hi", "b": [1, 2, {"z": 1, "a": "é"}]}},
    {"name": "x"}, {"name": "x", "arguments": {}}, {"name": "x", "arguments": []},
    {"name": "x", "arguments": {"a": 1}, "_meta": {"progressToken": 1}},
    {"name": "\u2028\"q", "arguments": {"k\"": "v\n"}}, {"name": "x", "arguments": "text"},
])
def test_the_request_size_is_that_of_the_whole_params_canonical_json(params):
    from runtimed.policy.cache import canonical_json
    from runtimed.policy.engine import _canonical_params

    assert _canonical_params(params, canonical_json(params.get("arguments") or {})) == canonical_json(params)
