"""Pure parts of the gateway: naming, requestState signing, cursors, templates."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from runtimed.gateway import naming
from runtimed.gateway.catalog import build, template_regex
from runtimed.gateway.stateless import StateSigner, decode_header_value
from runtimed.protocol.jsonrpc import Encoded, RpcError, dumps
from runtimed.state.embedded import EmbeddedStore


def test_plain_names_are_kept() -> None:
    assert naming.public_name("svc", "echo") == ("svc__echo", False)


def test_long_names_are_shortened_stably() -> None:
    long = "x" * 100
    a, changed = naming.public_name("svc", long)
    b, _ = naming.public_name("svc", long)
    c, _ = naming.public_name("svc", long + "y")
    assert changed and a == b and a != c
    assert len(a) == 64 and a.startswith("svc__xxx") and naming.is_valid_tool_name(a)


def test_bad_characters_are_replaced_with_a_hash() -> None:
    a, changed = naming.public_name("svc", "do thing/now")
    assert changed and naming.is_valid_tool_name(a) and a.startswith("svc__do_thing_now_")
    b, _ = naming.public_name("svc", "do_thing_now")
    assert a != b  # the cleaned name cannot collide with a real one


def test_disambiguation_depends_on_the_service() -> None:
    one = naming.disambiguate("a__echo", "svc_1")
    two = naming.disambiguate("a__echo", "svc_2")
    assert one != two and len(one) <= 64 and naming.is_valid_tool_name(one)


def _signer(state_dir: Path) -> StateSigner:
    return StateSigner(EmbeddedStore(state_dir, "r1").signing_keys())


def test_signer_round_trip_and_forgery(tmp_path: Path) -> None:
    s = _signer(tmp_path)
    key = tmp_path / "gateway.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    token = s.sign({"s": "svc_1", "m": "tools/call", "st": "opaque"})
    assert s.verify(token)["st"] == "opaque"
    assert _signer(tmp_path).verify(token)["s"] == "svc_1"  # same key after a restart
    for bad in (token + "x", token.replace("rs1.", "rs2."), "nonsense", None, 5):
        with pytest.raises(RpcError) as e:
            s.verify(bad)
        assert e.value.code == -32602
    head, body, mac = token.split(".")
    with pytest.raises(RpcError):
        s.verify(f"{head}.{body[:-1]}A.{mac}")
    with pytest.raises(RpcError):
        _signer(tmp_path / "other").verify(token)


def test_signer_key_rotation() -> None:
    old = StateSigner(("a", {"a": b"1" * 32}))
    token = old.sign({"s": "svc_1"})
    rotated = StateSigner(("b", {"b": b"2" * 32, "a": b"1" * 32}))  # b signs now; a still verifies
    assert rotated.verify(token)["s"] == "svc_1"
    with pytest.raises(RpcError):
        StateSigner(("b", {"b": b"2" * 32})).verify(token)  # a dropped: its tokens no longer verify
    with pytest.raises(RpcError):
        old.verify(rotated.sign({"s": "x"}))  # signed with b, unknown to old


def test_header_value_sentinel() -> None:
    assert decode_header_value("plain") == "plain"
    assert decode_header_value("=?base64?w6lsw6h2ZQ==?=") == "élève"
    assert decode_header_value("=?base64?***?=") is None


def test_template_matching() -> None:
    assert template_regex("test://items/{id}").fullmatch("test://items/42")
    assert not template_regex("test://items/{id}").fullmatch("test://items/4/2")
    assert template_regex("file://{+path}").fullmatch("file://a/b/c")


def test_cached_pages_encode_like_plain_json() -> None:
    tools = [{"name": f"runtime__t{i}", "description": f"tool {i} é", "inputSchema": {"type": "object"}} for i in range(7)]
    cat = build([], aggregate=True, builtins=tools, page_size=3)
    seen, cursor, pages = [], None, 0
    while True:
        items, cursor = cat.page("tools", cursor)
        pages += 1
        seen += items
        resp = {"jsonrpc": "2.0", "id": pages, "result": {"tools": items, **({"nextCursor": cursor} if cursor else {})}}
        plain = json.dumps({**resp, "result": {**resp["result"], "tools": list(items)}}, separators=(",", ":"),
                           ensure_ascii=False).encode()
        assert dumps(resp) == plain
        if cursor is None:
            break
    assert pages == 3 and [t["name"] for t in seen] == [t["name"] for t in tools]
    first = cat.page("tools", None)[0]
    assert isinstance(first, Encoded) and cat.page("tools", None)[0] is first  # kept, not rebuilt
