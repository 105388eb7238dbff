"""What an HTTP failure means for the remote backend: ``BackendFault`` s with
user-readable messages.

Owns the one mapping from a wire error (httpx's or the lean client's ``H1Error``)
to a fault (``fault_from_exception``) and the one mapping from an HTTP error
status to a fault (``status_fault``: 401/403 are refused credentials, anything
else an ``http`` fault carrying the status). Must not: send or read anything,
know MCP methods, sessions or eras, or decide what a transport does with a
status before it is an error (404 "session lost", 405 "no stream": the
transports' own rules).
"""

from __future__ import annotations

import httpx

from runtimed.errors import (
    BackendFault,
    ConnectError,
    ConnectTimeout,
    H1Error,
    LocalProtocolError,
    ProtocolError,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)

WIRE_ERRORS = (httpx.HTTPError, H1Error)

# (error classes, what it means, kind, safe to retry, with the error's own text), first match wins:
# httpx's and the lean client's errors read the same to the user.
_WIRE_FAULTS: tuple[tuple[tuple[type[BaseException], ...], str, str, bool, bool], ...] = (
    ((httpx.ConnectTimeout, httpx.PoolTimeout, ConnectTimeout), "timed out connecting", "connect", True, False),
    ((httpx.ConnectError, ConnectError), "cannot connect", "connect", True, True),
    ((httpx.ReadTimeout, ReadTimeout), "no data from the upstream within the read timeout", "timeout", False, False),
    ((httpx.WriteTimeout, WriteTimeout), "timed out sending the request", "timeout", False, False),
    ((httpx.RemoteProtocolError, httpx.ReadError, ReadError, ProtocolError),
     "the connection was closed or reset mid-response", "protocol", False, True),
    ((httpx.WriteError, WriteError), "the connection failed while sending", "connect", False, True),
    ((httpx.HTTPError, LocalProtocolError), "HTTP error", "protocol", False, True),
    ((H1Error,), "the connection was closed or reset mid-response", "protocol", False, True),
)

CREDENTIALS_HINT = "; check the service's authRef"


def fault_from_exception(e: BaseException, what: str) -> BackendFault:
    """A user-readable fault for an httpx or ``h1`` error raised while doing ``what``."""
    if isinstance(e, BackendFault):
        return e
    for classes, meaning, kind, safe_to_retry, with_text in _WIRE_FAULTS:
        if isinstance(e, classes):
            text = f" ({_short(e)})" if with_text else ""
            return BackendFault(f"{what}: {meaning}{text}", kind=kind, safe_to_retry=safe_to_retry)
    return BackendFault(f"{what}: {type(e).__name__}", kind="protocol")


def status_fault(status: int, what: str, detail: str = "", *, hint: bool = True, name_5xx: bool = False) -> BackendFault:
    """The fault an HTTP error status (>= 400) means, the request being ``what``.

    401 and 403: ``unauthorized`` (``hint`` adds where to look); anything else:
    ``http``, the upstream "answered" the status (or "failed with" it, for a 5xx
    when ``name_5xx``), followed by ``detail``. The fault carries the status.
    """
    if status in (401, 403):
        return BackendFault(
            f"{what}: the upstream refused the credentials (HTTP {status}){CREDENTIALS_HINT if hint else ''}",
            kind="unauthorized",
            status=status,
        )
    verb = "failed with" if name_5xx and status >= 500 else "answered"
    return BackendFault(f"{what}: the upstream {verb} HTTP {status}{detail}", kind="http", status=status)


def _short(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text[:200]
