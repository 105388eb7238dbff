"""Local WASM tools as a backend: a module file served as MCP tools, in-process.

Owns: ``prepare_wasm_origin`` (registration checks: the file exists, is a
conforming ABI v1 module, its sha256 is recorded; the compile cache is warmed)
and ``WasmBackend`` (load the module on start, re-reading the file so a
changed file is picked up on restart; introspect; run ``tools/call`` and
probes on the service's own bounded thread pool of ``wasm.threads``, so a
service whose calls spin never takes another's threads; probe; describe). The ABI rules live in
``abi``, the sandboxed call in ``execute``, the Engine in
``engine`` and the artifact cache in ``cache``.
Must not: apply call policies (timeouts, concurrency, payload, allow/deny
lists are the policy layer's), or block the event loop with wasm work.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

from runtimed.backends.base import Backend, CallContext, Health, Interface, ProbeResult
from runtimed.backends.wasm.abi import ABI_VERSION, ModuleAbi, analyze, compile_error, read_source, sha256_hex
from runtimed.backends.wasm.cache import CacheInfo, load_module
from runtimed.backends.wasm.engine import call_pool, get_engine, wasmtime_version
from runtimed.backends.wasm.execute import Limits, error_result, instance_pre, probe_instance, run_tool
from runtimed.backends.wasm.schema import validate
from runtimed.config.manifest import ServiceManifest
from runtimed.errors import BackendFault, BackendStartError, InvalidOrigin, UpstreamError
from runtimed.protocol.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND
from runtimed.protocol.types import JSON


@dataclass
class LoadedModule:
    path: Path
    sha256: str  # of the file as read (the .wat text for .wat files)
    abi: ModuleAbi
    pre: wasmtime.InstancePre
    cache: CacheInfo


def effective_limits(manifest: ServiceManifest, settings: Any) -> Limits:
    """The daemon's ``wasm`` defaults, overridden by ``spec.origin.limits``."""
    defaults = settings.wasm
    own = getattr(manifest.spec.origin, "limits", None)

    def pick(name: str) -> int:
        value = getattr(own, name, None) if own is not None else None
        return int(value) if value else int(getattr(defaults, name))

    return Limits(fuel=pick("fuel"), memory_bytes=pick("memoryBytes"), timeout_ms=pick("timeoutMs"),
                  max_output_bytes=pick("maxOutputBytes"))


def load(path: Path, state_dir: Any, limits: Limits) -> LoadedModule:
    """Read, compile (through the cache) and check a module. Blocking; raises InvalidOrigin."""
    data, wasm = read_source(path)
    try:
        module, cache = load_module(get_engine(), wasm, state_dir)
    except wasmtime.WasmtimeError as e:
        raise compile_error(path, e) from None
    try:
        abi = analyze(module, wasm)
    except InvalidOrigin as e:
        raise InvalidOrigin(f"{path}: {e}") from None
    if abi.memory_min_bytes > limits.memory_bytes:
        raise InvalidOrigin(
            f"{path}: the module's initial memory ({abi.memory_min_bytes} bytes) is larger than "
            f"its memory limit ({limits.memory_bytes} bytes); raise spec.origin.limits.memoryBytes"
        )
    try:
        pre = instance_pre(module, abi.host_imports)
    except wasmtime.WasmtimeError as e:
        raise InvalidOrigin(f"{path}: the module cannot be linked: {e}") from None
    return LoadedModule(path, sha256_hex(data), abi, pre, cache)


def _absolute(path: str) -> Path:
    """The absolute path of ``spec.origin.path``; ``InvalidOrigin`` for one that cannot be resolved."""
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, ValueError, OSError) as e:  # unknown ~user, symlink loop, NUL byte
        raise InvalidOrigin(f"{path!r}: not a usable file path ({e})") from None


def prepare_wasm_origin(manifest: ServiceManifest, settings: Any) -> ServiceManifest:
    """Check a local_wasm origin at registration; return the manifest with the
    absolute path and the file's sha256 recorded. Raises ``InvalidOrigin``."""
    origin = manifest.spec.origin
    path = _absolute(getattr(origin, "path", ""))
    loaded = load(path, settings.state_dir, effective_limits(manifest, settings))
    new_origin = origin.model_copy(update={"path": str(path), "sha256": loaded.sha256})
    return manifest.model_copy(update={"spec": manifest.spec.model_copy(update={"origin": new_origin})})


class WasmBackend(Backend):
    """One module file, loaded on ``start()``; each call runs in a fresh instance."""

    def __init__(self, manifest: ServiceManifest, host: Any) -> None:
        super().__init__(manifest, host)
        self._loaded: LoadedModule | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._calls = 0
        self._limit_hits = 0

    def _limits(self) -> Limits:
        return effective_limits(self.manifest, self.host.settings)

    async def start(self) -> None:
        origin = self.manifest.spec.origin
        try:
            path = _absolute(getattr(origin, "path", ""))
            loaded = await asyncio.to_thread(load, path, self.host.state_dir, self._limits())
        except InvalidOrigin as e:
            raise BackendStartError(str(e)) from None
        self._loaded = loaded
        cache = loaded.cache
        self.host.log(
            "info",
            f"loaded {path} (sha256 {loaded.sha256[:12]}, {len(loaded.abi.tools)} tools); "
            f"compile cache {cache.status} in {cache.load_ms:.1f} ms" + (f": {cache.detail}" if cache.detail else ""),
        )
        registered = getattr(origin, "sha256", None)
        if registered and registered != loaded.sha256:
            self.host.log("info", f"the file changed since it was registered (sha256 {registered[:12]} -> {loaded.sha256[:12]}); serving the new version")

    def _threads(self) -> ThreadPoolExecutor:
        """This service's pool (made on first use; a stop lets its running calls finish)."""
        if self._pool is None:
            self._pool = call_pool(self.host.settings.wasm.threads, self.manifest.name)
        return self._pool

    async def stop(self) -> None:
        self._loaded = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    async def probe(self) -> ProbeResult:
        loaded = self._loaded
        if loaded is None:
            return ProbeResult(Health.UNREACHABLE, "module not loaded")
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            problem = await loop.run_in_executor(self._threads(), probe_instance, loaded.pre, self._limits())
        except Exception as e:  # probe must not raise
            problem = f"probe failed: {type(e).__name__}"
        latency = (time.perf_counter() - started) * 1000
        if problem:
            return ProbeResult(Health.DEGRADED, problem, latency)
        return ProbeResult(Health.HEALTHY, f"module loaded, {len(loaded.abi.tools)} tools", latency)

    async def introspect(self) -> Interface:
        loaded = self._loaded
        if loaded is None:
            raise BackendFault("the module is not loaded", kind="crashed")
        return Interface(
            tools=[dict(spec.tool) for spec in loaded.abi.tools.values()],
            capabilities={"tools": {}},
            server_info={"name": self.manifest.name, "version": loaded.sha256[:12]},
        )

    async def call(self, method: str, params: JSON, ctx: CallContext) -> JSON:
        if method == "ping":
            return {}
        if method != "tools/call":
            raise UpstreamError(METHOD_NOT_FOUND, f"method not found: {method} (a WebAssembly service offers tools only)")
        loaded = self._loaded
        if loaded is None:
            raise BackendFault("the module is not loaded", kind="crashed")
        params = params or {}
        name = params.get("name")
        if not isinstance(name, str):
            raise UpstreamError(INVALID_PARAMS, "tools/call needs the tool's 'name' (a string)")
        spec = loaded.abi.tools.get(name)
        if spec is None:
            raise UpstreamError(INVALID_PARAMS, f"unknown tool {name!r}")
        args = params.get("arguments")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise UpstreamError(INVALID_PARAMS, "tools/call 'arguments' must be an object")
        problems = validate(spec.input_schema, args)
        if problems:
            return error_result("invalid arguments: " + "; ".join(problems))
        limits = self._limits()
        loop = asyncio.get_running_loop()
        timeout_ms: float = limits.timeout_ms
        if ctx.deadline is not None:
            remaining = (ctx.deadline - loop.time()) * 1000
            if remaining <= 0:
                raise BackendFault("the call's deadline passed before it started", kind="timeout")
            timeout_ms = min(timeout_ms, remaining)
        result, log = await loop.run_in_executor(
            self._threads(), run_tool, loaded.pre, spec, args, limits, timeout_ms, ctx.max_response_bytes
        )
        self._calls += 1
        for line in log.lines:
            self.host.log("info", f"[{name}] {line}")
        if log.dropped:
            self.host.log("warning", f"[{name}] {log.dropped} log message(s) dropped (at most 100 per call)")
        if log.limit:
            self._limit_hits += 1
            self.host.log("warning", f"[{name}] {result['content'][0]['text']}")
        return result

    def describe(self) -> JSON:
        origin = self.manifest.spec.origin
        out: JSON = {
            "kind": "local_wasm",
            "path": getattr(origin, "path", None),
            "registeredSha256": getattr(origin, "sha256", None),
            "abi": ABI_VERSION,
            "wasmtime": wasmtime_version(),
            "limits": self._limits().to_json(),
            "loaded": self._loaded is not None,
            "calls": self._calls,
            "limitHits": self._limit_hits,
        }
        loaded = self._loaded
        if loaded is not None:
            out.update({
                "sha256": loaded.sha256,
                "tools": len(loaded.abi.tools),
                "jsonTools": sum(1 for s in loaded.abi.tools.values() if s.kind == "json"),
                "hostImports": list(loaded.abi.host_imports),
                "cache": loaded.cache.to_json(),
            })
        return out
