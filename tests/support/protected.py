"""The OAuth-protected upstream for tests: ``tests/upstreams/protected_server.py`` (the official
``mcp`` SDK's resource-server support, accepting only JWT access tokens of one issuer for its own
resource URL) run on a loopback port, and what it recorded of the requests it received.

Owns starting that script (``tests.support.upstream.Upstream``) with its flags and reading its
record file back. Must not mock anything; the issuer is a real one (``tests/support/oauth.py``).

    port = free_port()                                   # known before the issuer starts, so that
    with run_oidc_provider(tmp, resources=[protected_url(port)]) as op:   # it may list the resource
        with run_protected_server(op.issuer, tmp, port=port) as up:
            up.url / up.resource                         # http://127.0.0.1:P/mcp (the required aud)
            up.metadata_url                              # .../.well-known/oauth-protected-resource/mcp
            up.records()                                 # [{"method", "path", "authorization", ...}, ...]
            up.bearer_tokens()                           # the tokens received at /mcp, in order
            up.log()                                     # its output: why a token was refused
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.upstream import Upstream


def protected_url(port: int) -> str:
    """The default resource URL (and MCP endpoint) of a protected server on ``port``."""
    return f"http://127.0.0.1:{port}/mcp"


class ProtectedServer(Upstream):
    """One ``protected_server.py`` process: tokens of ``issuer`` for ``resource`` (default its own
    ``/mcp`` URL) carrying every scope in ``scopes`` (space-separated; ``""`` for none)."""

    def __init__(self, issuer: str, tmp_dir: str | Path, *, scopes: str = "mcp:tools", resource: str | None = None,
                 name: str = "protected", port: int | None = None) -> None:
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.issuer = issuer
        self.scopes = scopes
        self._resource = resource
        super().__init__("protected_server", (), port=port)
        self.log_path.unlink(missing_ok=True)
        self.log_path = self.dir / f"protected-{self.port}.log"
        self.record_path = self.dir / f"protected-{self.port}-received.jsonl"
        args = ["--issuer", issuer, "--record", str(self.record_path), "--scopes", scopes, "--name", name]
        if resource is not None:
            args += ["--resource", resource]
        self.args = tuple(args)

    @property
    def resource(self) -> str:
        """The resource URL tokens must be issued for (their ``aud``)."""
        return self._resource or self.url

    @property
    def metadata_url(self) -> str:
        """Where the SDK serves the Protected Resource Metadata: the RFC 9728 path-inserted form only."""
        return f"{self.base_url}/.well-known/oauth-protected-resource{urlsplit(self.resource).path.rstrip('/')}"

    def records(self) -> list[dict[str, Any]]:
        """One dict per HTTP request received, in order: ``method``, ``path``, ``authorization`` (the
        header as received, or None), ``mcp_protocol_version``, ``mcp_session_id``."""
        try:
            text = self.record_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def authorizations(self, path: str = "/mcp") -> list[str | None]:
        """The ``Authorization`` header of each request to ``path`` (None where there was none)."""
        return [r["authorization"] for r in self.records() if r["path"] == path]

    def bearer_tokens(self, path: str = "/mcp") -> list[str]:
        """The bearer tokens received at ``path``, in order (repeats kept)."""
        return [a[7:] for a in self.authorizations(path) if a and a[:7].lower() == "bearer "]

    def log(self) -> str:
        """Everything the server wrote (its refusals say why: ``token refused: ...``)."""
        return self.log_tail(10**7)


@contextlib.contextmanager
def run_protected_server(issuer: str, tmp_dir: str | Path, **options: Any) -> Iterator[ProtectedServer]:
    """Run a ``ProtectedServer`` (options as its constructor's) for the block."""
    up = ProtectedServer(issuer, tmp_dir, **options)
    up.start()
    try:
        yield up
    finally:
        up.stop()
