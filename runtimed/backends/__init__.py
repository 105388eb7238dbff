"""Backends: how each kind of service is started, probed, introspected and called.

Owns the choice of backend class for a manifest (``create_backend``, which
wraps every backend in ``masking.MaskedBackend`` so its secret values never
leave it in upstream text) and the origin checks made when a service is
registered (``prepare_origin``). This is
the only place that looks at ``spec.origin.type``; everything outside this
package works through ``runtimed.backends.base.Backend``.
"""

from __future__ import annotations

from typing import Any

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
