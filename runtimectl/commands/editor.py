"""The editor loop behind ``runtimectl edit`` (a service) and ``runtimectl profile edit``.

Owns putting a manifest in ``$VISUAL``/``$EDITOR`` (default ``vi``) as JSON under a ``#`` header,
reading it back without the ``#`` lines, and the loop: the caller's ``attempt`` checks (and, when
it passes, applies) the edited text; a problem re-opens the editor with the problem written at the
top and the user's own text kept, unless the user answers no (then nothing changed). An editor
that cannot run or exits non-zero changes nothing. Must not: know what a manifest means or talk to
the daemon (``attempt`` does both), or import ``runtimectl.cli``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runtimectl.context import err, fail

R = TypeVar("R")

_HEADER = ("# runtimectl {title}: the manifest below is checked before anything changes.\n"
           "# Save and quit to apply it; an unchanged file changes nothing. Lines starting with # are ignored.\n")


def edit_text(title: str, body: str, problem: str | None = None) -> str:
    """What the editor shows: a header (and the problem with the last try, one line per part), then ``body``."""
    head = _HEADER.format(title=title)
    if problem:
        head += "".join(f"# error: {part}\n" for part in problem.split("; "))
    return head + body.rstrip("\n") + "\n"


def edited_body(text: str) -> str:
    """The manifest part of an edited file: the ``#`` lines dropped (a JSON line never starts with #)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def edit_until_valid(title: str, label: str, filename: str, body: str,
                     attempt: Callable[[str], tuple[str | None, R | None]]) -> R | None:
    """Open ``body`` in the editor until ``attempt`` accepts what was saved, and return its result.

    ``title``: what the header names (``edit math (svc_...)``); ``label``: what an error line names
    (``edit math``); ``filename``: the temporary file's name (its suffix picks the editor's mode).
    ``attempt(text)`` returns ``(problem, None)`` to re-open the editor, or ``(None, result)`` (a None
    result: nothing to change). Raises ``typer.Exit`` (code 1) when the user gives up or the editor
    fails: nothing changed then.
    """
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    problem: str | None = None
    with tempfile.TemporaryDirectory(prefix="runtimectl-edit-") as folder:
        path = Path(folder) / filename
        while True:
            path.write_text(edit_text(title, body, problem), encoding="utf-8")
            try:
                ran = subprocess.run([*shlex.split(editor), str(path)], check=False)
            except (OSError, ValueError) as e:
                raise fail(f"cannot run the editor {editor!r}: {getattr(e, 'strerror', None) or e} (set $EDITOR); "
                           f"nothing changed") from None
            if ran.returncode != 0:
                raise fail(f"the editor exited with {ran.returncode}: nothing changed")
            body = edited_body(path.read_text(encoding="utf-8"))
            problem, result = attempt(body)
            if problem is None:
                return result
            err.print(f"runtimectl: {label}: {problem}", markup=False)
            if not _edit_again():
                raise fail("aborted: nothing changed")


def _edit_again() -> bool:
    """Ask on stderr whether to edit again (yes by default; no answer, as at the end of a pipe, is no).
    Asked here rather than with ``typer.confirm``, whose prompt puts a space on stdout."""
    while True:
        sys.stderr.write("Edit again? [Y/n]: ")
        sys.stderr.flush()
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError, KeyboardInterrupt):
            return False
        if not line:
            sys.stderr.write("\n")
            return False
        answer = line.strip().lower()
        if answer in ("", "y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
