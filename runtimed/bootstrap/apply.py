"""Applying a plan: every changed file written, or none of them.

Owns turning a ``Plan`` into the file writes (mode, directory mode per
scope) and the ``Result``; the disk work (backups, atomic replace, rollback)
is ``files``. Must not: decide content (``plan`` does) or touch a file the
plan leaves unchanged.
"""

from __future__ import annotations

from pathlib import Path

from runtimed.bootstrap.files import Write, apply_writes
from runtimed.bootstrap.model import Plan, Result
from runtimed.errors import BootstrapError, FileOpError


def apply_plan(plan: Plan, backup_dir: Path | None = None) -> Result:
    """Write every changed file of ``plan`` or none of them.

    Each changed file that existed is first copied aside, then replaced
    atomically keeping its mode; the copy becomes the file's one backup
    (under ``backup_dir``, or next to it) once every write succeeded. A file that changed since the plan was made, or any write
    failure, restores the files already written and raises
    ``BootstrapError``. Unchanged files are not touched at all.
    """
    writes = [
        Write(
            path=c.path,
            expected=c.old,
            data=c.new,
            mode=c.mode,
            label=c.client,
            dir_mode=0o700 if c.scope == "user" else 0o755,
        )
        for c in plan.changes
        if c.changed
    ]
    try:
        applied = apply_writes(writes, backup_dir)
    except FileOpError as e:
        raise BootstrapError(str(e)) from None
    return Result(
        plan=plan,
        written=tuple(applied.written),
        unchanged=tuple(c.path for c in plan.changes if not c.changed),
        backups=dict(applied.backups),
    )
