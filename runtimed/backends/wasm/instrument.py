"""Watching ``memory.grow``: a module rewritten so the host can tell, after a trap, that the
guest asked for more memory than it was given.

wasmtime refuses a grow past the Store's memory limit by returning -1 to the guest, and tells
the host nothing; a module that then traps (``unreachable``) would be reported as a plain trap.
``watch_grow`` routes every ``memory.grow`` through a small function appended to the module: it
grows as before and, when the grow is refused, records the size asked for (in pages, the largest
refused) in an exported mutable i64 global, ``GROW_EXPORT``. Nothing else changes: appended
types, functions, globals and exports take the next free indices, so no index in the module
moves, and the rewritten call has the same stack effect as the instruction it replaces.

Owns the byte-level rewrite: reading sections, walking every instruction of every body (an
instruction it does not know ends the attempt), writing the new module. A module it cannot
rewrite (an unknown instruction, GC types, several or 64-bit memories, custom page sizes, an
imported memory) is served as it is, and a refused grow is then inferred from how close to the
limit memory got (``execute``). Must not: compile, validate (wasmtime validates the result; a
result it refuses falls back to the original), or decide what a refused grow means.
"""

from __future__ import annotations

VERSION = 1
"""Part of every compile-cache key: a change to the rewrite must change it."""

GROW_EXPORT = "__runtimed_grow_refused"
"""The exported i64 global: pages asked for by the largest refused ``memory.grow`` (0: none)."""

_SECTION_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
_I32, _I64 = 0x7F, 0x7E
_ONE_BYTE_TYPES = frozenset(range(0x69, 0x75)) | frozenset(range(0x7B, 0x80))  # numeric, v128, ref shorthands


class _Unsupported(Exception):
    """This module is not rewritten (it is served as it is)."""


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Unsupported("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise _Unsupported("LEB128 too long")

    def skip_leb(self) -> None:
        for _ in range(10):
            if not self.byte() & 0x80:
                return
        raise _Unsupported("LEB128 too long")

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _Unsupported("unexpected end")
        self.pos += n

    def name(self) -> bytes:
        n = self.uleb()
        start = self.pos
        self.skip(n)
        return self.data[start:self.pos]

    def heaptype(self) -> None:
        b = self.data[self.pos] if self.pos < len(self.data) else -1
        if b in _ONE_BYTE_TYPES:
            self.pos += 1
        else:
            self.skip_leb()  # a type index (s33)

    def valtype(self) -> None:
        b = self.byte()
        if b in (0x63, 0x64):  # (ref null ht), (ref ht)
            self.heaptype()
        elif b not in _ONE_BYTE_TYPES:
            raise _Unsupported(f"value type 0x{b:02x}")

    def blocktype(self) -> None:
        b = self.data[self.pos] if self.pos < len(self.data) else -1
        if b == 0x40 or b in _ONE_BYTE_TYPES:
            self.pos += 1
        elif b in (0x63, 0x64):
            self.pos += 1
            self.heaptype()
        else:
            self.skip_leb()  # a type index (s33)

    def memarg(self) -> None:
        align = self.uleb()
        if align & 0x40:
            self.skip_leb()  # memory index (multi-memory)
        self.skip_leb()  # offset

    def limits(self) -> int:
        flags = self.byte()
        if flags > 0x0F:
            raise _Unsupported(f"limits flags 0x{flags:02x}")
        self.skip_leb()
        if flags & 0x01:
            self.skip_leb()
        if flags & 0x08:
            self.skip_leb()  # custom page size
        return flags


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _uleb(len(items)) + b"".join(items)


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + _uleb(len(payload)) + payload


# Immediates of the one-byte opcodes that have any (the rest have none).
_U32 = frozenset({0x07, 0x08, 0x09, 0x0C, 0x0D, 0x10, 0x12, 0x14, 0x15, 0x18, 0x20, 0x21, 0x22, 0x23, 0x24,
                  0x25, 0x26, 0x3F, 0xD2, 0xD5, 0xD6})
_NO_IMMEDIATE = frozenset({0x00, 0x01, 0x05, 0x0A, 0x0B, 0x0F, 0x19, 0x1A, 0x1B, 0xD1, 0xD3, 0xD4}) | frozenset(range(0x45, 0xC5))


def _skip_prefixed(r: _Reader, prefix: int) -> None:
    sub = r.uleb()
    if prefix == 0xFC:
        if sub <= 7 or 19 <= sub <= 22:
            return
        if sub in (8, 10, 12, 14):
            r.skip_leb()
            r.skip_leb()
        elif sub in (9, 11, 13, 15, 16, 17):
            r.skip_leb()
        else:
            raise _Unsupported(f"0xfc {sub}")
    elif prefix == 0xFD:
        if sub <= 11 or sub in (92, 93):
            r.memarg()
        elif sub in (12, 13):
            r.skip(16)
        elif 21 <= sub <= 34:
            r.skip(1)
        elif 84 <= sub <= 91:
            r.memarg()
            r.skip(1)
        elif sub > 0x113:
            raise _Unsupported(f"0xfd {sub}")
    elif prefix == 0xFE:
        if sub == 0x03:
            r.skip(1)
        elif sub <= 0x02 or 0x10 <= sub <= 0x4E:
            r.memarg()
        else:
            raise _Unsupported(f"0xfe {sub}")
    else:
        raise _Unsupported(f"prefix 0x{prefix:02x}")  # 0xfb (GC) and anything newer


def _rewrite_body(body: bytes, call_grow: bytes) -> tuple[bytes, int]:
    """The body with each ``memory.grow 0`` replaced by ``call_grow``; and how many were."""
    r = _Reader(body)
    for _ in range(r.uleb()):  # local declarations
        r.skip_leb()
        r.valtype()
    out = bytearray(body[:r.pos])
    count = 0
    while r.pos < len(body):
        start = r.pos
        op = r.byte()
        if op == 0x40:  # memory.grow memidx
            if r.uleb() != 0:
                raise _Unsupported("memory.grow of a memory other than 0")
            out += call_grow
            count += 1
            continue
        if op in _NO_IMMEDIATE:
            pass
        elif op in _U32:
            r.skip_leb()
        elif op in (0x02, 0x03, 0x04, 0x06):
            r.blocktype()
        elif op == 0x1F:  # try_table
            r.blocktype()
            for _ in range(r.uleb()):
                kind = r.byte()
                if kind in (0x00, 0x01):
                    r.skip_leb()
                elif kind not in (0x02, 0x03):
                    raise _Unsupported("try_table catch kind")
                r.skip_leb()
        elif op == 0x0E:  # br_table
            for _ in range(r.uleb() + 1):
                r.skip_leb()
        elif op in (0x11, 0x13):  # call_indirect, return_call_indirect
            r.skip_leb()
            r.skip_leb()
        elif op == 0x1C:  # select t*
            for _ in range(r.uleb()):
                r.valtype()
        elif 0x28 <= op <= 0x3E:
            r.memarg()
        elif op in (0x41, 0x42):
            r.skip_leb()
        elif op == 0x43:
            r.skip(4)
        elif op == 0x44:
            r.skip(8)
        elif op == 0xD0:
            r.heaptype()
        elif op in (0xFC, 0xFD, 0xFE):
            _skip_prefixed(r, op)
        else:
            raise _Unsupported(f"opcode 0x{op:02x}")
        out += body[start:r.pos]
    return bytes(out), count


def _grow_function(global_index: int) -> bytes:
    """``(func (param $d i32) (result i32) (local $r i32) (local $asked i64) ...)``: grow by $d;
    on -1 record memory.size + $d in the global when it is more than recorded; return as grow."""
    g = _uleb(global_index)
    code = (b"\x20\x00" b"\x40\x00" b"\x22\x01"           # local.get $d; memory.grow 0; local.tee $r
            b"\x41\x7f\x46" b"\x04\x40"                   # i32.const -1; i32.eq; if
            b"\x3f\x00\xad" b"\x20\x00\xad" b"\x7c"       #   memory.size; i64.extend_i32_u; $d extended; i64.add
            b"\x22\x02" b"\x23" + g + b"\x56"             #   local.tee $asked; global.get G; i64.gt_u
            + b"\x04\x40" b"\x20\x02" b"\x24" + g + b"\x0b"  # if: global.set G ($asked) end
            + b"\x0b"                                     # end
            b"\x20\x01" b"\x0b")                          # local.get $r; end
    body = _vec([b"\x01\x7f", b"\x01\x7e"]) + code
    return _uleb(len(body)) + body


def watch_grow(wasm: bytes) -> bytes | None:
    """``wasm`` with its ``memory.grow`` instructions watched (see the module docstring), or None
    when there is nothing to watch or the module cannot be rewritten (it is then served as is)."""
    try:
        return _watch(wasm)
    except (_Unsupported, IndexError):
        return None


def _watch(wasm: bytes) -> bytes | None:
    if wasm[:4] != b"\0asm" or wasm[4:8] != b"\x01\0\0\0":
        return None
    sections: list[tuple[int, bytes]] = []
    r = _Reader(wasm, 8)
    while r.pos < len(wasm):
        sid = r.byte()
        size = r.uleb()
        start = r.pos
        r.skip(size)
        sections.append((sid, wasm[start:r.pos]))
    ids = [sid for sid, _ in sections]
    if 10 not in ids or 5 not in ids:
        return None  # no code, or no memory of its own: nothing to watch
    by_id = {sid: payload for sid, payload in sections if sid != 0}

    n_types = _count_types(by_id.get(1, b"\x00"))
    imported_funcs = imported_globals = 0
    if 2 in by_id:
        ir = _Reader(by_id[2])
        for _ in range(ir.uleb()):
            ir.name()
            ir.name()
            kind = ir.byte()
            if kind == 0x00:
                imported_funcs += 1
                ir.skip_leb()
            elif kind == 0x01:
                ir.valtype()
                ir.limits()
            elif kind == 0x02:
                raise _Unsupported("imported memory")
            elif kind == 0x03:
                imported_globals += 1
                ir.valtype()
                ir.skip(1)
            elif kind == 0x04:
                ir.skip(1)
                ir.skip_leb()
            else:
                raise _Unsupported("import kind")
    mr = _Reader(by_id[5])
    if mr.uleb() != 1:
        raise _Unsupported("several memories")
    if mr.limits() & 0x0E:  # shared, 64-bit or custom page size
        raise _Unsupported("memory type")
    fr = _Reader(by_id.get(3, b"\x00"))
    n_funcs = fr.uleb()
    n_globals = _Reader(by_id[6]).uleb() if 6 in by_id else 0
    if 7 in by_id:
        er = _Reader(by_id[7])
        for _ in range(er.uleb()):
            if er.name() == GROW_EXPORT.encode():
                raise _Unsupported("the export name is taken")
            er.skip(1)
            er.skip_leb()

    grow_func = imported_funcs + n_funcs
    grow_global = imported_globals + n_globals
    call_grow = b"\x10" + _uleb(grow_func)
    cr = _Reader(by_id[10])
    n_bodies = cr.uleb()
    bodies: list[bytes] = []
    watched = 0
    for _ in range(n_bodies):
        size = cr.uleb()
        start = cr.pos
        cr.skip(size)
        body, count = _rewrite_body(by_id[10][start:cr.pos], call_grow)
        watched += count
        bodies.append(_uleb(len(body)) + body)
    if not watched:
        return None

    new: dict[int, bytes] = {
        1: _append(by_id.get(1), b"\x60\x01\x7f\x01\x7f"),                 # (func (param i32) (result i32))
        3: _append(by_id.get(3), _uleb(n_types)),
        6: _append(by_id.get(6), bytes([_I64, 0x01, 0x42, 0x00, 0x0B])),  # (global (mut i64) (i64.const 0))
        7: _append(by_id.get(7), _uleb(len(GROW_EXPORT)) + GROW_EXPORT.encode() + b"\x03" + _uleb(grow_global)),
        10: _vec([*bodies, _grow_function(grow_global)]),
    }
    out = bytearray(wasm[:8])
    placed: set[int] = set()
    for sid, payload in sections:
        if sid != 0:
            for missing in sorted((m for m in new if m not in by_id and m not in placed),
                                  key=lambda m: _SECTION_ORDER[m]):
                if _SECTION_ORDER[missing] < _SECTION_ORDER.get(sid, 0):
                    out += _section(missing, new[missing])
                    placed.add(missing)
        out += _section(sid, new.get(sid, payload) if sid != 0 else payload)
    return bytes(out)


def _count_types(payload: bytes) -> int:
    """How many types the type section defines; only plain function types are understood."""
    r = _Reader(payload)
    n = r.uleb()
    for _ in range(n):
        if r.byte() != 0x60:
            raise _Unsupported("a type other than a function type (GC proposal)")
        for _ in range(2):
            for _ in range(r.uleb()):
                r.valtype()
    return n


def _append(payload: bytes | None, item: bytes) -> bytes:
    """A vector section with ``item`` added at its end (a new one-item vector if absent)."""
    if payload is None:
        return _vec([item])
    r = _Reader(payload)
    n = r.uleb()
    return _uleb(n + 1) + payload[r.pos:] + item
