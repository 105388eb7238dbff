"""The daemon process: single instance per state dir, durability under SIGKILL, and the
issue's "done when" scenario (settings precedence and validation: tests/config/test_settings.py).

Every test runs real ``runtimed`` processes on free loopback ports.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx

from tests.support.daemon import run_cli
from tests.support.foundation import (
    closed_port,
    read_registry,
    registry_names,
    remote_manifest,
    run_daemon_expect_exit,
)


def test_second_daemon_on_same_state_dir_refuses_naming_the_pid(make_daemon, tmp_path: Path) -> None:
    first = make_daemon("state")
    res = run_daemon_expect_exit(tmp_path / "state")
    assert res.returncode != 0
    assert f"pid {first.proc.pid}" in res.stderr, res.stderr
    assert "in use" in res.stderr and "Traceback" not in res.stderr
    # The first daemon is unaffected.
    assert first.api("GET", "/healthz").status_code == 200
    assert json.loads((tmp_path / "state" / "runtimed.pid").read_text())["pid"] == first.proc.pid


def test_sigkill_during_write_burst_loses_no_acknowledged_change(make_daemon, tmp_path: Path) -> None:
    d = make_daemon("state")
    port = closed_port()
    acked_add: set[str] = set()
    acked_remove: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()

    def worker(w: int) -> None:
        # Every change is sent as JSON, body or not (the daemon refuses others, issue 14 item 1).
        with httpx.Client(base_url=d.url, timeout=30, headers={"Content-Type": "application/json"}) as c:
            i = 0
            while not stop.is_set():
                name = f"w{w}-{i}"
                i += 1
                m = remote_manifest(name, f"http://127.0.0.1:{port}/mcp/{name}", autostart=False)
                try:
                    r = c.post("/api/services", json=m, params={"start": "false"})
                except httpx.HTTPError:
                    return  # the daemon is gone
                if r.status_code < 300:
                    with lock:
                        acked_add.add(name)
                if i % 3 == 0:  # remove every third service we added
                    try:
                        r = c.delete(f"/api/services/{name}")
                    except httpx.HTTPError:
                        return
                    if r.status_code < 300:
                        with lock:
                            acked_remove.add(name)
                with lock:
                    if len(acked_add) >= 40 and len(acked_remove) >= 5:
                        enough.set()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        assert enough.wait(120), f"the burst did not get going: {len(acked_add)} adds acknowledged"
        d.kill()  # SIGKILL while the workers keep writing
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    with lock:
        must_have = acked_add - acked_remove
        must_not_have = set(acked_remove)

    on_disk = registry_names(tmp_path / "state")  # valid JSON, or this raises
    assert read_registry(tmp_path / "state")["formatVersion"] == 1
    assert must_have <= on_disk, f"acknowledged adds lost: {sorted(must_have - on_disk)}"
    assert not (must_not_have & on_disk), f"acknowledged removes came back: {sorted(must_not_have & on_disk)}"

    d.start()  # same state dir
    listed = {s["name"] for s in d.api("GET", "/api/services").json()["services"]}
    assert must_have <= listed and not (must_not_have & listed)


def test_done_when_https_service_survives_kill9_with_its_policies(make_daemon) -> None:
    d = make_daemon()
    url = f"https://127.0.0.1:{closed_port()}/mcp"
    res = run_cli(d, "add", url, "--name", "secure", "--no-start", "--timeout-ms", "1234",
                  "--allow-tools", "a*", "--max-concurrency", "3")
    assert res.returncode == 0, res.stderr
    assert "added secure" in res.stdout
    d.kill()
    d.start()
    res = run_cli(d, "show", "secure", "--json")
    assert res.returncode == 0, res.stderr
    svc = json.loads(res.stdout)["service"]
    assert svc["origin"]["url"] == url
    pol = svc["manifest"]["spec"]["policy"]
    assert pol["timeoutMs"] == 1234
    assert pol["allowedTools"] == ["a*"]
    assert pol["maxConcurrency"] == 3
    # The effective policy the daemon enforces says the same.
    assert json.dumps(svc["policy"]).count("1234") >= 1
    listed = run_cli(d, "list", env={"COLUMNS": "200"})
    assert "secure" in listed.stdout and url in listed.stdout
