"""Generate the manifests' JSON Schemas from their models: ``schemas/service-manifest.schema.json``
(``MCPService``) and ``schemas/profile-manifest.schema.json`` (``MCPProfile``).

Owns only the generation command: ``python scripts/generate_schema.py`` writes
both files; ``python scripts/generate_schema.py --check`` exits 1 when a
committed file is stale. Must not define models (they live in
``runtimed.config.manifest`` and ``runtimed.config.profile``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from runtimed.config.manifest import ServiceManifest
from runtimed.config.profile import ProfileManifest

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_PATH = SCHEMAS_DIR / "service-manifest.schema.json"
PROFILE_SCHEMA_PATH = SCHEMAS_DIR / "profile-manifest.schema.json"


def _render(model: type[BaseModel], file_name: str, title: str) -> str:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://mcp-runtime.dev/schemas/runtimed/v1/{file_name}"
    schema["title"] = title
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def render() -> str:
    """The service manifest's schema."""
    return _render(ServiceManifest, SCHEMA_PATH.name, "runtimed/v1 MCPService")


def render_profile() -> str:
    """The profile manifest's schema."""
    return _render(ProfileManifest, PROFILE_SCHEMA_PATH.name, "runtimed/v1 MCPProfile")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    outputs = ((SCHEMA_PATH, render()), (PROFILE_SCHEMA_PATH, render_profile()))
    if "--check" in args:
        stale = [path for path, text in outputs
                 if (path.read_text(encoding="utf-8") if path.exists() else "") != text]
        for path in stale:
            print(f"{path} is stale: run `python scripts/generate_schema.py`", file=sys.stderr)
        if stale:
            return 1
        for path, _ in outputs:
            print(f"{path} is up to date")
        return 0
    SCHEMAS_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in outputs:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
