"""Secret references, shared by every kind of backend: ``file:relative/path`` under
``<state_dir>/secrets/`` and ``env:VAR`` in the daemon's environment, read when
they are used (a rotated secret is picked up at the next use); and
``SecretMask``, which replaces a backend's resolved secret values with
``[secret]`` in text, JSON values and errors.

Owns the path rule (absolute paths, ``..`` and symlinks leading outside
``secrets/`` are refused), ``resolve_reference`` and ``SecretMask``. Must not:
cache secret values (each use reads them anew; a ``SecretMask`` holds only the
values a backend hands it, to mask them), log them, or put them in any message;
errors name the variable or the path, never the value, and a mask's ``repr``
says only how many values it masks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from runtimed.errors import SecretError

SECRETS_DIR = "secrets"
MASK = "[secret]"
MIN_SECRET_LEN = 4  # shorter values are not masked: they would mangle ordinary text
TOO_DEEP = "[not forwarded: nested too deeply to check for secrets]"


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


class SecretMask:
    """Masks a fixed set of secret values (as given, percent-encoded, and as they appear inside a
    JSON string) wherever they occur. Falsy when it has nothing to mask, so callers skip the work."""

    __slots__ = ("_forms",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for v in values:
            if not isinstance(v, str) or len(v) < MIN_SECRET_LEN:
                continue
            forms.update({v, quote(v, safe=""), json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]})
        # Longest first: a value that contains another is masked whole.
        self._forms: tuple[str, ...] = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __repr__(self) -> str:
        return f"SecretMask(<{len(self._forms)} forms>)"

    def text(self, text: str) -> str:
        """``text`` with every secret value replaced by ``[secret]``."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every secret masked in its strings (keys too); the same object
        when nothing needed masking. A value nested too deeply to walk is replaced, not passed on."""
        if not self._forms:
            return value
        try:
            return self._walk(value)
        except RecursionError:
            return TOO_DEEP

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] | None = None
            for i, (k, v) in enumerate(value.items()):
                k2 = self.text(k) if isinstance(k, str) else k
                v2 = self._walk(v)
                if out is None and (k2 is not k or v2 is not v):
                    out = dict(list(value.items())[:i])
                if out is not None:
                    out[k2] = v2
            return value if out is None else out
        if isinstance(value, (list, tuple)):
            items = [self._walk(v) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value

    def error(self, error: BaseException) -> None:
        """Mask, in place, what ``error`` and the errors chained to it would say: their arguments and
        the upstream's fields (``message``, ``data``, ``requests``)."""
        if not self._forms:
            return
        seen: set[int] = set()
        e: BaseException | None = error
        while e is not None and id(e) not in seen:
            seen.add(id(e))
            e.args = tuple(self.value(a) for a in e.args)
            fields = getattr(e, "__dict__", {})
            for name in ("message", "data", "requests"):
                if name in fields:
                    fields[name] = self.value(fields[name])
            e = e.__cause__ or e.__context__


NO_SECRETS = SecretMask()
