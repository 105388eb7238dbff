"""The compile cache and reloads: restarts hit the cache, only our own artifacts
are loaded, a changed file is picked up on the next start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtimed.backends.base import BackendStartError
from runtimed.backends.wasm.backend import WasmBackend, prepare_wasm_origin
from runtimed.backends.wasm.cache import cache_dir
from tests.wasm.harness import EXAMPLES, HERE, Host, call, manifest, started, text_of

V1 = '(module (func (export "one") (result i32) (i32.const 1)))'
V2 = '(module (func (export "two") (param i32) (result i32) (i32.const 2)))'


def _artifacts(state: Path) -> list[Path]:
    return sorted(cache_dir(state).glob("*.cwasm"))


async def test_register_compiles_then_restart_hits(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = Host(state)
    m = prepare_wasm_origin(manifest(EXAMPLES / "math.wat"), host.settings)  # compiles, stores
    assert len(_artifacts(state)) == 1
    key_file = cache_dir(state) / ".key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _artifacts(state)[0].stat().st_mode & 0o777 == 0o600
    for _ in range(2):  # start, stop, start again: each a fresh backend, as the supervisor does
        b = WasmBackend(m, host)
        await b.start()
        assert b.describe()["cache"]["status"] == "hit"
        assert (await call(b, "add", {"a": 1, "b": 2}))["structuredContent"] == {"result": 3}
        await b.stop()
    assert "compile cache hit" in host.text()


async def test_first_start_without_registration_is_a_miss(tmp_path: Path) -> None:
    state = tmp_path / "state"
    m = manifest(EXAMPLES / "math.wat")
    b = WasmBackend(m, Host(state))
    await b.start()
    assert b.describe()["cache"]["status"] == "miss"
    b2 = WasmBackend(m, Host(state))
    await b2.start()
    assert b2.describe()["cache"]["status"] == "hit"


async def test_tampered_artifact_is_never_loaded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = Host(state)
    m = prepare_wasm_origin(manifest(EXAMPLES / "math.wat"), host.settings)
    [artifact] = _artifacts(state)
    blob = bytearray(artifact.read_bytes())
    blob[-100] ^= 0xFF  # a flipped byte in the compiled code
    artifact.write_bytes(bytes(blob))
    b = WasmBackend(m, host)
    await b.start()
    cache = b.describe()["cache"]
    assert cache["status"] == "rejected" and "not written by this daemon" in cache["detail"]
    assert (await call(b, "add", {"a": 20, "b": 22}))["structuredContent"] == {"result": 42}
    b2 = WasmBackend(m, host)  # the artifact was rewritten by us
    await b2.start()
    assert b2.describe()["cache"]["status"] == "hit"


async def test_artifact_under_another_key_is_rejected(tmp_path: Path) -> None:
    state = tmp_path / "state"
    m = prepare_wasm_origin(manifest(EXAMPLES / "math.wat"), Host(state).settings)
    key_file = cache_dir(state) / ".key"
    key_file.write_bytes(os.urandom(32))  # e.g. an artifact copied from another daemon
    b = WasmBackend(m, Host(state))
    await b.start()
    assert b.describe()["cache"]["status"] == "rejected"


async def test_unsafe_key_file_disables_the_cache(tmp_path: Path) -> None:
    state = tmp_path / "state"
    m = prepare_wasm_origin(manifest(EXAMPLES / "math.wat"), Host(state).settings)
    os.chmod(cache_dir(state) / ".key", 0o644)
    b = WasmBackend(m, Host(state))
    await b.start()
    cache = b.describe()["cache"]
    assert cache["status"] == "disabled" and "accessible to other users" in cache["detail"]
    assert (await call(b, "add", {"a": 1, "b": 1}))["structuredContent"] == {"result": 2}


async def test_changed_file_is_reloaded_on_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = tmp_path / "tool.wat"
    path.write_text(V1)
    host = Host(state)
    m = prepare_wasm_origin(manifest(path), host.settings)
    b = WasmBackend(m, host)
    await b.start()
    assert [t["name"] for t in (await b.introspect()).tools] == ["one"]
    rev1 = (await b.introspect()).revision
    sha1 = b.describe()["sha256"]
    path.write_text(V2)
    await b.stop()
    b = WasmBackend(m, host)  # restart: same manifest (sha256 of V1 recorded)
    await b.start()
    iface = await b.introspect()
    assert [t["name"] for t in iface.tools] == ["two"] and iface.revision != rev1
    assert b.describe()["sha256"] != sha1 and b.describe()["registeredSha256"] == sha1
    assert b.describe()["cache"]["status"] == "miss"
    assert "changed since it was registered" in host.text()
    assert (await call(b, "two", {"a": 5}))["structuredContent"] == {"result": 2}


async def test_file_broken_after_registration_fails_start(tmp_path: Path) -> None:
    path = tmp_path / "tool.wat"
    path.write_text(V1)
    host = Host(tmp_path / "state")
    m = prepare_wasm_origin(manifest(path), host.settings)
    path.write_text('(module (import "env" "abort" (func)) (func (export "one")))')
    with pytest.raises(BackendStartError) as e:
        await WasmBackend(m, host).start()
    assert "imports env.abort" in str(e.value)
    path.unlink()
    with pytest.raises(BackendStartError) as e:
        await WasmBackend(m, host).start()
    assert str(e.value).endswith("tool.wat: no such file")


async def test_cached_start_serves_limits(tmp_path: Path) -> None:
    """A module loaded from the cache still runs under fuel metering."""
    host = Host(tmp_path / "state")
    await started(HERE / "limits.wat", host, fuel=500_000)
    b = await started(HERE / "limits.wat", host, fuel=500_000)
    assert b.describe()["cache"]["status"] == "hit"
    assert "fuel limit exceeded" in text_of(await call(b, "spin", {}))
