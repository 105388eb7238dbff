"""The compile cache: serialized modules under ``<state_dir>/wasm-cache/``.

Owns: turning wasm bytes into a compiled ``wasmtime.Module`` through the cache
(compiled with ``memory.grow`` watched by ``instrument`` when it can be; the
rewrite's version is part of the key, so a hit skips the rewrite),
the artifact file format and the rule that only artifacts this daemon wrote
are ever deserialized. Deserializing is only safe for trusted bytes (it maps
machine code), so every artifact carries an HMAC-SHA256 made with a secret key
kept in ``wasm-cache/.key`` (mode 0600, created on first use). An artifact
whose tag does not verify, or a key file others can read or write, is never
used: the module is compiled from source instead.
Must not: decide what a conforming module is, or run anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from runtimed.backends.wasm.engine import engine_fingerprint
from runtimed.backends.wasm.instrument import VERSION as WATCH_VERSION, watch_grow
from runtimed.state.files import atomic_write

_MAGIC = b"RTDCWSM1"
_TAG_LEN = 32
_KEY_FILE = ".key"


@dataclass
class CacheInfo:
    """How a module was obtained: ``hit``, ``miss`` (compiled, stored),
    ``rejected`` (an artifact not written by us was ignored; compiled),
    ``disabled`` (cache unusable; compiled, not stored)."""

    status: str
    key: str
    load_ms: float
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.status, "key": self.key[:16], "loadMs": round(self.load_ms, 2)}
        if self.detail:
            out["detail"] = self.detail
        return out


def cache_key(wasm_sha256: str) -> str:
    fingerprint = f"{wasm_sha256}|{engine_fingerprint()}|watch_grow={WATCH_VERSION}"
    return hashlib.sha256(fingerprint.encode()).hexdigest()


def _compile(engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
    """The module with its ``memory.grow`` watched (``instrument``) when it can be; else as it is.
    Errors are always the original bytes' own."""
    watched = watch_grow(wasm)
    if watched is not None:
        try:
            return wasmtime.Module(engine, watched)
        except wasmtime.WasmtimeError:
            pass
    return wasmtime.Module(engine, wasm)


def cache_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "wasm-cache"


def load_module(engine: wasmtime.Engine, wasm: bytes, state_dir: str | os.PathLike[str]) -> tuple[wasmtime.Module, CacheInfo]:
    """Compile ``wasm`` (raises ``wasmtime.WasmtimeError`` if invalid), via the cache."""
    started = time.perf_counter()
    key = cache_key(hashlib.sha256(wasm).hexdigest())
    directory = cache_dir(state_dir)
    secret, why = _secret(directory)
    if secret is None:
        module = _compile(engine, wasm)
        return module, CacheInfo("disabled", key, _ms(started), why)
    path = directory / f"{key}.cwasm"
    status, detail = "miss", ""
    blob = _read(path)
    if blob is not None:
        body = _verified_body(blob, secret, key)
        if body is None:
            status, detail = "rejected", "artifact not written by this daemon (tag mismatch); recompiled"
        else:
            try:
                module = wasmtime.Module.deserialize(engine, body)
                return module, CacheInfo("hit", key, _ms(started))
            except wasmtime.WasmtimeError:
                status, detail = "rejected", "artifact could not be loaded by this wasmtime; recompiled"
    module = _compile(engine, wasm)
    try:
        _write(path, secret, key, bytes(module.serialize()))
    except OSError as e:
        detail = (detail + "; " if detail else "") + f"could not store the artifact: {e.strerror or e}"
    return module, CacheInfo(status, key, _ms(started), detail)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _tag(secret: bytes, key: str, body: bytes) -> bytes:
    return hmac.new(secret, key.encode() + b"\0" + body, hashlib.sha256).digest()


def _verified_body(blob: bytes, secret: bytes, key: str) -> bytes | None:
    head = len(_MAGIC) + _TAG_LEN
    if len(blob) <= head or not blob.startswith(_MAGIC):
        return None
    tag, body = blob[len(_MAGIC):head], blob[head:]
    return body if hmac.compare_digest(tag, _tag(secret, key, body)) else None


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(path: Path, secret: bytes, key: str, body: bytes) -> None:
    # A cache: no fsync needed, a torn or missing artifact is recompiled.
    atomic_write(path, _MAGIC + _tag(secret, key, body) + body, mode=0o600, durable=False)


def _secret(directory: Path) -> tuple[bytes | None, str]:
    """The HMAC key, creating it (0600) if absent; (None, why) if it cannot be trusted."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        return None, f"cannot create {directory}: {e.strerror or e}"
    path = directory / _KEY_FILE
    if not path.exists():
        tmp = directory / f".key.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # atomic; loses the race cleanly to another writer
            except FileExistsError:
                pass
        except OSError as e:
            return None, f"cannot create the cache key: {e.strerror or e}"
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, f"{path} is not a regular file"
        if st.st_mode & 0o077 or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            return None, f"{path} is accessible to other users (must be 0600 and ours); cache not used"
        with open(path, "rb") as f:
            secret = f.read()
    except OSError as e:
        return None, f"cannot read the cache key: {e.strerror or e}"
    if len(secret) != 32:
        return None, f"{path} is not a key written by this daemon"
    return secret, ""
