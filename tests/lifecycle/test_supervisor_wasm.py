"""A WASM service through the real supervisor and policy engine: register,
call, change the file, restart, and see the interface refreshed."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from runtimed.backends.base import CallContext
from runtimed.config.settings import Settings
from runtimed.lifecycle.supervisor import Supervisor
from runtimed.policy.engine import PolicyEngine
from runtimed.state.embedded import EmbeddedStore
from runtimed.state.events import EventBus
from runtimed.state.registry import Registry
from tests.wasm.harness import EXAMPLES, manifest


async def _until(pred, what: str) -> None:
    for _ in range(400):
        if pred():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def test_register_call_change_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = Settings(state_dir=state)
    store = EmbeddedStore(state, "test")
    registry = Registry(store, state)
    registry.load()
    sup = Supervisor(settings, registry, EventBus(store.journal("events")), store)
    await sup.boot()
    try:
        tool = tmp_path / "tool.wat"
        shutil.copy(EXAMPLES / "upper.wat", tool)
        svc, created = await sup.apply(manifest(tool, name="up"), start=True)
        assert created
        await _until(lambda: svc.state.value == "RUNNING", "RUNNING")
        assert [t["name"] for t in svc.interface.tools] == ["upper"]
        engine = PolicyEngine(settings)
        r = await engine.call(svc, "tools/call", {"name": "upper", "arguments": {"text": "hi"}}, CallContext())
        assert r["structuredContent"] == {"text": "HI"}
        assert svc.detail()["backend"]["cache"]["status"] == "hit"  # warmed at registration

        tool.write_text((EXAMPLES / "math.wat").read_text())
        await sup.restart("up")
        await _until(lambda: svc.state.value == "RUNNING" and len(svc.interface.tools) == 3, "reloaded")
        assert svc.last_diff["tools"] == {"added": ["add", "fib", "hypot"], "removed": ["upper"], "changed": []}
        r = await engine.call(svc, "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}}, CallContext())
        assert r["structuredContent"] == {"result": 3}
    finally:
        await sup.shutdown()
