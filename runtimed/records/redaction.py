"""Redaction and size bounds for anything captured from a call (arguments,
results, intents, error texts) before it is stored or shown.

Owns the patterns that look like secrets or personal data (emails, API keys
such as ``sk-...``, ``ghp_...``, ``AKIA...``, bearer tokens, JWTs, card
numbers), the field names whose values are always hidden (password, secret,
token, apiKey, authorization, ...), and the size bounds. A card number is 13
to 19 digits (spaces or dashes between groups allowed) that stand alone (not
part of a word, a hash or an id: ``231cffda4111...`` is a sha256), start as
card numbers do (2 to 6) and pass the Luhn check.

Only for what the daemon captured from others (call arguments, results, error
texts, intents, a child's stderr): the daemon's own fields (ids, hashes,
manifests, which hold secret references only) are shown as they are and must
not be passed through here. Must not store, log or send anything: it only
transforms values it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

REDACTED = "<redacted>"
MAX_STRING = 2000
MAX_ITEMS = 50
MAX_DEPTH = 8
MAX_JSON_BYTES = 8 * 1024



def luhn_ok(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn check (every card number does)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = (ord(ch) - 48) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card(m: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", m.group())
    if digits[0] in "23456" and luhn_ok(digits):  # Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay...
        return "<card-number>"
    return m.group()


# (pattern, replacement). Order matters: a bearer token may itself be a JWT.
_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 <redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "<jwt>"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "<api-key>"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), "<api-key>"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "<api-key>"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "<api-key>"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "<api-key>"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "<email>"),
    # 13 to 19 digits, optionally grouped by spaces or dashes, not inside a word, hash or id; then _card checks.
    (re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?!\w|[.-]\w)"), _card),
    # key=value / "key": "value" pairs inside free text
    (re.compile(r"(?i)\b(password|passwd|secret|api[_-]?key|access[_-]?token|token|client[_-]?secret)"
                r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1\2<redacted>"),
]

_SENSITIVE_PARTS = ("password", "passwd", "secret", "token", "apikey", "authorization", "cookie", "credential",
                    "privatekey", "accesskey", "sessionid", "signature")
_SENSITIVE_EXACT = {"auth", "pwd", "pass", "key", "pin", "cvv", "cvc", "ssn", "otp"}


def sensitive_field(name: str) -> bool:
    """Whether a field's value is hidden whatever it holds (``apiKey``, ``X-Auth-Token``...)."""
    n = re.sub(r"[^a-z0-9]", "", name.lower())
    if n.endswith("tokens") or "tokencount" in n or "tokenlimit" in n:
        return False  # counts of model tokens (maxTokens), not credentials
    return n in _SENSITIVE_EXACT or any(p in n for p in _SENSITIVE_PARTS)


def redact_text(text: str) -> str:
    """``text`` with every secret-looking or personal substring replaced."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _bound_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... (+{len(text) - limit} chars)"


def redact(value: Any, *, max_string: int = MAX_STRING, max_items: int = MAX_ITEMS, _depth: int = 0) -> Any:
    """A redacted, size-bounded copy of a JSON-like value."""
    if _depth >= MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, str):
        return _bound_text(redact_text(value), max_string)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        # A bare number can be a card number too (then it becomes the placeholder; otherwise it stays a number).
        if len(str(abs(value))) >= 13:
            text = redact_text(str(value))
            return text if text != str(value) else value
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= max_items:
                out["..."] = f"+{len(value) - max_items} more fields"
                break
            key = _bound_text(redact_text(str(k)), 200)
            out[key] = REDACTED if sensitive_field(str(k)) and v not in (None, "") else redact(
                v, max_string=max_string, max_items=max_items, _depth=_depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [redact(v, max_string=max_string, max_items=max_items, _depth=_depth + 1) for v in value[:max_items]]
        if len(value) > max_items:
            items.append(f"... +{len(value) - max_items} more items")
        return items
    return _bound_text(redact_text(repr(value)), max_string)


def capture(value: Any, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """What is stored for a captured argument set or result: redacted, and at
    most ``max_bytes`` of JSON (beyond that a truncated preview of the redacted text)."""
    clean = redact(value)
    text = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), default=str)
    if len(text.encode()) <= max_bytes:
        return clean
    preview = text.encode()[:max_bytes].decode("utf-8", "ignore")
    return {"truncated": True, "bytes": len(text.encode()), "preview": preview}
