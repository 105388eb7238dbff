"""Malformed requests to /mcp, both eras: the regressions fuzzing found (issue 14, item 5), and
the fuzz families themselves (tests/support/fuzz.py), seeded, through the whole app in this
process (security middleware, dispatch, gateway, policy engine, backends:
tests/support/inprocess.py), aimed at two WASM services and at a real remote upstream. Every
answer must be a non-500 HTTP status and, when it has a body, well-formed JSON-RPC (an error
answers the request's id, or null when that id is invalid); a notification gets 202 and no body;
no exception is logged as a bug. The session era uses real sessions, one per endpoint."""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.gateway.test_inprocess import wasm_manifest
from tests.support.foundation import remote_manifest
from tests.support.fuzz import ECHO_TARGETS, WASM_TARGETS, Targets, mcp_problem, mcp_request
from tests.support.inprocess import BASE_URL, InProcess, inprocess_daemon
from tests.support.upstream import run_upstream


@pytest.fixture
async def gw(tmp_path) -> AsyncIterator[InProcess]:
    async with inprocess_daemon(tmp_path / "state") as d:
        await d.register(wasm_manifest("up", "upper.wat"))
        await d.register(wasm_manifest("math", "math.wat"))
        yield d


# -- regressions found by fuzzing ---------------------------------------------------------------

@pytest.mark.parametrize("request_id", [[1], {"a": 1}, [], {}, None, True, 1.5])
async def test_cancelled_with_an_unhashable_or_odd_request_id_is_accepted(gw: InProcess, request_id) -> None:
    """A list or object ``requestId`` was looked up in a dict: TypeError, HTTP 500 with a traceback.
    A notification is never answered with an error: 202, and nothing is cancelled."""
    sid = await gw.initialize()
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
    r = await gw.session(sid, note)
    assert r.status_code == 202, r.text
    r = await gw.session(sid, [note], version="2025-03-26")  # and inside a batch (2025-03-26 has them)
    assert r.status_code in (202, 400), r.text  # the session's version (2025-11-25) has no batches: 400
    r = await gw.session(sid, {"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 200 and r.json()["result"] == {}


async def test_cancelled_inside_a_batch_with_a_list_request_id(gw: InProcess) -> None:
    sid = await gw.initialize(version="2025-03-26")
    batch = [{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": [1, 2]}},
             {"jsonrpc": "2.0", "id": 5, "method": "ping"}]
    r = await gw.session(sid, batch, version="2025-03-26")
    assert r.status_code == 200, r.text
    assert r.json() == [{"jsonrpc": "2.0", "id": 5, "result": {}}]


@pytest.mark.parametrize("name", [["p"], {"n": 1}, 5, None, True])
@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_completion_with_a_non_string_prompt_name_is_invalid_params(gw: InProcess, name, era: str) -> None:
    """A non-string ``ref.name`` reached a dict lookup: -32603 internal error instead of -32602."""
    params = {"ref": {"type": "ref/prompt", "name": name}, "argument": {"name": "a", "value": "b"}}
    if era == "session":
        sid = await gw.initialize()
        r = await gw.session(sid, {"jsonrpc": "2.0", "id": 3, "method": "completion/complete", "params": params})
        assert r.status_code == 200
    else:
        r = await gw.stateless("completion/complete", params, id=3)
        assert r.status_code == 400
    err = r.json()["error"]
    assert r.json()["id"] == 3
    assert err["code"] == -32602, err
    assert "ref.name" in err["message"] and "string" in err["message"], err


@pytest.mark.parametrize("bad_id", [True, [1], {"a": 1}, 1.5])
async def test_an_invalid_id_is_answered_as_null_not_echoed(gw: InProcess, bad_id) -> None:
    """JSON-RPC: an id that cannot be determined is answered as null. Was: echoed back (``"id": true``),
    also on a client "response" sent without a session."""
    r = await gw.post({"jsonrpc": "2.0", "id": bad_id, "method": "ping"}, {"MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 400 and r.json()["id"] is None and r.json()["error"]["code"] == -32600
    r = await gw.post({"jsonrpc": "2.0", "id": bad_id, "error": []}, {"MCP-Protocol-Version": "2025-11-25"})
    assert r.status_code == 400 and r.json()["id"] is None, r.text
    r = await gw.stateless("ping", id=bad_id)
    assert r.status_code == 400 and r.json()["id"] is None, r.text


# -- the fuzz families ------------------------------------------------------------------------------
# Seeded: a failure names its request number; RUNTIMED_FUZZ_SEED reruns with another seed and
# RUNTIMED_FUZZ_COUNT with more (or fewer) requests per era.

FUZZ_SEED = int(os.environ.get("RUNTIMED_FUZZ_SEED", "1414"))
PER_ERA = int(os.environ.get("RUNTIMED_FUZZ_COUNT", "5000"))


def _unexpected_logged(records: list[logging.LogRecord]) -> list[str]:
    """Exceptions the daemon logged as bugs (``unexpected error on ...``, ``gateway error in ...``)."""
    return [f"{r.name}: {r.getMessage()}" for r in records
            if r.name.startswith("runtimed") and r.levelno >= logging.ERROR and r.exc_info is not None]


async def _fuzz_mcp(gw: InProcess, era: str, count: int, seed: int,
                    targets: Targets = WASM_TARGETS) -> tuple[list[str], Counter[int]]:
    rng = random.Random(f"{seed}/{era}/{targets.paths}")
    transport = httpx.ASGITransport(app=gw.app, raise_app_exceptions=False)
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as client:
        # A real session on each path (a session belongs to the endpoint it was made on).
        paths = ("/mcp", *targets.paths)
        sessions = {p: await gw.initialize(path=p) for p in paths} if era == "session" else {}
        for i in range(count):
            req = mcp_request(rng, era, sessions, targets)
            r = await client.request(req.method, req.path, headers=req.raw_headers(), content=req.body)
            statuses[r.status_code] += 1
            why = mcp_problem(req, r.status_code, dict(r.headers), r.content)
            if why:
                problems.append(f"#{i} (seed {seed}, {era}): {why}\n    {req.describe()}")
            if era == "session" and req.method == "DELETE" and r.status_code == 200:
                for p, sid in sessions.items():  # the fuzz ended a session: go on with a new one
                    if (sid, req.path) in ((v, p) for k, v in req.headers if k == "Mcp-Session-Id"):
                        sessions[p] = await gw.initialize(path=p)
    return problems, statuses


@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_fuzz_mcp_never_500_and_always_json_rpc(gw: InProcess, era: str, caplog) -> None:
    """``PER_ERA`` generated malformed requests to /mcp and /mcp/<service> in one era, through the
    whole app: 0 HTTP 500s, every body a well-formed JSON-RPC message, no exception logged as a bug."""
    caplog.set_level(logging.ERROR, logger="runtimed")
    problems, statuses = await _fuzz_mcp(gw, era, PER_ERA, FUZZ_SEED)
    problems += _unexpected_logged(caplog.records)
    assert not problems, f"{len(problems)} bad answers of {PER_ERA}:\n" + "\n".join(problems[:15])
    # The families reach past the envelope checks: some calls succeed, some are refused each way.
    assert statuses[200] > PER_ERA // 20 and statuses[400] > PER_ERA // 20, statuses
    if era == "session":
        assert statuses[202] > 0 and statuses[404] > 0, statuses
    # And the services are still there and answering.
    r = await gw.stateless("tools/call", {"name": "up__upper", "arguments": {"text": "after"}}, name="up__upper")
    assert r.json()["result"]["structuredContent"] == {"text": "AFTER"}


REMOTE_PER_ERA = max(1, PER_ERA // 6)


@pytest.mark.parametrize("era", ["session", "stateless"])
async def test_fuzz_mcp_through_a_remote_upstream(tmp_path, era: str, caplog) -> None:
    """The same families aimed at a real remote upstream (tests/upstreams/echo_server.py: tools,
    prompts, resources, templates, completions) registered as ``echo``: what the gateway forwards,
    and what it makes of the upstream's answers to junk, is still never a 500 nor malformed."""
    caplog.set_level(logging.ERROR, logger="runtimed")
    with run_upstream("echo_server", "--name", "echo") as up:
        async with inprocess_daemon(tmp_path / "state") as d:
            await d.register(remote_manifest("echo", up.url))
            problems, statuses = await _fuzz_mcp(d, era, REMOTE_PER_ERA, FUZZ_SEED, ECHO_TARGETS)
            r = await d.stateless("tools/call", {"name": "echo__echo", "arguments": {"text": "after"}},
                                  name="echo__echo")
            assert r.json()["result"]["isError"] is False, r.text
    problems += _unexpected_logged(caplog.records)
    assert not problems, f"{len(problems)} bad answers of {REMOTE_PER_ERA}:\n" + "\n".join(problems[:15])
    assert statuses[200] > REMOTE_PER_ERA // 20, statuses
