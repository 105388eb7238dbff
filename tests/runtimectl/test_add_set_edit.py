"""Issue 14, item 9: changing a registered service never wipes what was not mentioned.

``runtimectl add`` of an origin that is already registered changes only the flags given (and says
what changed); ``runtimectl set SERVICE --flag ...`` changes fields (``--unset FLAG`` gives one back
its default; ``--name`` renames, the namespace following a name it followed); ``runtimectl edit
SERVICE`` opens the manifest in ``$EDITOR`` and checks it before anything changes: a mistake
re-opens the editor (or, answered no, aborts with nothing changed); an unchanged file changes
nothing. The daemon side is ``PATCH /api/services/{ref}`` (a JSON merge patch, applied under the
registry lock). Real processes against a real daemon; the editor is a real program (a script).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import REPO, DaemonProc, run_cli


def cli(d, *args: str, code: int = 0, **kw) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, **kw)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def policy(d: DaemonProc, ref: str) -> dict:
    return d.service(ref)["manifest"]["spec"]["policy"]


@pytest.fixture
def wat(tmp_path: Path) -> Path:
    path = tmp_path / "math.wat"
    shutil.copy(REPO / "examples" / "wasm" / "math.wat", path)
    return path


def test_add_again_changes_only_the_flags_given(daemon: DaemonProc, wat: Path) -> None:
    d = daemon
    res = cli(d, "add", str(wat), "--name", "math", "--deny-tools", "fib", "--rate-limit", "2/minute",
              "--label", "team=core")
    assert res.stdout.startswith("added math (svc_")
    res = cli(d, "add", str(wat), "--timeout-ms", "5000")
    assert res.stdout.startswith("updated math (svc_"), res.stdout
    assert "spec.policy.timeoutMs: (default) → 5000" in res.stdout
    p = policy(d, "math")
    assert p["timeoutMs"] == 5000 and p["deniedTools"] == ["fib"] and p["rateLimit"] == {"calls": 2, "per": "minute"}
    assert d.service("math")["manifest"]["metadata"]["labels"] == {"team": "core"}
    # Nothing given: nothing changes, and it says so.
    res = cli(d, "add", str(wat))
    assert "already registered" in res.stdout and "nothing changed" in res.stdout, res.stdout
    assert policy(d, "math")["deniedTools"] == ["fib"]
    # --json: the same shape as a creation, with the changes.
    out = json.loads(cli(d, "add", str(wat), "--max-concurrency", "3", "--json").stdout)
    assert out["created"] is False and out["changes"] == [
        {"field": "spec.policy.maxConcurrency", "from": None, "to": 3}]
    # A new label is added to the others.
    cli(d, "add", str(wat), "--label", "tier=1")
    assert d.service("math")["manifest"]["metadata"]["labels"] == {"team": "core", "tier": "1"}


def test_add_of_the_same_origin_under_another_name_renames_it(daemon: DaemonProc, wat: Path) -> None:
    d = daemon
    cli(d, "add", str(wat), "--deny-tools", "fib")  # named from the file: math
    res = cli(d, "add", str(wat), "--name", "calc")
    assert res.stdout.startswith("updated calc (svc_") and "metadata.name: math → calc" in res.stdout, res.stdout
    svc = d.service("calc")
    assert svc["namespace"] == "calc" and svc["manifest"]["spec"]["policy"]["deniedTools"] == ["fib"]
    assert [s["name"] for s in json.loads(cli(d, "list", "--json").stdout)] == ["calc"]


def test_set_changes_fields_and_unset_gives_back_defaults(daemon: DaemonProc, wat: Path) -> None:
    d = daemon
    cli(d, "add", str(wat), "--name", "math", "--deny-tools", "fib", "--rate-limit", "2/minute", "--timeout-ms", "5000")
    res = cli(d, "set", "math", "--timeout-ms", "7000", "--unset", "rate-limit")
    assert res.stdout.splitlines()[0] == "math: 3 changes", res.stdout
    assert "spec.policy.timeoutMs: 5000 → 7000" in res.stdout
    assert "spec.policy.rateLimit.calls: 2 → (default)" in res.stdout
    p = policy(d, "math")
    assert p["timeoutMs"] == 7000 and "rateLimit" not in p and p["deniedTools"] == ["fib"]
    assert d.service("math")["state"] == "RUNNING"  # set does not stop or start
    cli(d, "set", "math", "--no-autostart", "--read-only", "--restart", "never")
    m = d.service("math")["manifest"]["spec"]
    assert m["autostart"] is False and m["policy"]["readOnly"] is True and m["restartPolicy"]["mode"] == "never"
    cli(d, "set", "math", "--autostart", "--no-read-only")
    m = d.service("math")["manifest"]["spec"]
    assert m["autostart"] is True and m["policy"]["readOnly"] is False
    assert "nothing changed" in cli(d, "set", "math", "--timeout-ms", "7000").stdout
    out = json.loads(cli(d, "set", "math", "--unset", "deny-tools", "--json").stdout)
    assert out["changes"] == [{"field": "spec.policy.deniedTools", "from": ["fib"], "to": []}]
    # A rename: the namespace followed the name, so it follows it still.
    cli(d, "set", "math", "--name", "calc")
    assert d.service("calc")["namespace"] == "calc"
    # --disable stops it; --enable lets it start again.
    cli(d, "set", "calc", "--disable")
    d.wait_state("calc", "STOPPED")
    cli(d, "set", "calc", "--enable")
    assert d.service("calc")["manifest"]["spec"]["enabled"] is True


@pytest.mark.parametrize("args,message,code", [
    (("set", "math"), "nothing to change", 2),
    (("set", "math", "--timeout-ms", "0"), "--timeout-ms must be greater than 0", 2),
    (("set", "math", "--unset", "colour"), "--unset colour: not a field", 2),
    (("set", "nope", "--timeout-ms", "5"), "no service named or with id 'nope'", 1),
    (("set", "math", "--transport", "sse"), "--transport applies to remote URLs, not to WASM files", 2),
    (("set", "math", "--env", "A=1", "--per-client"), "--env, --per-client/--shared apply to stdio servers", 2),
    (("set", "math", "--cache-tools", "add"), "spec.policy.cache.ttlSeconds", 1),
    (("set", "math", "--name", "Bad Name"), "metadata.name", 1),
])
def test_set_refuses_bad_input_clearly(daemon: DaemonProc, wat: Path, args: tuple[str, ...], message: str,
                                       code: int) -> None:
    d = daemon
    cli(d, "add", str(wat), "--name", "math", "--no-start")
    res = cli(d, *args, code=code)
    assert message in res.stderr, res.stderr
    assert d.service("math")["manifest"]["spec"]["policy"] == policy(d, "math")  # still readable, unchanged


def test_patch_cannot_change_what_identifies_a_service(daemon: DaemonProc, wat: Path) -> None:
    d = daemon
    cli(d, "add", str(wat), "--name", "math", "--no-start")
    r = d.api("PATCH", "/api/services/math", json={"spec": {"origin": {"path": str(wat) + "x"}}})
    assert r.status_code == 409 and "identifies the service" in r.json()["error"], r.text
    r = d.api("PATCH", "/api/services/math", json=[1])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]
    r = d.api("PATCH", "/api/services/math", json={"spec": {"policy": {"timeoutMs": -1}}})
    assert r.status_code == 422 and "spec.policy.timeoutMs" in r.json()["error"]
    assert policy(d, "math").get("timeoutMs") is None


# -- edit -----------------------------------------------------------------------------------------

EDITOR = r'''
import json, pathlib, sys
path = pathlib.Path(sys.argv[1])
plan = json.loads(pathlib.Path(PLAN).read_text())
step = pathlib.Path(PLAN + ".step")
n = int(step.read_text()) if step.exists() else 0
step.write_text(str(n + 1))
action = plan[n]
text = path.read_text()
pathlib.Path(PLAN + f".seen{n}").write_text(text)
body = "\n".join(l for l in text.splitlines() if not l.startswith("#"))
if action == "garbage":
    path.write_text("{ this is not json")
elif action == "keep":
    pass
elif action == "fail":
    sys.exit(3)
else:
    try:
        doc = json.loads(body)
    except ValueError:  # the user fixes the garbage of an earlier step: start from what was first shown
        first = pathlib.Path(PLAN + ".seen0").read_text()
        doc = json.loads("\n".join(l for l in first.splitlines() if not l.startswith("#")))
    for dotted, value in action.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path.write_text(json.dumps(doc, indent=2))
'''


def editor(tmp_path: Path, plan: list) -> tuple[dict[str, str], Path]:
    """An $EDITOR that does ``plan``'s steps, one per opening; what it was shown is kept (``.seenN``)."""
    tmp_path.mkdir(exist_ok=True)
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan))
    script = tmp_path / "editor.py"
    script.write_text(f"PLAN = {str(plan_path)!r}\n" + EDITOR)
    return {"EDITOR": f"{sys.executable} {script}", "VISUAL": ""}, plan_path


def test_edit_applies_a_change_after_mistakes_are_fixed(daemon: DaemonProc, wat: Path, tmp_path: Path) -> None:
    d = daemon
    cli(d, "add", str(wat), "--name", "math", "--deny-tools", "fib", "--no-start")
    env, plan = editor(tmp_path, ["garbage", {"spec.policy.timeoutMs": -5}, {"spec.policy.timeoutMs": 4000}])
    res = cli(d, "edit", "math", env=env, input="y\ny\n")
    assert "not valid JSON" in res.stderr and "spec.policy.timeoutMs" in res.stderr, res.stderr
    assert "math: 1 change" in res.stdout and "spec.policy.timeoutMs: (default) → 4000" in res.stdout, res.stdout
    assert policy(d, "math")["timeoutMs"] == 4000 and policy(d, "math")["deniedTools"] == ["fib"]
    # The editor was shown the error the second and third time, and the user's own text kept.
    second, third = (Path(f"{plan}.seen{i}").read_text() for i in (1, 2))
    assert "# error: not valid JSON" in second and "this is not json" in second
    assert "# error:" in third and "spec.policy.timeoutMs" in third


def test_edit_aborts_cleanly(daemon: DaemonProc, wat: Path, tmp_path: Path) -> None:
    d = daemon
    cli(d, "add", str(wat), "--name", "math", "--deny-tools", "fib", "--no-start")
    before = d.service("math")["manifest"]
    env, _ = editor(tmp_path / "a", ["garbage"])
    res = cli(d, "edit", "math", env=env, input="n\n", code=1)
    assert "nothing changed" in res.stderr
    env, _ = editor(tmp_path / "b", ["garbage"])
    res = cli(d, "edit", "math", env=env, input="", code=1)  # no answer (not a terminal): no
    assert "nothing changed" in res.stderr
    env, _ = editor(tmp_path / "c", ["keep"])
    res = cli(d, "edit", "math", env=env)
    assert "no changes" in res.stdout
    env, _ = editor(tmp_path / "e", ["fail"])
    res = cli(d, "edit", "math", env=env, code=1)
    assert "the editor exited with 3" in res.stderr and "nothing changed" in res.stderr
    res = cli(d, "edit", "math", env={"EDITOR": "/no/such/editor", "VISUAL": ""}, code=1)
    assert "/no/such/editor" in res.stderr and "nothing changed" in res.stderr
    assert d.service("math")["manifest"] == before


def test_add_all_again_keeps_what_set_changed(daemon: DaemonProc, wat: Path) -> None:
    d = daemon
    folder = wat.parent
    cli(d, "add-all", str(folder), "--no-start")
    cli(d, "set", "math", "--deny-tools", "fib")
    res = cli(d, "add-all", str(folder), "--no-start")
    assert "ok    " in res.stdout and "math" in res.stdout
    assert policy(d, "math")["deniedTools"] == ["fib"]
