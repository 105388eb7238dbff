"""Generate ``schemas/service-manifest.schema.json`` from the manifest models.

Owns only the generation command: ``python scripts/generate_schema.py`` writes
the file; ``python scripts/generate_schema.py --check`` exits 1 when the
committed file is stale. Must not define models (they live in
``runtimed.config.manifest``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from runtimed.config.manifest import ServiceManifest

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "service-manifest.schema.json"


def render() -> str:
    schema = ServiceManifest.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mcp-runtime.dev/schemas/runtimed/v1/service-manifest.schema.json"
    schema["title"] = "runtimed/v1 MCPService"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is stale: run `python scripts/generate_schema.py`", file=sys.stderr)
            return 1
        print(f"{SCHEMA_PATH} is up to date")
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
