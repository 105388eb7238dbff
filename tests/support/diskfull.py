"""A small real filesystem that tests can fill: a tmpfs mounted for one test.

Owns ``SmallFs`` (the mount, its free space, a filler file that leaves exactly
N bytes free) and the ``small_fs`` fixture. A full disk is the real fault: a
write into it fails with ENOSPC from the kernel, as on a user's full disk.
Mounting needs the right to mount (root, or CAP_SYS_ADMIN); where it is
missing the fixture skips and says why. Must not fake a fault any other way
(no patched ``os.write``), and must leave nothing mounted after the test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PAGE = 4096  # tmpfs allocates whole pages


class SmallFs:
    """A tmpfs of ``size`` bytes at ``path``."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.filler = path / ".filler"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "tmpfs", str(self.path)],
                       check=True, capture_output=True, text=True)

    def unmount(self) -> None:
        r = subprocess.run(["umount", str(self.path)], capture_output=True, text=True)
        if r.returncode != 0:  # something still has a file open there: detach it anyway
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, text=True)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int) -> None:
        """Grow or shrink the filler so that exactly ``leave`` bytes (whole pages) stay free."""
        assert leave % PAGE == 0, "tmpfs counts whole pages"
        current = self.filler.stat().st_size if self.filler.exists() else 0
        target = current + self.free() - leave
        assert target >= 0, f"cannot leave {leave} bytes free: only {self.free() + current} can be"
        with open(self.filler, "ab") as f:
            f.truncate(0)
            f.write(b"\0" * target)  # written (not sparse): the pages are really taken
        assert self.free() == leave, (self.free(), leave)

    def unfill(self) -> None:
        try:
            self.filler.unlink()
        except FileNotFoundError:
            pass


def mount_small_fs(path: Path, size: int) -> SmallFs:
    """Mount a tmpfs of ``size`` bytes at ``path``, or skip the test saying why it cannot."""
    fs = SmallFs(path, size)
    try:
        fs.mount()
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {detail.strip()}")
    return fs


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFs]:
    """A 256 KiB tmpfs under the test's temp dir, unmounted at the end."""
    fs = mount_small_fs(tmp_path / "small-fs", 256 * 1024)
    try:
        yield fs
    finally:
        fs.unmount()
