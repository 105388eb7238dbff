"""ABI v1 of local WASM tools (docs/spec/wasm-abi.md): what a conforming module is.

Owns: reading a ``.wasm``/``.wat`` file into wasm bytes, the ``mcp-tools``
custom section, import and export checks, telling JSON tools from numeric
tools, and each tool's MCP description (name, description, inputSchema,
annotations). Every refusal is an ``InvalidOrigin`` naming the export, the
signature or the import at fault.
Must not: compile through the cache, instantiate or run modules, or know
about services, limits or the gateway.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from runtimed.backends.wasm.schema import schema_problems
from runtimed.errors import InvalidOrigin

ABI_VERSION = 1
CUSTOM_SECTION = "mcp-tools"
MAX_MODULE_BYTES = 64 * 1024 * 1024
NUMERIC = ("i32", "i64", "f32", "f64")
INT_RANGES = {"i32": (-(2**31), 2**31 - 1), "i64": (-(2**63), 2**63 - 1)}
F32_MAX = 3.4028234663852886e38
# Host functions a module may import: (module, name) -> (params, results).
HOST_IMPORTS = {("runtimed", "log"): (["i32", "i32"], ["i32"]), ("env", "log"): (["i32", "i32"], ["i32"])}
# Exports that are part of the ABI or of toolchains' runtimes, never tools.
RESERVED_EXPORTS = frozenset({"memory", "alloc", "dealloc", "free", "malloc", "realloc", "calloc"})
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_ENTRY_KEYS = {"name", "title", "description", "inputSchema", "outputSchema", "annotations", "kind"}
_DEFAULT_ANNOTATIONS = {"readOnlyHint": True, "openWorldHint": False}


@dataclass
class ToolSpec:
    """One tool of a module: how to call it and how to advertise it."""

    name: str
    kind: str  # "json" or "numeric"
    params: list[str]
    results: list[str]
    arg_names: list[str]  # numeric tools: the property feeding each parameter
    tool: dict[str, Any]  # the MCP Tool object

    @property
    def input_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.tool["inputSchema"]  # set from a dict by _tool_object
        return schema

    @property
    def output_schema(self) -> dict[str, Any] | None:
        return self.tool.get("outputSchema")


@dataclass
class ModuleAbi:
    tools: dict[str, ToolSpec] = field(default_factory=dict)
    json_abi: bool = False
    host_imports: list[str] = field(default_factory=list)
    memory_min_bytes: int = 0
    has_custom_section: bool = False


def read_source(path: Path) -> tuple[bytes, bytes]:
    """(file bytes, wasm bytes) of a ``.wasm`` or ``.wat`` file; ``InvalidOrigin`` if unusable."""
    suffix = path.suffix.lower()
    if suffix not in (".wasm", ".wat"):
        raise InvalidOrigin(f"{path}: a WebAssembly tool must be a .wasm or .wat file (got {suffix or 'no extension'!r})")
    try:
        if not path.is_file():
            raise InvalidOrigin(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
        size = path.stat().st_size
        if size > MAX_MODULE_BYTES:
            raise InvalidOrigin(f"{path}: {size} bytes is larger than the {MAX_MODULE_BYTES} bytes allowed for a module")
        data = path.read_bytes()
    except OSError as e:
        raise InvalidOrigin(f"{path}: cannot read the file: {e.strerror or e}") from None
    if suffix == ".wasm":
        if not data.startswith(b"\0asm"):
            raise InvalidOrigin(f"{path}: not a WebAssembly binary (no \\0asm header); text modules must end in .wat")
        return data, data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidOrigin(f"{path}: a .wat file must be UTF-8 text") from None
    try:
        return data, bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as e:
        raise InvalidOrigin(f"{path}: not valid WebAssembly text: {wat_error(str(e))}") from None


_WAT_POSITION = re.compile(r"-->\s*\S*?:(\d+):(\d+)")
_QUOTED = re.compile(r"`[^`]*`|'[^']*'")


def wat_error(text: str) -> str:
    """A .wat parse error as the parser's message and where, never the file's text: the parser
    prints the offending source line under its message, and quotes names from it (``$x``);
    a .wat file may hold anything a user pasted (a token), so neither is repeated."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    message = lines[0] if lines else "cannot be parsed"
    # Keep quoted syntax the parser expected (`(`, `)`); drop anything longer, taken from the file.
    message = _QUOTED.sub(lambda m: m.group(0) if len(m.group(0)) <= 4 else "`…`", message)
    where = _WAT_POSITION.search(text)
    return f"{message} (at line {where.group(1)}, column {where.group(2)})" if where else message


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_lines(text: str, n: int = 6) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(line.strip() for line in lines[:n])


def compile_error(path: Path, err: Exception) -> InvalidOrigin:
    return InvalidOrigin(f"{path}: not a valid WebAssembly module: {_first_lines(str(err))}")


# -- custom sections ----------------------------------------------------------

def _leb_u32(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise ValueError("bad LEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def custom_sections(wasm: bytes, name: str) -> list[bytes]:
    """Payloads of every custom section called ``name`` (module already validated)."""
    out: list[bytes] = []
    pos = 8
    while pos < len(wasm):
        section_id = wasm[pos]
        size, body = _leb_u32(wasm, pos + 1)
        end = body + size
        if section_id == 0:
            name_len, p = _leb_u32(wasm, body)
            if wasm[p:p + name_len] == name.encode():
                out.append(bytes(wasm[p + name_len:end]))
        pos = end
    return out


# -- analysis -----------------------------------------------------------------

def _sig(ft: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(p) for p in ft.params], [str(r) for r in ft.results]


def _fmt_sig(params: list[str], results: list[str]) -> str:
    res = results[0] if len(results) == 1 else "(" + ", ".join(results) + ")"
    return f"({', '.join(params)}) -> {res}"


def _describe_import(imp: wasmtime.ImportType) -> str:
    ty = imp.type
    if isinstance(ty, wasmtime.FuncType):
        return f"{imp.module}.{imp.name} (function {_fmt_sig(*_sig(ty))})"
    kind = {wasmtime.MemoryType: "memory", wasmtime.TableType: "table", wasmtime.GlobalType: "global"}.get(type(ty), "item")
    return f"{imp.module}.{imp.name} ({kind})"


def _check_imports(module: wasmtime.Module, abi: ModuleAbi) -> None:
    forbidden: list[str] = []
    hints: list[str] = []
    for imp in module.imports:
        key = (imp.module, imp.name)
        if key in HOST_IMPORTS:
            want = HOST_IMPORTS[key]
            got = _sig(imp.type) if isinstance(imp.type, wasmtime.FuncType) else None
            if got != want:
                have = _fmt_sig(*got) if got else "not a function"
                raise InvalidOrigin(
                    f"import {imp.module}.{imp.name} must be a function {_fmt_sig(*want)} "
                    f"(ptr, len of a UTF-8 message; returns 0 on success), found {have}"
                )
            abi.host_imports.append(f"{imp.module}.{imp.name}")
            continue
        forbidden.append(_describe_import(imp))
        if key == ("env", "abort"):
            hints.append("AssemblyScript: build with --use abort= to drop env.abort")
        elif imp.module.startswith("wasi"):
            hints.append("WASI is not offered in ABI v1: build for wasm32-unknown-unknown")
    if forbidden:
        shown = ", ".join(forbidden[:5]) + (f" and {len(forbidden) - 5} more" if len(forbidden) > 5 else "")
        hint = f" ({'; '.join(dict.fromkeys(hints))})" if hints else ""
        raise InvalidOrigin(
            f"the module imports {shown}; ABI v1 refuses imports except the host's "
            f"runtimed.log(ptr: i32, len: i32) -> i32 (also accepted as env.log){hint}"
        )


def _parse_section(wasm: bytes) -> dict[str, dict[str, Any]]:
    payloads = custom_sections(wasm, CUSTOM_SECTION)
    if not payloads:
        return {}
    if len(payloads) > 1:
        raise InvalidOrigin(f"the module has {len(payloads)} '{CUSTOM_SECTION}' custom sections; at most one is allowed")
    try:
        data = json.loads(payloads[0].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidOrigin(f"custom section '{CUSTOM_SECTION}' is not valid UTF-8 JSON: {e}") from None
    if not isinstance(data, list):
        raise InvalidOrigin(f"custom section '{CUSTOM_SECTION}' must be a JSON array of tool objects")
    entries: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data):
        where = f"custom section '{CUSTOM_SECTION}' entry {i}"
        if not isinstance(entry, dict):
            raise InvalidOrigin(f"{where} must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidOrigin(f"{where} needs a 'name' (the exported function)")
        where = f"custom section '{CUSTOM_SECTION}' entry {name!r}"
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise InvalidOrigin(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_ENTRY_KEYS))})")
        if name in entries:
            raise InvalidOrigin(f"{where} appears twice")
        for key in ("title", "description"):
            if key in entry and not isinstance(entry[key], str):
                raise InvalidOrigin(f"{where}: '{key}' must be a string")
        if "annotations" in entry and not isinstance(entry["annotations"], dict):
            raise InvalidOrigin(f"{where}: 'annotations' must be an object")
        if "kind" in entry and entry["kind"] not in ("json", "numeric"):
            raise InvalidOrigin(f"{where}: 'kind' must be \"json\" or \"numeric\"")
        for key in ("inputSchema", "outputSchema"):
            if key in entry:
                problems = schema_problems(entry[key], key)
                if not problems and entry[key].get("type") != "object":
                    problems = [f'{key} must have "type": "object"']
                if problems:
                    raise InvalidOrigin(f"{where}: {'; '.join(problems)}")
        entries[name] = entry
    return entries


def _default_arg_names(n: int) -> list[str]:
    return [chr(ord("a") + i) for i in range(n)] if n <= 26 else [f"p{i}" for i in range(n)]


def _param_schema(ty: str) -> dict[str, Any]:
    if ty in INT_RANGES:
        lo, hi = INT_RANGES[ty]
        return {"type": "integer", "minimum": lo, "maximum": hi, "description": f"{ty}"}
    if ty == "f32":
        return {"type": "number", "minimum": -F32_MAX, "maximum": F32_MAX, "description": "f32"}
    return {"type": "number", "description": "f64"}


def _numeric_tool(name: str, params: list[str], results: list[str], entry: dict[str, Any]) -> ToolSpec:
    if "inputSchema" in entry:
        schema = entry["inputSchema"]
        names = list((schema.get("properties") or {}).keys())
        if len(names) != len(params):
            raise InvalidOrigin(
                f"custom section '{CUSTOM_SECTION}' entry {name!r}: inputSchema.properties names {len(names)} "
                f"argument(s) but export '{name}' {_fmt_sig(params, results)} takes {len(params)}; "
                "list one property per parameter, in order"
            )
    else:
        names = _default_arg_names(len(params))
        schema = {
            "type": "object",
            "properties": {n: _param_schema(t) for n, t in zip(names, params, strict=True)},
            "required": names,
            "additionalProperties": False,
        }
    out_type = "integer" if results and all(r in INT_RANGES for r in results) else "number"
    if len(results) == 1:
        result_schema: dict[str, Any] = {"type": out_type}
    elif results:
        result_schema = {"type": "array", "items": {"type": out_type}}
    else:
        result_schema = {"type": "null"}
    signature = f"{name}({', '.join(f'{n}: {t}' for n, t in zip(names, params, strict=True))}) -> " + (
        results[0] if len(results) == 1 else "(" + ", ".join(results) + ")"
    )
    tool = _tool_object(name, entry, schema, f"WebAssembly function {signature}")
    tool.setdefault("outputSchema", {"type": "object", "properties": {"result": result_schema}, "required": ["result"]})
    return ToolSpec(name, "numeric", params, results, names, tool)


def _tool_object(name: str, entry: dict[str, Any], schema: dict[str, Any], description: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name}
    if "title" in entry:
        tool["title"] = entry["title"]
    tool["description"] = entry.get("description", description)
    tool["inputSchema"] = schema
    if "outputSchema" in entry:
        tool["outputSchema"] = entry["outputSchema"]
    tool["annotations"] = {**_DEFAULT_ANNOTATIONS, **entry.get("annotations", {})}
    return tool


def analyze(module: wasmtime.Module, wasm: bytes) -> ModuleAbi:
    """Check a compiled module against ABI v1 and describe its tools."""
    abi = ModuleAbi()
    _check_imports(module, abi)
    entries = _parse_section(wasm)
    abi.has_custom_section = bool(entries) or bool(custom_sections(wasm, CUSTOM_SECTION))
    funcs: dict[str, tuple[list[str], list[str]]] = {}
    others: dict[str, str] = {}
    memory: wasmtime.MemoryType | None = None
    for exp in module.exports:
        ty = exp.type
        if isinstance(ty, wasmtime.FuncType):
            funcs[exp.name] = _sig(ty)
        elif isinstance(ty, wasmtime.MemoryType):
            others[exp.name] = "memory"
            if exp.name == "memory":
                memory = ty
        else:
            others[exp.name] = "table" if isinstance(ty, wasmtime.TableType) else "global"
    if "memory" in funcs or ("memory" in others and memory is None):
        raise InvalidOrigin("export 'memory' must be a linear memory")
    if memory is not None:
        if memory.is_64:
            raise InvalidOrigin("export 'memory' is a 64-bit memory; ABI v1 needs a 32-bit memory")
        abi.memory_min_bytes = memory.limits.min * 65536
    if "alloc" in others:
        raise InvalidOrigin(f"export 'alloc' must be a function (i32) -> i32, found a {others['alloc']}")
    if "alloc" in funcs:
        if funcs["alloc"] != (["i32"], ["i32"]):
            raise InvalidOrigin(f"export 'alloc' must be (i32) -> i32 (len -> ptr, 0 = failure), found {_fmt_sig(*funcs['alloc'])}")
        if memory is None:
            raise InvalidOrigin("the module exports 'alloc' (JSON tools) but no memory named 'memory'")
        abi.json_abi = True
    if abi.host_imports and memory is None:
        raise InvalidOrigin(f"the module imports {abi.host_imports[0]} but exports no memory named 'memory' for its messages")
    for name in entries:
        if name not in funcs:
            what = f"a {others[name]}" if name in others else "not exported"
            raise InvalidOrigin(f"custom section '{CUSTOM_SECTION}' names {name!r}, which is {what}; names must match exported functions")
        if name in RESERVED_EXPORTS or name.startswith("_"):
            raise InvalidOrigin(f"custom section '{CUSTOM_SECTION}' names {name!r}, which is reserved by the ABI and cannot be a tool")
    for name, (params, results) in funcs.items():
        if name in RESERVED_EXPORTS or name.startswith("_"):
            continue
        if not TOOL_NAME_RE.match(name):
            raise InvalidOrigin(
                f"export {name!r} cannot be a tool name (1-128 of A-Z a-z 0-9 _ . -); "
                "rename it, or start it with '_' to keep it out of the tools"
            )
        entry = entries.get(name, {})
        is_json_sig = (params, results) == (["i32", "i32"], ["i64"])
        kind = entry.get("kind") or ("json" if abi.json_abi and is_json_sig else "numeric")
        if kind == "json":
            if not is_json_sig:
                raise InvalidOrigin(f"export {name!r} is declared a JSON tool but has signature {_fmt_sig(params, results)}; JSON tools are (ptr: i32, len: i32) -> i64")
            if not abi.json_abi:
                raise InvalidOrigin(f"export {name!r} is declared a JSON tool but the module does not export alloc(i32) -> i32 and 'memory'")
            schema = entry.get("inputSchema", {"type": "object"})
            tool = _tool_object(name, entry, schema, f"WebAssembly JSON tool {name}")
            abi.tools[name] = ToolSpec(name, "json", params, results, [], tool)
            continue
        bad = [t for t in params + results if t not in NUMERIC]
        if bad:
            raise InvalidOrigin(
                f"export {name!r} has signature {_fmt_sig(params, results)}, which ABI v1 cannot call "
                f"({bad[0]} is not i32/i64/f32/f64); start its name with '_' to keep it out of the tools"
            )
        abi.tools[name] = _numeric_tool(name, params, results, entry)
    if not abi.tools:
        raise InvalidOrigin(
            "the module exports no tools: export functions taking and returning i32/i64/f32/f64, "
            "or JSON tools (ptr: i32, len: i32) -> i64 with memory and alloc(i32) -> i32"
        )
    return abi
