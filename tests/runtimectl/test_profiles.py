"""``runtimectl profile create|list|show|edit|remove`` and ``apply -f`` with ``kind: MCPProfile``
documents: real ``runtimectl`` processes against a real daemon serving two WASM services (``math``:
add, hypot, fib; ``upper``: upper), the editor a real program (the script of test_add_set_edit).
What a profile serves through ``/mcp/@NAME`` is checked with the official SDK client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.runtimectl.test_add_set_edit import editor
from tests.support.daemon import REPO, DaemonProc, run_cli


def cli(d: DaemonProc, *args: str, code: int = 0, **kw: Any) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, **kw)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    d = DaemonProc(tmp_path_factory.mktemp("profiles-cli") / "state").start()
    try:
        for name in ("math", "upper"):
            r = d.api("POST", "/api/services", json={
                "metadata": {"name": name},
                "spec": {"origin": {"type": "local_wasm", "path": str(REPO / "examples" / "wasm" / f"{name}.wat")}}})
            assert r.status_code == 201, r.text
            d.wait_state(name, "RUNNING")
        yield d
    finally:
        d.stop()


@pytest.fixture(autouse=True)
def no_profiles(daemon: DaemonProc) -> Iterator[None]:
    """Each test starts and ends with no profile."""
    yield
    for p in daemon.api("GET", "/api/profiles").json()["profiles"]:
        assert daemon.api("DELETE", f"/api/profiles/{p['name']}").status_code == 200


def stored(d: DaemonProc, name: str) -> dict[str, Any]:
    r = d.api("GET", f"/api/profiles/{name}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def listed(d: DaemonProc, name: str) -> dict[str, Any]:
    async with Client(f"{d.mcp_url}/@{name}") as c:
        return {t.name: t for t in (await c.list_tools()).tools}


# -- create, list, show, remove ----------------------------------------------------------------------------------

async def test_create_list_show_and_remove(daemon: DaemonProc) -> None:
    d = daemon
    res = cli(d, "profile", "create", "dev", "--service", "math", "--exclude-tool", "math__fib",
              "--rename", "math__add=plus", "--describe", "math__hypot=Length of the hypotenuse (a = b = 1: √2).",
              "--read-only-hint", "math__add=false", "--hide", "math__nothing", "--description", "For coding agents",
              "--label", "team=core")
    assert res.stdout.startswith(f"created profile dev: {d.mcp_url}/@dev (full mode, 2 tools)\n"), res.stdout
    assert "runtimectl bootstrap --profile dev" in res.stdout and "runtimectl token create --profile dev" in res.stdout
    assert stored(d, "dev")["manifest"] == {
        "apiVersion": "runtimed/v1", "kind": "MCPProfile",
        "metadata": {"name": "dev", "description": "For coding agents", "labels": {"team": "core"}},
        "spec": {"services": {"include": ["math"], "exclude": []}, "tools": {"include": [], "exclude": ["math__fib"]},
                 "overrides": {"math__add": {"name": "plus", "annotations": {"readOnlyHint": False}, "hidden": False},
                               "math__hypot": {"description": "Length of the hypotenuse (a = b = 1: √2).",
                                               "hidden": False},
                               "math__nothing": {"hidden": True}},
                 "mode": "full", "pinTools": False}}
    # What a client of /mcp/@dev sees follows the flags.
    tools = await listed(d, "dev")
    assert set(tools) == {"plus", "math__hypot"}
    assert tools["math__hypot"].description == "Length of the hypotenuse (a = b = 1: √2)."
    assert tools["plus"].annotations is not None and tools["plus"].annotations.read_only_hint is False

    # Two selections of globs, comma-separated or repeated; search mode; pinning; a rename of a tool not served.
    res = cli(d, "profile", "create", "finder", "--service", "math,upper", "--tool", "*__upper", "--tool", "math__a*",
              "--mode", "search", "--pin-tools", "--rename", "math__ad=x")
    assert res.stdout.startswith(f"created profile finder: {d.mcp_url}/@finder (search mode, 2 tools)"), res.stdout
    assert "no tool math__ad is served by this profile now" in res.stderr
    spec = stored(d, "finder")["manifest"]["spec"]
    assert spec["services"]["include"] == ["math", "upper"] and spec["tools"]["include"] == ["*__upper", "math__a*"]
    assert spec["mode"] == "search" and spec["pinTools"] is True
    assert set(await listed(d, "finder")) == {"search_tools", "describe_tool", "call_tool"}

    # list: name, mode, tool count, endpoint.
    rows = [line.split() for line in cli(d, "profile", "list").stdout.splitlines()]
    assert rows[0][:4] == ["NAME", "MODE", "TOOLS", "ENDPOINT"]
    assert rows[1][:4] == ["dev", "full", "2", f"{d.mcp_url}/@dev"] and rows[1][4:] == ["For", "coding", "agents"]
    assert rows[2][:5] == ["finder", "search,", "pinned", "2", f"{d.mcp_url}/@finder"]
    as_json = json.loads(cli(d, "profile", "list", "--json").stdout)
    assert [(p["name"], p["toolCount"], p["endpoint"]) for p in as_json] == [
        ("dev", 2, f"{d.mcp_url}/@dev"), ("finder", 2, f"{d.mcp_url}/@finder")]

    # show: the manifest in words, then each tool: shown name, original, service.
    out = cli(d, "profile", "show", "dev").stdout
    assert out.startswith(f"profile dev: {d.mcp_url}/@dev\n"), out
    for line in ("  description:    For coding agents", "  services:       math",
                 "  tools:          every tool of those services; except math__fib",
                 "  prompts from:   the selected services", "    math__add: shown as plus; annotations readOnlyHint=false",
                 "    math__nothing: hidden", "serves 2 tools:"):
        assert line in out.splitlines(), (line, out)
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[out.splitlines().index("serves 2 tools:") + 2:]}
    assert table == {"plus": ["→", "math__add", "math"], "math__hypot": ["(same)", "math"]}
    shown = json.loads(cli(d, "profile", "show", "dev", "--json").stdout)
    assert {"name": "plus", "original": "math__add", "service": "math"} in shown["tools"]
    assert "search_tools, describe_tool and call_tool" in cli(d, "profile", "show", "finder").stdout

    # create refuses a name in use (nothing changes); --replace replaces the whole manifest.
    res = cli(d, "profile", "create", "dev", "--service", "upper", code=2)
    assert "a profile named dev exists" in res.stderr and "profile edit dev" in res.stderr
    assert stored(d, "dev")["manifest"]["spec"]["services"]["include"] == ["math"]
    res = cli(d, "profile", "create", "dev", "--service", "upper", "--replace", "--json")
    body = json.loads(res.stdout)
    assert body["created"] is False and body["profile"]["toolCount"] == 1
    assert body["tools"] == [{"name": "upper__upper", "original": "upper__upper", "service": "upper"}]
    assert not stored(d, "dev")["manifest"]["spec"]["overrides"]

    # remove; then it is gone, and saying so names the ones left.
    res = cli(d, "profile", "remove", "dev")
    assert res.stdout.startswith("removed profile dev\n") and "bootstrap remove --profile dev" in res.stdout
    res = cli(d, "profile", "show", "dev", code=1)
    assert "no profile named 'dev'" in res.stderr and "finder" in res.stderr
    assert "no profile named 'dev'" in cli(d, "profile", "remove", "dev", code=1).stderr
    assert [p["name"] for p in json.loads(cli(d, "profile", "list", "--json").stdout)] == ["finder"]


def test_removing_a_profile_names_the_tokens_that_still_name_it(daemon: DaemonProc) -> None:
    d = daemon
    cli(d, "profile", "create", "ops", "--service", "upper")
    token = json.loads(cli(d, "token", "create", "--profile", "ops", "--json").stdout)
    res = cli(d, "profile", "remove", "ops")
    assert f"1 scoped token ({token['id']}) still name it" in res.stderr, res.stderr
    assert d.api("DELETE", f"/api/tokens/{token['id']}").status_code == 200


def test_profile_names_complete_in_the_shell(daemon: DaemonProc) -> None:
    for name in ("dev", "docs", "ops"):
        cli(daemon, "profile", "create", name)
    env = {"_RUNTIMECTL_COMPLETE": "complete_bash", "COMP_WORDS": "runtimectl profile show d", "COMP_CWORD": "3"}
    res = run_cli(daemon, env=env)
    assert res.returncode == 0 and sorted(res.stdout.split()) == ["dev", "docs"], res.stdout + res.stderr
    env["COMP_WORDS"] = "runtimectl profile remove "
    assert sorted(run_cli(daemon, env=env).stdout.split()) == ["dev", "docs", "ops"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--rename", "math__add"], "--rename takes PUBLIC=NEW"),
    (["--rename", "=plus"], "--rename takes PUBLIC=NEW"),
    (["--rename", "math__add="], "--rename math__add=: give the name to show after '='"),
    (["--rename", "math__add=plus", "--rename", "math__add=sum"], "--rename math__add is given twice"),
    (["--rename", "math__add=has space"], "spec.overrides.math__add.name: must match"),
    (["--rename", "math__add=x", "--rename", "math__fib=x"], "both rename to 'x'"),
    (["--describe", "math__add"], "--describe takes PUBLIC=TEXT"),
    (["--hide", "math__add=yes"], "--hide takes PUBLIC"),
    (["--read-only-hint", "math__add=maybe"], "--read-only-hint takes PUBLIC or PUBLIC=true|false"),
    (["--mode", "sometimes"], "--mode must be full or search, not 'sometimes'"),
    (["--service", "has space"], "'has space' is not a name or glob"),
    (["--label", "team"], "--label must be key=value"),
])
def test_malformed_flags_are_usage_errors(daemon: DaemonProc, flags: list[str], message: str) -> None:
    res = cli(daemon, "profile", "create", "dev", *flags, code=2)
    assert message in res.stderr, res.stderr
    assert res.stdout == ""
    assert daemon.api("GET", "/api/profiles").json()["profiles"] == []


def test_a_bad_profile_name_is_a_usage_error(daemon: DaemonProc) -> None:
    res = cli(daemon, "profile", "create", "Dev Team", code=2)
    assert "metadata.name: must match [a-z0-9][a-z0-9_-]{0,31}" in res.stderr, res.stderr
    assert "Missing argument 'NAME'" in cli(daemon, "profile", "create", code=2).stderr


# -- edit ----------------------------------------------------------------------------------------------------------

def test_edit_reopens_on_mistakes_then_applies(daemon: DaemonProc, tmp_path: Path) -> None:
    d = daemon
    cli(d, "profile", "create", "dev", "--service", "math", "--rename", "math__add=plus")
    env, plan = editor(tmp_path, ["garbage", {"metadata.name": "other"}, {"metadata.name": "dev", "spec.mode": "sometimes"},
                                  {"spec.mode": "search", "spec.overrides.math__add.name": "sum"}])
    res = cli(d, "profile", "edit", "dev", env=env, input="y\ny\ny\n")
    assert "not valid JSON" in res.stderr and "spec.mode" in res.stderr, res.stderr
    assert "a profile keeps its name here" in res.stderr
    assert res.stdout.splitlines() == ["dev: 2 changes (search mode, 3 tools)",
                                       "  spec.mode: full → search", "  spec.overrides.math__add.name: plus → sum"]
    spec = stored(d, "dev")["manifest"]["spec"]
    assert spec["mode"] == "search" and spec["overrides"]["math__add"]["name"] == "sum"
    assert "other" not in [p["name"] for p in d.api("GET", "/api/profiles").json()["profiles"]]
    # The editor was shown the manifest as JSON under the header, then each problem at the top.
    first, second, third, fourth = (Path(f"{plan}.seen{i}").read_text() for i in range(4))
    assert first.startswith("# runtimectl profile edit dev: the manifest below is checked")
    assert json.loads("\n".join(x for x in first.splitlines() if not x.startswith("#")))["metadata"]["name"] == "dev"
    assert "# error: not valid JSON" in second and "this is not json" in second
    assert "# error: metadata.name: a profile keeps its name here" in third and '"other"' in third
    assert "# error: spec.mode" in fourth


def test_edit_that_changes_nothing_or_is_abandoned(daemon: DaemonProc, tmp_path: Path) -> None:
    d = daemon
    cli(d, "profile", "create", "dev", "--service", "math")
    before = stored(d, "dev")["manifest"]
    env, _ = editor(tmp_path / "keep", ["keep"])
    assert cli(d, "profile", "edit", "dev", env=env).stdout == "dev: no changes\n"
    env, _ = editor(tmp_path / "no", [{"spec.mode": "sometimes"}])
    res = cli(d, "profile", "edit", "dev", env=env, input="n\n", code=1)
    assert "spec.mode" in res.stderr and "nothing changed" in res.stderr
    env, _ = editor(tmp_path / "fail", ["fail"])
    assert "the editor exited with 3" in cli(d, "profile", "edit", "dev", env=env, code=1).stderr
    assert stored(d, "dev")["manifest"] == before
    assert "no profile named 'nope'" in cli(d, "profile", "edit", "nope", env=env, code=1).stderr


# -- apply -f ------------------------------------------------------------------------------------------------------

def test_apply_takes_profiles_alone_or_mixed_with_services(daemon: DaemonProc, tmp_path: Path) -> None:
    d = daemon
    shutil.copy(REPO / "examples" / "wasm" / "upper.wat", tmp_path / "shout.wat")
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([
        {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "shout"},
         "spec": {"origin": {"type": "local_wasm", "path": "shout.wat"}}},
        {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": "loud"},
         "spec": {"services": {"include": ["shout"]}, "overrides": {"shout__upper": {"name": "yell"}}}},
    ]))
    res = cli(d, "apply", "-f", str(mixed))
    lines = res.stdout.splitlines()
    assert lines[0].startswith("added shout (svc_") and lines[1].startswith(f"added profile loud: {d.mcp_url}/@loud (")
    d.wait_state("shout", "RUNNING")
    assert stored(d, "loud")["tools"] == [{"name": "yell", "original": "shout__upper", "service": "shout"}]
    res = cli(d, "apply", "-f", str(mixed), "--json")
    results = json.loads(res.stdout)["results"]
    assert results[0]["created"] is False and results[1]["created"] is False
    assert results[1]["profile"]["endpoint"] == f"{d.mcp_url}/@loud"

    # TOML: one profile alone, and [[services]] with [[profiles]] in one file.
    alone = tmp_path / "reader.toml"
    alone.write_text('apiVersion = "runtimed/v1"\nkind = "MCPProfile"\n[metadata]\nname = "reader"\n'
                     '[spec]\nmode = "search"\n[spec.tools]\ninclude = ["math__*"]\nexclude = ["math__fib"]\n')
    res = cli(d, "apply", "-f", str(alone))
    assert res.stdout.startswith(f"added profile reader: {d.mcp_url}/@reader (search mode, 2 tools)"), res.stdout
    both = tmp_path / "both.toml"
    both.write_text('[[services]]\nkind = "MCPService"\n[services.metadata]\nname = "shout"\n'
                    '[services.spec.origin]\ntype = "local_wasm"\npath = "shout.wat"\n\n'
                    '[[profiles]]\nkind = "MCPProfile"\n[profiles.metadata]\nname = "loud"\ndescription = "Loud."\n'
                    '[profiles.spec.services]\ninclude = ["shout", "upper"]\n')
    res = cli(d, "apply", "-f", str(both))
    assert res.stdout.splitlines()[1] == f"updated profile loud: {d.mcp_url}/@loud (full mode, 2 tools)", res.stdout
    assert stored(d, "loud")["description"] == "Loud."
    assert not stored(d, "loud")["manifest"]["spec"]["overrides"]  # the document is the whole manifest

    # A profile the daemon refuses is named, the others are applied, and the exit code says it.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"profiles": [
        {"kind": "MCPProfile", "metadata": {"name": "good"}},
        {"kind": "MCPProfile", "metadata": {"name": "wrong"}, "spec": {"mode": "sometimes"}},
    ]}))
    res = cli(d, "apply", "-f", str(bad), code=1)
    assert res.stdout.startswith("added profile good: ") and "runtimectl: profile wrong: " in res.stderr
    assert "spec.mode" in res.stderr
    names = [p["name"] for p in d.api("GET", "/api/profiles").json()["profiles"]]
    assert "good" in names and "wrong" not in names
    assert d.api("DELETE", "/api/services/shout").status_code == 200
