"""Public names of tools and prompts on the aggregate endpoint.

Owns the naming rule ``<namespace>__<name>``, the spec's tool-name character
set (A-Z a-z 0-9 ``_`` ``-`` ``.``), the 64-character limit and the stable hash
suffix used to fit it. Must not: look at services, policies or the catalog.

Rule (documented in docs/spec/gateway.md):
1. ``full = namespace + "__" + name``.
2. Characters outside the allowed set are replaced by ``_``.
3. If anything was replaced, or ``full`` is longer than 64 characters, the name
   becomes the first ``64 - 9`` characters of the cleaned name, ``_`` and the
   first 8 hex digits of sha256(original full name): stable across restarts and
   distinct for distinct originals.
"""

from __future__ import annotations

import hashlib
import re

SEPARATOR = "__"
MAX_NAME = 64
HASH_LEN = 8
_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def short_hash(text: str, n: int = HASH_LEN) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def public_name(namespace: str, name: str) -> tuple[str, bool]:
    """(public name, whether it was shortened or cleaned)."""
    full = f"{namespace}{SEPARATOR}{name}"
    cleaned = _BAD.sub("_", full)
    if cleaned == full and len(full) <= MAX_NAME:
        return full, False
    keep = MAX_NAME - HASH_LEN - 1
    return f"{cleaned[:keep]}_{short_hash(full)}", True


def disambiguate(public: str, service_id: str) -> str:
    """A second service claiming the same public name gets a suffix from its id."""
    keep = MAX_NAME - HASH_LEN - 1
    return f"{public[:keep]}_{short_hash(service_id + ':' + public)}"


def is_valid_tool_name(name: str) -> bool:
    return 0 < len(name) <= 128 and not _BAD.search(name)
