"""The service manifest: what a user declares about one MCP service.

Owns the pydantic models of ``apiVersion: runtimed/v1, kind: MCPService``, the
deterministic service id, and the readable rendering of validation errors.
Must not touch the disk, the network or a running service: loading a wasm file
or reaching a URL belongs to the backends, storing manifests to the registry.
``schemas/`` is generated from these models (``python scripts/generate_schema.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runtimed.errors import ManifestError

API_VERSION: Final = "runtimed/v1"
KIND: Final = "MCPService"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_NAME_RE = re.compile(NAME_PATTERN)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Query parameter names that carry credentials, judged by the parts of the name (split at anything not a
# letter or digit and at camelCase, compared lower-cased): the last word part names a credential
# (api_key, apiToken, secretKey, token[], X-Amz-Signature), or any part is a word only credentials use
# (password_b64, jwt_assertion). A part that merely contains such a word (monkey, tokenizer) or a last
# part that describes one (token_type, signature_method) is not a credential.
_CREDENTIAL_LAST_WORDS = frozenset({
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "passphrase", "auth",
    "authorization", "signature", "sig", "credential", "jwt", "bearer", "sessid", "sessionid", "hmac",
})
_CREDENTIAL_ANY_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "apikey", "jwt", "bearer",
                                   "credential", "authorization"})
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NAME_SPLIT_RE = re.compile(r"[^A-Za-z0-9]+|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")


def name_parts(name: str) -> list[str]:
    """The word parts of a parameter name, lower-cased: ``X-Api-Key`` → x, api, key; ``apiToken[]`` →
    api, token; ``PHPSESSID`` → phpsessid; digits dropped (``apiKey2`` → api, key)."""
    spaced = _CAMEL_RE.sub("_", name)
    return [p.lower() for p in _NAME_SPLIT_RE.split(spaced) if p and not p.isdigit()]


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def looks_like_secret_query_name(name: str) -> bool:
    """A URL query parameter name that usually carries a credential (see the word lists above)."""
    parts = [_singular(p) for p in name_parts(name)]
    if not parts:
        return False
    last = parts[-1]
    if last in _CREDENTIAL_LAST_WORDS or last.endswith(("sessid", "sessionid")):
        return True
    if len(parts) >= 2 and parts[-2] in ("session", "sess") and last == "id":
        return True
    if len(parts) >= 2 and (parts[-2], last) in (("api", "key"), ("access", "key")):
        return True
    return any(p in _CREDENTIAL_ANY_WORDS for p in parts)


class _Model(BaseModel):
    """Base: unknown keys are errors (a typo must not silently drop a policy)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Metadata(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Unique service name.")
    displayName: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=2048)
    labels: dict[str, str] = Field(default_factory=dict)


class WasmLimits(_Model):
    """Per-service overrides of the daemon's WASM sandbox defaults."""

    fuel: int | None = Field(default=None, gt=0, description="Fuel (instructions, roughly) per call.")
    memoryBytes: int | None = Field(default=None, gt=0, description="Linear memory cap per call.")
    maxOutputBytes: int | None = Field(default=None, gt=0, description="Cap on a call's JSON result.")
    timeoutMs: int | None = Field(default=None, gt=0, description="Wall-clock limit of one call inside the sandbox.")


class LocalWasmOrigin(_Model):
    type: Literal["local_wasm"] = "local_wasm"
    path: str = Field(min_length=1, description="Absolute path of the .wasm or .wat file.")
    sha256: str | None = Field(default=None, description="sha256 of the file as registered.")
    limits: WasmLimits = Field(default_factory=WasmLimits)

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not _SHA256_RE.match(v):
            raise ValueError("sha256 must be 64 lowercase hex characters")
        return v

    def identity(self) -> str:
        return f"local_wasm:{self.path}"


AUTH_REF_PATTERN = r"^(oauth|env:[A-Za-z_][A-Za-z0-9_]*|file:[^\s]+|header_env:[A-Za-z0-9-]+:[A-Za-z_][A-Za-z0-9_]*)$"
SECRET_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[^\s]+)$"


class OAuthOptions(_Model):
    """How the gateway signs in to a service whose ``authRef`` is ``oauth`` (all optional)."""

    grant: Literal["authorization_code", "client_credentials"] = Field(
        default="authorization_code",
        description="authorization_code: a user signs in (runtimectl auth login); client_credentials: the "
                    "gateway gets tokens with its own client id and secret (machine to machine).")
    clientId: str | None = Field(default=None, min_length=1, max_length=2048,
                                 description="A client registered beforehand with the authorization server.")
    clientSecretRef: str | None = Field(default=None, pattern=SECRET_REF_PATTERN,
                                        description="Where that client's secret lives: env:VAR or file:relative/path.")
    scopes: list[str] | None = Field(default=None, description="Scopes to ask for (default: what the server asks).")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and any(not s or any(c.isspace() or c == '"' for c in s) for s in v):
            raise ValueError("each scope must be a non-empty word (no spaces or quotes)")
        return v


class RemoteMcpOrigin(_Model):
    type: Literal["remote_mcp"] = "remote_mcp"
    url: str = Field(description="http(s) URL of the remote MCP endpoint.")
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    authRef: str | None = Field(
        default=None,
        pattern=AUTH_REF_PATTERN,
        description="Where the credential lives: env:VAR, file:relative/path (under secrets/), header_env:Header-Name:VAR, "
                    "or oauth (the MCP authorization flow: runtimectl auth login).",
    )
    oauth: OAuthOptions | None = Field(default=None, description="Options of authRef: oauth.")
    allowedHosts: list[str] | None = Field(
        default=None, description="Hosts this service may connect to (in addition to the daemon-wide list)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in v):
            raise ValueError("url must not contain spaces or control characters")
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https"):
            raise ValueError("url must start with http:// or https://")
        if not parts.hostname:
            raise ValueError("url has no host")
        if parts.username or parts.password:
            raise ValueError("credentials in the url are not allowed; use authRef")
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if looks_like_secret_query_name(key):
                raise ValueError(
                    f"query parameter {key!r} looks like a credential; a manifest holds no secrets "
                    "(it is shown by the API and the status page): use authRef, e.g. header_env:Header-Name:VAR"
                )
        # Normalise: lower-case scheme and host, drop the fragment.
        netloc = parts.hostname.lower() if ":" not in parts.hostname else f"[{parts.hostname.lower()}]"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))

    @model_validator(mode="after")
    def _oauth(self) -> RemoteMcpOrigin:
        if self.oauth is not None and self.authRef != "oauth":
            raise ValueError('oauth options need authRef: "oauth"')
        if self.authRef == "oauth" and self.oauth is not None and self.oauth.grant == "client_credentials" and not (
                self.oauth.clientId and self.oauth.clientSecretRef):
            raise ValueError("the client_credentials grant needs oauth.clientId and oauth.clientSecretRef")
        if self.oauth is not None and self.oauth.clientSecretRef and not self.oauth.clientId:
            raise ValueError("oauth.clientSecretRef needs oauth.clientId")
        return self

    def identity(self) -> str:
        return f"remote_mcp:{self.url}"


# Environment variable names that carry credentials: a literal value under such a name is refused
# (a manifest is shown by the API and the page); the value must be a reference.
_SECRET_ENV_RE = re.compile(r"(?i)(^|_)(api_?key|apikey|key|token|secret|password|passwd|pwd|auth|credentials?|private_?key|pat)(_|$)")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:[^\s]+)$"
_ENV_REF_RE = re.compile(ENV_REF_PATTERN)


def is_env_reference(value: str) -> bool:
    """``env:VAR`` (the daemon's variable) or ``file:relative/path`` (under the state dir's secrets/)."""
    return bool(_ENV_REF_RE.match(value))


def looks_like_secret_name(name: str) -> bool:
    """An environment variable name that usually holds a credential (GITHUB_TOKEN, API_KEY...)."""
    return bool(_SECRET_ENV_RE.search(name))


class StdioLimits(_Model):
    """Limits of a stdio service's child process (``setrlimit``) and its start."""

    memoryBytes: int | None = Field(
        default=None, gt=0, description="Address-space limit (RLIMIT_AS) of the child. Node and the JVM reserve "
        "large address ranges: give them several GiB or leave unset.")
    cpuSeconds: int | None = Field(default=None, gt=0, description="CPU time limit (RLIMIT_CPU) over the child's life.")
    openFiles: int | None = Field(default=None, gt=0, description="Open file descriptors limit (RLIMIT_NOFILE).")
    startTimeoutMs: int | None = Field(
        default=None, gt=0, description="How long the child may take to answer initialize (default 60 s: npx and "
        "uvx may download first).")
    stderrBytes: int | None = Field(default=None, gt=0, description="Size of the stderr log kept per service "
                                    "(default 1 MiB, one older file kept).")


class StdioOrigin(_Model):
    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1, description="The program to run (looked up on PATH); no shell is involved.")
    args: list[str] = Field(default_factory=list, description="Its arguments, passed as they are.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the child besides PATH, HOME and the locale (the daemon's own environment is "
        "not inherited). A value is literal, or a reference resolved at each start: env:VAR (the daemon's "
        "variable) or file:relative/path (under the state dir's secrets/). Names that look like credentials "
        "(…_TOKEN, …_KEY, …SECRET…, PASSWORD) must be references.")
    cwd: str | None = Field(default=None, description="Absolute working directory (default: the state dir's run/<id>/).")
    limits: StdioLimits = Field(default_factory=StdioLimits)
    clientSessions: Literal["shared", "per-client"] = Field(
        default="shared", description="shared: one child serves every client (per-client requests it cannot "
        "attribute are refused); per-client: each session-era client gets a child of its own.")

    @field_validator("command")
    @classmethod
    def _command(cls, v: str) -> str:
        if "\0" in v or v != v.strip():
            raise ValueError("command must not contain NUL or surrounding spaces (give arguments in args)")
        return v

    @field_validator("args")
    @classmethod
    def _args(cls, v: list[str]) -> list[str]:
        for i, a in enumerate(v):
            if "\0" in a:
                raise ValueError(f"args[{i}] contains a NUL character")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"env name {name!r} must be letters, digits and '_' (not starting with a digit)")
            if "\0" in value:
                raise ValueError(f"env {name}: the value contains a NUL character")
            if value.startswith(("env:", "file:")) and not is_env_reference(value):
                raise ValueError(f"env {name}: {value!r} is not a valid reference (env:VAR or file:relative/path)")
            if looks_like_secret_name(name) and not is_env_reference(value):
                raise ValueError(
                    f"env {name} looks like a credential; a manifest holds no secrets (it is shown by the API and "
                    f"the status page): give a reference, env:VAR (exported where the daemon runs) or "
                    f"file:relative/path (under the state dir's secrets/)")
        return v

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("cwd must be an absolute path (runtimectl resolves a relative one before sending it)")
        return v

    def identity(self) -> str:
        return "stdio:" + json.dumps([self.command, self.args, self.cwd], separators=(",", ":"))

    def command_line(self) -> str:
        """The command as a user would type it (arguments quoted where needed; env values never shown)."""
        return shlex.join([self.command, *self.args])


Origin = Annotated[LocalWasmOrigin | RemoteMcpOrigin | StdioOrigin, Field(discriminator="type")]


class RateLimit(_Model):
    calls: int = Field(gt=0)
    per: Literal["second", "minute", "hour", "day"] = "minute"


class CachePolicy(_Model):
    ttlSeconds: float = Field(gt=0, description="How long a cached result is served.")
    tools: list[str] = Field(default_factory=list, description="Tools (names or globs) whose results are cacheable.")
    readOnlyHint: bool = Field(
        default=False, description="Also cache every tool annotated readOnlyHint: true."
    )
    maxEntries: int = Field(default=1000, gt=0)


class Policy(_Model):
    """Per-service call policy. ``None`` means: the daemon's default."""

    timeoutMs: int | None = Field(default=None, gt=0)
    connectTimeoutMs: int | None = Field(default=None, gt=0)
    allowedTools: list[str] | None = Field(default=None, description="Exact names or globs; None = all.")
    deniedTools: list[str] = Field(default_factory=list, description="Exact names or globs.")
    readOnly: bool = Field(default=False, description="Expose only tools annotated readOnlyHint: true.")
    maxPayloadBytes: int | None = Field(default=None, gt=0)
    maxConcurrency: int | None = Field(default=None, gt=0)
    maxQueue: int | None = Field(default=None, ge=0)
    queueTimeoutMs: int | None = Field(default=None, gt=0)
    rateLimit: RateLimit | None = None
    cache: CachePolicy | None = None
    retries: int | None = Field(default=None, ge=0, le=10, description="Extra tries for safe requests.")


class Backoff(_Model):
    initialMs: int = Field(default=500, gt=0)
    maxMs: int = Field(default=30_000, gt=0)
    multiplier: float = Field(default=2.0, ge=1.0)


class RestartPolicy(_Model):
    mode: Literal["never", "on-failure", "always"] = "on-failure"
    maxRestarts: int = Field(default=5, ge=0)
    windowSeconds: float = Field(default=300, gt=0)
    backoff: Backoff = Field(default_factory=Backoff)


class HealthCheck(_Model):
    intervalSeconds: float | None = Field(default=None, gt=0)
    timeoutMs: int | None = Field(default=None, gt=0)
    degradedMs: int | None = Field(default=None, gt=0, description="A probe slower than this is DEGRADED.")


class Spec(_Model):
    origin: Origin
    policy: Policy = Field(default_factory=Policy)
    enabled: bool = True
    autostart: bool = True
    restartPolicy: RestartPolicy = Field(default_factory=RestartPolicy)
    healthCheck: HealthCheck = Field(default_factory=HealthCheck)
    toolNamespace: str | None = Field(default=None, pattern=NAME_PATTERN, description="Default: the service name.")
    pinTools: bool = Field(default=False, description="Withhold a tool whose definition (name, description, schemas, "
                                                      "annotations) changed since it was first seen or approved, "
                                                      "until it is approved (runtimectl approve).")


class ServiceManifest(_Model):
    apiVersion: Literal["runtimed/v1"] = API_VERSION
    kind: Literal["MCPService"] = KIND
    metadata: Metadata
    spec: Spec

    @model_validator(mode="after")
    def _namespace_default(self) -> ServiceManifest:
        if self.spec.toolNamespace is None:
            self.spec.toolNamespace = self.metadata.name
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.spec.toolNamespace or self.metadata.name

    @property
    def id(self) -> str:
        return service_id(self.spec.origin)

    def public_dict(self) -> dict[str, Any]:
        """The manifest as JSON. Manifests hold only secret *references*, never values."""
        return self.model_dump(mode="json", exclude_none=True)


_IDS: dict[str, str] = {}  # origin identity -> service id (a pure function; memoised, bounded)


def service_id(origin: LocalWasmOrigin | RemoteMcpOrigin | StdioOrigin) -> str:
    """``svc_`` + 12 hex chars of sha256 over the origin's identity (path, URL, or command, args and cwd)."""
    identity = origin.identity()
    sid = _IDS.get(identity)
    if sid is None:
        if len(_IDS) >= 4096:
            _IDS.clear()
        sid = _IDS[identity] = "svc_" + hashlib.sha256(identity.encode()).hexdigest()[:12]
    return sid


def is_valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def describe_validation_error(err: ValidationError) -> str:
    """One readable line per problem: ``spec.policy.timeoutMs: must be > 0``."""
    lines = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e.get("loc", ()) if not str(p).startswith("function-"))
        # Discriminated unions put the tag in the location; keep it readable.
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif e.get("type") == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == NAME_PATTERN:
            msg = "must match [a-z0-9][a-z0-9_-]{0,31} (lowercase letters, digits, '-' and '_', at most 32)"
        elif e.get("type") == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern"):
            msg = f"must match {str(e['ctx']['pattern']).strip('^$')}"
        elif e.get("type") == "union_tag_invalid":
            msg = "origin.type must be 'local_wasm', 'remote_mcp' or 'stdio'"
        elif e.get("type") == "union_tag_not_found":
            msg = "origin needs a 'type': 'local_wasm', 'remote_mcp' or 'stdio'"
        lines.append(f"{loc or '(manifest)'}: {msg}")
    return "; ".join(lines)


def parse_manifest(data: Any) -> ServiceManifest:
    if not isinstance(data, dict):
        raise ManifestError("a manifest must be a JSON object")
    try:
        return ServiceManifest.model_validate(data)
    except ValidationError as e:
        raise ManifestError(describe_validation_error(e)) from None
