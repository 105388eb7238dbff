"""Settings: precedence (flag > RUNTIMED_* > config.toml > default) and validation, each seen
through a real ``runtimed`` process (its answers and its one-line refusals to start)."""

from __future__ import annotations

from pathlib import Path

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
    assert res.returncode == 2 and "no_such_setting" in res.stderr and "unknown field" in res.stderr

    (state / "config.toml").unlink()
    res = run_daemon_expect_exit(state, env={"RUNTIMED_POLICY_TIMEOUT_MS": "-5"})
    assert res.returncode == 2 and "policy.timeoutMs" in res.stderr and "Traceback" not in res.stderr

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
