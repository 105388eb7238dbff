"""Registration of local WASM tools: what is refused, and the message saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wasmtime

from runtimed.backends import prepare_origin
from runtimed.backends.base import InvalidOrigin
from runtimed.backends.wasm.abi import sha256_hex
from tests.support.daemon import DaemonProc
from tests.support.foundation import symlink_loop as _loop
from tests.wasm.harness import EXAMPLES, Host, manifest


def _refusal(tmp_path: Path, source: str | bytes, name: str = "m.wat", **limits: int) -> str:
    path = tmp_path / name
    path.write_bytes(source.encode() if isinstance(source, str) else source)
    with pytest.raises(InvalidOrigin) as e:
        prepare_origin(manifest(path, **limits), Host(tmp_path / "state").settings)
    assert str(e.value).startswith(str(path))
    return str(e.value)


def test_records_absolute_path_and_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(EXAMPLES)
    m = prepare_origin(manifest("math.wat"), Host(tmp_path).settings)
    assert m.spec.origin.path == str(EXAMPLES / "math.wat")
    assert m.spec.origin.sha256 == sha256_hex((EXAMPLES / "math.wat").read_bytes())
    assert m.name == "tool"


def test_wasm_binary_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "math.wasm"
    path.write_bytes(wasmtime.wat2wasm((EXAMPLES / "math.wat").read_text()))
    m = prepare_origin(manifest(path), Host(tmp_path / "state").settings)
    assert m.spec.origin.sha256 == sha256_hex(path.read_bytes())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidOrigin) as e:
        prepare_origin(manifest(tmp_path / "nope.wasm"), Host(tmp_path).settings)
    assert str(e.value) == f"{tmp_path / 'nope.wasm'}: no such file"


def test_wrong_extension(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, "(module)", name="tool.txt")
    assert "must be a .wasm or .wat file (got '.txt')" in msg


def test_not_wasm(tmp_path: Path) -> None:
    assert "not a WebAssembly binary" in _refusal(tmp_path, b"hello", name="x.wasm")
    assert "not a valid WebAssembly module" in _refusal(tmp_path, b"\0asm\1\0\0\0\x01\xff", name="y.wasm")
    assert "not valid WebAssembly text: expected `)`" in _refusal(tmp_path, "(module (func (export \"x\")")


def test_forbidden_imports_named(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '''(module
      (import "env" "abort" (func (param i32 i32 i32 i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
      (func (export "f") (result i32) (i32.const 1)))''')
    assert "imports env.abort (function (i32, i32, i32, i32) -> ())" in msg
    assert "wasi_snapshot_preview1.fd_write (function (i32, i32, i32, i32) -> i32)" in msg
    assert "--use abort=" in msg and "WASI is not offered" in msg
    msg = _refusal(tmp_path, '(module (import "env" "mem" (memory 1)) (func (export "f")))')
    assert "imports env.mem (memory)" in msg


def test_log_import_with_wrong_signature(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '''(module (import "runtimed" "log" (func (param i32)))
      (memory (export "memory") 1) (func (export "f")))''')
    assert "import runtimed.log must be a function (i32, i32) -> i32" in msg and "found (i32) -> ()" in msg


def test_log_import_needs_memory(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (import "env" "log" (func (param i32 i32) (result i32))) (func (export "f")))')
    assert "imports env.log but exports no memory named 'memory'" in msg


def test_alloc_signature(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '''(module (memory (export "memory") 1)
      (func (export "alloc") (param i64) (result i32) (i32.const 0))
      (func (export "t") (param i32 i32) (result i64) (i64.const 0)))''')
    assert "export 'alloc' must be (i32) -> i32" in msg and "found (i64) -> i32" in msg


def test_alloc_without_memory(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (func (export "alloc") (param i32) (result i32) (i32.const 0)))')
    assert "exports 'alloc' (JSON tools) but no memory named 'memory'" in msg


def test_unsupported_signature_named(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (func (export "take") (param externref) (result i32) (i32.const 0)))')
    # wasmtime-py prints externref as "anyref"; the export and the shape are what matter
    assert "export 'take' has signature (" in msg and ") -> i32, which ABI v1 cannot call" in msg


def test_no_tools(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (memory (export "memory") 1) (func (export "_start")))')
    assert "exports no tools" in msg


def test_bad_tool_name(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (func (export "two words") (result i32) (i32.const 0)))')
    assert "export 'two words' cannot be a tool name" in msg


def test_memory64_refused(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (memory (export "memory") i64 1) (func (export "f")))')
    assert "64-bit memory" in msg


def test_initial_memory_over_limit(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '(module (memory (export "memory") 40) (func (export "f")))', memoryBytes=1024 * 1024)
    assert "initial memory (2621440 bytes) is larger than its memory limit (1048576 bytes)" in msg


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[{"name":"missing"}]', "names 'missing', which is not exported"),
        ('[{"name":"_init"}]', "names '_init', which is reserved"),
        ('[{"name":"memory"}]', "names 'memory', which is a memory"),
        ('{"name":"f"}', "must be a JSON array of tool objects"),
        ('[{"name":"f"', "is not valid UTF-8 JSON"),
        ('[{"name":"f","colour":"red"}]', "entry 'f': unknown key(s) colour"),
        ('[{"name":"f"},{"name":"f"}]', "entry 'f' appears twice"),
        ('[{"name":"f","inputSchema":{"type":"string"}}]', 'inputSchema must have "type": "object"'),
        ('[{"name":"f","inputSchema":{"type":"object","properties":{"a":{"type":"int"}}}}]', "inputSchema.properties.a.type must be one of"),
        ('[{"name":"f","inputSchema":{"type":"object","properties":{}}}]', "names 0 argument(s) but export 'f' (i32) -> i32 takes 1"),
        ('[{"name":"f","kind":"json"}]', "export 'f' is declared a JSON tool but has signature (i32) -> i32"),
        ('[{"name":"g","kind":"json"}]', "declared a JSON tool but the module does not export alloc"),
        ('[{"name":"f","annotations":[]}]', "'annotations' must be an object"),
    ],
)
def test_custom_section_refusals(tmp_path: Path, section: str, expected: str) -> None:
    escaped = section.replace("\\", "\\\\").replace('"', '\\"')
    msg = _refusal(tmp_path, f'''(module (@custom "mcp-tools" "{escaped}")
      (memory (export "memory") 1)
      (func (export "f") (param i32) (result i32) (local.get 0))
      (func (export "g") (param i32 i32) (result i64) (i64.const 0))
      (func (export "_init")))''')
    assert expected in msg, msg


def test_two_custom_sections_refused(tmp_path: Path) -> None:
    msg = _refusal(tmp_path, '''(module (@custom "mcp-tools" "[]") (@custom "mcp-tools" "[]")
      (func (export "f") (result i32) (i32.const 0)))''')
    assert "2 'mcp-tools' custom sections" in msg


# -- regression, wasm: unresolvable origin paths (found by review; fails with its fix reverted) ----

def _wasm_manifest(name: str, path: str) -> dict:
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": name},
            "spec": {"origin": {"type": "local_wasm", "path": path}}}


@pytest.mark.parametrize("kind", ["unknown_user", "symlink_loop", "nul_byte"])
def test_unresolvable_wasm_path_is_422(daemon: DaemonProc, tmp_path: Path, kind: str) -> None:
    if kind == "unknown_user":
        path = "~nosuchuser-regression-x/x.wat"
    elif kind == "symlink_loop":
        path = str(_loop(tmp_path / "wasm", "loop.wat"))
    else:
        path = str(tmp_path / "a\x00b.wat")
    r = daemon.api("POST", "/api/services", json=_wasm_manifest("w", path))
    assert r.status_code == 422, (r.status_code, r.text)
    msg = json.dumps(r.json())
    assert "not a usable file path" in msg, msg
    assert "Traceback" not in daemon.log()
    # Nothing was registered, and the daemon still answers.
    assert daemon.api("GET", "/api/services/w").status_code == 404
    assert daemon.api("GET", "/healthz").status_code == 200


def test_wat_parse_error_quotes_position_and_message_never_the_source(tmp_path: Path) -> None:
    """A .wat file may hold anything (a pasted token): its text is never echoed back."""
    msg = _refusal(tmp_path, "(module\n  (func (export \"x\") (result i32)\n    i32.const 1 sk_live_hunter2_secret\n))")
    assert "sk_live_hunter2_secret" not in msg and "i32.const" not in msg
    assert "line 3, column 17" in msg and "unknown operator or unexpected token" in msg
    # Names the parser quotes from the file are left out too; the position says where.
    msg = _refusal(tmp_path, "(module (func (call $hunter2_password)))")
    assert "hunter2" not in msg and "line 1, column 21" in msg and "failed to find name" in msg
    msg = _refusal(tmp_path, "ghp_notamodule_secret")
    assert "ghp_" not in msg and "line 1, column 1" in msg
