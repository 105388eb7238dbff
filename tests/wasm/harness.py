"""Test harness for the WASM backend: a real host object and helpers to load
fixture modules. Not a mock of our parts: ``Host`` is the small object a
backend talks to (state dir, settings, log), as ``ServiceRuntime`` is in the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtimed.backends.base import CallContext
from runtimed.backends.wasm.backend import WasmBackend, prepare_wasm_origin
from runtimed.config.manifest import ServiceManifest, parse_manifest
from runtimed.config.settings import Settings

HERE = Path(__file__).parent
EXAMPLES = HERE.parent.parent / "examples" / "wasm"


class Host:
    def __init__(self, state_dir: Path, **settings: Any) -> None:
        self._state_dir = state_dir
        self.settings = Settings(state_dir=state_dir, **settings)
        self.lines: list[tuple[str, str]] = []

    @property
    def state_dir(self) -> str:
        return str(self._state_dir)

    def log(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def on_list_changed(self, kind: str) -> None:
        pass

    def on_notification(self, method: str, params: dict[str, Any]) -> None:
        pass

    def on_failure(self, reason: str) -> None:
        pass

    async def on_server_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("a wasm backend never asks the client")

    def text(self) -> str:
        return "\n".join(m for _, m in self.lines)


def manifest(path: Path | str, name: str = "tool", **limits: int) -> ServiceManifest:
    return parse_manifest({"metadata": {"name": name},
                           "spec": {"origin": {"type": "local_wasm", "path": str(path), "limits": limits}}})


async def started(path: Path | str, host: Host, **limits: int) -> WasmBackend:
    m = prepare_wasm_origin(manifest(path, **limits), host.settings)
    backend = WasmBackend(m, host)
    await backend.start()
    return backend


async def call(backend: WasmBackend, name: str, arguments: Any = None, ctx: CallContext | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return await backend.call("tools/call", params, ctx or CallContext())


def text_of(result: dict[str, Any]) -> str:
    return result["content"][0]["text"]
