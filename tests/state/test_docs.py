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
