"""Secret references, shared by every kind of backend: ``file:relative/path`` under
``<state_dir>/secrets/`` and ``env:VAR`` in the daemon's environment, read when
they are used (a rotated secret is picked up at the next use).

Owns the path rule (absolute paths, ``..`` and symlinks leading outside
``secrets/`` are refused) and ``resolve_reference``. Must not: cache secret
values, log them, or put them in any message; errors name the variable or the
path, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from runtimed.errors import SecretError

SECRETS_DIR = "secrets"


def relative_secret_path(rel: str, what: str = "authRef") -> PurePosixPath:
    if not rel:
        raise SecretError(f"{what} file: needs a path relative to the secrets directory")
    p = PurePosixPath(rel)
    if p.is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise SecretError(f"{what} file:{rel} must be relative to the state dir's secrets/ directory, not absolute")
    if any(part == ".." for part in p.parts) or "\\" in rel:
        raise SecretError(f"{what} file:{rel} must not contain '..' (it must stay inside secrets/)")
    return p


def read_secret_file(state_dir: str | os.PathLike[str], rel: str, what: str = "authRef") -> str:
    """The stripped content of ``<state_dir>/secrets/<rel>``, refusing escapes."""
    p = relative_secret_path(rel, what)
    base = Path(state_dir) / SECRETS_DIR
    target = base.joinpath(*p.parts)
    try:
        real_base = base.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        raise SecretError(f"{what} file:{rel}: the secrets directory {base} does not exist") from None
    try:
        real = target.resolve(strict=True)
    except RuntimeError:
        raise SecretError(f"{what} file:{rel}: {target} is a symlink loop") from None
    except OSError:
        raise SecretError(f"{what} file:{rel}: no such file {target}") from None
    if real != real_base and real_base not in real.parents:
        raise SecretError(f"{what} file:{rel}: {target} is a symlink leading outside {base}; refused")
    if not real.is_file():
        raise SecretError(f"{what} file:{rel}: {target} is not a regular file")
    try:
        value = real.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SecretError(f"{what} file:{rel}: cannot read {target} ({type(e).__name__})") from None
    if not value:
        raise SecretError(f"{what} file:{rel}: {target} is empty")
    return value


def resolve_reference(ref: str, state_dir: str | os.PathLike[str], what: str,
                      environ: Mapping[str, str] | None = None) -> str:
    """The value ``env:VAR`` or ``file:relative/path`` stands for, read now; ``what`` names the
    reference in errors (``env GITHUB_TOKEN``)."""
    kind, _, rest = ref.partition(":")
    if kind == "env":
        value = (os.environ if environ is None else environ).get(rest)
        if not value:
            raise SecretError(f"{what}: the environment variable {rest} is not set (or empty) where the daemon runs")
        return value
    if kind == "file":
        return read_secret_file(state_dir, rest, what)
    raise SecretError(f"{what}: a reference must start with env: or file: (got {kind!r})")
