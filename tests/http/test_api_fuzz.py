"""The REST API under generated malformed requests (issue 14, item 5): seeded families of paths,
methods, query parameters, content types and mutated manifests (tests/support/fuzz.py), through
the whole app in this process with two WASM services registered. Every answer: not a 5xx, JSON,
and for a refusal an ``{"error": message}`` that is not an unexpected exception. HOME points at a
temp dir (``/api/bootstrap`` would touch the user's client configs)."""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.gateway.test_inprocess import EXAMPLES, wasm_manifest
from tests.support.diskfull import SmallFs, small_fs as small_fs  # (the fixture)
from tests.support.foundation import closed_port
from tests.support.fuzz import api_problem, api_request
from tests.support.inprocess import BASE_URL, inprocess_daemon

FUZZ_SEED = int(os.environ.get("RUNTIMED_FUZZ_SEED", "1414"))
COUNT = int(os.environ.get("RUNTIMED_FUZZ_API_COUNT", "3000"))


async def test_fuzz_api_never_5xx_and_always_a_json_error(tmp_path: Path, monkeypatch, caplog) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CODEX_HOME", str(home / ".codex"))
    caplog.set_level(logging.ERROR, logger="runtimed")
    rng = random.Random(f"{FUZZ_SEED}/api")
    wasm = str(EXAMPLES / "upper.wat")
    port = closed_port()
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    async with inprocess_daemon(tmp_path / "state") as d:
        await d.register(wasm_manifest("up", "upper.wat"))
        await d.register(wasm_manifest("math", "math.wat"))
        transport = httpx.ASGITransport(app=d.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as client:
            for i in range(COUNT):
                req = api_request(rng, wasm, port)
                r = await client.request(req.method, req.path, headers=req.raw_headers(), content=req.body)
                statuses[r.status_code] += 1
                why = api_problem(req, r.status_code, dict(r.headers), r.content)
                if why:
                    problems.append(f"#{i} (seed {FUZZ_SEED}): {why}\n    {req.describe()}")
                if req.method == "DELETE" and r.status_code == 200:  # keep something to act on
                    for name, file in (("up", "upper.wat"), ("math", "math.wat")):
                        if (await client.get(f"/api/services/{name}")).status_code == 404:
                            await d.register(wasm_manifest(name, file))
            # The daemon is still whole: its API answers and a service can be called.
            assert (await client.get("/api/status")).status_code == 200
    problems += [f"{r.name}: {r.getMessage()}" for r in caplog.records
                 if r.name.startswith("runtimed") and r.exc_info is not None]
    assert not problems, f"{len(problems)} bad answers of {COUNT}:\n" + "\n".join(problems[:15])
    assert statuses[200] > COUNT // 20 and statuses[201] > 0 and statuses[404] > 0 and statuses[422] > 0, statuses
    assert not list(home.iterdir()) or all(p.name.startswith(".") for p in home.iterdir())


@pytest.mark.parametrize("ref", ["up", "math"])
async def test_fuzzed_daemon_state_dir_reloads(tmp_path: Path, ref: str) -> None:
    """After a fuzz run the registry still loads (nothing half-written): a short run, then a restart."""
    rng = random.Random(f"{FUZZ_SEED}/reload/{ref}")
    async with inprocess_daemon(tmp_path / "state") as d:
        await d.register(wasm_manifest(ref, "upper.wat" if ref == "up" else "math.wat"))
        transport = httpx.ASGITransport(app=d.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as client:
            for _ in range(300):
                req = api_request(rng, str(EXAMPLES / "upper.wat"), closed_port())
                if req.path.startswith("/api/bootstrap"):
                    continue
                await client.request(req.method, req.path, headers=req.raw_headers(), content=req.body)
        before = {s["name"] for s in (await d.client.get("/api/services")).json()["services"]}
    async with inprocess_daemon(tmp_path / "state") as d:
        after = {s["name"] for s in (await d.client.get("/api/services")).json()["services"]}
    assert after == before


async def test_fuzz_api_on_a_full_disk(small_fs: SmallFs, tmp_path: Path, monkeypatch, caplog) -> None:
    """The same families with the state dir on a full disk (a real full tmpfs): every change is
    refused (503, nothing changed) or answered 4xx, never 500; and after a restart with room again
    the registry holds exactly what was acknowledged."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CODEX_HOME", str(home / ".codex"))
    caplog.set_level(logging.ERROR, logger="runtimed")
    rng = random.Random(f"{FUZZ_SEED}/api-full-disk")
    state = small_fs.path / "state"
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    async with inprocess_daemon(state) as d:
        await d.register(wasm_manifest("up", "upper.wat"))
        await d.register(wasm_manifest("math", "math.wat"))
        small_fs.fill(0)
        transport = httpx.ASGITransport(app=d.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=30) as client:
            for i in range(COUNT // 3):
                req = api_request(rng, str(EXAMPLES / "upper.wat"), closed_port())
                r = await client.request(req.method, req.path, headers=req.raw_headers(), content=req.body)
                statuses[r.status_code] += 1
                why = api_problem(req, r.status_code, dict(r.headers), r.content)
                if r.status_code == 503 and "nothing changed" in r.text:
                    why = None  # the refusal this family is about
                if why:
                    problems.append(f"#{i} (seed {FUZZ_SEED}, full disk): {why}\n    {req.describe()}")
            acknowledged = {s["name"] for s in (await client.get("/api/services")).json()["services"]}
    problems += [f"{r.name}: {r.getMessage()}" for r in caplog.records
                 if r.name.startswith("runtimed") and r.exc_info is not None]
    assert not problems, f"{len(problems)} bad answers of {COUNT // 3}:\n" + "\n".join(problems[:15])
    assert statuses[503] > 0, statuses
    assert acknowledged == {"up", "math"}  # nothing could be written: nothing changed
    small_fs.unfill()
    async with inprocess_daemon(state) as d:
        after = {s["name"] for s in (await d.client.get("/api/services")).json()["services"]}
    assert after == acknowledged
