"""Manifests from the command line: ``add``'s flags and ``apply``'s files
turned into the manifest documents the daemon's ``/api/services`` takes.

Owns deriving a service name from a URL or a file, parsing ``--rate-limit``,
building a manifest from flags, and reading a manifest file (JSON or TOML, a
list, or ``{"services": [...]}``). Bad input is a usage error (exit 2). Must
not: talk to the daemon or validate what the daemon validates (the schema).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runtimectl.context import usage

_NAME_CLEAN = re.compile(r"[^a-z0-9_-]+")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|sec|s|minute|min|m|hour|h|day|d)\s*$")
_PER = {"second": "second", "sec": "second", "s": "second", "minute": "minute", "min": "minute", "m": "minute",
        "hour": "hour", "h": "hour", "day": "day", "d": "day"}


def derive_name(target: str) -> str:
    """A service name from a URL's host (or ``local-<port>``) or a file's stem."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        host = (parts.hostname or "remote").split(".")
        base = host[0] if host[0] not in ("127", "localhost", "www", "api", "mcp") or len(host) == 1 else host[1]
        if parts.hostname in ("127.0.0.1", "localhost", "::1"):
            base = f"local-{parts.port or 80}"
    else:
        base = Path(target).stem
    name = _NAME_CLEAN.sub("-", base.lower()).strip("-_") or "service"
    if not name[0].isalnum():
        name = "s" + name
    return name[:32]


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated flag as a list (None when the flag was not given)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_rate(value: str) -> dict[str, Any]:
    """``10/day`` -> ``{"calls": 10, "per": "day"}``."""
    m = _RATE.match(value)
    if not m or int(m.group(1)) <= 0:
        raise usage(f"--rate-limit must look like 10/day, 5/second, 100/minute or 1000/hour, not {value!r}")
    return {"calls": int(m.group(1)), "per": _PER[m.group(2)]}


def build_manifest(target: str, name: str | None, namespace: str | None, transport: str | None, auth_ref: str | None,
                   policy: dict[str, Any], description: str | None, labels: list[str], restart: str | None,
                   max_restarts: int | None, autostart: bool) -> dict[str, Any]:
    """The ``MCPService`` manifest for a URL (remote_mcp) or a .wasm/.wat file (local_wasm)."""
    if target.startswith(("http://", "https://")):
        origin: dict[str, Any] = {"type": "remote_mcp", "url": target}
        if transport:
            origin["transport"] = transport
        if auth_ref:
            origin["authRef"] = auth_ref
    elif "://" in target:
        raise usage(f"TARGET must be an http(s) URL or a path to a .wasm/.wat file, not {target!r}")
    else:
        if transport or auth_ref:
            raise usage("--transport and --auth-ref apply to remote URLs, not to WASM files")
        path = Path(target).expanduser()
        if path.suffix not in (".wasm", ".wat"):
            raise usage(f"{target}: a local tool must be a .wasm or .wat file")
        if not path.is_file():
            raise usage(f"{target}: no such file")
        origin = {"type": "local_wasm", "path": str(path.resolve())}
    meta: dict[str, Any] = {"name": name or derive_name(target)}
    if description:
        meta["description"] = description
    if labels:
        lab: dict[str, str] = {}
        for item in labels:
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise usage(f"--label must be key=value, not {item!r}")
            lab[k] = v
        meta["labels"] = lab
    spec: dict[str, Any] = {"origin": origin, "policy": {k: v for k, v in policy.items() if v is not None},
                            "autostart": autostart}
    if namespace:
        spec["toolNamespace"] = namespace
    if restart or max_restarts is not None:
        rp: dict[str, Any] = {}
        if restart:
            rp["mode"] = restart
        if max_restarts is not None:
            rp["maxRestarts"] = max_restarts
        spec["restartPolicy"] = rp
    return {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": meta, "spec": spec}


def load_manifest_file(path: str) -> list[dict[str, Any]]:
    """The manifests in a file (``-``: stdin, JSON first, then TOML)."""
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise usage(f"{path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise usage(f"{path}: not UTF-8 text") from None
    data: Any
    if path.endswith(".toml"):
        try:
            data = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as e:
            raise usage(f"{path}: not valid TOML: {e}") from None
    else:
        try:
            data = json.loads(raw)
        except ValueError as e:
            if path != "-":
                raise usage(f"{path}: not valid JSON: {e}") from None
            try:  # stdin has no extension: JSON first, then TOML
                data = tomllib.loads(raw)
            except tomllib.TOMLDecodeError:
                raise usage(f"stdin: neither valid JSON ({e}) nor valid TOML") from None
    if isinstance(data, dict) and isinstance(data.get("services"), list):
        data = data["services"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise usage(f"{path}: expected a manifest object, a list of them, or {{\"services\": [...]}}")
    return items
