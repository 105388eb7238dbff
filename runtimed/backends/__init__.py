"""Backends: how each kind of service is started, probed, introspected and called.

Owns the choice of backend class for a manifest (``create_backend``, which
wraps every backend in ``masking.MaskedBackend`` so its secret values never
leave it in upstream text), the origin checks made when a service is
registered (``prepare_origin``), and what a start failure means for the user
(``failure_cause``: nothing listens, the name does not resolve, no endpoint at
that path...). This is the only place that looks at ``spec.origin.type``;
everything outside this package works through ``runtimed.backends.base.Backend``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from runtimed.backends.base import (  # re-exported: the interface the rest of the daemon uses
    Backend as Backend,
    BackendError as BackendError,
    BackendFault as BackendFault,
    BackendHost as BackendHost,
    BackendStartError as BackendStartError,
    CallContext as CallContext,
    Health as Health,
    InputRequired as InputRequired,
    Interface as Interface,
    InvalidOrigin as InvalidOrigin,
    NullRelay as NullRelay,
    ProbeResult as ProbeResult,
    Relay as Relay,
    RelayUnavailable as RelayUnavailable,
    UpstreamError as UpstreamError,
)
from runtimed.config.manifest import ServiceManifest


def create_backend(manifest: ServiceManifest, host: BackendHost) -> Backend:
    """The backend for ``manifest``, wrapped so that nothing it hands the daemon carries its
    resolved secret values (``masking.MaskedBackend``)."""
    from runtimed.backends.masking import wrap

    origin = manifest.spec.origin
    if origin.type == "remote_mcp":
        from runtimed.backends.remote.backend import RemoteBackend

        return wrap(RemoteBackend, manifest, host)
    if origin.type == "local_wasm":
        from runtimed.backends.wasm.backend import WasmBackend

        return wrap(WasmBackend, manifest, host)
    if origin.type == "stdio":
        from runtimed.backends.stdio.backend import StdioBackend

        return wrap(StdioBackend, manifest, host)
    raise InvalidOrigin(f"unknown origin type {origin.type!r}")


def prepare_origin(manifest: ServiceManifest, settings: Any) -> ServiceManifest:
    """Check a manifest's origin at registration time and fill in derived fields.

    Remote: the URL's host must be allowed. Local WASM: the file must exist and
    be a conforming module; its sha256 is recorded. Stdio: the program is found
    and the working directory exists. Raises ``InvalidOrigin``
    with a message that says exactly what is wrong.
    """
    origin = manifest.spec.origin
    if origin.type == "remote_mcp":
        from runtimed.backends.remote.backend import prepare_remote_origin

        return prepare_remote_origin(manifest, settings)
    if origin.type == "local_wasm":
        from runtimed.backends.wasm.backend import prepare_wasm_origin

        return prepare_wasm_origin(manifest, settings)
    if origin.type == "stdio":
        from runtimed.backends.stdio.backend import prepare_stdio_origin

        return prepare_stdio_origin(manifest, settings)
    raise InvalidOrigin(f"unknown origin type {origin.type!r}")


def origin_label(manifest: ServiceManifest) -> tuple[str, str]:
    """(kind, location) for tables and pages: ("remote", url), ("wasm", path) or ("stdio", command line)."""
    origin = manifest.spec.origin
    if origin.type == "remote_mcp":
        return "remote", origin.url
    if origin.type == "stdio":
        return "stdio", origin.command_line()
    return "wasm", origin.path


def release_leftovers(state_dir: str) -> list[str]:
    """At boot, before any service starts: end what a previous daemon that was killed left
    running (stdio children, found by their pid files). Returns a line per thing ended."""
    from runtimed.backends.stdio.process import reap_stale

    return reap_stale(state_dir)


# What a failure means, recognised in the faults the backends raise (their kind and status) and in
# their text (the operating system's words for a refused connection or an unknown name).
_CAUSE_TEXT: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("refused", re.compile(r"connection refused|errno 111\b|econnrefused", re.I)),
    ("dns", re.compile(r"name or service not known|nodename nor servname|temporary failure in name resolution|"
                       r"cannot resolve host|no address associated", re.I)),
    ("connect-timeout", re.compile(r"timed out connecting", re.I)),
    ("not-allowed", re.compile(r"allowed_hosts|does not admit", re.I)),
    ("unauthorized", re.compile(r"refused the credentials", re.I)),
    ("not-found", re.compile(r"answered HTTP 40[45]\b|answered HTTP 410\b", re.I)),
)
# The causes that mean the origin cannot be reached at all (not: it answered, but refused or failed).
UNREACHABLE_CAUSES = frozenset({"refused", "dns", "connect-timeout", "not-found"})


def explain_cause(cause: str, url: str | None) -> str:
    """A failure's cause in words for the user, with what to check (``url``: a remote origin's URL)."""
    parts = urlsplit(url or "")
    host = parts.hostname or "the host"
    where = f"{host}:{parts.port}" if parts.port else host
    return {
        "refused": f"nothing listens at {where} (connection refused): is the server running at {where}?",
        "dns": f"the host name {host!r} does not resolve: check the URL's host",
        "connect-timeout": f"{where} does not answer (timed out connecting): is the host up, or a firewall in the way?",
        "not-found": f"no MCP endpoint answers at {parts.path or '/'} (HTTP 404, 405 or 410): check the URL's path "
                     "(MCP servers usually serve /mcp, or /sse for the older HTTP+SSE transport)",
        "not-allowed": f"{host} is not among the allowed hosts (remote_allowed_hosts, the origin's allowedHosts)",
        "unauthorized": "the server refused the credentials: check the service's authRef (and that its variable is "
                        "exported where runtimed runs)",
    }.get(cause, cause)


def failure_cause(error: BaseException | str | None, manifest: ServiceManifest) -> str | None:
    """What a remote service's failure means, when it is recognised: ``refused``, ``dns``,
    ``connect-timeout``, ``not-found`` (HTTP 404/405/410 to the handshake, after the HTTP+SSE fallback
    was tried), ``not-allowed``, ``unauthorized``; None otherwise, and for the other kinds (a stdio
    child's own output may say "connection refused" about something else). ``error`` is the exception a
    start raised (its chain is read too) or a failure's text."""
    if manifest.spec.origin.type != "remote_mcp":
        return None
    texts: list[str] = []
    seen: set[int] = set()
    e = error
    while isinstance(e, BaseException) and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, BackendFault) and e.kind == "unauthorized":
            return "unauthorized"
        if isinstance(e, BackendFault) and e.kind == "http" and e.status in (404, 405, 410):
            return "not-found"
        texts.append(str(e))
        e = e.__cause__ or e.__context__
    if isinstance(error, str):
        texts.append(error)
    text = " ".join(texts)
    for cause, pattern in _CAUSE_TEXT:
        if pattern.search(text):
            return cause
    return None
