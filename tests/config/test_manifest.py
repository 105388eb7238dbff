"""The service manifest: validation messages, the deterministic id, the JSON
Schema file (a stale-schema test). (The API's answers to malformed input:
tests/http/test_api.py.)
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

import pytest

from runtimed.config.manifest import ManifestError, parse_manifest, service_id
from tests.support.daemon import REPO, DaemonProc
from tests.support.foundation import closed_port, remote_manifest

GOOD = remote_manifest("good", "https://example.com/mcp")


def _bad(mutate) -> dict:
    m = json.loads(json.dumps(GOOD))
    mutate(m)
    return m


BAD_MANIFESTS = [
    ("unknown field", _bad(lambda m: m["spec"].update(policy={"timeoutMS": 5})), "spec.policy.timeoutMS: unknown field"),
    ("unknown top-level field", _bad(lambda m: m.update(extra=1)), "extra: unknown field"),
    ("bad name", _bad(lambda m: m["metadata"].update(name="Bad Name!")), "metadata.name: must match"),
    ("name too long", _bad(lambda m: m["metadata"].update(name="a" * 33)), "metadata.name"),
    ("bad url scheme", _bad(lambda m: m["spec"]["origin"].update(url="ftp://example.com/mcp")),
     "url must start with http:// or https://"),
    ("credentials in url", _bad(lambda m: m["spec"]["origin"].update(url="https://u:p@example.com/mcp")),
     "credentials in the url"),
    ("negative timeout", _bad(lambda m: m["spec"].update(policy={"timeoutMs": -1})), "spec.policy.timeoutMs"),
    ("zero concurrency", _bad(lambda m: m["spec"].update(policy={"maxConcurrency": 0})), "spec.policy.maxConcurrency"),
    ("unknown origin type", _bad(lambda m: m["spec"]["origin"].update(type="docker")),
     "origin.type must be 'local_wasm', 'remote_mcp' or 'stdio'"),
    ("origin without type", _bad(lambda m: m["spec"]["origin"].pop("type")), "origin needs a 'type'"),
    ("missing origin", _bad(lambda m: m["spec"].pop("origin")), "spec.origin: Field required"),
    ("bad transport", _bad(lambda m: m["spec"]["origin"].update(transport="websocket")), "spec.origin.remote_mcp.transport"),
    ("bad restart mode", _bad(lambda m: m["spec"].update(restartPolicy={"mode": "sometimes"})), "spec.restartPolicy.mode"),
    ("wrong apiVersion", _bad(lambda m: m.update(apiVersion="runtimed/v2")), "apiVersion"),
    ("bad authRef", _bad(lambda m: m["spec"]["origin"].update(authRef="plain-secret")), "authRef"),
]


@pytest.mark.parametrize("label,manifest,expected", BAD_MANIFESTS, ids=[b[0] for b in BAD_MANIFESTS])
def test_bad_manifests_name_the_problem(label: str, manifest: dict, expected: str) -> None:
    with pytest.raises(ManifestError) as exc:
        parse_manifest(manifest)
    assert expected in str(exc.value), str(exc.value)


def test_not_an_object() -> None:
    with pytest.raises(ManifestError, match="JSON object"):
        parse_manifest(["not", "a", "manifest"])


def test_defaults_and_deterministic_id() -> None:
    m = parse_manifest(GOOD)
    assert m.namespace == "good" and m.spec.autostart and m.spec.enabled
    assert m.spec.restartPolicy.mode == "on-failure"
    assert m.id.startswith("svc_") and len(m.id) == 16
    # Same origin (after URL normalisation) -> same id; another origin -> another id.
    same = parse_manifest(remote_manifest("other-name", "HTTPS://Example.COM/mcp#frag"))
    assert same.id == m.id
    assert parse_manifest(remote_manifest("good", "https://example.com/mcp2")).id != m.id
    assert service_id(m.spec.origin) == m.id
    wasm = parse_manifest({"metadata": {"name": "w"}, "spec": {"origin": {"type": "local_wasm", "path": "/x/a.wasm"}}})
    assert wasm.id != m.id and wasm.id.startswith("svc_")


def test_committed_schema_is_not_stale() -> None:
    res = subprocess.run([sys.executable, "scripts/generate_schema.py", "--check"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr + res.stdout
    generator = runpy.run_path(str(REPO / "scripts" / "generate_schema.py"))
    schema = json.loads(generator["render"]())
    assert "metadata" in schema["properties"] and "spec" in schema["properties"]


def test_committed_profile_schema_is_not_stale() -> None:
    """schemas/profile-manifest.schema.json is the MCPProfile model's, checked by --check too."""
    path = REPO / "schemas" / "profile-manifest.schema.json"
    generator = runpy.run_path(str(REPO / "scripts" / "generate_schema.py"))
    assert generator["PROFILE_SCHEMA_PATH"] == path
    assert path.read_text(encoding="utf-8") == generator["render_profile"](), \
        "stale: run `python scripts/generate_schema.py`"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["title"] == "runtimed/v1 MCPProfile" and schema["properties"]["kind"]["const"] == "MCPProfile"
    spec = schema["$defs"]["ProfileSpec"]["properties"]
    assert {"services", "tools", "overrides", "prompts", "resources", "mode", "pinTools"} <= set(spec)
    # A profile the daemon takes is valid under the schema; one it refuses is not.
    import jsonschema  # the mcp SDK's dependency (the test extras)
    good = {"apiVersion": "runtimed/v1", "kind": "MCPProfile", "metadata": {"name": "dev"},
            "spec": {"services": {"include": ["a*"]}, "mode": "search",
                     "overrides": {"a__echo": {"name": "say", "annotations": {"readOnlyHint": True}}}}}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "spec": {"mode": "sometimes"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "metadata": {"name": "Dev Team"}}, schema)

    res = subprocess.run([sys.executable, "scripts/generate_schema.py", "--check"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert res.returncode == 0 and f"{path} is up to date" in res.stdout, res.stderr + res.stdout


# -- regression, manifest: credential-named query parameters (found by review; fails with its fix reverted) ---

@pytest.mark.parametrize("query", ["api_key=sekrit-value-123", "token=sekrit-value-123",
                                   "access_token=sekrit-value-123", "region=eu&apiKey=sekrit-value-123"])
def test_remote_url_with_credential_query_is_refused(daemon: DaemonProc, query: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp?{query}"
    r = daemon.api("POST", "/api/services", json=remote_manifest("q", url, restartPolicy={"mode": "never"}))
    assert r.status_code == 422, (r.status_code, r.text)
    assert "authRef" in r.text, r.text
    assert "sekrit-value-123" not in r.text, r.text  # the refusal names the parameter, never its value
    assert daemon.api("GET", "/api/services/q").status_code == 404


# Issue 14: names the first check missed: other credential words, camelCase parts, array brackets.
MORE_CREDENTIAL_NAMES = ["authorization", "Authorization", "apiToken", "sessionToken", "secretKey", "jwt", "JWT",
                         "bearer", "token[]", "token%5B%5D", "tokens[0]", "X-Api-Key", "clientSecret", "APIKey",
                         "refreshToken", "id_token", "privateKey", "X-Amz-Signature", "X-Goog-Credential",
                         "password_b64", "passphrase", "sessionId", "PHPSESSID", "apiKey2", "authToken"]
ORDINARY_NAMES = ["region", "keyword", "monkey", "tokenizer", "page", "format", "sort", "author", "session_mode",
                  "key_type", "token_type", "signature_method", "oauth_signature_method", "q", "v"]


def test_remote_url_credential_query_names_by_parts(daemon: DaemonProc) -> None:
    """A query parameter is a credential when one of its name's parts says so: split at ``_``, ``-``,
    brackets and camelCase, compared case-insensitively; an ordinary name that merely contains such a
    word (``monkey``, ``tokenizer``) or describes one (``token_type``) is not."""
    refused, accepted = [], []
    for i, key in enumerate(MORE_CREDENTIAL_NAMES + ORDINARY_NAMES):
        url = f"http://127.0.0.1:{closed_port()}/mcp?{key}=sekrit-value-123"
        r = daemon.api("POST", "/api/services?start=false",
                       json=remote_manifest(f"q{i}", url, restartPolicy={"mode": "never"}))
        (refused if r.status_code == 422 else accepted).append(key)
        if r.status_code == 422:
            assert "looks like a credential" in r.text and "authRef" in r.text, r.text
            assert "sekrit-value-123" not in r.text, r.text  # the parameter is named, its value never
        else:
            assert r.status_code in (200, 201), r.text
    assert accepted == ORDINARY_NAMES and refused == MORE_CREDENTIAL_NAMES


def test_remote_url_with_ordinary_query_is_accepted(daemon: DaemonProc) -> None:
    url = f"http://127.0.0.1:{closed_port()}/mcp?region=eu"
    r = daemon.api("POST", "/api/services", json=remote_manifest("q", url, restartPolicy={"mode": "never"}))
    assert r.status_code in (200, 201), r.text
    assert daemon.service("q")["manifest"]["spec"]["origin"]["url"].endswith("/mcp?region=eu")
