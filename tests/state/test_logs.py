"""A service's log (``ServiceLog``): lines kept in memory and appended to ``logs/<name>.log``, bounded
and rotated, read back when the daemon starts again (real files)."""

from __future__ import annotations

import json
from pathlib import Path

from runtimed.state.logs import ServiceLog


def test_lines_are_persisted_and_read_back_with_their_sequence(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "svc.log"
    log = ServiceLog(path)
    log.append("info", "REGISTERED -> STARTING: autostart")
    log.append("error", "STARTING -> CRASHED: boom")
    log.close()
    assert [json.loads(x)["message"] for x in path.read_text().splitlines()] == [
        "REGISTERED -> STARTING: autostart", "STARTING -> CRASHED: boom"]

    again = ServiceLog(path)  # the next daemon
    assert [(e["seq"], e["level"], e["message"]) for e in again] == [
        (1, "info", "REGISTERED -> STARTING: autostart"), (2, "error", "STARTING -> CRASHED: boom")]
    assert again.last_seq == 2
    again.append("info", "after the restart")
    assert [e["seq"] for e in again] == [1, 2, 3]  # numbering goes on: `logs --follow` after=N still works
    again.close()


def test_the_file_is_bounded_and_rotated_and_the_ring_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "svc.log"
    log = ServiceLog(path, ring=50, max_bytes=16384, keep=1)
    for i in range(2000):
        log.append("info", f"line {i} " + "x" * 40)
    log.close()
    assert sorted(p.name for p in path.parent.iterdir()) == ["svc.log", "svc.log.1"]
    assert all(p.stat().st_size <= 16384 for p in path.parent.iterdir())
    again = ServiceLog(path, ring=50, max_bytes=16384, keep=1)
    lines = list(again)
    assert len(lines) == 50 and lines[-1]["message"].startswith("line 1999 ")
    assert [e["seq"] for e in lines] == list(range(1951, 2001))
    again.close()


def test_a_rename_moves_the_file_and_delete_removes_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    log = ServiceLog(logs / "old.log")
    log.append("info", "one")
    log.move(logs / "new.log")
    log.append("info", "two")
    assert not (logs / "old.log").exists()
    assert [json.loads(x)["message"] for x in (logs / "new.log").read_text().splitlines()] == ["one", "two"]
    log.delete()
    assert list(logs.iterdir()) == []


def test_an_unwritable_log_dir_keeps_lines_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the logs dir would be")
    log = ServiceLog(blocker / "svc.log")
    log.append("warning", "still kept")
    assert [e["message"] for e in log] == ["still kept"]
    log.close()
