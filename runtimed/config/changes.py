"""Changes to a manifest as data: JSON merge patches (RFC 7396) and field diffs.

Owns ``merge_patch`` (apply a patch to a manifest's JSON: an object merges
key by key, ``null`` removes a key so its default applies again, anything else
replaces), ``make_patch`` (the patch that turns one document into another, for
``runtimectl edit``) and ``field_changes`` (what changed, leaf by leaf, as
dotted paths with the old and new values, for the answer a user reads). Pure
functions on JSON values. Must not: validate a manifest (``manifest`` does),
persist anything, or know what a field means.
"""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied (RFC 7396); neither argument is changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def make_patch(old: Any, new: Any) -> Any:
    """The merge patch that turns ``old`` into ``new`` (``{}``: they are equal). A list is replaced whole."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = make_patch(old[key], value) if isinstance(old[key], dict) and isinstance(value, dict) else value
    return patch


def _leaves(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf (an empty object has none)."""
    if not isinstance(doc, dict):
        return {prefix: doc} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def field_changes(old: Any, new: Any) -> list[dict[str, Any]]:
    """What differs between two documents, leaf by leaf (a list is one leaf; an empty object is
    absent): ``[{"field": "spec.policy.timeoutMs", "from": 30000, "to": 5000}]``, ``None`` for a
    field that is absent."""
    a, b = _leaves(old), _leaves(new)
    return [{"field": k, "from": a.get(k), "to": b.get(k)} for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
