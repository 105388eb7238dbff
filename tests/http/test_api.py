"""The REST API's answers to malformed input, from a real daemon: always a 4xx that says what
is wrong, never a 500."""

from __future__ import annotations

from tests.config.test_manifest import BAD_MANIFESTS, GOOD

# -- the API never answers malformed input with a 500 -----------------------------

def test_api_bad_input_gets_clear_4xx(daemon) -> None:
    d = daemon
    r = d.api("POST", "/api/services", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = d.api("POST", "/api/services", json=[1, 2, 3])
    assert r.status_code in (400, 422) and "JSON object" in r.json()["error"]
    r = d.api("POST", "/api/services", content=b"name: x", headers={"Content-Type": "text/yaml"})
    assert r.status_code == 415
    r = d.api("POST", "/api/services", content=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    r = d.api("POST", "/api/services", json=BAD_MANIFESTS[0][1])
    assert r.status_code == 422 and "spec.policy.timeoutMS: unknown field" in r.json()["error"]
    r = d.api("GET", "/api/services/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    r = d.api("DELETE", "/api/services/nope")
    assert r.status_code == 404
    r = d.api("POST", "/api/services/nope/start")
    assert r.status_code == 404


MALFORMED = [
    ("POST", "/api/services", {"content": b"\xff\xfe\x00", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/services", {"content": b"null", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/services", {"content": b"\"string\"", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/services", {"content": b"1e999999", "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/services", {"content": b"[" * 100_000, "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/services", {"content": b"{}" + b" " * (2 * 1024 * 1024), "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/services", {"json": {"metadata": None, "spec": None}}),
    ("POST", "/api/services", {"json": {"metadata": {"name": 5}, "spec": {"origin": {"type": 7}}}}),
    ("POST", "/api/services", {"json": {"metadata": {"name": "x"}, "spec": {"origin": {"type": "remote_mcp",
                                                                                   "url": "http://[::1"}}}}),
    ("POST", "/api/services", {"json": {"metadata": {"name": "x"}, "spec": {"origin": {"type": "local_wasm",
                                                                                   "path": "/no/such.wasm"}}}}),
    ("POST", "/api/services", {"json": {"metadata": {"name": "x"}, "spec": {"origin": {"type": "remote_mcp",
                                                                                   "url": "http://h/\x00"}}}}),
    ("POST", "/api/services?start=maybe", {"json": GOOD}),
    ("PUT", "/api/services", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
    ("PATCH", "/api/services", {}),
    ("GET", "/api/services/..%2f..%2fetc", {}),
    ("GET", "/api/services/nope/logs", {}),
    ("GET", "/api/services/nope/interface", {}),
    ("POST", "/api/services/nope/frobnicate", {}),
    ("GET", "/api/events?limit=abc", {}),
    ("GET", "/api/events?limit=-1", {}),
    ("GET", "/api/events?after=99999999999999999999", {}),
    ("GET", "/api/nothing-here", {}),
]


def test_malformed_requests_never_500(daemon) -> None:
    problems = []
    for method, path, kw in MALFORMED:
        r = daemon.api(method, path, **kw)
        try:
            body = r.json()
        except ValueError:
            body = {}
        if not (400 <= r.status_code < 500) or not body.get("error") or "Traceback" in r.text:
            problems.append((method, path, r.status_code, r.text[:300]))
    assert not problems, problems
    assert "Traceback" not in daemon.log()


# -- issue 14 item 5: DELETE when the registry cannot be written (a real full disk) --------------

from tests.gateway.test_inprocess import wasm_manifest  # noqa: E402
from tests.support.diskfull import SmallFs, small_fs as small_fs  # noqa: E402  (the fixture)
from tests.support.inprocess import inprocess_daemon  # noqa: E402


async def test_delete_with_a_full_disk_is_503_and_changes_nothing(small_fs: SmallFs) -> None:
    """Was: the service stopped first, then the registry write failed: HTTP 500, and the service
    left STOPPED but registered with nothing said. Now: 503 saying nothing changed, the service
    still RUNNING and registered; with room again the same DELETE removes it."""
    state = small_fs.path / "state"
    async with inprocess_daemon(state) as d:
        await d.register(wasm_manifest("up", "upper.wat"))
        small_fs.fill(0)
        r = await d.client.delete("/api/services/up", headers={"Content-Type": "application/json"})
        assert r.status_code == 503, r.text
        msg = r.json()["error"]
        assert "could not write the registry" in msg and "nothing changed" in msg and "'up'" in msg, msg
        assert "RUNNING" in msg, msg
        svc = await d.service("up")
        assert svc["state"] == "RUNNING", svc
        r = await d.stateless("tools/call", {"name": "up__upper", "arguments": {"text": "still"}}, name="up__upper")
        assert r.json()["result"]["structuredContent"] == {"text": "STILL"}
        small_fs.unfill()
        r = await d.client.delete("/api/services/up", headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert (await d.client.get("/api/services/up")).status_code == 404
    async with inprocess_daemon(state) as d:
        assert (await d.client.get("/api/services/up")).status_code == 404
