"""Daemon settings: flags, then ``RUNTIMED_*`` environment variables, then
``config.toml`` in the state dir, then built-in defaults, in that order.

Owns the ``Settings`` model, where its values come from, and the validation
messages at start. Must not start anything or read the registry.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtimed.config.manifest import describe_validation_error
from runtimed.errors import ConfigError

DEFAULT_PORT = 4707


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "runtimed"


class PolicyDefaults(BaseModel):
    """Daemon-wide defaults for every per-service policy left unset."""

    model_config = ConfigDict(extra="forbid")
    timeoutMs: int = Field(default=60_000, gt=0)
    connectTimeoutMs: int = Field(default=5_000, gt=0)
    maxPayloadBytes: int = Field(default=4 * 1024 * 1024, gt=0)
    maxConcurrency: int = Field(default=16, gt=0)
    maxQueue: int = Field(default=64, ge=0)
    queueTimeoutMs: int = Field(default=30_000, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    breakerThreshold: int = Field(default=5, gt=0, description="Consecutive upstream faults that open the breaker.")
    breakerCooldownMs: int = Field(default=10_000, gt=0)


class WasmDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fuel: int = Field(default=500_000_000, gt=0)
    memoryBytes: int = Field(default=64 * 1024 * 1024, gt=0)
    timeoutMs: int = Field(default=10_000, gt=0)
    maxOutputBytes: int = Field(default=1024 * 1024, gt=0)
    threads: int = Field(default=4, gt=0, le=64,
                         description="Threads of each WASM service's own call pool: one service's slow calls "
                                     "cannot take another's threads.")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    state_dir: Path = Field(default_factory=default_state_dir)
    auth_token: str | None = Field(default=None, repr=False)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    allowed_hosts: list[str] = Field(default_factory=list, description="Extra Host/Origin names accepted (behind a proxy).")
    remote_allowed_hosts: list[str] | None = Field(
        default=None, description="Hosts remote services may reach; None = any (loopback included)."
    )
    admin_tools: bool = False
    probe_interval_s: float = Field(default=15.0, gt=0)
    probe_timeout_ms: int = Field(default=5_000, gt=0)
    probe_degraded_ms: int = Field(default=1_000, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    capture_arguments: bool = False
    capture_intent: bool = False
    list_page_size: int = Field(default=1000, ge=1, le=100_000,
                                description="Items per page of tools/list (and the other lists) on /mcp; clients follow nextCursor.")
    interface_refresh_min_ms: int = Field(
        default=10_000, ge=0, le=3_600_000,
        description="Shortest time between two refreshes of a service's interface triggered by clients listing "
                    "/mcp (the aggregate), whatever the upstream's ttlMs (0 or absent means stale at once).")
    session_idle_s: float = Field(
        default=3600.0, gt=0, le=7 * 86400,
        description="A session-era client session unused this long (no request, no open GET stream, nothing in "
                    "flight) is ended, with the upstream sessions opened for it.")
    max_sessions: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Session-era client sessions held at once; at the cap a new initialize ends the one idle the "
                    "longest (none idle: the initialize is refused with 503).")
    session_client_max_bytes: int = Field(
        default=16 * 1024, ge=1024, le=8 * 1024 * 1024,
        description="Largest clientInfo plus capabilities (as JSON) a session keeps; a larger initialize is "
                    "refused with -32602 (nothing is cut: the gateway relays what a client declared).")
    policy: PolicyDefaults = Field(default_factory=PolicyDefaults)
    wasm: WasmDefaults = Field(default_factory=WasmDefaults)

    @field_validator("auth_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v == "":
            return None
        if v is not None and len(v) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def base_url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"


def is_loopback_host(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Environment variables: RUNTIMED_<FIELD>, and RUNTIMED_POLICY_<FIELD> /
# RUNTIMED_WASM_<FIELD> for the nested defaults (e.g. RUNTIMED_POLICY_TIMEOUT_MS).
_LIST_FIELDS = {"allowed_hosts", "remote_allowed_hosts"}


def _camel(snake: str) -> str:
    head, *rest = snake.lower().split("_")
    return head + "".join(p.capitalize() for p in rest)


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith("RUNTIMED_") or key in ("RUNTIMED_URL",):
            continue
        name = key[len("RUNTIMED_"):].lower()
        if name.startswith("policy_"):
            out.setdefault("policy", {})[_camel(name[len("policy_"):])] = value
        elif name.startswith("wasm_"):
            out.setdefault("wasm", {})[_camel(name[len("wasm_"):])] = value
        elif name in _LIST_FIELDS:
            out[name] = [h.strip() for h in value.split(",") if h.strip()]
        elif name in Settings.model_fields:
            out[name] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_settings(flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build validated settings. ``flags`` holds only the flags actually given."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = _from_env(dict(os.environ if environ is None else environ))
    state_dir = Path(flags.get("state_dir") or env.get("state_dir") or default_state_dir()).expanduser()
    file_values: dict[str, Any] = {}
    config_path = state_dir / "config.toml"
    if config_path.exists():
        try:
            file_values = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{config_path}: not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"{config_path}: cannot be read: {e.strerror or e}") from None
        file_values.pop("state_dir", None)
    merged = _merge(_merge(file_values, env), flags)
    merged["state_dir"] = state_dir.resolve()
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as e:
        sources = f"flags, RUNTIMED_* variables or {config_path}"
        raise ConfigError(f"invalid settings ({sources}): {describe_validation_error(e)}") from None
    if not settings.is_loopback and not settings.auth_token:
        raise ConfigError(
            f"refusing to listen on {settings.host} without a token: a non-loopback bind exposes every "
            "service. Set --auth-token or RUNTIMED_AUTH_TOKEN (16+ characters), or bind 127.0.0.1."
        )
    return settings
