"""``runtimed.backends.failure_cause``: what a start failure means (issue 14, item 16), read from the
faults the remote backend raises and their text; never guessed for other kinds of service."""

from __future__ import annotations

import pytest

from runtimed.backends import UNREACHABLE_CAUSES, explain_cause, failure_cause
from runtimed.config.manifest import parse_manifest
from runtimed.errors import BackendFault, BackendStartError

REMOTE = parse_manifest({"metadata": {"name": "r"}, "spec": {"origin": {"type": "remote_mcp", "url": "http://h:9/mcp"}}})
STDIO = parse_manifest({"metadata": {"name": "s"}, "spec": {"origin": {"type": "stdio", "command": "node"}}})


def chained(fault: BackendFault) -> BackendStartError:
    try:
        try:
            raise fault
        except BackendFault as f:
            raise BackendStartError(f"cannot start 'r': {f}") from f
    except BackendStartError as e:
        return e


@pytest.mark.parametrize("error,cause", [
    ("server/discover to http://h:9/mcp: cannot connect ([Errno 111] Connection refused)", "refused"),
    ("cannot connect ([Errno -2] Name or service not known)", "dns"),
    ("cannot resolve host 'h' (no address)", "dns"),
    ("server/discover to http://h:9/mcp: timed out connecting", "connect-timeout"),
    (chained(BackendFault("initialize: the upstream answered HTTP 404", kind="http", status=404)), "not-found"),
    (chained(BackendFault("refused the credentials (HTTP 401)", kind="unauthorized", status=401)), "unauthorized"),
    (chained(BackendFault("initialize: the upstream failed with HTTP 500", kind="http", status=500)), None),
    ("3 failed probes: no answer within 5000 ms", None),
])
def test_causes_of_a_remote_failure(error, cause) -> None:
    assert failure_cause(error, REMOTE) == cause


def test_other_kinds_are_not_guessed() -> None:
    assert failure_cause("the child wrote: database: connection refused", STDIO) is None


def test_every_unreachable_cause_is_explained_with_what_to_check() -> None:
    for cause in UNREACHABLE_CAUSES:
        text = explain_cause(cause, "http://h:9/mcp")
        assert text != cause and ("h:9" in text or "'h'" in text or "/mcp" in text), text
