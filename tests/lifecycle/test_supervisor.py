"""Lifecycle supervisor through a real daemon: every state reached, restart
policy with backoff and quarantine, unquarantine, ``mode: never``, and
autostart after daemon restarts (SIGTERM and SIGKILL).

Failing services point at a closed loopback port (connection refused); running
ones at a real MCP upstream (``tests/upstreams/echo_server.py``).
"""

from __future__ import annotations

import signal

from tests.support.daemon import run_cli
from tests.support.foundation import closed_port, events, remote_manifest, transitions
from tests.support.upstream import run_upstream

FAST_RESTARTS = {"mode": "on-failure", "maxRestarts": 2, "windowSeconds": 60,
                 "backoff": {"initialMs": 100, "maxMs": 400}}


def _post(d, manifest, **params):
    r = d.api("POST", "/api/services", json=manifest, params=params)
    assert r.status_code in (200, 201), r.text
    return r.json()["service"]


def test_restart_backoff_quarantine_and_unquarantine(daemon) -> None:
    d = daemon
    svc = _post(d, remote_manifest("flaky", f"http://127.0.0.1:{closed_port()}/mcp", restartPolicy=FAST_RESTARTS))
    assert svc["state"] in ("CRASHED", "STARTING", "QUARANTINED")
    q = d.wait_state("flaky", "QUARANTINED")
    assert "3 failures within 60s" in q["quarantineReason"] and "maxRestarts 2" in q["quarantineReason"]
    assert "start failed" in q["lastError"]
    assert q["health"] == "UNREACHABLE"

    trans = events(d, "flaky", ("transition",))
    assert [(e["from"], e["to"]) for e in trans] == [
        ("REGISTERED", "STARTING"), ("STARTING", "CRASHED"),
        ("CRASHED", "STARTING"), ("STARTING", "CRASHED"),
        ("CRASHED", "STARTING"), ("STARTING", "CRASHED"),
        ("CRASHED", "QUARANTINED"),
    ]
    for e in trans:
        assert isinstance(e["time"], float) and e["reason"]
    assert [e["reason"] for e in trans if e["from"] == "CRASHED" and e["to"] == "STARTING"] == ["restart policy"] * 2
    assert all("connect" in e["reason"].lower() or "refused" in e["reason"].lower()
               for e in trans if e["to"] == "CRASHED"), [e["reason"] for e in trans]
    # Exponential backoff: 100 ms, then 200 ms; each restart waited at least that long.
    sched = events(d, "flaky", ("restart.scheduled",))
    assert [s["delaySeconds"] for s in sched] == [0.1, 0.2]
    crashes = [e for e in trans if e["to"] == "CRASHED"]
    restarts = [e for e in trans if e["from"] == "CRASHED" and e["to"] == "STARTING"]
    for crash, restart, s in zip(crashes, restarts, sched, strict=False):
        assert restart["time"] - crash["time"] >= s["delaySeconds"] - 0.01

    # A quarantined service refuses a plain start; unquarantine brings it back to trying.
    r = d.api("POST", "/api/services/flaky/start")
    assert r.status_code == 409 and "unquarantine" in r.json()["error"]
    seen = len(trans)
    r = d.api("POST", "/api/services/flaky/unquarantine")
    assert r.status_code == 200, r.text
    d.wait_for(lambda: len(transitions(d, "flaky")) >= seen + 3, what="flaky to try again")
    after = events(d, "flaky", ("transition",))[seen:]
    assert (after[0]["from"], after[0]["to"], after[0]["reason"]) == ("QUARANTINED", "STOPPED", "unquarantined")
    assert (after[1]["from"], after[1]["to"]) == ("STOPPED", "STARTING")
    assert (after[2]["from"], after[2]["to"]) == ("STARTING", "CRASHED")
    d.wait_state("flaky", "QUARANTINED")  # the failure window starts afresh: three more tries
    assert len(events(d, "flaky", ("restart.scheduled",))) == 4
    # Not quarantined -> unquarantine is a clear 409.
    _post(d, remote_manifest("other", f"http://127.0.0.1:{closed_port()}/mcp", autostart=False))
    r = d.api("POST", "/api/services/other/unquarantine")
    assert r.status_code == 409 and "not quarantined" in r.json()["error"]


def test_mode_never_stays_crashed(daemon) -> None:
    d = daemon
    never = dict(FAST_RESTARTS, mode="never")
    svc = _post(d, remote_manifest("once", f"http://127.0.0.1:{closed_port()}/mcp", restartPolicy=never))
    assert svc["state"] == "CRASHED"
    # A sentinel with the same backoff goes through its whole restart cycle; had
    # "once" been scheduled for a restart, it would have happened by then.
    _post(d, remote_manifest("sentinel", f"http://127.0.0.1:{closed_port()}/mcp", restartPolicy=FAST_RESTARTS))
    d.wait_state("sentinel", "QUARANTINED")
    assert transitions(d, "once") == [("REGISTERED", "STARTING"), ("STARTING", "CRASHED")]
    assert events(d, "once", ("restart.scheduled",)) == []
    assert d.service("once")["state"] == "CRASHED"
    # A manual start still tries (and fails again).
    r = d.api("POST", "/api/services/once/start")
    assert r.status_code == 200 and r.json()["state"] == "CRASHED"


def test_every_lifecycle_state_is_reached(daemon) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        res = run_cli(d, "add", up.url, "--name", "life", "--no-start", "--restart", "on-failure",
                      "--max-restarts", "0")
        assert res.returncode == 0, res.stderr
        assert d.service("life")["state"] == "REGISTERED"
        assert run_cli(d, "start", "life").returncode == 0
        running = d.wait_state("life", "RUNNING")
        assert running["health"] == "HEALTHY" and running["toolCount"] > 0
        assert run_cli(d, "stop", "life").returncode == 0
        assert d.service("life")["state"] == "STOPPED"
        up.stop()
        res = run_cli(d, "start", "life")  # upstream gone: crashes, and maxRestarts 0 quarantines
        assert res.returncode == 1
        d.wait_state("life", "QUARANTINED")
    reached = {"REGISTERED"} | {to for _, to in transitions(d, "life")}
    assert reached == {"REGISTERED", "STARTING", "RUNNING", "STOPPING", "STOPPED", "CRASHED", "QUARANTINED"}
    assert transitions(d, "life") == [
        ("REGISTERED", "STARTING"), ("STARTING", "RUNNING"), ("RUNNING", "STOPPING"), ("STOPPING", "STOPPED"),
        ("STOPPED", "STARTING"), ("STARTING", "CRASHED"), ("CRASHED", "QUARANTINED"),
    ]


def test_running_service_that_loses_its_upstream_crashes_and_restarts(daemon) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        m = remote_manifest("probed", up.url, healthCheck={"intervalSeconds": 0.2, "timeoutMs": 2000},
                            restartPolicy={**FAST_RESTARTS, "maxRestarts": 100})
        _post(d, m)
        d.wait_state("probed", "RUNNING")
        up.stop()
        # Failed probes crash it; the restart policy brings it back once the upstream returns.
        d.wait_for(lambda: ("RUNNING", "CRASHED") in transitions(d, "probed"), what="a crash after failed probes")
        up.restart()
        d.wait_for(lambda: transitions(d, "probed")[-1] == ("STARTING", "RUNNING"), timeout=30,
                   what="the restart policy to bring it back")
        health = [e["health"] for e in events(d, "probed", ("health",))]
        assert "UNREACHABLE" in health and health[-1] == "HEALTHY"


def test_autostart_after_daemon_restart_shows_the_real_state(daemon) -> None:
    d = daemon
    with run_upstream("echo_server") as up:
        assert run_cli(d, "add", up.url, "--name", "auto", "--restart", "never").returncode == 0
        assert run_cli(d, "add", up.url + "?second=1", "--name", "manual", "--no-autostart").returncode == 0
        assert d.service("manual")["state"] == "REGISTERED"
        assert run_cli(d, "start", "manual").returncode == 0
        d.wait_state("auto", "RUNNING")
        d.wait_state("manual", "RUNNING")

        for how in (signal.SIGTERM, signal.SIGKILL):
            rc = d.stop(how)
            assert rc == (0 if how == signal.SIGTERM else -signal.SIGKILL)
            d.start()
            d.wait_state("auto", "RUNNING")
            assert d.service("manual")["state"] == "REGISTERED"
            assert ("STARTING", "RUNNING") in transitions(d, "auto")
            assert transitions(d, "manual") == []
            assert events(d, "auto", ("transition",))[0]["reason"] == "autostart"

        # The upstream goes away while the daemon is down: never shown as RUNNING.
        d.stop()
        up.stop()
        d.start()
        crashed = d.wait_state("auto", "CRASHED")
        assert "start failed" in crashed["lastError"]
        assert transitions(d, "auto") == [("REGISTERED", "STARTING"), ("STARTING", "CRASHED")]
