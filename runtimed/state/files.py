"""Crash-safe file writes shared by every part that persists state.

Owns ``atomic_write`` (temp file in the same directory, exact mode, fsync,
``os.replace``, directory fsync) and ``fsync_dir``. Must not know what the
files mean: the registry, snapshots, client configs and the WASM cache each
own their format.
"""

from __future__ import annotations

import os
import tempfile
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
