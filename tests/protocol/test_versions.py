"""Protocol versions: negotiation and the era a request belongs to."""

from __future__ import annotations

from runtimed.protocol.versions import era_of, negotiate


def test_eras_and_negotiation() -> None:
    assert negotiate("2025-06-18") == "2025-06-18" and negotiate("1999-01-01") == "2025-11-25"
    assert era_of("2026-07-28", {}) == "stateless"
    assert era_of(None, {"method": "initialize"}) == "session"
    assert era_of(None, {"method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "x"}}}) == "stateless"
    assert era_of("2025-11-25", {"method": "tools/list"}) == "session"
