"""Redaction and size bounds of captured arguments/results, and the intent helpers."""

from __future__ import annotations

import json

from runtimed.records.intents import CAPABILITY_TOOL, INTENT_PROPERTY, add_intent_property, capability_tool, pop_intent
from runtimed.records.redaction import REDACTED, capture, redact, redact_text, sensitive_field


def test_patterns_are_replaced_in_text() -> None:
    secrets = {
        "email": "write to jane.doe+work@example.co.uk today",
        "openai": "key sk-proj-abcdefghijklmnopqrstuvwx123 here",
        "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "aws": "AKIAIOSFODNN7EXAMPLE",
        "bearer": "Authorization: Bearer abc.def-ghi_jkl~123456",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "card": "card 4111 1111 1111 1111 exp 12/29",
        "card-dashes": "4111-1111-1111-1111",
        "card-plain": "5500005555555559",
        "kv": "password=hunter2&user=bob",
    }
    needles = {
        "email": "jane.doe", "openai": "sk-proj-abc", "github": "ghp_abc", "aws": "AKIAIOSFODNN7EXAMPLE",
        "bearer": "abc.def-ghi", "jwt": "eyJhbGci", "card": "4111 1111", "card-dashes": "4111-1111",
        "card-plain": "5500005555555559", "kv": "hunter2",
    }
    for key, text in secrets.items():
        out = redact_text(text)
        assert needles[key] not in out, (key, out)
    assert redact_text("write to jane.doe+work@example.co.uk today") == "write to <email> today"
    assert "user=bob" in redact_text("password=hunter2&user=bob")


def test_ordinary_text_and_numbers_survive() -> None:
    text = "order 12345 shipped on 2026-11-21 at 10:33, 3 items, version 1.2.3, ts 1795257416.9"
    assert redact_text(text) == text
    assert redact({"count": 42, "ratio": 0.5, "ok": True, "none": None}) == {"count": 42, "ratio": 0.5, "ok": True,
                                                                              "none": None}


def test_sensitive_field_names() -> None:
    for name in ("password", "Password", "secret", "client_secret", "token", "accessToken", "apiKey", "api_key",
                 "X-API-Key", "authorization", "Authorization", "cookie", "privateKey", "auth"):
        assert sensitive_field(name), name
    for name in ("path", "text", "name", "author", "maxTokens", "max_tokens", "token_count"):
        assert not sensitive_field(name), name
    out = redact({"user": "bob", "password": "hunter2", "nested": {"apiKey": "abc", "headers": {"Authorization": "x"}},
                  "list": [{"token": "t"}, "plain"]})
    assert out == {"user": "bob", "password": REDACTED, "nested": {"apiKey": REDACTED,
                                                                     "headers": {"Authorization": REDACTED}},
                   "list": [{"token": REDACTED}, "plain"]}


def test_large_integers_that_look_like_cards() -> None:
    assert redact({"n": 4111111111111111})["n"] == "<card-number>"
    assert redact({"n": 1234567})["n"] == 1234567


def test_size_bounds() -> None:
    out = redact({"s": "x" * 5000, "l": list(range(200))})
    assert len(out["s"]) < 2100 and out["s"].endswith("(+3000 chars)")
    assert len(out["l"]) == 51 and out["l"][-1] == "... +150 more items"
    deep: dict = {}
    cur = deep
    for _ in range(20):
        cur["d"] = {}
        cur = cur["d"]
    assert "<too deep>" in json.dumps(redact(deep))
    big = capture({"rows": ["y" * 1500 for _ in range(40)]}, max_bytes=4096)
    assert big["truncated"] is True and big["bytes"] > 4096 and len(big["preview"].encode()) <= 4096
    small = capture({"a": "b", "email": "me@example.com"})
    assert small == {"a": "b", "email": "<email>"}


def test_capture_redacts_before_truncating() -> None:
    secret = "sk-" + "a" * 40
    out = capture({"blob": ("z" * 100 + " " + secret + " ") * 200}, max_bytes=1024)
    assert secret not in json.dumps(out)


def test_add_intent_property() -> None:
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
              "additionalProperties": False}
    out = add_intent_property(schema)
    assert out["properties"][INTENT_PROPERTY]["type"] == "string"
    assert out["required"] == ["text"]  # never required
    assert INTENT_PROPERTY not in schema["properties"]  # the input is not modified
    assert add_intent_property(None)["properties"][INTENT_PROPERTY]["type"] == "string"
    assert add_intent_property({"type": "object"})["properties"].keys() == {INTENT_PROPERTY}
    assert add_intent_property(out) == out


def test_pop_intent() -> None:
    args = {"text": "hi", INTENT_PROPERTY: "  translate the   email for\nbob@example.com "}
    intent, rest = pop_intent(args)
    assert intent == "translate the email for <email>"
    assert rest == {"text": "hi"} and INTENT_PROPERTY in args
    assert pop_intent({"text": "hi"}) == (None, {"text": "hi"})
    assert pop_intent({INTENT_PROPERTY: 5, "a": 1}) == (None, {"a": 1})  # removed even when not a string
    assert pop_intent(None) == (None, None)
    assert len(pop_intent({INTENT_PROPERTY: "x" * 5000})[0]) == 500


def test_capability_tool_shape() -> None:
    tool = capability_tool()
    assert tool["name"] == CAPABILITY_TOOL == "runtime__request_capability"
    assert tool["inputSchema"]["required"] == ["description"]


# -- issue 14 item 17: card numbers only where a card number can be ------------------------------------------------

def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def test_a_card_number_needs_the_luhn_check() -> None:
    assert _luhn_ok("4111111111111111") and not _luhn_ok("4111111111111112")
    assert "4111" not in redact_text("card 4111 1111 1111 1111 exp 12/29")
    # 16 digits that fail the check: an order number, not a card.
    assert redact_text("order 4111 1111 1111 1112 shipped") == "order 4111 1111 1111 1112 shipped"
    assert redact_text("id 1234567890123456") == "id 1234567890123456"
    assert redact({"n": 4111111111111112})["n"] == 4111111111111112


def test_digits_inside_a_hash_or_id_are_not_a_card_number() -> None:
    run = "4111111111111111"  # passes the check, but sits inside a hex string
    sha = "231cffda" + run + "d9cd" + "0" * 36
    assert redact_text(f"sha256 {sha}") == f"sha256 {sha}"
    assert redact_text(f"svc_{run}") == f"svc_{run}"
    assert redact_text(f"rev-{run}x") == f"rev-{run}x"
    # A millisecond timestamp (13 digits from 1...) is not a card, even when it passes the check.
    ts = next(str(n) for n in range(1795257416000, 1795257417000) if _luhn_ok(str(n)))
    assert redact_text(f"at {ts}") == f"at {ts}"
    assert redact({"t": int(ts)})["t"] == int(ts)
