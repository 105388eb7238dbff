"""One slow WASM service does not delay another (issue 14, item 4; the promise of
docs/spec/policies.md), through a real daemon and the official SDK client: while more calls to
one WASM service spin than it has threads, an idle WASM service's call completes before any of
the slow ones. The assertion is on the order calls finish in, not on durations."""

from __future__ import annotations

import asyncio

from mcp import Client

from tests.support.daemon import REPO, DaemonProc
from tests.support.mcpclient import GUARD

LIMITS = REPO / "tests" / "wasm" / "limits.wat"
MATH = REPO / "examples" / "wasm" / "math.wat"
THREADS = 2
SLOW_CALLS = 3 * THREADS  # more than the slow service's threads: some of them queue


def _register(d: DaemonProc, name: str, path: str, **limits: int) -> None:
    origin = {"type": "local_wasm", "path": path, **({"limits": limits} if limits else {})}
    r = d.api("POST", "/api/services", json={"metadata": {"name": name}, "spec": {"origin": origin}})
    assert r.status_code == 201, r.text
    d.wait_state(name, "RUNNING")


async def test_a_slow_wasm_service_does_not_delay_another(make_daemon) -> None:
    d = make_daemon(env={"RUNTIMED_WASM_THREADS": str(THREADS)})
    # Each spin call runs ~1 s: its time limit ends it (fuel is no object).
    _register(d, "slow", str(LIMITS), timeoutMs=1000, fuel=10**15)
    _register(d, "fast", str(MATH))
    finished: list[str] = []

    async with Client(d.mcp_url, mode="legacy", cache=None) as c:
        async def run(label: str, tool: str, args: dict[str, int]) -> None:
            result = await asyncio.wait_for(c.call_tool(tool, args), GUARD)
            finished.append(label)
            if label == "fast":
                assert not result.is_error and result.structured_content == {"result": 3}
            else:
                assert result.is_error and "time limit" in result.content[0].text

        slow = [asyncio.ensure_future(run(f"slow{i}", "slow__spin", {})) for i in range(SLOW_CALLS)]
        # Every slow call is admitted (running or waiting for a thread) before the fast one is made.
        for _ in range(int(GUARD / 0.05)):
            if d.service("slow")["policy"]["inFlight"] == SLOW_CALLS:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the slow calls were not all admitted: {d.service('slow')['policy']}")
        assert not finished, finished
        await run("fast", "fast__add", {"a": 1, "b": 2})
        await asyncio.gather(*slow)

    assert finished[0] == "fast", finished
