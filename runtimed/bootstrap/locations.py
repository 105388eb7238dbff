"""Where the clients' files are: the user's home, Codex's home (``CODEX_HOME``)
and the project, the file each client reads per scope, ``AGENTS.md``, and the
``runtimectl`` executable the stdio entries run.

Owns resolving those paths (and whether two of them are one file). Must not: read or write the files, or know their
formats.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from runtimed.bootstrap.entries import CLIENTS
from runtimed.bootstrap.model import BootstrapError


@dataclass(frozen=True)
class Locations:
    """Where the clients' files are: the user's home, Codex's home, the project."""

    home: Path
    codex_home: Path
    project_dir: Path

    @classmethod
    def resolve(
        cls, home: Path | None = None, codex_home: Path | None = None, project_dir: Path | None = None
    ) -> Locations:
        h = Path(home).expanduser() if home is not None else Path.home()
        if codex_home is not None:
            ch = Path(codex_home).expanduser()
        elif os.environ.get("CODEX_HOME"):
            ch = Path(os.environ["CODEX_HOME"]).expanduser()
        else:
            ch = h / ".codex"
        p = Path(project_dir).expanduser() if project_dir is not None else Path.cwd()
        return cls(h.absolute(), ch.absolute(), p.absolute())


def config_path(client: str, scope: str, loc: Locations) -> Path:
    """The file a client reads its MCP servers from, for a scope."""
    if client == "codex":
        return loc.codex_home / "config.toml" if scope == "user" else loc.project_dir / ".codex" / "config.toml"
    if client == "claude":
        return loc.home / ".claude.json" if scope == "user" else loc.project_dir / ".mcp.json"
    raise BootstrapError(f"unknown client {client!r}; expected one of: {', '.join(CLIENTS)}")


def default_runtimectl_path() -> str | None:
    """Absolute path of the ``runtimectl`` executable: next to this Python
    (the venv's bin) first, then on PATH; None when there is none."""
    beside = Path(sys.executable).parent / "runtimectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside.absolute())
    found = shutil.which("runtimectl")
    return str(Path(found).absolute()) if found else None


def same_file(a: Path, b: Path) -> bool:
    """The same file, symlinks followed (a dotfiles link and its target are one file)."""
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a.absolute() == b.absolute()


def agents_path(loc: Locations) -> Path:
    """The project's ``AGENTS.md``."""
    return loc.project_dir / "AGENTS.md"
