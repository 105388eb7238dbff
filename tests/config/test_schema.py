"""The committed JSON Schema is generated from the models and must not go stale."""

import json
import runpy
from pathlib import Path

import pytest

from runtimed.config.manifest import ManifestError, parse_manifest

_GENERATOR = runpy.run_path(str(Path(__file__).resolve().parents[2] / "scripts" / "generate_schema.py"))
SCHEMA_PATH, render = _GENERATOR["SCHEMA_PATH"], _GENERATOR["render"]


def test_committed_schema_matches_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), "schema is stale: run `python scripts/generate_schema.py`"


def test_schema_describes_both_origins() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    defs = schema["$defs"]
    assert {"LocalWasmOrigin", "RemoteMcpOrigin", "Policy", "RestartPolicy"} <= set(defs)
    assert defs["Metadata"]["properties"]["name"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,31}$"


def test_ids_are_deterministic_per_origin() -> None:
    a = parse_manifest({"metadata": {"name": "a"}, "spec": {"origin": {"type": "remote_mcp", "url": "https://X.example/mcp"}}})
    b = parse_manifest({"metadata": {"name": "b"}, "spec": {"origin": {"type": "remote_mcp", "url": "https://x.example/mcp"}}})
    assert a.id == b.id and a.id.startswith("svc_") and len(a.id) == 16
    c = parse_manifest({"metadata": {"name": "c"}, "spec": {"origin": {"type": "remote_mcp", "url": "https://y.example/mcp"}}})
    assert c.id != a.id


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({"metadata": {"name": "Bad Name"}, "spec": {"origin": {"type": "remote_mcp", "url": "https://x"}}}, "metadata.name"),
        ({"metadata": {"name": "a"}, "spec": {"origin": {"type": "ftp", "url": "x"}}}, "origin.type"),
        ({"metadata": {"name": "a"}, "spec": {"origin": {"type": "remote_mcp", "url": "ftp://x"}}}, "http"),
        ({"metadata": {"name": "a"}, "spec": {"origin": {"type": "remote_mcp", "url": "https://x"}, "polcy": {}}}, "spec.polcy: unknown field"),
        ({"metadata": {"name": "a"}, "spec": {"origin": {"type": "remote_mcp", "url": "https://x"}, "policy": {"timeoutMs": -5}}}, "spec.policy.timeoutMs"),
        ({"metadata": {"name": "a"}, "spec": {}}, "spec.origin"),
        ([], "JSON object"),
    ],
)
def test_bad_manifests_say_what_is_wrong(doc, fragment) -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest(doc)
    assert fragment in str(e.value)
