"""File safety for client bootstrap: reading a config file as it is now,
backups, atomic writes that keep the file's mode, and all-or-nothing
application of a set of writes with rollback.

Owns how bytes reach the disk (temp file in the same directory, fsync,
``os.replace``), backups (one per file: the file as it was before the latest
write, under the backup dir at the file's absolute path, or ``<file>.runtimed-bak``
next to it; a new backup replaces the old one only once every write succeeded),
and restoring earlier files when a later one fails. Must not know about TOML,
JSON, clients or what the content means.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from runtimed.errors import FileOpError
from runtimed.state.files import atomic_write


@dataclass(frozen=True)
class Snapshot:
    """A config file as found: ``data`` is None when the file does not exist."""

    path: Path
    data: bytes | None
    mode: int | None


def write_target(path: Path) -> Path:
    """The path to actually replace: a symlinked config (dotfiles) is written
    through to its target instead of being replaced by a regular file."""
    try:
        if path.is_symlink():
            return path.resolve()
    except OSError:
        pass
    return path


def read_snapshot(path: Path) -> Snapshot:
    """Read ``path`` as it is now; a missing file is a snapshot with no data."""
    try:
        data = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return Snapshot(path, None, None)
    except IsADirectoryError:
        raise FileOpError(f"{path}: is a directory, expected a file") from None
    except NotADirectoryError:
        raise FileOpError(f"{path}: a parent of this path is not a directory") from None
    except OSError as e:
        raise FileOpError(f"{path}: cannot read: {e.strerror or e}") from None
    return Snapshot(path, data, mode)


def backup_name(path: Path, backup_dir: Path | None) -> Path:
    """The one backup of ``path``: ``<backup_dir>/<its absolute path>`` (``…/backups/home/me/.claude.json``),
    or ``<file>.runtimed-bak`` next to it without a backup dir."""
    if backup_dir is None:
        return path.with_name(f"{path.name}.runtimed-bak")
    return backup_dir / Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(path)).anchor)


def write_backup(dest: Path, data: bytes, mode: int) -> None:
    """Create ``dest`` (a leftover of an interrupted run is replaced) holding ``data``, born with
    ``mode`` so a private file's copy is never readable by others, even briefly."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o777)
    try:
        os.fchmod(fd, mode & 0o777)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if fd >= 0:
            os.close(fd)


@dataclass(frozen=True)
class Write:
    """One planned write: replace ``path`` (expected to hold ``expected``) by ``data``."""

    path: Path
    expected: bytes | None
    data: bytes
    mode: int
    label: str
    dir_mode: int = 0o755


@dataclass
class Applied:
    written: list[Path] = field(default_factory=list)
    backups: dict[Path, Path] = field(default_factory=dict)


def _make_dirs(directory: Path, dir_mode: int, created: list[Path]) -> None:
    missing: list[Path] = []
    d = directory
    while not d.exists():
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        os.mkdir(d, dir_mode)
        created.append(d)


def apply_writes(writes: list[Write], backup_dir: Path | None = None) -> Applied:
    """Apply every write or none.

    Before each write the file is read again; if it no longer holds what the
    plan was made from, the whole operation fails. Each file that existed is
    first copied aside (``<backup>.new``); once every write succeeded, these
    copies replace the files' previous backups (one per file). On any failure,
    files already written are restored to their previous bytes and mode (or
    removed if they were created), this call's copies are deleted (earlier
    backups stay as they were), directories it created are removed, and
    ``FileOpError`` is raised naming the file.
    """
    done: list[tuple[Write, Path, Snapshot]] = []
    created_dirs: list[Path] = []
    made_backups: list[Path] = []
    pending: list[tuple[Path, Path, Path]] = []  # (file, copy made now, the backup it becomes)
    applied = Applied()
    current: Write | None = None
    try:
        if backup_dir is not None:
            _make_dirs(backup_dir, 0o700, created_dirs)
        for w in writes:
            current = w
            target = write_target(w.path)
            snap = read_snapshot(target)
            if snap.data != w.expected:
                raise FileOpError(f"{w.path}: changed since the plan was made; run the command again")
            _make_dirs(target.parent, w.dir_mode, created_dirs)
            if snap.data is not None:
                dest = backup_name(target, backup_dir)
                _make_dirs(dest.parent, 0o700, created_dirs)
                copy = dest.with_name(dest.name + ".new")
                write_backup(copy, snap.data, snap.mode if snap.mode is not None else 0o600)
                made_backups.append(copy)
                pending.append((w.path, copy, dest))
            done.append((w, target, snap))
            atomic_write(target, w.data, w.mode)
            applied.written.append(w.path)
    except BaseException as e:
        problems = _rollback(done, made_backups, created_dirs)
        where = current.path if current is not None else backup_dir
        if isinstance(e, FileOpError):
            msg = str(e)
        elif isinstance(e, OSError):
            msg = f"{e.filename or where}: cannot write: {e.strerror or e}"
        else:
            raise
        if applied.written:
            restored = ", ".join(str(p) for p in applied.written)
            msg += f"; nothing was changed (restored {restored})"
        else:
            msg += "; nothing was changed"
        if problems:
            kept = ", ".join(str(b) for b in made_backups)
            msg += "; ROLLBACK INCOMPLETE: " + "; ".join(problems) + f"; backups kept: {kept}"
        raise FileOpError(msg) from None
    for path, copy, dest in pending:
        try:
            os.replace(copy, dest)
            applied.backups[path] = dest
        except OSError:
            applied.backups[path] = copy  # the write is done; its backup keeps the name it was made with
    return applied


def _rollback(done: list[tuple[Write, Path, Snapshot]], backups: list[Path], dirs: list[Path]) -> list[str]:
    problems: list[str] = []
    for w, target, snap in reversed(done):
        try:
            if snap.data is None:
                try:
                    os.unlink(target)
                except FileNotFoundError:
                    pass
            else:
                current = read_snapshot(target)
                if current.data != snap.data or current.mode != snap.mode:
                    atomic_write(target, snap.data, snap.mode if snap.mode is not None else 0o600)
        except (OSError, FileOpError) as e:
            problems.append(f"{w.path}: {e}")
    if problems:
        return problems
    for b in backups:
        try:
            os.unlink(b)
        except OSError:
            pass
    for d in reversed(dirs):
        try:
            os.rmdir(d)
        except OSError:
            pass
    return problems
