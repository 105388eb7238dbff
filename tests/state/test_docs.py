"""The embedded store's keyed collections (``profiles``, ``tokens``, ``pins``): one 0600 file each,
kept across a new store on the same state dir, removal, and a file that cannot be read said."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from runtimed.state.embedded import EmbeddedStore


def test_documents_are_kept_in_a_private_file(tmp_path: Path) -> None:
    s = EmbeddedStore(tmp_path, "r")
    assert s.load_docs("tokens") == {}
    s.save_doc("tokens", "tok_1", {"hash": "x", "profile": "coding"})
    s.save_doc("tokens", "tok_2", {"hash": "y", "profile": "ops"})
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600
    again = EmbeddedStore(tmp_path, "r")
    assert again.load_docs("tokens") == {"tok_1": {"hash": "x", "profile": "coding"},
                                         "tok_2": {"hash": "y", "profile": "ops"}}
    again.save_doc("tokens", "tok_1", None)
    again.save_doc("tokens", "nope", None)  # removing what is not there changes nothing
    assert EmbeddedStore(tmp_path, "r").load_docs("tokens") == {"tok_2": {"hash": "y", "profile": "ops"}}


def test_a_damaged_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "profiles.json").write_text("{not json")
    with pytest.raises(OSError, match=r"profiles\.json cannot be read"):
        EmbeddedStore(tmp_path, "r").load_docs("profiles")


def test_pins_are_a_file_per_service(tmp_path: Path) -> None:
    """One service's pins change without rewriting the others' (a file per key)."""
    s = EmbeddedStore(tmp_path, "r")
    s.save_doc("pins", "svc_a", {"t": {"fingerprint": "1"}})
    s.save_doc("pins", "svc_b", {"t": {"fingerprint": "2"}})
    before = (tmp_path / "pins" / "svc_a.json").stat().st_mtime_ns
    s.save_doc("pins", "svc_b", {"t": {"fingerprint": "3"}})
    assert (tmp_path / "pins" / "svc_a.json").stat().st_mtime_ns == before
    assert stat.S_IMODE((tmp_path / "pins" / "svc_b.json").stat().st_mode) == 0o600
    assert EmbeddedStore(tmp_path, "r").load_docs("pins") == {"svc_a": {"t": {"fingerprint": "1"}},
                                                             "svc_b": {"t": {"fingerprint": "3"}}}
    s.save_doc("pins", "svc_a", None)
    assert set(s.load_docs("pins")) == {"svc_b"}
    with pytest.raises(OSError, match="cannot name a file"):
        s.save_doc("pins", "../escape", {})
