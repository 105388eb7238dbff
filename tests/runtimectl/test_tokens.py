"""``runtimectl token create|list|revoke`` as a real process against a real daemon: the token printed
once with its warning, lists without it, revocation by id (or by the whole token, never echoed),
and the daemon's refusals as messages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import DaemonProc, run_cli

ADMIN = "admin-token-cli-0123456789"
PROFILE = {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": "coding"}, "spec": {}}
TOKEN_LINE = re.compile(r"^rtk_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$", re.MULTILINE)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    state = tmp_path_factory.mktemp("tokens") / "state"
    state.mkdir()
    (state / "profiles.json").write_text(json.dumps({"coding": PROFILE}))  # the store's profiles collection
    with DaemonProc(state, token=ADMIN) as daemon:
        yield daemon


def test_create_prints_the_token_once_and_list_never_does(d: DaemonProc) -> None:
    r = run_cli(d, "token", "create", "--profile", "coding", "--expires", "30d", "--label", "laptop agent")
    assert r.returncode == 0, r.stderr
    m = TOKEN_LINE.search(r.stdout)
    assert m is not None, r.stdout
    token, tid = m.group(0), m.group(1)
    assert "/mcp/@coding" in r.stdout and "shown this once" in r.stderr and token not in r.stderr
    # It reaches its profile's endpoint only (the access check; /mcp is refused).
    refused = httpx.post(d.url + "/mcp", headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=30)
    assert refused.status_code == 403, refused.text
    listed = run_cli(d, "token", "list")
    assert listed.returncode == 0 and tid in listed.stdout and "coding" in listed.stdout and "laptop agent" in listed.stdout
    assert token not in listed.stdout and "in 29d" in listed.stdout, listed.stdout
    as_json = json.loads(run_cli(d, "token", "list", "--json").stdout)
    assert [t["id"] for t in as_json] == [tid] and "token" not in as_json[0]
    # --json create: the token in the JSON, the warning on stderr.
    made = run_cli(d, "token", "create", "-p", "coding", "--json")
    body = json.loads(made.stdout)
    assert TOKEN_LINE.match(body["token"]) and body["expiresAt"] is None and "shown this once" in made.stderr
    # Revoke by id, and by the whole token (its id is used; the token is not printed back).
    r = run_cli(d, "token", "revoke", tid)
    assert r.returncode == 0 and f"Revoked token {tid}" in r.stdout, r.stderr
    r = run_cli(d, "token", "revoke", body["token"])
    assert r.returncode == 0 and body["id"] in r.stdout and body["token"] not in r.stdout + r.stderr, r.stdout
    assert "no scoped token" in run_cli(d, "token", "list").stdout


def test_refusals_are_messages(d: DaemonProc) -> None:
    r = run_cli(d, "token", "create", "--profile", "nope")
    assert r.returncode == 1 and "no profile named 'nope'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run_cli(d, "token", "create", "--profile", "coding", "--expires", "tomorrow")
    assert r.returncode == 1 and "not a duration" in r.stderr, r.stderr
    r = run_cli(d, "token", "revoke", "0badc0de")
    assert r.returncode == 1 and "no scoped token with id '0badc0de'" in r.stderr, r.stderr
    r = run_cli(d, "token", "revoke", "rtk_broken")
    assert r.returncode == 2 and "token's id" in r.stderr and "rtk_broken" not in r.stderr, r.stderr
    r = run_cli(d, "token", "list", env={"RUNTIMED_AUTH_TOKEN": ""})
    assert r.returncode == 1 and "missing or wrong bearer token" in r.stderr, r.stderr  # only the admin


def test_the_token_group_is_listed_in_help(tmp_path: Path) -> None:
    r = run_cli(None, "--help")
    assert r.returncode == 0 and "token" in r.stdout
    r = run_cli(None, "token", "create", "--help")
    assert r.returncode == 0 and "--profile" in r.stdout and "--expires" in r.stdout
