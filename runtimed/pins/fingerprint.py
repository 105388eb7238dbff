"""The fingerprint of a tool definition, and what changed between two definitions.

Owns ``fingerprint`` (sha256 of the canonical JSON of the parts of a tool a model reads and a call
depends on: ``name``, ``description``, ``inputSchema``, ``outputSchema`` when present, ``annotations``),
``pinned_part`` (those parts) and ``tool_diff`` (which of them changed: a description as a unified diff
of its text; a schema or the annotations as the JSON paths added, removed and changed). Must not: keep
state, or know where definitions come from or go.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any

JSON = dict[str, Any]
# The parts of a definition that are pinned, in the order a diff lists them.
FIELDS = ("name", "description", "inputSchema", "outputSchema", "annotations")
_STRUCTURED = ("inputSchema", "outputSchema", "annotations")


def canonical(value: Any) -> str:
    """One text per JSON value: keys sorted, no spaces, Unicode as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pinned_part(tool: JSON) -> JSON:
    """The parts of ``tool`` its fingerprint covers (a part absent or null is left out)."""
    return {k: tool[k] for k in FIELDS if tool.get(k) is not None}


def fingerprint(tool: JSON) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``pinned_part(tool)``."""
    return "sha256:" + hashlib.sha256(canonical(pinned_part(tool)).encode()).hexdigest()


def json_paths(old: Any, new: Any, path: str = "$") -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) JSON paths from ``old`` to ``new`` (``$.properties.q.type``). Objects are
    compared key by key; anything else (arrays included) is a value that changed or did not."""
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if _plain(str(key)) else f"{path}[{json.dumps(str(key))}]"
            if key not in old:
                added.append(sub)
            elif key not in new:
                removed.append(sub)
            else:
                a, r, c = json_paths(old[key], new[key], sub)
                added += a
                removed += r
                changed += c
    elif canonical(old) != canonical(new):
        changed.append(path)
    return added, removed, changed


def _plain(key: str) -> bool:
    return key.isidentifier()


def tool_diff(old: JSON, new: JSON) -> JSON:
    """What changed from ``old`` to ``new`` among the pinned parts: ``{"fields": [names], "description":
    "<unified diff>", "inputSchema": {"added": [...], "removed": [...], "changed": [...]}, ...}`` (only the
    fields that changed have a key; ``{"fields": []}`` when none did)."""
    out: JSON = {"fields": []}
    for key in FIELDS:
        a, b = old.get(key), new.get(key)
        if canonical(a) == canonical(b):
            continue
        out["fields"].append(key)
        if key in _STRUCTURED:
            if a is None or b is None:
                out[key] = {"added": ["$"] if a is None else [], "removed": ["$"] if b is None else [], "changed": []}
            else:
                added, removed, changed = json_paths(a, b)
                out[key] = {"added": added, "removed": removed, "changed": changed}
        elif key == "description":
            out[key] = "\n".join(difflib.unified_diff(
                _text(a).splitlines(), _text(b).splitlines(), "pinned", "now", lineterm=""))
        else:
            out[key] = {"from": a, "to": b}
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else canonical(value))


__all__ = ["FIELDS", "canonical", "fingerprint", "json_paths", "pinned_part", "tool_diff"]
