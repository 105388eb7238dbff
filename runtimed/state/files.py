"""Crash-safe file writes shared by every part that persists state.

Owns ``atomic_write`` (temp file in the same directory, exact mode, fsync,
``os.replace``, directory fsync), ``atomic_write_all`` (several files of one
directory replaced as one step: every new content is complete on disk before
the first rename, and a failed rename undoes the ones before it),
``remove_temps`` (what a crash mid-write left) and ``fsync_dir``. Must not know
what the files mean: the registry, snapshots, client configs and the WASM
cache each own their format.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers, and a crash, see the old
    file or the new one, never a mix. The file gets exactly ``mode``.
    ``durable=False`` skips the fsyncs (for caches that can be rebuilt)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    """A complete, fsynced temp file beside ``path`` holding ``data``; its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def atomic_write_all(writes: Sequence[tuple[Path, bytes]], mode: int = 0o600) -> None:
    """Replace every ``(path, data)`` of one directory as one step, durably; the last rename
    is the commit point.

    First every new content is written and fsynced to a temp file, and each file to be replaced
    gets a hard link (no data is copied) to undo with: a full disk, or any other failure, stops
    here with nothing replaced. Then the temp files are renamed over their paths in order; if a
    rename fails, the renames already done are undone from the links, and the error is raised.
    So the files hold all the old contents or all the new ones, unless undoing itself fails
    (then that error is raised, chained to the first)."""
    if not writes:
        return
    directory = Path(writes[0][0]).parent
    temps: list[str] = []
    undo: list[tuple[Path, str | None]] = []  # (path, link to its old content, or None: it did not exist)
    try:
        for path, data in writes:
            path = Path(path)
            if path.parent != directory:
                raise ValueError(f"atomic_write_all: {path} is not in {directory}")
            temps.append(_write_temp(path, data, mode))
        for path, _ in writes:
            path = Path(path)
            if path.exists():
                link = str(directory / f".{path.name}.{secrets.token_hex(6)}.old")
                os.link(path, link)
                undo.append((path, link))
            else:
                undo.append((path, None))
        done = 0
        try:
            for (path, _), tmp in zip(writes, temps, strict=True):
                os.replace(tmp, path)
                done += 1
        except BaseException:
            for target, previous in reversed(undo[:done]):
                if previous is None:
                    os.unlink(target)
                else:
                    os.replace(previous, target)
            raise
    finally:
        for name in temps:
            _unlink_quietly(name)
        for _, previous in undo:
            if previous is not None:
                _unlink_quietly(previous)
    fsync_dir(directory)


def remove_temps(directory: Path, names: Sequence[str]) -> list[str]:
    """Delete the temp files and undo links a crash in the middle of writing ``names`` (in
    ``directory``) left behind; returns their names. Call only while no write of them can run."""
    removed: list[str] = []
    for name in names:
        for pattern in (f".{name}.*.tmp", f".{name}.*.old"):
            for p in Path(directory).glob(pattern):
                _unlink_quietly(p)
                removed.append(p.name)
    return removed
