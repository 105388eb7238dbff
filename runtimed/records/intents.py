"""Intent capture, the MCP-facing half: the optional ``_intent`` argument added
to every tool's input schema, taking it back out of a call's arguments, and
the built-in ``runtime__request_capability`` tool.

Owns the shapes the gateway shows agents (the property, the tool definition,
the tool's answer). Must not store anything (``analytics.Analytics`` records
intents and capability requests) or know about sessions or transports.
"""

from __future__ import annotations

import copy
from typing import Any

from runtimed.records.redaction import redact_text

INTENT_PROPERTY = "_intent"
CAPABILITY_TOOL = "runtime__request_capability"
MAX_INTENT_CHARS = 500

_INTENT_SCHEMA = {
    "type": "string",
    "maxLength": MAX_INTENT_CHARS,
    "description": (
        "Optional. One short sentence: what the user asked for that led to this call. "
        "Recorded by the gateway to improve its tools; never passed to the tool."
    ),
}


def add_intent_property(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of a tool's ``inputSchema`` with the optional ``_intent`` string.

    Never makes it required; leaves a schema that already has ``_intent`` or is
    not an object schema unchanged (copied).
    """
    out: dict[str, Any] = copy.deepcopy(schema) if isinstance(schema, dict) else {"type": "object"}
    if out.get("type", "object") != "object":
        return out
    props = out.get("properties")
    if not isinstance(props, dict):
        props = {}
    if INTENT_PROPERTY in props:
        return out
    out["type"] = "object"
    out["properties"] = {**props, INTENT_PROPERTY: dict(_INTENT_SCHEMA)}
    return out


def clean_intent(value: Any) -> str | None:
    """A stored form of an intent: a redacted, bounded, single-line string, or None."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text:
        return None
    return redact_text(text)[:MAX_INTENT_CHARS]


def pop_intent(arguments: Any) -> tuple[str | None, Any]:
    """``(intent, arguments without _intent)``; the input is not modified.

    The intent is None when absent or not a non-empty string (a non-string
    ``_intent`` is still removed: the tool never sees it).
    """
    if not isinstance(arguments, dict) or INTENT_PROPERTY not in arguments:
        return None, arguments
    rest = {k: v for k, v in arguments.items() if k != INTENT_PROPERTY}
    return clean_intent(arguments.get(INTENT_PROPERTY)), rest


def capability_tool() -> dict[str, Any]:
    """The ``tools/list`` entry of ``runtime__request_capability``."""
    return {
        "name": CAPABILITY_TOOL,
        "title": "Request a missing capability",
        "description": (
            "Call this when none of the available tools can do what the user asked. Describe the "
            "capability that is missing; the gateway's operators see these requests. It does not "
            "perform the task."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "description": {"type": "string", "maxLength": 1000,
                                "description": "The capability that is missing, in one or two sentences."},
                "context": {"type": "string", "maxLength": 1000,
                            "description": "Optional: what the user asked for, and which tools were considered."},
            },
            "required": ["description"],
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False,
                        "openWorldHint": False},
    }


def capability_result(accepted: bool, message: str) -> dict[str, Any]:
    """The ``tools/call`` result of ``runtime__request_capability``."""
    return {"content": [{"type": "text", "text": message}], "isError": not accepted}
