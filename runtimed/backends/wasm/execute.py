"""One sandboxed call of a WASM tool, run on a worker thread.

Owns: the per-call Store (fuel budget, epoch deadline, memory limit), a fresh
instance per call, moving JSON in and out of guest memory with every guest
pointer and length bounds-checked (``Memory.read`` would clamp silently),
converting numeric arguments with range checks (wasmtime-py wraps silently),
turning each exceeded limit into an ``isError`` result naming it (a trap after
a ``memory.grow`` past the limit was refused is the memory limit: read from the
module's grow watch, ``instrument``, or inferred from how full memory is), and the
host's ``log`` import. Host functions never raise: wasmtime-py hands host
exceptions over through a process-wide global, which would reach the wrong
call when several run at once; they return error codes instead.
Must not: touch the event loop, the service's host object or the disk;
validate arguments against schemas (the backend does that first).
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import wasmtime

from runtimed.backends.wasm.abi import F32_MAX, HOST_IMPORTS, INT_RANGES, ToolSpec
from runtimed.backends.wasm.engine import epoch_ticks, get_engine, running
from runtimed.backends.wasm.instrument import GROW_EXPORT
from runtimed.backends.wasm.schema import validate
from runtimed.errors import BackendFault

if TYPE_CHECKING:  # defined there; not exported by the package
    from wasmtime._instance import InstanceExports

PAGE = 65536
LOG_MAX_LINES = 100
LOG_MAX_LINE_BYTES = 4096
# Codes returned by the host's log function.
LOG_OK, LOG_BAD_POINTER, LOG_NO_MEMORY, LOG_DROPPED, LOG_INTERNAL = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Limits:
    fuel: int
    memory_bytes: int
    timeout_ms: int
    max_output_bytes: int

    def to_json(self) -> dict[str, int]:
        return {"fuel": self.fuel, "memoryBytes": self.memory_bytes, "timeoutMs": self.timeout_ms,
                "maxOutputBytes": self.max_output_bytes}


@dataclass
class CallLog:
    """Messages the guest logged during one call (flushed by the backend afterwards)."""

    lines: list[str] = field(default_factory=list)
    dropped: int = 0
    limit: str | None = None  # the sandbox limit the call hit, if any


_tls = threading.local()


def _host_log(caller: wasmtime.Caller, ptr: int, length: int) -> int:
    try:
        log: CallLog | None = getattr(_tls, "log", None)
        if log is None:
            return LOG_INTERNAL
        mem = caller.get("memory")
        if not isinstance(mem, wasmtime.Memory):
            return LOG_NO_MEMORY
        start, n = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
        if start + n > mem.data_len(caller):
            return LOG_BAD_POINTER
        if len(log.lines) >= LOG_MAX_LINES:
            log.dropped += 1
            return LOG_DROPPED
        raw = bytes(mem.read(caller, start, start + min(n, LOG_MAX_LINE_BYTES)))
        text = raw.decode("utf-8", "replace")
        text = "".join(c if c.isprintable() or c == "\t" else " " for c in text)
        log.lines.append(text + (" [truncated]" if n > LOG_MAX_LINE_BYTES else ""))
        return LOG_OK
    except BaseException:  # never raise into wasm (see module docstring)
        return LOG_INTERNAL


def instance_pre(module: wasmtime.Module, host_imports: list[str]) -> wasmtime.InstancePre:
    """A pre-linked module: each call instantiates it in a fresh Store."""
    linker = wasmtime.Linker(get_engine())
    for qualified in host_imports:
        mod, name = qualified.split(".", 1)
        params, results = HOST_IMPORTS[(mod, name)]
        ty = wasmtime.FuncType([wasmtime.ValType.i32() for _ in params], [wasmtime.ValType.i32() for _ in results])
        linker.define_func(mod, name, ty, _host_log, access_caller=True)
    return linker.instantiate_pre(module)


class _Stop(Exception):
    """Ends a call early with an ``isError`` result."""

    def __init__(self, result: dict[str, Any], limit: str | None = None) -> None:
        super().__init__(result["content"][0]["text"])
        self.result = result
        self.limit = limit


def error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _limit(limit: str, detail: str) -> _Stop:
    """An exceeded sandbox limit: fuel, time, memory, output size or bad pointer."""
    if limit == "bad pointer":
        return _Stop(error_result(f"WebAssembly sandbox: bad pointer: {detail}"), limit)
    return _Stop(error_result(f"WebAssembly {limit} limit exceeded: {detail}"), limit)


def _trap_text(err: Exception) -> str:
    text = str(err)
    if "Caused by:" in text:
        text = text.split("Caused by:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "trap").removeprefix("wasm trap: ")


class _Call:
    def __init__(self, pre: wasmtime.InstancePre, limits: Limits, timeout_ms: float) -> None:
        self.limits = limits
        self.timeout_ms = timeout_ms
        self.store = wasmtime.Store(get_engine())
        self.store.set_fuel(limits.fuel)
        self.store.set_epoch_deadline(epoch_ticks(timeout_ms))
        self.store.set_limits(memory_size=limits.memory_bytes)
        self.memory: wasmtime.Memory | None = None
        self.grow_watch: wasmtime.Global | None = None
        self.pre = pre

    def instantiate(self) -> InstanceExports:
        try:
            instance = self.pre.instantiate(self.store)
        except wasmtime.Trap as t:
            raise self._trap(t, " while starting the module") from None
        except wasmtime.WasmtimeError as e:
            if "memory" in str(e) and "limit" in str(e):
                raise _limit("memory", f"the module needs more than {self.limits.memory_bytes} bytes to start") from None
            raise _Stop(error_result(f"the module could not be instantiated: {_trap_text(e)}")) from None
        exports = instance.exports(self.store)
        mem = exports.get("memory")
        self.memory = mem if isinstance(mem, wasmtime.Memory) else None
        watch = exports.get(GROW_EXPORT)
        self.grow_watch = watch if isinstance(watch, wasmtime.Global) else None
        return exports

    def refused_grow_bytes(self) -> int | None:
        """The memory size (bytes) the largest refused ``memory.grow`` of this call asked for: 0
        when none was refused; None when the module's grows are not watched (``instrument``)."""
        if self.grow_watch is None:
            return None
        try:
            pages = self.grow_watch.value(self.store)
        except wasmtime.WasmtimeError:
            return None
        return int(pages) * PAGE if isinstance(pages, int) else None

    def near_memory_limit(self, wanted: int = PAGE) -> bool:
        """Whether growing by ``wanted`` more bytes would pass the memory limit."""
        return self.memory is not None and self.memory.data_len(self.store) + max(wanted, PAGE) > self.limits.memory_bytes

    def memory_refused(self, wanted: int = PAGE) -> str | None:
        """Why this call is at its memory limit, or None: a watched module's grow past the limit was
        refused during the call; an unwatched one's memory is within ``wanted`` of the limit."""
        limit = self.limits.memory_bytes
        asked = self.refused_grow_bytes()
        if asked is None:
            return f"the call reached the {limit} bytes memory limit" if self.near_memory_limit(wanted) else None
        if asked > limit:
            return f"the call reached the {limit} bytes memory limit (a memory.grow to {asked} bytes was refused)"
        return None

    def _trap(self, t: wasmtime.Trap, when: str) -> _Stop:
        code = t.trap_code
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return _limit("fuel", f"the call used all {self.limits.fuel} units of fuel")
        if code == wasmtime.TrapCode.INTERRUPT:
            return _limit("time", f"the call ran longer than {round(self.timeout_ms)} ms")
        refused = self.memory_refused()
        if refused:
            return _limit("memory", f"{refused} and then trapped ({_trap_text(t)})")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return _Stop(error_result(f"the tool trapped{when}: stack overflow"))
        return _Stop(error_result(f"the tool trapped{when}: {_trap_text(t)}"))

    def invoke(self, func: Any, *args: Any) -> Any:
        try:
            return func(self.store, *args)
        except wasmtime.Trap as t:
            raise self._trap(t, "") from None
        except wasmtime.WasmtimeError as e:
            raise _Stop(error_result(f"the call failed: {_trap_text(e)}")) from None

    def check_span(self, ptr: int, length: int, what: str) -> None:
        assert self.memory is not None
        size = self.memory.data_len(self.store)
        if ptr + length > size:
            raise _limit(
                "bad pointer", f"{what} [{ptr}, {ptr + length}) lies outside the guest's {size} bytes of memory")


def run_tool(pre: wasmtime.InstancePre, spec: ToolSpec, args: dict[str, Any], limits: Limits,
             timeout_ms: float, max_response_bytes: int | None = None) -> tuple[dict[str, Any], CallLog]:
    """Run one tool call to completion on the current thread. Never raises except
    ``BackendFault(kind="payload")`` when the output exceeds ``max_response_bytes``."""
    log = CallLog()
    _tls.log = log
    try:
        with running():
            call = _Call(pre, limits, timeout_ms)
            exports = call.instantiate()
            if spec.kind == "json":
                result = _run_json(call, exports, spec, args, max_response_bytes)
            else:
                result = _run_numeric(call, exports, spec, args)
    except _Stop as stop:
        result = stop.result
        log.limit = stop.limit
    except BackendFault:
        raise
    except Exception as e:  # a host-side surprise must not escape as a traceback
        result = error_result(f"the WebAssembly call failed in the host: {type(e).__name__}")
    finally:
        _tls.log = None
    return result, log


def _run_json(call: _Call, exports: InstanceExports, spec: ToolSpec, args: dict[str, Any],
              max_response_bytes: int | None) -> dict[str, Any]:
    try:
        data = json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from "\ud800" in the request): escape it
        data = json.dumps(args, separators=(",", ":")).encode("ascii")
    ptr = call.invoke(exports["alloc"], len(data)) & 0xFFFFFFFF
    if ptr == 0:
        if call.memory_refused(len(data)):
            raise _limit("memory", f"alloc({len(data)}) failed at the {call.limits.memory_bytes} bytes memory limit")
        raise _Stop(error_result(f"the tool's alloc({len(data)}) returned 0 (allocation failed)"))
    call.check_span(ptr, len(data), "the buffer returned by alloc")
    assert call.memory is not None
    call.memory.write(call.store, data, ptr)
    packed = call.invoke(exports[spec.name], ptr, len(data)) & 0xFFFFFFFFFFFFFFFF
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    if out_len > call.limits.max_output_bytes:
        raise _limit("output size", f"the result is {out_len} bytes, more than the {call.limits.max_output_bytes} allowed")
    call.check_span(out_ptr, out_len, "the result")
    if max_response_bytes is not None and out_len > max_response_bytes:
        raise BackendFault(f"the tool's result is {out_len} bytes, more than the {max_response_bytes} allowed", kind="payload")
    raw = bytes(call.memory.read(call.store, out_ptr, out_ptr + out_len))
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return error_result("the tool's result is not valid UTF-8")
    except json.JSONDecodeError as e:
        return error_result(f"the tool's result is not valid JSON: {e.msg} at byte {e.pos}")
    return _json_result(spec, value)


def _json_result(spec: ToolSpec, value: Any) -> dict[str, Any]:
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and "error" in value:
        err = value["error"]
        return error_result(err if isinstance(err, str) else json.dumps(err, ensure_ascii=False))
    if not isinstance(value, dict):
        return {"content": [{"type": "text", "text": value if isinstance(value, str) else text}], "isError": False}
    if spec.output_schema is not None:
        problems = validate(spec.output_schema, value, "result")
        if problems:
            return error_result("the tool's result does not match its outputSchema: " + "; ".join(problems))
    return {"content": [{"type": "text", "text": text}], "structuredContent": value, "isError": False}


def convert_numeric_args(spec: ToolSpec, args: dict[str, Any]) -> list[int | float]:
    """Arguments in parameter order, range-checked; raises ValueError with a readable message."""
    values: list[int | float] = []
    for name, ty in zip(spec.arg_names, spec.params, strict=False):
        if name not in args:
            raise ValueError(f"arguments: missing required property {name!r}")
        v = args[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"arguments.{name}: must be a number ({ty}), got {type(v).__name__}")
        if ty in INT_RANGES:
            if isinstance(v, float):
                if not (math.isfinite(v) and v.is_integer()):
                    raise ValueError(f"arguments.{name}: must be an integer ({ty}), got {v}")
                v = int(v)
            lo, hi = INT_RANGES[ty]
            if not lo <= v <= hi:
                raise ValueError(f"arguments.{name}: {v} is out of range for {ty} ({lo} to {hi})")
        else:
            v = float(v)
            if not math.isfinite(v) or (ty == "f32" and abs(v) > F32_MAX):
                raise ValueError(f"arguments.{name}: {v} is out of range for {ty}")
        values.append(v)
    return values


def _run_numeric(call: _Call, exports: InstanceExports, spec: ToolSpec, args: dict[str, Any]) -> dict[str, Any]:
    try:
        values = convert_numeric_args(spec, args)
    except ValueError as e:
        return error_result(f"invalid arguments: {e}")
    out = call.invoke(exports[spec.name], *values)
    results = [] if out is None else (list(out) if isinstance(out, list) else [out])
    for r in results:
        if isinstance(r, float) and not math.isfinite(r):
            return error_result(f"the tool returned {r}, which JSON cannot represent")
    value: Any = None if not results else results[0] if len(results) == 1 else results
    return {"content": [{"type": "text", "text": json.dumps(value)}], "structuredContent": {"result": value}, "isError": False}


def probe_instance(pre: wasmtime.InstancePre, limits: Limits) -> str | None:
    """Instantiate once in a fresh Store under the call limits; None = fine, else why not."""
    try:
        with running():
            _Call(pre, limits, limits.timeout_ms).instantiate()
        return None
    except _Stop as stop:
        return str(stop)
