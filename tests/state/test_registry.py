"""Registry: the on-disk format, round trips, last-good copy, corrupt-file recovery.

Unit tests drive ``runtimed.state.registry.Registry`` in a temp dir; the daemon tests
run a real ``runtimed`` and look at the file and the API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtimed.config.manifest import parse_manifest
from runtimed.state.registry import FORMAT_VERSION, LoadReport, Registry, RegistryError, StateDirLock, parse_document
from tests.support.daemon import DaemonProc
from tests.support.foundation import (
    closed_port,
    events,
    read_registry,
    registry_names,
    remote_manifest,
    run_daemon_expect_exit,
)


def _m(name: str, port: int, **spec):
    return parse_manifest(remote_manifest(name, f"http://127.0.0.1:{port}/mcp", **spec))


# -- unit: Registry in a temp dir ---------------------------------------------

def test_put_get_remove_load_round_trip(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert reg.load().problems == []
    a = _m("alpha", 1001, policy={"timeoutMs": 1234, "allowedTools": ["a*"], "maxConcurrency": 3})
    b = _m("beta", 1002, autostart=False)
    entry, created = reg.put(a)
    assert created and entry.manifest.id == a.id
    _, created_b = reg.put(b)
    assert created_b
    # Replacing the same origin under the same name is an update.
    a2 = _m("alpha", 1001, policy={"timeoutMs": 999})
    _, created_again = reg.put(a2)
    assert not created_again
    assert reg.get("alpha") is reg.get(a.id)
    assert reg.get("nope") is None

    doc = json.loads((tmp_path / "registry.json").read_text())
    assert doc["formatVersion"] == FORMAT_VERSION
    assert set(doc["services"]) == {a.id, b.id}
    # The last-good copy holds the same document.
    assert json.loads((tmp_path / "registry.last-good.json").read_text()) == doc

    fresh = Registry(tmp_path)
    assert fresh.load().problems == []
    assert [e.manifest.name for e in fresh] == ["alpha", "beta"]
    assert fresh.get("alpha").manifest.spec.policy.timeoutMs == 999
    assert fresh.get("beta").manifest.spec.autostart is False
    assert fresh.revision == reg.revision

    assert fresh.remove(b.id) is not None
    assert fresh.remove(b.id) is None
    again = Registry(tmp_path)
    again.load()
    assert [e.manifest.name for e in again] == ["alpha"]


def test_name_and_origin_conflicts_are_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.load()
    reg.put(_m("alpha", 1001))
    with pytest.raises(RegistryError, match="already exists"):
        reg.put(_m("alpha", 1002))  # same name, another origin
    with pytest.raises(RegistryError, match="already registered"):
        reg.put(_m("other", 1001))  # same origin, another name
    reg2 = Registry(tmp_path)
    reg2.load()
    assert [e.manifest.name for e in reg2] == ["alpha"]


def test_unknown_format_version_is_not_loaded_as_empty(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.load()
    reg.put(_m("alpha", 1001))
    doc = json.loads((tmp_path / "registry.json").read_text())
    doc["formatVersion"] = FORMAT_VERSION + 1
    (tmp_path / "registry.json").write_text(json.dumps(doc))
    # The last good copy (version 1) is loaded, the unknown file kept.
    again = Registry(tmp_path)
    report = again.load()
    assert [e.manifest.name for e in again] == ["alpha"]
    assert report.recovered_from and "formatVersion" in " ".join(report.problems)


@pytest.mark.parametrize("garbage", [b"{\"formatVersion\": 1, \"services\": {\"svc_", b"\x00\xff garbage", b"[]"])
def test_corrupt_file_recovers_from_last_good(tmp_path: Path, garbage: bytes) -> None:
    reg = Registry(tmp_path)
    reg.load()
    reg.put(_m("alpha", 1001))
    reg.put(_m("beta", 1002))
    (tmp_path / "registry.json").write_bytes(garbage)
    again = Registry(tmp_path)
    report = again.load()
    assert [e.manifest.name for e in again] == ["alpha", "beta"]
    kept = list(tmp_path.glob("registry.corrupt-*.json"))
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    assert report.recovered_from == str(kept[0])
    assert any("unreadable" in p for p in report.problems)
    # The recovered state was written back: the next load is clean.
    assert json.loads((tmp_path / "registry.json").read_text())["formatVersion"] == FORMAT_VERSION
    assert Registry(tmp_path).load().problems == []


def test_corrupt_without_last_good_refuses_and_keeps_the_file(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_bytes(b"{ truncated")
    with pytest.raises(RegistryError, match="no last good copy"):
        Registry(tmp_path).load()
    # Not replaced by an empty registry, and a second try refuses again.
    assert (tmp_path / "registry.json").read_bytes() == b"{ truncated"
    with pytest.raises(RegistryError):
        Registry(tmp_path).load()
    assert (tmp_path / "registry.json").read_bytes() == b"{ truncated"


def test_state_dir_lock_names_the_holder(tmp_path: Path) -> None:
    first = StateDirLock(tmp_path)
    first.acquire("http://127.0.0.1:1")
    try:
        import os

        from runtimed.state.registry import StateDirBusy

        with pytest.raises(StateDirBusy, match=f"pid {os.getpid()}"):
            StateDirLock(tmp_path).acquire("http://127.0.0.1:2")
    finally:
        first.release()
    second = StateDirLock(tmp_path)
    second.acquire("http://127.0.0.1:2")
    second.release()


# -- through the daemon ----------------------------------------------------------

def test_daemon_round_trip_keeps_services_and_policies(make_daemon) -> None:
    d = make_daemon()
    m = remote_manifest("keep", f"http://127.0.0.1:{closed_port()}/mcp", autostart=False,
                        policy={"timeoutMs": 4321, "deniedTools": ["rm*"], "maxPayloadBytes": 2048})
    r = d.api("POST", "/api/services", json=m)
    assert r.status_code == 201, r.text
    sid = r.json()["service"]["id"]
    assert d.stop() == 0
    assert registry_names(d.state_dir) == {"keep"}
    d.start()
    svc = d.service("keep")
    assert svc["id"] == sid
    assert svc["state"] == "REGISTERED"  # autostart false
    pol = svc["manifest"]["spec"]["policy"]
    assert pol["timeoutMs"] == 4321 and pol["deniedTools"] == ["rm*"] and pol["maxPayloadBytes"] == 2048


def _write_registry_with(state_dir: Path, names: list[str]) -> None:
    reg = Registry(state_dir)
    reg.load()
    for i, n in enumerate(names):
        reg.put(_m(n, 1000 + i, autostart=False))


def test_daemon_recovers_corrupt_registry_loudly(make_daemon, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _write_registry_with(state, ["one", "two"])
    (state / "registry.json").write_text('{"formatVersion": 1, "services": {"svc_')  # truncated
    d = make_daemon("state")
    names = {s["name"] for s in d.api("GET", "/api/services").json()["services"]}
    assert names == {"one", "two"}
    kept = list(state.glob("registry.corrupt-*.json"))
    assert len(kept) == 1 and kept[0].read_text().startswith('{"formatVersion": 1')
    log = d.log()
    assert "WARNING" in log and "registry" in log and kept[0].name in log
    recovered = events(d, types=("registry.recovered",))
    assert recovered and any(kept[0].name in e["message"] for e in recovered)
    assert registry_names(state) == {"one", "two"}  # the good state was written back


def test_daemon_refuses_corrupt_registry_without_last_good(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "registry.json").write_text("not json at all")
    res = run_daemon_expect_exit(state)
    assert res.returncode != 0
    assert "no last good copy" in res.stderr and "refusing to start" in res.stderr
    assert "Traceback" not in res.stderr
    assert (state / "registry.json").read_text() == "not json at all"
    # Still refuses on the next attempt: never silently replaced by an empty registry.
    res2 = run_daemon_expect_exit(state)
    assert res2.returncode != 0 and (state / "registry.json").read_text() == "not json at all"


def test_sigterm_exits_zero_and_keeps_the_registry(make_daemon, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _write_registry_with(state, ["one", "two", "three"])
    before = read_registry(state)
    d = make_daemon("state")
    assert len(d.api("GET", "/api/services").json()["services"]) == 3
    assert d.stop() == 0
    after = read_registry(state)
    assert after["services"] == before["services"]
    assert not (state / "runtimed.pid").exists()
    assert isinstance(d, DaemonProc)
    # It went through its shutdown path (recorded in the persisted event log).
    types = [json.loads(line)["type"] for line in (state / "events.jsonl").read_text().splitlines()]
    assert types[-1] == "daemon.stopping" and "daemon.started" in types
    # And the state dir is free again for the next daemon.
    d2 = make_daemon("state")
    assert len(d2.api("GET", "/api/services").json()["services"]) == 3


# -- regression, registry: bad createdAt/updatedAt/generation (found by review; fails with its fix reverted) ---

def _registered_state(make_daemon, name: str) -> DaemonProc:
    """A stopped daemon whose registry.json and last good copy hold one remote service 'a'."""
    d = make_daemon(name)
    m = remote_manifest("a", f"http://127.0.0.1:{closed_port()}/mcp", restartPolicy={"mode": "never"})
    r = d.api("POST", "/api/services", json=m)
    assert r.status_code in (200, 201), r.text
    d.stop()
    return d


def _spoil(state_dir: Path, how: str) -> None:
    doc = read_registry(state_dir)
    if how == "generation":
        doc["generation"] = "many"
    else:
        for item in doc["services"].values():
            item[how] = "yesterday"
    (state_dir / "registry.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("how", ["createdAt", "updatedAt", "generation"])
def test_bad_registry_field_recovers_from_last_good(make_daemon, how: str) -> None:
    d = _registered_state(make_daemon, f"st-{how}")
    assert (d.state_dir / "registry.last-good.json").exists()
    _spoil(d.state_dir, how)
    d.start()
    assert d.api("GET", "/api/services/a").status_code == 200
    log = d.log()
    assert "Traceback" not in log, log[-3000:]
    assert "unreadable" in log, log[-3000:]
    # The spoiled file was kept aside and a clean one written back.
    assert list(d.state_dir.glob("registry.corrupt-*.json"))
    d.stop()


@pytest.mark.parametrize("how", ["createdAt", "generation"])
def test_bad_registry_field_without_last_good_refuses_clearly(make_daemon, how: str) -> None:
    d = _registered_state(make_daemon, f"nolg-{how}")
    (d.state_dir / "registry.last-good.json").unlink()
    _spoil(d.state_dir, how)
    spoiled = (d.state_dir / "registry.json").read_bytes()
    p = run_daemon_expect_exit(d.state_dir)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    assert "no last good copy" in p.stderr and "registry.json" in p.stderr, p.stderr
    assert (d.state_dir / "registry.json").read_bytes() == spoiled  # left for inspection


# -- issue 14 item 2: the disk fills between the two writes (a real full tmpfs) -----------------

from tests.support.diskfull import PAGE, SmallFs, small_fs as small_fs  # noqa: E402  (the fixture)

BIG_LABEL = "x" * 6000  # makes the next document at least one page longer than the last


def _files(state: Path) -> tuple[bytes, bytes]:
    return (state / "registry.json").read_bytes(), (state / "registry.last-good.json").read_bytes()


def _leftover_temps(state: Path) -> list[str]:
    return [p.name for p in state.iterdir() if p.name.endswith(".tmp")]


def test_a_refused_change_never_reaches_either_file(small_fs: SmallFs) -> None:
    """With every amount of free space from none to enough: a put either succeeds (both files
    hold the change, and a fresh load has it) or raises with both files exactly as they were
    (a fresh load, and a load of the last-good copy alone, have the acknowledged state only).
    Before the fix, with room for one copy of the new document but not two, registry.json
    was replaced and only the last-good write failed: the refused change was on disk."""
    state = small_fs.path / "state"
    reg = Registry(state)
    reg.load()
    reg.put(_m("alpha", 1001))  # acknowledged
    big = parse_manifest({**remote_manifest("beta", "http://127.0.0.1:1002/mcp"),
                          "metadata": {"name": "beta", "labels": {"note": BIG_LABEL}}})
    refused = 0
    for pages in range(0, 12):
        small_fs.fill(pages * PAGE)
        before = _files(state)
        generation = reg.revision
        try:
            reg.put(big)
        except OSError as e:
            refused += 1
            assert "No space left" in str(e) or e.errno == 28, e
            assert _files(state) == before, f"{pages} pages free: a refused change reached the disk"
            assert reg.get("beta") is None and reg.get("alpha") is not None and reg.revision == generation
            assert _leftover_temps(state) == [], f"{pages} pages free: temp files left behind"
            fresh = Registry(state)
            fresh.load()
            assert [e.manifest.name for e in fresh] == ["alpha"]
            continue
        # Acknowledged: in both files, and loaded after a "restart".
        small_fs.unfill()
        reg_file, last_good = _files(state)
        assert reg_file == last_good and b"beta" in reg_file
        fresh = Registry(state)
        fresh.load()
        assert [e.manifest.name for e in fresh] == ["alpha", "beta"]
        break
    else:
        raise AssertionError("the put never succeeded: the filesystem is too small for this test")
    assert refused >= 2, "the sweep never hit the window between the two writes"


def test_last_good_alone_never_holds_a_refused_change(small_fs: SmallFs) -> None:
    """registry.json lost after a refused change (e.g. removed by hand): the last-good copy that is
    loaded instead holds the acknowledged state, not the refused one."""
    state = small_fs.path / "state"
    reg = Registry(state)
    reg.load()
    reg.put(_m("alpha", 1001))
    big = parse_manifest({**remote_manifest("beta", "http://127.0.0.1:1002/mcp"),
                          "metadata": {"name": "beta", "labels": {"note": BIG_LABEL}}})
    for pages in range(0, 12):
        small_fs.fill(pages * PAGE)
        try:
            reg.put(big)
        except OSError:
            small_fs.unfill()
            (state / "registry.json").unlink()
            fresh = Registry(state)
            report = fresh.load()
            assert [e.manifest.name for e in fresh] == ["alpha"], (pages, report.problems)
            # Put registry.json back as it was (from the last-good copy) for the next round.
            (state / "registry.json").write_bytes((state / "registry.last-good.json").read_bytes())
            continue
        break


def test_daemon_refused_change_is_absent_after_restart(small_fs: SmallFs, tmp_path: Path) -> None:
    """The issue's run, on a real daemon whose state dir is a small tmpfs: POSTs of a larger
    manifest with less and less room refused (503), then one with enough; a refused POST is in
    neither file, and after a restart it is not there while the acknowledged services are."""
    state = small_fs.path / "state"
    d = DaemonProc(state)
    d.log_path = tmp_path / "daemon.log"  # the daemon's output must not eat the small disk
    d.start()
    try:
        m = remote_manifest("keep", f"http://127.0.0.1:{closed_port()}/mcp", autostart=False)
        assert d.api("POST", "/api/services", json=m).status_code == 201
        big = remote_manifest("big", f"http://127.0.0.1:{closed_port()}/mcp", autostart=False)
        big["metadata"]["labels"] = {"note": BIG_LABEL}
        threshold = None
        for pages in range(0, 16):
            small_fs.fill(pages * PAGE)
            before = _files(state)
            r = d.api("POST", "/api/services", json=big)
            if r.status_code == 201:
                threshold = pages
                break
            assert r.status_code == 503, r.text
            assert "could not write the registry" in r.json()["error"], r.text
            assert _files(state) == before, f"{pages} pages free: a refused change reached the disk"
            assert d.api("GET", "/api/services/big").status_code == 404
        assert threshold is not None and threshold >= 2, threshold
        # Once more, one page short of enough room: refused; then a restart with room again.
        small_fs.unfill()
        assert d.api("DELETE", "/api/services/big").status_code == 200
        small_fs.fill((threshold - 1) * PAGE)
        r = d.api("POST", "/api/services", json=big)
        assert r.status_code == 503, r.text
        d.stop()
        small_fs.unfill()
        d.start()
        assert d.api("GET", "/api/services/big").status_code == 404
        assert d.api("GET", "/api/services/keep").status_code == 200
        assert registry_names(state) == {"keep"}
        assert json.loads((state / "registry.last-good.json").read_text())["services"].keys() == \
            read_registry(state)["services"].keys()
    finally:
        d.stop()


# -- issue 14 item 5: registry files that are not what they should be ------------------------

def test_daemon_with_registry_json_a_directory_refuses_clearly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "registry.json").mkdir(parents=True)
    res = run_daemon_expect_exit(state)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    assert "registry.json is a directory" in res.stderr and "move it away" in res.stderr, res.stderr
    assert (state / "registry.json").is_dir()  # left as it was


def test_registry_json_a_directory_is_never_replaced_by_the_last_good_copy(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.load()
    reg.put(_m("alpha", 1001))
    (tmp_path / "registry.json").unlink()
    (tmp_path / "registry.json").mkdir()
    (tmp_path / "registry.json" / "inside").write_text("someone's file")
    with pytest.raises(RegistryError, match="is a directory"):
        Registry(tmp_path).load()
    assert (tmp_path / "registry.json" / "inside").read_text() == "someone's file"


def _doc_with(*entries: tuple[str, int]) -> dict:
    """A registry document whose services are the given (name, port) in this order; keys are made
    unique (k0, k1, ...) so that a duplicate is visible only by its name or origin."""
    services = {}
    for i, (name, port) in enumerate(entries):
        m = _m(name, port)
        services[f"k{i}-{m.id}"] = {"manifest": m.public_dict(), "createdAt": 1.0, "updatedAt": 1.0}
    return {"formatVersion": FORMAT_VERSION, "generation": 3, "services": services}


def test_duplicate_names_in_a_registry_file_are_detected(tmp_path: Path) -> None:
    raw = json.dumps(_doc_with(("alpha", 1001), ("alpha", 1002))).encode()
    with pytest.raises(RegistryError, match="'alpha' is the name of 2 services"):
        parse_document(raw)
    # Lenient (a last-good copy loaded because registry.json is missing): the first kept, the other said.
    report = LoadReport()
    entries, _ = parse_document(raw, report)
    assert [e.manifest.name for e in entries.values()] == ["alpha"]
    assert any("'alpha'" in p and "skipped" in p for p in report.problems), report.problems


def test_one_origin_twice_in_a_registry_file_is_detected(tmp_path: Path) -> None:
    raw = json.dumps(_doc_with(("alpha", 1001), ("beta", 1001))).encode()
    with pytest.raises(RegistryError, match="same origin"):
        parse_document(raw)


def test_a_key_twice_in_a_registry_file_is_detected(tmp_path: Path) -> None:
    m = _m("alpha", 1001)
    item = json.dumps({"manifest": m.public_dict(), "createdAt": 1.0, "updatedAt": 1.0})
    entry = f'"{m.id}": {item}'
    raw = ('{"formatVersion": 1, "generation": 1, "services": {' + entry + ", " + entry + "}}").encode()
    with pytest.raises(RegistryError, match=f"{m.id!r} appears twice"):
        parse_document(raw)


def test_daemon_with_duplicate_names_recovers_from_last_good_loudly(make_daemon, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _write_registry_with(state, ["alpha"])
    (state / "registry.json").write_text(json.dumps(_doc_with(("alpha", 1000), ("alpha", 1001))))
    d = make_daemon("state")
    names = [s["name"] for s in d.api("GET", "/api/services").json()["services"]]
    assert names == ["alpha"]
    log = d.log()
    assert "WARNING" in log and "'alpha' is the name of 2 services" in log, log[-3000:]
    assert list(state.glob("registry.corrupt-*.json"))


def test_daemon_with_duplicate_names_and_no_last_good_refuses(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "registry.json").write_text(json.dumps(_doc_with(("alpha", 1000), ("alpha", 1001))))
    res = run_daemon_expect_exit(state)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert "'alpha' is the name of 2 services" in res.stderr, res.stderr
