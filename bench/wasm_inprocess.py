"""In-process cost of one WASM tool call through ``WasmBackend.call``, as JSON for ``bench/run.py``.

Owns a minimal real backend host (state dir, settings, log) and the timing
loop; no HTTP, no policy engine, no gateway. Must not: change the backend or
its limits (the defaults from ``runtimed.config.settings.Settings`` apply).

    python bench/wasm_inprocess.py [--calls 2000] [--module examples/wasm/math.wat --tool add --args '{"a":2,"b":3}']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Host:
    """What a backend needs from its service runtime (the daemon's is ``ServiceRuntime``)."""

    def __init__(self, state_dir: Path) -> None:
        from runtimed.config.settings import Settings

        self._state_dir = state_dir
        self.settings = Settings(state_dir=state_dir)

    @property
    def state_dir(self) -> str:
        return str(self._state_dir)

    def log(self, level: str, message: str) -> None:
        pass

    def on_list_changed(self, kind: str) -> None:
        pass

    def on_notification(self, method: str, params: dict[str, Any]) -> None:
        pass

    def on_failure(self, reason: str) -> None:
        pass

    async def on_server_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a wasm backend never asks the client")


async def measure(module: Path, tool: str, args: dict[str, Any], calls: int) -> dict[str, Any]:
    from runtimed.backends.base import CallContext
    from runtimed.backends.wasm.backend import WasmBackend, prepare_wasm_origin
    from runtimed.config.manifest import parse_manifest

    with tempfile.TemporaryDirectory(prefix="bench-wasm-") as tmp:
        host = Host(Path(tmp))
        m = parse_manifest({"metadata": {"name": "bench-wasm"},
                            "spec": {"origin": {"type": "local_wasm", "path": str(module)}}})
        backend = WasmBackend(prepare_wasm_origin(m, host.settings), host)
        await backend.start()
        try:
            params = {"name": tool, "arguments": args}
            first = await backend.call("tools/call", params, CallContext())
            if first.get("isError"):
                raise RuntimeError(f"the wasm tool failed: {first}")
            for _ in range(50):
                await backend.call("tools/call", params, CallContext())
            lat: list[float] = []
            t0 = time.perf_counter()
            for _ in range(calls):
                s = time.perf_counter()
                await backend.call("tools/call", params, CallContext())
                lat.append((time.perf_counter() - s) * 1000)
            wall = time.perf_counter() - t0
        finally:
            await backend.stop()
    lat.sort()
    return {"label": "wasm in-process (WasmBackend.call)", "concurrency": 1, "calls": calls, "errors": 0,
            "p50_ms": round(lat[len(lat) // 2], 4), "p95_ms": round(lat[int(0.95 * len(lat))], 4),
            "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 4),
            "mean_ms": round(statistics.fmean(lat), 4), "calls_per_s": round(calls / wall, 1), "first_error": None,
            "result": first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--module", default=str(REPO / "examples" / "wasm" / "math.wat"))
    ap.add_argument("--tool", default="add")
    ap.add_argument("--args", default='{"a": 2, "b": 3}')
    a = ap.parse_args()
    print(json.dumps(asyncio.run(measure(Path(a.module), a.tool, json.loads(a.args), a.calls)), indent=2))


if __name__ == "__main__":
    main()
