"""``/api/bootstrap`` and ``/api/bootstrap/remove`` against a real daemon, HOME and CODEX_HOME in a
temp dir (the files written in detail: tests/bootstrap/test_core.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

# -- regression, api_bootstrap: comma string of clients (found by review; a contract guard, see below) ----

@pytest.mark.parametrize("endpoint", ["/api/bootstrap", "/api/bootstrap/remove"])
def test_bootstrap_clients_comma_string_with_spaces(make_daemon, tmp_path: Path, endpoint: str) -> None:
    """Contract guard, not a pure regression test: bootstrap._clients already strips each name, so the
    API answered 200 before the api_bootstrap fix too (checked by reverting 0dee0ef); this fails only if
    neither layer strips."""
    home = tmp_path / "home"
    home.mkdir()
    d = make_daemon(env={"HOME": str(home), "CODEX_HOME": str(home / ".codex")})
    r = d.api("POST", endpoint, json={"clients": "codex, claude", "dryRun": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dryRun"] is True
    assert {c["client"] for c in body["plan"]["files"]} >= {"codex", "claude"}, body
    # A dry run writes nothing.
    assert not (home / ".codex" / "config.toml").exists()
    assert not (home / ".claude.json").exists()
