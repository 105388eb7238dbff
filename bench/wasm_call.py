"""Per-call cost of a trivial JSON WASM tool, in-process (not a test).

Usage: python bench/wasm_call.py [--calls 2000]

Measures, on tests/wasm/limits.wat's ``echo`` tool:
- ``run_tool`` on the current thread (the sandboxed call itself: fresh Store and
  instance, alloc, write, call, bounds checks, JSON parse);
- ``WasmBackend.call`` from the event loop (adds schema validation and the hop
  to the wasm thread pool), one at a time and 8 at a time (calls per second);
- ``WasmBackend.start`` with the artifact cached.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtimed.backends.base import CallContext  # noqa: E402
from runtimed.backends.wasm.backend import WasmBackend, prepare_wasm_origin  # noqa: E402
from runtimed.backends.wasm.execute import run_tool  # noqa: E402
from tests.wasm.harness import HERE, Host, manifest  # noqa: E402

ARGS = {"text": "hello"}


def _stats(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[min(len(s) - 1, int(len(s) * 0.95))]
    return f"median {statistics.median(s) * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms (n={len(s)})"


async def main(calls: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="wasm-bench-"))
    host = Host(state)
    m = prepare_wasm_origin(manifest(HERE / "limits.wat"), host.settings)
    starts = []
    for _ in range(20):
        b = WasmBackend(m, host)
        t = time.perf_counter()
        await b.start()
        starts.append(time.perf_counter() - t)
    print(f"start (cache {b.describe()['cache']['status']}): {_stats(starts)}")

    loaded = b._loaded
    assert loaded is not None
    spec, limits = loaded.abi.tools["echo"], b._limits()
    for _ in range(200):
        run_tool(loaded.pre, spec, ARGS, limits, limits.timeout_ms)
    direct = []
    for _ in range(calls):
        t = time.perf_counter()
        result, _log = run_tool(loaded.pre, spec, ARGS, limits, limits.timeout_ms)
        direct.append(time.perf_counter() - t)
    assert result["structuredContent"] == ARGS
    print(f"run_tool, same thread:        {_stats(direct)}")

    params = {"name": "echo", "arguments": ARGS}
    ctx = CallContext()
    via = []
    for _ in range(calls):
        t = time.perf_counter()
        await b.call("tools/call", params, ctx)
        via.append(time.perf_counter() - t)
    print(f"WasmBackend.call, 1 at a time: {_stats(via)}  -> {1 / statistics.mean(via):.0f} calls/s")

    for conc in (1, 8):
        n = calls - calls % conc

        async def worker(rounds: int = n // conc) -> None:
            for _ in range(rounds):
                await b.call("tools/call", params, ctx)

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - t
        print(f"throughput at concurrency {conc}: {n / elapsed:.0f} calls/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
