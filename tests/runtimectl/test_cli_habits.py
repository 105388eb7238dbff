"""``runtimectl``'s everyday habits, as a real process against a real daemon: ``--version`` and
``-h``, shell completion (the scripts and service names completed from the daemon), ``tools``
showing each tool's parameters (required marked) and descriptions cut at a word with an
ellipsis, singular counts ("1 tool"), ``call`` summarising binary content unless ``--raw``,
``call --output json`` for scripts, and a client-side timeout that says the tool is slow, not
that the daemon is gone.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

from runtimed import __version__
from tests.support.daemon import REPO, run_cli
from tests.support.foundation import closed_port
from tests.support.upstream import run_upstream

WIDE = {"COLUMNS": "250"}
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
LONG_DESCRIPTION = ("Upper-cases the ASCII letters of a text, leaving every other character exactly as it was, "
                    "which is handy for shouting headlines in a terminal.")


def cli(d, *args: str, code: int = 0, **kw) -> subprocess.CompletedProcess[str]:
    res = run_cli(d, *args, **kw)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, f"runtimectl {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def upper_wat(tmp_path: Path, description: str = LONG_DESCRIPTION) -> Path:
    """examples/wasm/upper.wat with another description (its one tool: upper(text*))."""
    text = (REPO / "examples" / "wasm" / "upper.wat").read_text()
    old = "Upper-cases the ASCII letters of a text."
    assert old in text
    path = tmp_path / "upper.wat"
    path.write_text(text.replace(old, description))
    return path


def test_version_and_short_help() -> None:
    res = run_cli(None, "--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"runtimectl {__version__}"
    for args in (("-h",), ("add", "-h"), ("call", "-h")):
        res = run_cli(None, *args)
        assert res.returncode == 0, (args, res.stderr)
        assert "Usage:" in res.stdout and "-h, --help" in res.stdout


def test_shell_completion_is_on_and_completes_service_names(daemon, tmp_path: Path) -> None:
    d = daemon
    res = run_cli(None, "--show-completion", "bash")
    assert res.returncode == 0, res.stderr
    assert "_RUNTIMECTL_COMPLETE" in res.stdout  # the script bash sources
    assert "--install-completion" in run_cli(None, "--help").stdout
    cli(d, "add", str(upper_wat(tmp_path)), "--name", "upper", "--no-start")
    cli(d, "add", f"http://127.0.0.1:{closed_port()}/mcp", "--name", "idle", "--no-start")
    env = {"_RUNTIMECTL_COMPLETE": "complete_bash", "COMP_WORDS": "runtimectl start u", "COMP_CWORD": "2"}
    res = run_cli(d, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["upper"]
    env["COMP_WORDS"] = "runtimectl show "
    assert sorted(run_cli(d, env=env).stdout.split()) == ["idle", "upper"]
    # No daemon: no candidates, and no error text in the user's shell.
    res = run_cli(None, env={**env, "RUNTIMED_URL": f"http://127.0.0.1:{closed_port()}"})
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr == ""


def test_tools_shows_parameters_and_cuts_descriptions_at_a_word(daemon, tmp_path: Path) -> None:
    d = daemon
    cli(d, "add", str(upper_wat(tmp_path)), "--name", "up")
    res = cli(d, "tools", env=WIDE)
    header, *rows = res.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "SERVICE", "PARAMETERS"]
    row = next(r for r in rows if r.startswith("up__upper"))
    assert "text*" in row, row  # the required argument, marked
    assert "*: required" in res.stdout
    shown = re.search(r"(Upper-cases.*?)\s{2,}|(Upper-cases.*)$", row)
    assert shown, row
    desc = (shown.group(1) or shown.group(2)).strip()
    assert desc.endswith("…") and len(desc) <= 81, desc
    assert LONG_DESCRIPTION.startswith(desc[:-1].rstrip()) and LONG_DESCRIPTION[len(desc[:-1].rstrip())] == " ", desc
    tools = {t["name"]: t for t in json.loads(cli(d, "tools", "--json").stdout)}
    assert tools["up__upper"]["description"] == LONG_DESCRIPTION  # --json keeps everything
    # "1 tool", not "1 tools".
    res = cli(d, "introspect", "up")
    assert " 1 tool, " in res.stdout and "1 tools" not in res.stdout
    assert "0 resources" in res.stdout and "1 resources" not in res.stdout
    res = cli(d, "show", "up")
    assert "1 tool, " in res.stdout and "1 tools" not in res.stdout


def test_call_summarises_binary_content_unless_raw_and_has_a_json_output(daemon) -> None:
    d = daemon
    with run_upstream("conformance_server") as up:
        cli(d, "add", up.url, "--name", "conf")
        res = cli(d, "call", "conf__test_image_content")
        assert PNG_B64 not in res.stdout
        size = len(base64.b64decode(PNG_B64))
        assert f"[image: image/png, {size} bytes]" in res.stdout, res.stdout
        res = cli(d, "call", "conf__test_multiple_content_types")
        assert PNG_B64 not in res.stdout and "[image: image/png" in res.stdout
        # --raw: the blocks as they came.
        res = cli(d, "call", "conf__test_image_content", "--raw")
        assert PNG_B64 in res.stdout
        # --output json: the whole result, for scripts (--json still means the arguments).
        res = cli(d, "call", "conf__test_image_content", "--output", "json")
        result = json.loads(res.stdout)
        assert result["content"][0] == {"type": "image", "data": PNG_B64, "mimeType": "image/png"}
        res = cli(d, "call", "conf__test_simple_text", "--json", "{}", "-o", "json")
        assert json.loads(res.stdout)["content"][0]["type"] == "text"
        # An error result: the JSON still printed for the script, and exit 1.
        res = cli(d, "call", "conf__test_error_handling", "-o", "json", code=1)
        assert json.loads(res.stdout)["isError"] is True
        res = cli(d, "call", "conf__test_simple_text", "--output", "yaml", code=2)
        assert "--output must be text or json" in res.stderr


def test_a_slow_tool_past_the_client_timeout_is_not_blamed_on_the_daemon(daemon) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        cli(d, "add", up.url, "--name", "echo")
        res = cli(d, "call", "echo__slow", "--arg", "seconds=30", "--arg", "steps=1", "--timeout", "1", code=1)
        assert "did not answer in time" not in res.stderr and "is not running" not in res.stderr
        assert "echo__slow gave no result within 1 s (--timeout 1)" in res.stderr, res.stderr
        assert "runtimed is up" in res.stderr and "--timeout" in res.stderr
