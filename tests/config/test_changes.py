"""``runtimed.config.changes``: merge patches (RFC 7396) and field diffs, on plain JSON."""

from __future__ import annotations

from runtimed.config.changes import field_changes, make_patch, merge_patch

OLD = {"metadata": {"name": "a", "labels": {"team": "x"}},
       "spec": {"policy": {"timeoutMs": 5, "deniedTools": ["f"], "rateLimit": {"calls": 2, "per": "minute"}}}}


def test_merge_patch_merges_objects_replaces_the_rest_and_null_removes() -> None:
    patch = {"spec": {"policy": {"timeoutMs": 7, "rateLimit": None, "deniedTools": ["g", "h"]}},
             "metadata": {"labels": {"tier": "1"}}}
    new = merge_patch(OLD, patch)
    assert new == {"metadata": {"name": "a", "labels": {"team": "x", "tier": "1"}},
                   "spec": {"policy": {"timeoutMs": 7, "deniedTools": ["g", "h"]}}}
    assert OLD["spec"]["policy"]["timeoutMs"] == 5  # the target is not changed
    assert merge_patch(OLD, {}) == OLD


def test_make_patch_round_trips() -> None:
    new = {"metadata": {"name": "b", "labels": {}}, "spec": {"policy": {"timeoutMs": 5, "deniedTools": []}}}
    patch = make_patch(OLD, new)
    assert merge_patch(OLD, patch) == new
    assert make_patch(OLD, OLD) == {}


def test_field_changes_are_leaves_with_old_and_new() -> None:
    new = merge_patch(OLD, {"spec": {"policy": {"timeoutMs": 7, "rateLimit": None}}})
    assert field_changes(OLD, new) == [
        {"field": "spec.policy.rateLimit.calls", "from": 2, "to": None},
        {"field": "spec.policy.rateLimit.per", "from": "minute", "to": None},
        {"field": "spec.policy.timeoutMs", "from": 5, "to": 7},
    ]
