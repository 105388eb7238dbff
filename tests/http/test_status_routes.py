"""The status page's server side over plain HTTP against a real daemon (the page itself, in a
browser: tests/http/test_status_page.py)."""

from __future__ import annotations

import pytest

from tests.support.daemon import DaemonProc

# -- regression, web: escaped fragment names (found by review; fails with its fix reverted) --------

@pytest.mark.parametrize(
    "path",
    [
        "/api/ui/%3Cimg%20src%3Dx%3E",
        "/api/ui/services/anything/%3Cimg%20src%3Dx%3E",
    ],
)
def test_unknown_fragment_name_is_escaped_in_404(daemon: DaemonProc, path: str) -> None:
    r = daemon.api("GET", path)
    assert r.status_code == 404, r.text
    assert "&lt;img" in r.text, r.text
    assert "<img" not in r.text, r.text
