"""``runtimectl.commands.manifests`` as functions: the stdio name table, the
manifests ``add`` builds (stdio origin included), its usage errors, sizes and
``--env``, and a manifest file's relative paths resolved against its folder.
The CLI around them (parsing ``--``, exit codes, a real daemon) is in
``test_cli.py``.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from runtimectl.commands.manifests import (
    StdioFlags,
    build_manifest,
    command_words,
    derive_name,
    derive_stdio_name,
    load_manifest_file,
    parse_env,
    parse_size,
    relative_paths_in,
    resolve_relative_paths,
)
from runtimed.config.manifest import parse_manifest

REPO = Path(__file__).resolve().parents[2]
WEATHER = Path("/home/u/weather")  # where relative scripts are taken from in the table

# (command line, name): the runner and its flags are skipped; package, module, image or script names the service.
STDIO_NAMES = [
    ("npx -y @modelcontextprotocol/server-filesystem /srv", "server-filesystem"),
    ("npx -y @modelcontextprotocol/server-filesystem@2025.1.1 /srv", "server-filesystem"),
    ("npx --yes -q mcp-remote@latest https://example.com/mcp", "mcp-remote"),
    ("npx -y @playwright/mcp@latest", "playwright-mcp"),  # a name that says nothing: the scope too
    ("npx -p @scope/pkg the-bin --x", "the-bin"),  # -p takes a value; the bin names it
    ("pnpm dlx @upstash/context7-mcp", "context7-mcp"),
    ("npm exec -- some-server", "some-server"),
    ("bun x @scope/Thing_Server", "thing_server"),
    ("uvx mcp-server-fetch", "mcp-server-fetch"),
    ("uvx --from git+https://github.com/o/mcp-thing.git@v1 mcp-thing-cli", "mcp-thing-cli"),
    ("uvx -p 3.12 mcp-server-git==1.2", "mcp-server-git"),
    ("uvx mcp_server_time[extra]", "mcp-server-time"),
    ("uv tool run mcp-server-x", "mcp-server-x"),
    ("uv run mcp-server-y", "mcp-server-y"),
    ("uv run --directory /srv/forecast server.py", "forecast"),
    ("pipx run --spec foo bar-server", "bar-server"),
    ("python -m clari_revops_mcp.server", "clari-revops-mcp"),
    ("python3.12 -u -m mcp_server_git", "mcp-server-git"),
    ("python -mmyorg.tools.jira", "jira"),
    ("python server.py", "weather"),  # server.py says nothing: the folder it runs in
    ("python tools/github_mcp.py", "github_mcp"),
    ("python -c 'print(1)'", "python"),  # inline code: the program
    ("node build/index.js", "weather"),  # index in build/: both generic, so the folder above
    ("node /opt/srv/notion/dist/index.js", "notion"),
    ("node --env-file .env dist/server.mjs", "weather"),
    ("node -e 'x()'", "node"),
    ("deno run -A npm:@modelcontextprotocol/server-memory", "server-memory"),
    ("deno run -A https://deno.land/x/forecast/mod.ts", "forecast"),
    ("./my-server --flag", "my-server"),
    ("/usr/local/bin/github-mcp-server stdio", "github-mcp-server"),
    ("github-mcp-server stdio", "github-mcp-server"),
    ("./bin/server", "weather"),
    ("docker run -i --rm -e GITHUB_TOKEN ghcr.io/github/github-mcp-server:1.2", "github-mcp-server"),
    ("docker run -i --rm -v /a:/b mcp/fetch", "fetch"),
    ("env FOO=1 npx -y pkg-x", "pkg-x"),
    ("java -jar /opt/mcp-jira-0.3.1.jar", "mcp-jira"),
    ("npx -y " + "a" * 50, "a" * 32),
    ("npx -y My.Server!", "my-server"),
    ("node", "node"),
]


@pytest.mark.parametrize("line,name", STDIO_NAMES, ids=[line for line, _ in STDIO_NAMES])
def test_stdio_name_table(line: str, name: str) -> None:
    words = shlex.split(line)
    got = derive_stdio_name(words[0], words[1:], WEATHER)
    assert got == name
    assert parse_manifest({"metadata": {"name": got}, "spec": {"origin": {"type": "stdio", "command": "x"}}})


def test_stdio_name_without_a_base_keeps_the_stem() -> None:
    assert derive_stdio_name("node", ["index.js"]) == "index"
    assert derive_stdio_name("node", ["build/index.js"], Path("/")) == "index"


@pytest.mark.parametrize("target,name", [
    ("https://mcp.example.com/mcp", "example"), ("http://127.0.0.1:8080/mcp", "local-8080"),
    ("./tools/Upper Case.wat", "upper-case"), ("/x/" + "b" * 40 + ".wasm", "b" * 32),
])
def test_url_and_file_names_are_unchanged(target: str, name: str) -> None:
    assert derive_name(target) == name


def _build(target: str | None = None, command: list[str] | None = None, stdio: StdioFlags | None = None,
           here: Path | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"name": None, "namespace": None, "transport": None, "auth_ref": None, "policy": {},
                            "description": None, "labels": [], "restart": None, "max_restarts": None,
                            "autostart": True}
    args.update(kw)
    return build_manifest(target, args.pop("name"), args.pop("namespace"), args.pop("transport"),
                          args.pop("auth_ref"), args.pop("policy"), args.pop("description"), args.pop("labels"),
                          args.pop("restart"), args.pop("max_restarts"), args.pop("autostart"), command=command,
                          stdio=stdio, here=here)


def test_add_stdio_builds_the_whole_origin(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    flags = StdioFlags(env=("ROOT=/data", "GITHUB_TOKEN=env:GH_TOKEN", "API_KEY=file:keys/api"), cwd="srv",
                       per_client=True, limits={"memoryBytes": parse_size("4G", "--memory-bytes"), "cpuSeconds": 60,
                                                "openFiles": 256, "startTimeoutMs": 90_000})
    m = _build(command=["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"], stdio=flags, here=tmp_path,
               policy={"timeoutMs": 5000, "deniedTools": ["write_*"], "readOnly": None}, restart="always",
               labels=["team=x"])
    assert m == {
        "apiVersion": "runtimed/v1", "kind": "MCPService",
        "metadata": {"name": "server-filesystem", "labels": {"team": "x"}},
        "spec": {
            "origin": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
                       "env": {"ROOT": "/data", "GITHUB_TOKEN": "env:GH_TOKEN", "API_KEY": "file:keys/api"},
                       "cwd": str(tmp_path / "srv"),
                       "limits": {"memoryBytes": 4 << 30, "cpuSeconds": 60, "openFiles": 256, "startTimeoutMs": 90_000},
                       "clientSessions": "per-client"},
            "policy": {"timeoutMs": 5000, "deniedTools": ["write_*"]},
            "autostart": True,
            "restartPolicy": {"mode": "always"},
        },
    }
    assert parse_manifest(m).spec.origin.type == "stdio"  # what the daemon will accept


def test_add_stdio_leaves_out_empty_parts(tmp_path: Path) -> None:
    m = _build(command=["uvx", "mcp-server-fetch"], name="fetch", autostart=False, here=tmp_path)
    assert m["metadata"] == {"name": "fetch"}
    assert m["spec"] == {"origin": {"type": "stdio", "command": "uvx", "args": ["mcp-server-fetch"]}, "policy": {},
                         "autostart": False}
    assert _build(command=["my-server"], here=tmp_path)["spec"]["origin"] == {"type": "stdio", "command": "my-server"}


def test_a_program_given_by_a_relative_path_becomes_absolute(tmp_path: Path) -> None:
    (tmp_path / "proj" / "bin").mkdir(parents=True)
    prog = tmp_path / "proj" / "bin" / "my-server"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    m = _build(command=["./bin/my-server", "--flag"], here=tmp_path / "proj")
    assert m["spec"]["origin"]["command"] == str(prog) and m["metadata"]["name"] == "my-server"
    # From --cwd when given (it is where the program runs), else from here.
    m = _build(command=["bin/my-server"], stdio=StdioFlags(cwd="proj"), here=tmp_path)
    assert m["spec"]["origin"] == {"type": "stdio", "command": str(prog), "cwd": str(tmp_path / "proj")}
    assert _build(command=["node", "build/index.js"], here=tmp_path / "proj")["metadata"]["name"] == "proj"


def _usage(capsys: pytest.CaptureFixture[str], **kw: Any) -> str:
    with pytest.raises(typer.Exit) as e:
        _build(**kw)
    assert e.value.exit_code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("kw,message", [
    ({"target": "http://h/mcp", "command": ["npx", "x"]}, "either TARGET"),
    ({"command": []}, "nothing after --"),
    ({}, "missing TARGET"),
    ({"command": ["npx", "x"], "transport": "sse"}, "--transport and --auth-ref apply to remote URLs"),
    ({"target": "http://h/mcp", "stdio": StdioFlags(cwd=".")}, "--cwd applies to stdio servers"),
    ({"target": "http://h/mcp", "stdio": StdioFlags(per_client=True, limits={"cpuSeconds": 5})},
     "--per-client, --cpu-seconds apply to stdio servers (a command after --), not to remote URLs"),
    ({"target": str(REPO / "examples/wasm/upper.wat"), "stdio": StdioFlags(env=("A=b",))}, "not to WASM files"),
    ({"command": ["x"], "stdio": StdioFlags(env=("NOEQUALS",))}, "--env must be KEY=VALUE"),
    ({"command": ["x"], "stdio": StdioFlags(env=("1BAD=x",))}, "--env '1BAD': a name is letters"),
    ({"command": ["x"], "stdio": StdioFlags(env=("A=1", "A=2"))}, "--env A is given twice"),
    ({"command": ["x"], "stdio": StdioFlags(env=("A=env:not valid",))}, "not a valid reference"),
    ({"command": ["x"], "stdio": StdioFlags(cwd="/no/such/folder")}, "--cwd /no/such/folder: no such folder"),
    ({"command": ["x"], "stdio": StdioFlags(cwd=str(REPO / "README.md"))}, "not a folder"),
    ({"command": ["x"], "stdio": StdioFlags(limits={"openFiles": 0})}, "--open-files must be greater than 0"),
    ({"command": ["./no-such-program"]}, "./no-such-program: no such file"),
    ({"target": "npx -y some-pkg"}, "to run a stdio server put it after --: runtimectl add [--name NAME] -- npx -y some-pkg"),
])
def test_add_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    kw.setdefault("here", tmp_path)
    assert message in _usage(capsys, **kw)


def test_a_credential_looking_env_needs_a_reference_and_its_value_is_never_shown(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for key in ("GITHUB_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD", "CLIENT_SECRET", "PAT"):
        text = _usage(capsys, command=["x"], stdio=StdioFlags(env=(f"{key}=s3cr3t-value",)), here=tmp_path)
        assert f"--env {key} looks like a credential" in text and f"--env {key}=env:{key}" in text
        assert "s3cr3t-value" not in text
    assert parse_env(["GITHUB_TOKEN=env:GH", "API_KEY=file:api.key", "DEBUG=1", "EMPTY="]) == {
        "GITHUB_TOKEN": "env:GH", "API_KEY": "file:api.key", "DEBUG": "1", "EMPTY": ""}


def test_a_non_executable_program_says_how_to_run_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("print()\n")
    text = _usage(capsys, command=["./server.py"], here=tmp_path)
    assert "not executable" in text and "runtimectl add -- python3 ./server.py" in text


@pytest.mark.parametrize("value,size", [("1", 1), ("4096", 4096), ("512K", 512 << 10), ("512M", 512 << 20),
                                        ("4G", 4 << 30), ("4GiB", 4 << 30), ("2gb", 2 << 30), ("1T", 1 << 40),
                                        ("100b", 100)])
def test_sizes(value: str, size: int) -> None:
    assert parse_size(value, "--memory-bytes") == size


@pytest.mark.parametrize("value", ["0", "-1", "lots", "4 X", "1.5G", ""])
def test_bad_sizes(value: str) -> None:
    with pytest.raises(typer.Exit):
        parse_size(value, "--memory-bytes")


def test_command_words_of_a_target(tmp_path: Path) -> None:
    assert command_words("npx -y pkg") == ["npx", "-y", "pkg"]
    assert command_words(sys.executable) == [sys.executable]
    (tmp_path / "srv.js").write_text("")
    assert command_words(str(tmp_path / "srv.js")) == ["node", str(tmp_path / "srv.js")]
    assert command_words(str(tmp_path / "notes.txt")) is None
    assert command_words("no-such-program-anywhere") is None


def test_relative_arguments_that_exist_here_are_noted(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "index.js").write_text("")
    (tmp_path / "server.py").write_text("")
    args = ["build/index.js", "server.py", "--port", "/abs/x.py", "missing/x.js", "pkg", "https://x/y"]
    assert relative_paths_in(args, tmp_path) == ["build/index.js", "server.py"]


# -- apply -f: relative paths are the file's ------------------------------------------------------------------------

def _wasm(path: str) -> dict[str, Any]:
    return {"metadata": {"name": "w"}, "spec": {"origin": {"type": "local_wasm", "path": path}}}


def _stdio(cwd: str) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "spec": {"origin": {"type": "stdio", "command": "x", "cwd": cwd}}}


def test_load_manifest_file_resolves_relative_paths_against_its_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    f = folder / "services.json"
    f.write_text(json.dumps({"services": [
        _wasm("tools/upper.wat"), _wasm("../shared/./math.wat"), _wasm("/abs/tool.wasm"), _wasm("~/tools/x.wat"),
        _stdio("srv"), _stdio("."), _stdio("/var/lib/srv"), _stdio("~/srv"),
        {"metadata": {"name": "r"}, "spec": {"origin": {"type": "remote_mcp", "url": "http://h/mcp"}}},
    ]}))
    for given in (str(f), os.path.relpath(f)):  # an absolute or a relative -f
        got = [m["spec"]["origin"] for m in load_manifest_file(given)]
        assert [o.get("path") or o.get("cwd") or o.get("url") for o in got] == [
            str(folder / "tools/upper.wat"), str(tmp_path / "shared/math.wat"), "/abs/tool.wasm",
            str(tmp_path / "home/tools/x.wat"),
            str(folder / "srv"), str(folder), "/var/lib/srv", str(tmp_path / "home/srv"),
            "http://h/mcp",
        ]
    toml = folder / "one.toml"
    toml.write_text('[metadata]\nname = "t"\n[spec.origin]\ntype = "local_wasm"\npath = "upper.wat"\n')
    assert load_manifest_file(str(toml))[0]["spec"]["origin"]["path"] == str(folder / "upper.wat")
    # stdin: from the working dir.
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(_stdio("srv"))))
    assert load_manifest_file("-")[0]["spec"]["origin"]["cwd"] == str(elsewhere / "srv")


def test_resolve_relative_paths_leaves_what_it_does_not_know() -> None:
    base = Path("/base")
    for m in ({}, {"spec": None}, {"spec": {"origin": "x"}}, {"spec": {"origin": {"type": "local_wasm", "path": 5}}},
              {"spec": {"origin": {"type": "local_wasm", "path": ""}}},
              {"spec": {"origin": {"type": "remote_mcp", "url": "http://h", "path": "rel"}}},
              {"spec": {"origin": {"type": "stdio", "command": "./x"}}}):
        before = json.dumps(m)
        assert json.dumps(resolve_relative_paths(m, base)) == before
