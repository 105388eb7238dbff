"""The status page's server side over plain HTTP against a real daemon (the page itself, in a
browser: tests/http/test_status_page.py)."""

from __future__ import annotations

import pytest

from tests.support.daemon import DaemonProc

# -- regression, web: escaped fragment names (found by review; fails with its fix reverted) --------

@pytest.mark.parametrize(
    "path",
    [
        "/api/ui/%3Cimg%20src%3Dx%3E",
        "/api/ui/services/anything/%3Cimg%20src%3Dx%3E",
    ],
)
def test_unknown_fragment_name_is_escaped_in_404(daemon: DaemonProc, path: str) -> None:
    r = daemon.api("GET", path)
    assert r.status_code == 404, r.text
    assert "&lt;img" in r.text, r.text
    assert "<img" not in r.text, r.text


# -- issue 14 item 17: the daemon's own fields are shown as they are -----------------------------------------------

def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card_like_run(hexdigest: str) -> str | None:
    """A run of 13-19 decimal digits in ``hexdigest`` that a card-number pattern would take (Luhn, 2-6 first)."""
    import re

    for m in re.finditer(r"\d{13,19}", hexdigest):
        run = m.group()
        if run[0] in "23456" and _luhn_ok(run):
            return run
    return None


def test_a_sha256_and_the_manifest_are_shown_intact(daemon: DaemonProc, tmp_path) -> None:
    import hashlib
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "examples" / "wasm" / "upper.wat").read_text()
    # A module whose sha256 holds a digit run that passes the card-number check (found by varying a comment).
    for nonce in range(200_000):
        text = f"{source}\n;; nonce {nonce}\n"
        digest = hashlib.sha256(text.encode()).hexdigest()
        if _card_like_run(digest):
            break
    else:
        raise AssertionError("no nonce gave a card-like sha256")
    wat = tmp_path / "upper.wat"
    wat.write_text(text)
    build = "4111111111111111"  # a label of the user's own manifest: the daemon's field, not captured call data
    manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService",
                "metadata": {"name": "up", "labels": {"build": build}},
                "spec": {"origin": {"type": "local_wasm", "path": str(wat)}}}
    assert daemon.api("POST", "/api/services", json=manifest).status_code == 201
    daemon.wait_state("up", "RUNNING")
    html = daemon.api("GET", "/api/ui/services/up/summary").text
    assert "card-number" not in html, html
    assert digest in html
    assert build in html
    svc_id = daemon.service("up")["id"]
    assert svc_id in html


# -- issue 14 item 19: the cause of an error, first ----------------------------------------------------------------

def test_split_error_puts_the_cause_first() -> None:
    from runtimed.http.status.routes import problem, split_error

    assert split_error("start failed: cannot start 'x': initialize to http://h:1/mcp: cannot connect "
                       "([Errno 111] Connection refused)") == (
        "cannot connect ([Errno 111] Connection refused)", "start failed: cannot start 'x': initialize to http://h:1/mcp")
    assert split_error("timed out") == ("timed out", "")
    # A colon inside brackets is not a cut; a short last part keeps the part before it.
    assert split_error("call failed: upstream said {\"error\": \"x\"}") == ("upstream said {\"error\": \"x\"}", "call failed")
    assert split_error("start failed: GET http://h/mcp: HTTP 404: Not Found") == ("HTTP 404: Not Found",
                                                                                 "start failed: GET http://h/mcp")
    # Quarantined: the reason without the error it ends with, the error once, the state's note dropped.
    err = "start failed: x: cannot connect (refused)"
    q = f"2 failures within 300s (maxRestarts 1); last: {err}"
    pb = problem({"stateReason": q, "quarantineReason": q, "lastError": err, "lastErrorAt": 5.0})
    assert pb["note"] == "" and pb["quarantine"] == "2 failures within 300s (maxRestarts 1)"
    assert pb["error"]["cause"] == "cannot connect (refused)" and pb["error"]["at"] == 5.0


# -- issue 14 item 20: the policy panel, readable, configured apart from live -------------------------------------

def _fields(html: str, which: str) -> dict[str, str]:
    """``{field: text}`` of the ``<dl data-policy=which>`` in a fragment (tags stripped, spaces collapsed)."""
    import html as html_lib
    import re

    m = re.search(rf'<dl[^>]*data-policy="{which}"[^>]*>(.*?)</dl>', html, re.S)
    assert m, f"no {which} policy fields in: {html[:2000]}"
    out = {}
    for key, dd in re.findall(r'data-field="([^"]+)"[^>]*>\s*<dt>[^<]*</dt>\s*<dd[^>]*>(.*?)</dd>', m.group(1), re.S):
        out[key] = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", dd)).split())
    return out


def test_the_policy_panel_shows_configured_and_live_apart(daemon: DaemonProc) -> None:
    import asyncio

    from mcp import Client

    from tests.support.upstream import run_upstream

    with run_upstream("echo_server") as up:
        manifest = {"apiVersion": "runtimed/v1", "kind": "MCPService", "metadata": {"name": "echo"},
                    "spec": {"origin": {"type": "remote_mcp", "url": up.url},
                             "policy": {"timeoutMs": 5000, "deniedTools": ["fail", "slow"], "maxPayloadBytes": 1048576,
                                        "rateLimit": {"calls": 2, "per": "minute"},
                                        "cache": {"ttlSeconds": 60, "tools": ["add"]}}}}
        assert daemon.api("POST", "/api/services", json=manifest).status_code == 201
        daemon.wait_state("echo", "RUNNING")

        async def call() -> None:
            async with Client(daemon.mcp_url) as c:
                await c.call_tool("echo__echo", {"text": "hi"})

        asyncio.run(call())
        daemon.wait_for(lambda: daemon.api("GET", "/api/services/echo/calls").json()["stats"]["calls"] == 1,
                        what="the call recorded")
        html = daemon.api("GET", "/api/ui/services/echo/summary").text
    assert "Effective policy" not in html and "&#34;inFlight&#34;" not in html  # no raw JSON dump
    conf = _fields(html, "configured")
    assert conf["timeout"] == "5 s"
    assert conf["denied"] == "fail, slow" and conf["allowed"] == "all"
    assert conf["payload"] == "1 MiB"
    assert conf["rate"] == "2 per minute"
    assert conf["cache"].startswith("60 s") and "add" in conf["cache"]
    assert "5 faults in a row" in conf["breaker"]
    live = _fields(html, "live")
    assert live["inflight"].startswith("0 of ")
    assert live["rate"].startswith("1 of 2 used")
    assert live["breaker"].startswith("closed")
    assert live["outcomes"] == "ok 1"
    assert "timeout" not in live and "inflight" not in conf  # each fact on its side


# -- issue 14 item 20: the vendored chart library is what its record says, and is served -----------------------------

def test_the_vendored_uplot_matches_its_record_and_is_served(daemon: DaemonProc) -> None:
    import hashlib
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "runtimed" / "http" / "status" / "static" / "vendor" / "uplot"
    record = (folder / "VERSION").read_text()
    version = re.match(r"uplot (\d+\.\d+\.\d+) \(MIT", record)
    assert version, record
    listed = dict(re.findall(r"^\s+(\S+)\s+sha256 ([0-9a-f]{64})$", record, re.M))
    assert set(listed) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in listed.items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        served = daemon.api("GET", f"/static/vendor/uplot/{name}")
        assert served.status_code == 200 and served.content == data
    assert f"(v{version.group(1)})" in (folder / "uPlot.iife.min.js").read_text()[:200]
    assert "MIT License" in (folder / "LICENSE").read_text()
    third_party = (Path(__file__).resolve().parents[2] / "THIRD_PARTY.md").read_text()
    assert f"| {version.group(1)} | MIT" in third_party
