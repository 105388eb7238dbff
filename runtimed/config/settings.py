"""Daemon settings: flags, then ``RUNTIMED_*`` environment variables, then
``<state-dir>/config.toml``, then ``$XDG_CONFIG_HOME/runtimed/config.toml``
(``~/.config/runtimed/config.toml``), then built-in defaults, in that order.

Owns the ``Settings`` model, where its values come from (``load_settings``;
``resolve_state_dir`` and ``user_config_path`` for ``runtimectl daemon``), the
one naming of the files and variables (snake_case everywhere, ``timeout_ms``;
the nested defaults' camelCase field names stay accepted in the files), and
the validation messages at start: each names the key, where it was set, and
for an unknown key the closest known one. Must not start anything or read the
registry.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_snake

from runtimed.errors import ConfigError

DEFAULT_PORT = 4707
CONFIG_NAME = "config.toml"


def _home(environ: Mapping[str, str] | None) -> str:
    env = os.environ if environ is None else environ
    return env.get("HOME") or os.path.expanduser("~")


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or os.path.join(_home(environ), ".local", "state")
    return Path(base) / "runtimed"


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user's config file: ``$XDG_CONFIG_HOME/runtimed/config.toml`` (``~/.config/runtimed/config.toml``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(_home(environ), ".config")
    return Path(base) / "runtimed" / CONFIG_NAME


# The nested defaults keep the manifest's camelCase attribute names (the policy code reads
# ``manifest.spec.policy.timeoutMs or settings.policy.timeoutMs``); files and variables name them
# in snake_case (``timeout_ms``, ``RUNTIMED_POLICY_TIMEOUT_MS``), the alias every field gets here.
# A field added to these models needs nothing more: its snake_case alias is derived.
_NESTED = ConfigDict(extra="forbid", alias_generator=to_snake, populate_by_name=True)


class PolicyDefaults(BaseModel):
    """Daemon-wide defaults for every per-service policy left unset."""

    model_config = _NESTED
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
    model_config = _NESTED
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
    store: str | None = Field(
        default=None, repr=False,
        description="Where state is kept and shared: 'embedded' (the state dir's files, the default) or "
                    "redis://[:PASSWORD@]HOST:PORT/DB, one Redis shared by several replicas (docs/spec/scale-out.md).")
    replica: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="This daemon's name among replicas (default: host-pid-random); shown on the page, in events, "
                    "call records and /metrics.")
    signing_key: str | None = Field(
        default=None, repr=False,
        description="KID:SECRET[,KID:SECRET...] signing requestState (the first signs, all verify: rotation); "
                    "default: a key kept in the store.")
    oauth_issuer: str | None = Field(
        default=None,
        description="An OAuth authorization server whose access tokens /mcp accepts (the gateway as an MCP resource "
                    "server, docs/spec/auth.md); then /mcp needs a token from it (or the static auth_token).")
    oauth_audience: str | None = Field(
        default=None,
        description="This gateway's resource URI, the audience its tokens must name (default: <base url>/mcp; behind "
                    "a proxy, the URL clients use).")
    oauth_scopes: list[str] = Field(default_factory=list,
                                    description="Scopes every token must carry (403 insufficient_scope otherwise).")
    oauth_client_id: str | None = Field(default=None, description="Client id for introspecting opaque tokens (RFC 7662).")
    oauth_client_secret: str | None = Field(default=None, repr=False,
                                            description="Its secret (the introspection endpoint's client authentication).")
    oauth_profile_claim: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="A claim of the issuer's access tokens that names a profile: a token carrying it reaches only "
                    "/mcp/@<that profile>, as a scoped token does (docs/spec/profiles.md).")
    public_url: str | None = Field(
        default=None,
        description="This daemon's address as browsers and authorization servers reach it (https behind a proxy). "
                    "Signing in to OAuth services redirects to <public_url>/oauth/callback, and an https one serves the "
                    "gateway's Client ID Metadata Document at <public_url>/oauth/client-metadata.json. Default: the "
                    "daemon's loopback address.")
    policy: PolicyDefaults = Field(default_factory=PolicyDefaults)
    wasm: WasmDefaults = Field(default_factory=WasmDefaults)

    @field_validator("store")
    @classmethod
    def _store(cls, v: str | None) -> str | None:
        if v in (None, "", "embedded"):
            return None
        assert v is not None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'embedded' or a Redis URL, redis://HOST:PORT/DB (rediss:// for TLS)")
        return v

    @field_validator("oauth_issuer", "oauth_audience", "public_url")
    @classmethod
    def _oauth_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        assert v is not None
        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            raise ValueError("must be an absolute http(s) URL without a fragment")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
            raise ValueError("must use https (http only on loopback, for tests)")
        return v

    @property
    def resource_uri(self) -> str:
        """The audience tokens must name: ``oauth_audience``, else this daemon's ``/mcp``."""
        return self.oauth_audience or f"{self.base_url}/mcp"

    @field_validator("auth_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v == "":
            return None
        if v is not None and len(v) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @property
    def callback_base_url(self) -> str:
        """Where a browser on this machine reaches the daemon (a wildcard bind answers on loopback)."""
        if self.host in ("0.0.0.0", "::", "[::]", ""):
            return f"http://127.0.0.1:{self.port}"
        return self.base_url

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


# -- where values come from -------------------------------------------------------------------

# Environment variables: RUNTIMED_<FIELD>, and RUNTIMED_<TABLE>_<FIELD> for the nested tables
# (e.g. RUNTIMED_POLICY_TIMEOUT_MS for [policy] timeout_ms).
_LIST_FIELDS = {"allowed_hosts", "remote_allowed_hosts", "oauth_scopes"}


class _Layer:
    """One source of values (a file, the environment, the flags): the values in the files'
    naming (snake_case), and for each dotted key where it was set."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}

    def set(self, dotted: str, value: Any, origin: str | None = None) -> None:
        *tables, leaf = dotted.split(".")
        target = self.values
        for t in tables:
            target = target.setdefault(t, {})
        target[leaf] = value
        self.origin[dotted] = origin or self.label


def _known(model: type[BaseModel]) -> dict[str, tuple[str, type[BaseModel] | None]]:
    """A model's keys as files name them -> (the key, its sub-model when it is a table); each
    field is known by its snake_case name and, for compatibility, by its attribute name."""
    out: dict[str, tuple[str, type[BaseModel] | None]] = {}
    for name, field in model.model_fields.items():
        key = field.alias or name
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        out[key] = (key, sub)
        out.setdefault(name, (key, sub))
    return out


def _closest(key: str, model: type[BaseModel]) -> str | None:
    """The known key (snake_case) that ``key`` most likely meant, if any is close."""
    names = [f.alias or n for n, f in model.model_fields.items()]
    squash = key.lower().replace("_", "").replace("-", "")
    match = [n for n in names if n.replace("_", "") == squash] or difflib.get_close_matches(
        to_snake(key).replace("-", "_"), names, n=1, cutoff=0.6)
    return match[0] if match else None


def _suggest(key: str, model: type[BaseModel], prefix: str) -> str:
    match = _closest(key, model)
    if match:
        return f"; did you mean {prefix}{match}?"
    names = [f.alias or n for n, f in model.model_fields.items()]
    return f"; known settings{' in [' + prefix[:-1] + ']' if prefix else ''}: {', '.join(names)}"


def _canonical(values: Mapping[str, Any], model: type[BaseModel], prefix: str, layer: _Layer,
               problems: list[str], origin: str | None = None) -> None:
    """Put ``values`` (a file's table, in either naming) into ``layer`` under their snake_case keys;
    unknown keys, a key given in both namings and a value that should be a table are ``problems``."""
    known = _known(model)
    seen: dict[str, str] = {}
    for key, value in values.items():
        if key not in known:
            problems.append(f"{prefix}{key}: unknown setting{_suggest(key, model, prefix)}")
            continue
        canon, sub = known[key]
        if canon in seen:
            other = seen[canon] if key == canon else key
            problems.append(f"{prefix}{other} and {prefix}{canon} are the same setting; keep {prefix}{canon}")
            continue
        seen[canon] = key
        if sub is not None:
            if not isinstance(value, Mapping):
                problems.append(f"{prefix}{canon}: must be a table ([{prefix}{canon}])")
                continue
            _canonical(value, sub, f"{prefix}{canon}.", layer, problems, origin)
        else:
            layer.set(prefix + canon, value, origin)


def _read_file(path: Path) -> dict[str, Any] | None:
    """A config file's table, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read: {getattr(e, 'strerror', None) or e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _file_layer(path: Path) -> _Layer | None:
    data = _read_file(path)
    if data is None:
        return None
    layer = _Layer(str(path))
    problems: list[str] = []
    _canonical(data, Settings, "", layer, problems)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return layer


def _env_layer(environ: Mapping[str, str]) -> _Layer:
    layer = _Layer("RUNTIMED_* variables")
    problems: list[str] = []
    tables = {k: v for k, v in _known(Settings).items() if v[1] is not None}
    for key, value in environ.items():
        if not key.startswith("RUNTIMED_") or key in ("RUNTIMED_URL",):
            continue
        name = key[len("RUNTIMED_"):].lower()
        table = next((t for t, (_, sub) in tables.items() if name.startswith(t + "_")), None)
        if table is not None:
            sub = tables[table][1]
            assert sub is not None
            field = name[len(table) + 1:]
            known = {f.alias or n: f for n, f in sub.model_fields.items()}
            if field in known:
                layer.set(f"{table}.{field}", value, key)
            else:
                match = _closest(field, sub)
                hint = f"; did you mean RUNTIMED_{table.upper()}_{match.upper()}?" if match else ""
                problems.append(f"{key}: unknown setting{hint}")
        elif name in _LIST_FIELDS:
            layer.set(name, [h.strip() for h in value.split(",") if h.strip()], key)
        elif name in Settings.model_fields:
            layer.set(name, value, key)
    if problems:
        raise ConfigError("; ".join(problems))
    return layer


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_state_dir(flag: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The state dir ``runtimed`` would use: ``--state-dir``, else ``RUNTIMED_STATE_DIR``, else
    ``state_dir`` in the user's config file, else ``$XDG_STATE_HOME/runtimed``. Raises ``ConfigError``
    for an unreadable config file."""
    env = dict(os.environ if environ is None else environ)
    chosen: str | os.PathLike[str] | None = flag or env.get("RUNTIMED_STATE_DIR")
    if not chosen:
        user = _file_layer(user_config_path(env))
        chosen = user.values.get("state_dir") if user is not None else None
    return Path(chosen or default_state_dir(env)).expanduser().resolve()


def _describe(err: ValidationError, origin: Mapping[str, str]) -> str:
    """One readable part per problem, naming where the value was set: ``policy.retries: Input should
    be less than or equal to 10 (in /home/me/.config/runtimed/config.toml)``."""
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        where = origin.get(loc)
        parts.append(f"{loc or '(settings)'}: {msg}" + (f" (in {where})" if where else ""))
    return "; ".join(parts)


def load_settings(flags: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build validated settings. ``flags`` holds only the flags actually given.

    Precedence, highest first: flags, ``RUNTIMED_*``, ``<state-dir>/config.toml``, the user's
    ``config.toml`` (``user_config_path``), defaults; tables merge key by key. The state dir itself
    comes from the flag, ``RUNTIMED_STATE_DIR`` or the user's file (never from its own file)."""
    env = dict(os.environ if environ is None else environ)
    flag_layer = _Layer("flags")
    for k, v in (flags or {}).items():
        if v is not None:
            flag_layer.set(k, v, f"--{k.replace('_', '-')}")
    env_layer = _env_layer(env)
    user_path = user_config_path(env)
    user_layer = _file_layer(user_path)
    chosen = flag_layer.values.get("state_dir") or env_layer.values.get("state_dir") or (
        user_layer.values.get("state_dir") if user_layer is not None else None)
    state_dir = Path(chosen or default_state_dir(env)).expanduser()
    state_layer = _file_layer(state_dir / CONFIG_NAME)
    if state_layer is not None:  # a state dir's own file cannot move it
        state_layer.values.pop("state_dir", None)
        state_layer.origin.pop("state_dir", None)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for layer in (user_layer, state_layer, env_layer, flag_layer):
        if layer is not None:
            merged = _merge(merged, layer.values)
            origin.update(layer.origin)
    merged["state_dir"] = state_dir.resolve()
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(f"invalid settings: {_describe(e, origin)}") from None
    if not settings.is_loopback and not settings.auth_token:
        raise ConfigError(
            f"refusing to listen on {settings.host} without a token: a non-loopback bind exposes every "
            "service. Set --auth-token or RUNTIMED_AUTH_TOKEN (16+ characters), or bind 127.0.0.1."
        )
    return settings
