"""The daemon's one wasmtime Engine, its epoch ticker and the call thread pool.

Owns: creating (lazily, once per process) the shared ``wasmtime.Engine`` with
fuel and epoch interruption enabled, the single daemon thread that advances
the engine's epoch every ``EPOCH_TICK_MS`` while calls are running (it
sleeps while none are, so an idle daemon does not wake), the fingerprint of the engine's
settings (part of every compile-cache key), and making the bounded thread pools
wasm calls run on (``call_pool``: one per service, so a service whose calls spin
takes only its own threads; wasmtime releases the GIL while wasm runs).
Must not: compile or run modules, or know about tools, services or MCP.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import wasmtime

EPOCH_TICK_MS = 10
"""How often the ticker advances the epoch; the wall-clock limit's resolution."""

_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_ticker: threading.Thread | None = None
_active_lock = threading.Lock()
_active = 0
_wake = threading.Event()


def wasmtime_version() -> str:
    try:
        return importlib.metadata.version("wasmtime")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - vendored installs
        return "unknown"


def engine_fingerprint() -> str:
    """Everything besides the wasm bytes that decides the compiled artifact."""
    return f"wasmtime={wasmtime_version()};fuel=1;epoch=1;arch={platform.machine()};os={platform.system()}"


def get_engine() -> wasmtime.Engine:
    """The shared Engine (created on first use, together with its ticker thread)."""
    global _engine, _ticker
    with _lock:
        if _engine is None:
            config = wasmtime.Config()
            config.consume_fuel = True
            config.epoch_interruption = True
            _engine = wasmtime.Engine(config)
            _ticker = threading.Thread(target=_tick, args=(_engine,), name="wasm-epoch-ticker", daemon=True)
            _ticker.start()
        return _engine


def _tick(engine: wasmtime.Engine) -> None:
    interval = EPOCH_TICK_MS / 1000
    while True:
        _wake.wait()
        time.sleep(interval)
        engine.increment_epoch()


@contextmanager
def running() -> Iterator[None]:
    """Wrap every stretch of wasm execution: keeps the epoch ticker awake meanwhile."""
    global _active
    with _active_lock:
        _active += 1
        _wake.set()
    try:
        yield
    finally:
        with _active_lock:
            _active -= 1
            if _active == 0:
                _wake.clear()


def epoch_ticks(timeout_ms: float) -> int:
    """Epoch deadline (ticks after now) that ends a call no sooner than ``timeout_ms``.

    One extra tick because the first may come at any moment after the call starts.
    """
    return max(1, math.ceil(max(timeout_ms, 0) / EPOCH_TICK_MS)) + 1


def call_pool(threads: int, name: str) -> ThreadPoolExecutor:
    """A bounded pool of its own for one service's wasm calls (threads start on demand)."""
    return ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix=f"wasm-{name}"[:40])
