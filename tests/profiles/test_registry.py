"""The profile registry (``runtimed.profiles.registry``) on the real embedded store: load, save,
remove, a document that does not validate (skipped and said, never served, still removable),
reloading after another writer's change, and the listeners told of each change. The daemon that
meets a damaged profile at start says so and serves the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtimed.config.profile import parse_profile
from runtimed.profiles.registry import ProfileRegistry
from runtimed.state.embedded import EmbeddedStore
from tests.support.daemon import DaemonProc


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": name}, "spec": spec}


async def test_save_remove_and_reload(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, "r")
    reg = ProfileRegistry(store)
    heard: list[str | None] = []
    reg.listeners.append(heard.append)
    assert reg.load() == [] and reg.names() == []
    assert await reg.save(parse_profile(manifest("dev", mode="search"))) is True
    assert await reg.save(parse_profile(manifest("dev", mode="full"))) is False  # replaced
    assert await reg.save(parse_profile(manifest("ops"))) is True
    assert heard == ["dev", "dev", "ops"]
    dev = reg.get("dev")
    assert dev is not None and dev.spec.mode == "full" and "dev" in reg and reg.names() == ["dev", "ops"]
    # Kept by the store: a new registry on the same state dir reads them back.
    again = ProfileRegistry(EmbeddedStore(tmp_path, "r"))
    assert again.load() == [] and again.names() == ["dev", "ops"]
    assert await reg.remove("ops") is True
    assert await reg.remove("ops") is False
    assert reg.names() == ["dev"] and heard[-1] == "ops"
    # Another writer's change (as a peer replica's would be): reloaded on request, listeners told.
    other = ProfileRegistry(EmbeddedStore(tmp_path, "r"))
    other.load()
    await other.save(parse_profile(manifest("late")))
    await reg.reload("late")
    assert reg.names() == ["dev", "late"] and heard[-1] == "late"
    await other.remove("dev")
    await reg.reload(None)
    assert reg.names() == ["late"] and heard[-1] is None


async def test_a_document_that_does_not_validate_is_skipped_said_and_removable(tmp_path: Path) -> None:
    (tmp_path / "profiles.json").write_text(json.dumps({
        "good": manifest("good"),
        "bad": manifest("bad", mode="sometimes"),
        "liar": manifest("other-name"),
    }))
    reg = ProfileRegistry(EmbeddedStore(tmp_path, "r"))
    problems = reg.load()
    assert reg.names() == ["good"]
    assert len(problems) == 2
    assert any("'bad'" in p and "mode" in p for p in problems)
    assert any("'liar'" in p and "names itself 'other-name'" in p for p in problems)
    assert await reg.remove("bad") is True
    assert set(json.loads((tmp_path / "profiles.json").read_text())) == {"good", "liar"}


def test_the_daemon_says_which_profile_it_cannot_serve(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "profiles.json").write_text(json.dumps({"ok": manifest("ok"), "broken": manifest("broken", mode="x")}))
    with DaemonProc(state) as d:
        assert [p["name"] for p in d.api("GET", "/api/profiles").json()["profiles"]] == ["ok"]
        assert "profile 'broken' in the state store does not validate" in d.log()
        events = d.api("GET", "/api/events", params={"limit": 200}).json()["events"]
        assert any(e["type"] == "profile.invalid" and "broken" in e.get("message", "") for e in events), events
