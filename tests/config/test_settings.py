"""Settings: precedence (flag > RUNTIMED_* > config.toml > default) and validation, each seen
through a real ``runtimed`` process (its answers and its one-line refusals to start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.foundation import run_daemon_expect_exit

TOKEN = "t0ken-for-tests-0123456789"


# -- settings: flag > RUNTIMED_* > config.toml > default ----------------------------

def _status(d) -> dict:
    r = d.api("GET", "/api/status")
    assert r.status_code == 200, r.text
    return r.json()


def test_settings_default_file_env_flag_precedence(make_daemon, tmp_path: Path) -> None:
    # default
    d = make_daemon("s-default")
    assert _status(d)["adminTools"] is False
    assert _status(d)["authRequired"] is False
    d.stop()

    # config.toml over the default
    state = tmp_path / "s-file"
    state.mkdir()
    (state / "config.toml").write_text(
        f'admin_tools = true\nauth_token = "file-{TOKEN}"\n[policy]\ntimeoutMs = 777\n'
    )
    d = make_daemon("s-file", start=False)
    d.token = f"file-{TOKEN}"
    d.start()
    assert _status(d)["adminTools"] is True
    d.stop()

    # RUNTIMED_* over config.toml
    d = make_daemon("s-file", env={"RUNTIMED_ADMIN_TOOLS": "false", "RUNTIMED_AUTH_TOKEN": f"env-{TOKEN}"},
                    start=False)
    d.env["RUNTIMED_AUTH_TOKEN"] = f"env-{TOKEN}"
    d.token = None
    d.start()
    assert d.api("GET", "/api/status").status_code == 401
    d.token = f"file-{TOKEN}"
    assert d.api("GET", "/api/status").status_code == 401  # the file's token lost
    d.token = f"env-{TOKEN}"
    assert _status(d)["adminTools"] is False
    d.stop()

    # flags over RUNTIMED_*
    d = make_daemon("s-file", args=["--admin-tools"], env={"RUNTIMED_ADMIN_TOOLS": "false"},
                    token=f"flag-{TOKEN}", start=False)
    d.env["RUNTIMED_AUTH_TOKEN"] = f"env-{TOKEN}"
    d.start()
    assert _status(d)["adminTools"] is True
    d.token = f"env-{TOKEN}"
    assert d.api("GET", "/api/status").status_code == 401


def test_invalid_config_toml_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text("admin_tools = [unclosed\n")
    res = run_daemon_expect_exit(state)
    assert res.returncode == 2
    assert "config.toml" in res.stderr and "not valid TOML" in res.stderr
    assert "Traceback" not in res.stderr


def test_invalid_setting_values_name_the_field(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text("probe_interval_s = -1\n")
    res = run_daemon_expect_exit(state)
    assert res.returncode == 2 and "probe_interval_s" in res.stderr and "Traceback" not in res.stderr

    (state / "config.toml").write_text("no_such_setting = 1\n")
    res = run_daemon_expect_exit(state)
    assert res.returncode == 2 and "no_such_setting: unknown setting" in res.stderr

    (state / "config.toml").unlink()
    res = run_daemon_expect_exit(state, env={"RUNTIMED_POLICY_TIMEOUT_MS": "-5"})
    assert res.returncode == 2 and "policy.timeout_ms" in res.stderr and "Traceback" not in res.stderr

    res = run_daemon_expect_exit(state, "--auth-token", "short")
    assert res.returncode == 2 and "auth_token" in res.stderr and "16" in res.stderr
    assert "short" not in res.stderr.replace("shorter", "")  # the token itself is never echoed

    res = run_daemon_expect_exit(state, "--log-level", "loud")
    assert res.returncode == 2 and "Traceback" not in res.stderr


# -- regression, config: unreadable config.toml (found by review; fails with its fix reverted) -----

def test_config_toml_that_is_a_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "config.toml").mkdir(parents=True)
    p = run_daemon_expect_exit(state)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert str(state / "config.toml") in lines[0] and "cannot be read" in lines[0], lines[0]


# -- issue 14, item 14: config.toml naming (snake_case everywhere), typo suggestions, the XDG config file --

WASM = Path(__file__).resolve().parents[2] / "examples" / "wasm" / "upper.wat"


def _wasm_policy(d) -> dict:
    r = d.api("POST", "/api/services?start=false", json={
        "apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "up"},
        "spec": {"origin": {"type": "local_wasm", "path": str(WASM)}}})
    assert r.status_code == 201, r.text
    return d.service("up")["policy"]


def test_config_toml_policy_keys_are_snake_case_like_the_rest(make_daemon, tmp_path: Path) -> None:
    state = tmp_path / "snake"
    state.mkdir()
    (state / "config.toml").write_text(
        "admin_tools = true\n[policy]\ntimeout_ms = 777\nmax_concurrency = 3\nqueue_timeout_ms = 1234\n"
        "[wasm]\nmax_output_bytes = 2048\n")
    d = make_daemon("snake")
    assert _status(d)["adminTools"] is True
    policy = _wasm_policy(d)
    assert (policy["timeoutMs"], policy["maxConcurrency"], policy["queueTimeoutMs"]) == (777, 3, 1234)


def test_config_toml_camel_case_policy_keys_stay_accepted(tmp_path: Path) -> None:
    from runtimed.config.settings import load_settings

    state = tmp_path / "camel"
    state.mkdir()
    (state / "config.toml").write_text("[policy]\ntimeoutMs = 321\n[wasm]\nmemoryBytes = 1048576\n")
    s = load_settings({"state_dir": str(state)}, environ={"HOME": str(tmp_path)})
    assert s.policy.timeoutMs == 321 and s.wasm.memoryBytes == 1048576


@pytest.mark.parametrize(("text", "expected"), [
    ("[policy]\ntimout_ms = 5\n", "policy.timout_ms: unknown setting; did you mean policy.timeout_ms?"),
    ("[policy]\ntimeoutMS = 5\n", "policy.timeoutMS: unknown setting; did you mean policy.timeout_ms?"),
    ("admin_tool = true\n", "admin_tool: unknown setting; did you mean admin_tools?"),
    ("[polcy]\ntimeout_ms = 5\n", "polcy: unknown setting; did you mean policy?"),
    ("[wasm]\nthread = 2\n", "wasm.thread: unknown setting; did you mean wasm.threads?"),
    ("[policy]\ntimeout_ms = 5\ntimeoutMs = 6\n",
     "policy.timeoutMs and policy.timeout_ms are the same setting; keep policy.timeout_ms"),
    ("policy = 3\n", "policy: must be a table ([policy])"),
])
def test_config_toml_mistakes_name_the_key_and_suggest_the_right_one(tmp_path: Path, text: str, expected: str) -> None:
    from runtimed.config.settings import load_settings
    from runtimed.errors import ConfigError

    state = tmp_path / "typo"
    state.mkdir()
    (state / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings({"state_dir": str(state)}, environ={"HOME": str(tmp_path)})
    assert expected in str(e.value), str(e.value)
    assert str(state / "config.toml") in str(e.value)


def test_a_typo_in_config_toml_stops_the_daemon_with_the_suggestion(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "config.toml").write_text("[policy]\nmax_concurency = 4\n")
    res = run_daemon_expect_exit(state)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "policy.max_concurency: unknown setting; did you mean policy.max_concurrency?" in res.stderr


def test_an_env_variable_error_names_the_snake_case_setting_and_the_variable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    res = run_daemon_expect_exit(state, env={"RUNTIMED_POLICY_TIMEOUT_MS": "-5"})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "policy.timeout_ms" in res.stderr and "RUNTIMED_POLICY_TIMEOUT_MS" in res.stderr, res.stderr


def test_the_xdg_config_file_is_read_and_the_state_dir_file_wins(tmp_path: Path) -> None:
    from runtimed.config.settings import load_settings

    xdg = tmp_path / "xdg"
    (xdg / "runtimed").mkdir(parents=True)
    (xdg / "runtimed" / "config.toml").write_text(
        f'state_dir = "{tmp_path / "from-xdg"}"\nadmin_tools = true\nprobe_interval_s = 7\n[policy]\ntimeout_ms = 111\n'
        "retries = 4\n")
    environ = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(xdg)}
    s = load_settings({}, environ=environ)
    # the XDG file may say where the state dir is (the state dir's own file cannot)
    assert s.state_dir == (tmp_path / "from-xdg").resolve()
    assert (s.admin_tools, s.probe_interval_s, s.policy.timeoutMs, s.policy.retries) == (True, 7, 111, 4)

    (tmp_path / "from-xdg").mkdir()
    (tmp_path / "from-xdg" / "config.toml").write_text("probe_interval_s = 9\n[policy]\ntimeout_ms = 222\n")
    s = load_settings({}, environ=environ)
    assert (s.admin_tools, s.probe_interval_s, s.policy.timeoutMs, s.policy.retries) == (True, 9, 222, 4)

    # RUNTIMED_* over both files, flags over everything
    s = load_settings({"admin_tools": False}, environ={**environ, "RUNTIMED_POLICY_TIMEOUT_MS": "333"})
    assert (s.admin_tools, s.policy.timeoutMs) == (False, 333)

    # without XDG_CONFIG_HOME: ~/.config/runtimed/config.toml
    home = tmp_path / "home"
    (home / ".config" / "runtimed").mkdir(parents=True)
    (home / ".config" / "runtimed" / "config.toml").write_text("[policy]\nmax_queue = 5\n")
    s = load_settings({"state_dir": str(tmp_path / "other")}, environ={"HOME": str(home)})
    assert s.policy.maxQueue == 5


def test_a_bad_value_in_the_xdg_file_names_that_file(tmp_path: Path) -> None:
    from runtimed.config.settings import load_settings
    from runtimed.errors import ConfigError

    xdg = tmp_path / "xdg"
    (xdg / "runtimed").mkdir(parents=True)
    (xdg / "runtimed" / "config.toml").write_text("[policy]\nretries = 99\n")
    with pytest.raises(ConfigError) as e:
        load_settings({"state_dir": str(tmp_path / "s")}, environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(xdg)})
    msg = str(e.value)
    assert "policy.retries" in msg and str(xdg / "runtimed" / "config.toml") in msg, msg


def test_the_daemon_reads_the_xdg_config_file(make_daemon, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "runtimed").mkdir(parents=True)
    (xdg / "runtimed" / "config.toml").write_text("admin_tools = true\n[policy]\ntimeout_ms = 4242\n")
    d = make_daemon("xdg-state", env={"XDG_CONFIG_HOME": str(xdg)})
    assert _status(d)["adminTools"] is True
    assert _wasm_policy(d)["timeoutMs"] == 4242


def test_the_readme_example_config_is_valid(tmp_path: Path) -> None:
    from runtimed.config.settings import load_settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("# ~/.config/runtimed/config.toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "runtimed").mkdir()
    (tmp_path / "runtimed" / "config.toml").write_text(example.replace("…16 or more characters…", "x" * 20))
    s = load_settings({}, environ={"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)})
    assert s.policy.timeoutMs == 60000 and s.wasm.threads == 4 and s.allowed_hosts == ["runtime.internal"]
