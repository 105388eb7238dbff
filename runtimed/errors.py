"""Every error runtimed and runtimectl raise on purpose, in one tree.

Owns the exception classes and their fields; nothing else. Each subsystem
raises these (its own module may re-export the ones it owns); the two places
that turn them into answers are ``runtimed.gateway.errors`` (JSON-RPC, for
``/mcp``) and ``runtimed.http.errors`` (JSON with an HTTP status, for
``/api``). Must not: import anything from runtimed, or hold behaviour beyond
building a message. ``str(e)`` of every class here is safe to show a user: no
secret, no traceback.

The tree::

    RuntimedError
    ├── ConfigError                 settings that do not validate (also a ValueError)
    ├── ManifestError               a manifest that does not validate (also a ValueError)
    ├── RegistryError               registry.json unusable, or a conflicting change
    │   ├── StateDirBusy            another daemon holds the state dir
    │   └── RegistryConflict        another replica changed the registry first (reload, try again)
    ├── StoreUnavailable            the shared store cannot be reached: changes are refused (503)
    ├── SupervisorError             a lifecycle request refused (carries the HTTP status)
    ├── ApiError                    a REST request refused (carries the HTTP status)
    ├── OAuthError                  a step of an OAuth flow failed (discovery, registration, token...)
    ├── BootstrapError              client bootstrap cannot proceed
    │   ├── ConfigParseError        an existing client file that cannot be parsed
    │   └── FileOpError             a read or write of a client file failed
    ├── PolicyRefusal               a policy refused a request (names the policy)
    ├── QueueFull                   the concurrency queue is full (the engine turns it into a refusal)
    ├── QueueTimeout                a call waited in the queue too long (likewise)
    ├── RpcError                    answer this JSON-RPC request with this error (code, message, data)
    ├── BackendError                what a backend raises on purpose
    │   ├── UpstreamError           the upstream answered a JSON-RPC error: pass it on
    │   ├── BackendFault            the service failed us (timeout, connect, http, protocol, payload...)
    │   │   └── SignInRequired      an OAuth service has no usable sign-in (says the command to run)
    │   ├── BackendStartError       start() failed
    │   ├── InvalidOrigin           a manifest's origin cannot be used
    │   ├── RelayUnavailable        no client can answer a server-to-client request
    │   ├── InputRequired           stateless era: the call needs client input first
    │   └── SecretError             an authRef that cannot be resolved
    ├── H1Error                     the lean HTTP/1.1 client's wire errors (turned into BackendFault)
    │   ├── ConnectTimeout, ConnectError, WriteTimeout, WriteError, ReadTimeout, ReadError
    │   └── ProtocolError, LocalProtocolError
    └── ClientError                 runtimectl: something the user should read (carries the exit code)
        ├── DaemonUnavailable       the daemon cannot be reached
        └── DaemonError             the daemon answered with an error (carries the HTTP status)

Private control-flow signals that never leave their module are not part of the
tree (``h1._Stale``, ``wasm.execute._Stop``, ``gateway.transport.HttpReply``,
``remote.streamable.SessionLost``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RuntimedError(Exception):
    """The root: every error raised on purpose by runtimed or runtimectl."""


# -- configuration ----------------------------------------------------------------


class ConfigError(RuntimedError, ValueError):
    """Settings that do not validate; the message says which and why."""


class ManifestError(RuntimedError, ValueError):
    """A manifest that does not validate; the message says what and where."""


# -- persisted state and lifecycle ---------------------------------------------------


class RegistryError(RuntimedError):
    """The registry file is unusable, or a change conflicts with what is registered."""


class StateDirBusy(RegistryError):
    """Another daemon holds the state dir."""


class RegistryConflict(RegistryError):
    """Another replica committed a registry change since this one loaded it: reload and try again."""


class StoreUnavailable(RuntimedError):
    """The shared store (Redis) cannot be reached: calls go on from memory, changes are refused."""


class SupervisorError(RuntimedError):
    """A request the supervisor refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class ApiError(RuntimedError):
    """A REST request refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OAuthError(RuntimedError):
    """A step of an OAuth flow failed: discovery, registration, the authorization response or a
    token request. ``error`` is the OAuth error code when the server gave one (``invalid_grant``...);
    the message says which server and step, never a token or secret."""

    def __init__(self, message: str, error: str | None = None, status: int = 502) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


# -- client bootstrap -------------------------------------------------------------------


class BootstrapError(RuntimedError):
    """Bootstrap cannot proceed; the message says which file and why."""


class ConfigParseError(BootstrapError):
    """An existing client file that cannot be parsed; it is left untouched."""

    def __init__(self, path: Path, reason: str, line: int | None, column: int | None, suffix: str = "") -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f" (line {line}" + (f", column {column}" if column is not None else "") + ")"
        super().__init__(f"{path}{where}: {reason}{suffix}")

    def untouched(self) -> ConfigParseError:
        """The same error, saying that nothing was written."""
        return ConfigParseError(self.path, self.reason, self.line, self.column, "; left untouched, nothing was written")


class FileOpError(BootstrapError):
    """A read or write failed; the message names the file."""


# -- policies ---------------------------------------------------------------------------


class PolicyRefusal(RuntimedError):
    """A policy refused a request; ``policy`` names which.

    ``meta`` carries machine-readable facts (e.g. ``retryAfterSeconds``).
    """

    def __init__(self, policy: str, message: str, **meta: Any) -> None:
        super().__init__(message)
        self.policy = policy
        self.meta = meta


class QueueFull(RuntimedError):
    """More calls are waiting than the queue holds."""


class QueueTimeout(RuntimedError):
    """A call waited in the queue longer than allowed."""


# -- the protocol ------------------------------------------------------------------------


class RpcError(RuntimedError):
    """Answer the request with this JSON-RPC error. ``str(e)`` is user-safe.

    ``http_status`` is the status the transport answers with (None: its default).
    """

    def __init__(self, code: int, message: str, data: Any = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    def to_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


# -- backends ------------------------------------------------------------------------------


class BackendError(RuntimedError):
    """Base of everything a backend raises on purpose. ``str(e)`` is user-safe."""


class UpstreamError(BackendError):
    """The upstream (or tool) answered with a JSON-RPC error: pass it on as-is.

    Not a fault of the service: it does not count toward the circuit breaker.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class BackendFault(BackendError):
    """The service failed us: timeout, connection, 5xx, protocol or payload.

    ``kind`` is one of: ``timeout``, ``connect``, ``http``, ``protocol``,
    ``payload``, ``unauthorized``, ``crashed``. ``safe_to_retry`` is True only
    when the request surely did not reach the upstream (connect errors).
    These count toward the circuit breaker (``payload`` and ``unauthorized``
    too, being the service's doing).
    """

    def __init__(self, message: str, kind: str = "protocol", *, safe_to_retry: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.safe_to_retry = safe_to_retry
        self.status = status


class SignInRequired(BackendFault):
    """A service signed in with OAuth (``authRef: "oauth"``) has no usable token: never signed in,
    signed out, or its refresh was refused. The message says what to run; the supervisor waits for
    the sign-in instead of restarting."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="unauthorized")


class BackendStartError(BackendError):
    """``start()`` failed; the message says why (shown to the user, used for CRASHED)."""


class InvalidOrigin(BackendError):
    """A manifest's origin cannot be used (missing file, bad module, host not allowed...)."""


class RelayUnavailable(BackendError):
    """A server-to-client request has no client able to answer it."""


class InputRequired(BackendError):
    """Stateless era: the call needs client input before it can finish.

    ``requests`` maps a key to a server-to-client request ``{"method", "params"}``;
    ``request_state`` is the backend's opaque continuation, handed back in
    ``CallContext.request_state`` on the retry together with the responses.
    Backends raise this only when ``relay.request`` raised ``RelayUnavailable``
    because the downstream is a stateless-era client.
    """

    def __init__(self, requests: dict[str, Any], request_state: str) -> None:
        super().__init__("input required")
        self.requests = requests
        self.request_state = request_state


class SecretError(BackendError):
    """An ``authRef`` that cannot be resolved; the message never holds a value."""


# -- the lean HTTP/1.1 client (backends/remote/h1.py) -------------------------------------


class H1Error(RuntimedError):
    """Anything that went wrong on the wire."""


class ConnectTimeout(H1Error):
    """No connection (or no free pool slot) within the connect timeout."""


class ConnectError(H1Error):
    """The connection could not be made (refused, unresolvable, TLS failure)."""


class WriteTimeout(H1Error):
    """The request could not be sent within the write timeout."""


class WriteError(H1Error):
    """The connection failed while sending the request."""


class ReadTimeout(H1Error):
    """No data from the upstream within the read timeout."""


class ReadError(H1Error):
    """The connection was reset or closed while reading the response."""


class ProtocolError(H1Error):
    """The upstream broke HTTP/1.1 framing (or closed mid-message)."""


class LocalProtocolError(H1Error):
    """The request itself cannot be sent as HTTP/1.1 (e.g. a header value with a line break)."""


# -- runtimectl ------------------------------------------------------------------------------


class ClientError(RuntimedError):
    """Something the user should read; ``exit_code`` is the process exit code."""

    exit_code = 1


class DaemonUnavailable(ClientError):
    """The daemon cannot be reached."""


class DaemonError(ClientError):
    """The daemon answered with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
