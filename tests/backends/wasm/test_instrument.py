"""The ``memory.grow`` watch (``runtimed.backends.wasm.instrument``) on real modules compiled by
wasmtime: a watched module computes exactly what the original does, the watch records only
grows that were refused, and modules it cannot rewrite are served as they are."""

from __future__ import annotations

import wasmtime

from runtimed.backends.wasm.instrument import GROW_EXPORT, watch_grow
from tests.wasm.harness import EXAMPLES, HERE

ENGINE = wasmtime.Engine()


def _wasm(source: str) -> bytes:
    return bytes(wasmtime.wat2wasm(source))


def _run(wasm: bytes, func: str, *args: int, memory_bytes: int = -1) -> tuple[object, object]:
    """(what ``func`` returns or the trap's text, the watch's value or None) in a fresh Store."""
    store = wasmtime.Store(ENGINE)
    store.set_limits(memory_size=memory_bytes)
    exports = wasmtime.Instance(store, wasmtime.Module(ENGINE, wasm), []).exports(store)
    try:
        result: object = exports[func](store, *args)
    except wasmtime.Trap as t:
        result = f"trap: {t.trap_code}"
    watch = exports.get(GROW_EXPORT)
    return result, watch.value(store) if isinstance(watch, wasmtime.Global) else None


def test_a_watched_module_computes_what_the_original_does() -> None:
    original = _wasm((HERE / "kitchen_sink.wat").read_text())
    watched = watch_grow(original)
    assert watched is not None
    for x in range(6):
        assert _run(watched, "run", x)[0] == _run(original, "run", x)[0]
    for x in (0, 1):
        assert _run(watched, "catch", x) == (_run(original, "catch", x)[0], 0)
    names = [e.name for e in wasmtime.Module(ENGINE, watched).exports]
    assert names == [e.name for e in wasmtime.Module(ENGINE, original).exports] + [GROW_EXPORT]


def test_the_watch_records_the_largest_refused_grow_only() -> None:
    src = """(module (memory (export "memory") 1)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"""
    watched = watch_grow(_wasm(src))
    assert watched is not None
    assert _run(watched, "grow", 3, memory_bytes=8 * 65536) == (1, 0)  # granted: nothing recorded
    assert _run(watched, "grow", 9, memory_bytes=8 * 65536) == (-1, 10)  # refused: 1 + 9 pages asked
    assert _run(watched, "grow", -1, memory_bytes=8 * 65536) == (-1, 1 + 0xFFFFFFFF)  # a u32 delta


def test_sections_the_watch_needs_are_added_where_they_belong() -> None:
    # No global, export or type section of its own beyond what the grow needs.
    no_exports = _wasm("(module (memory 1) (func $f (drop (memory.grow (i32.const 1)))) (start $f))")
    watched = watch_grow(no_exports)
    assert watched is not None
    assert [e.name for e in wasmtime.Module(ENGINE, watched).exports] == [GROW_EXPORT]
    with_globals = _wasm("""(module (global $g (import "env" "g") i32) (memory 1) (global $h (mut i32) (i32.const 5))
      (func (export "f") (result i32) (drop (memory.grow (i32.const 1))) (i32.add (global.get $g) (global.get $h))))""")
    watched = watch_grow(with_globals)
    assert watched is not None
    wasmtime.Module(ENGINE, watched)  # validates: the new global took the index after both


def test_modules_it_cannot_or_need_not_rewrite_are_left_alone() -> None:
    assert watch_grow(_wasm((EXAMPLES / "math.wat").read_text())) is None  # no memory at all
    assert watch_grow(_wasm("(module (memory 1) (func (export \"f\") (result i32) (memory.size)))")) is None
    two = "(module (memory 1) (memory $b 1) (func (export \"f\") (result i32) (memory.grow $b (i32.const 1))))"
    assert watch_grow(_wasm(two)) is None
    taken = f"(module (memory 1) (global (export \"{GROW_EXPORT}\") i32 (i32.const 0)) " \
            "(func (export \"f\") (result i32) (memory.grow (i32.const 1))))"
    assert watch_grow(_wasm(taken)) is None
    assert watch_grow(b"\0asm\x01\0\0\0\x0a\xff") is None  # truncated: not rewritten, wasmtime says why
    assert watch_grow(b"not wasm") is None
