"""Generated malformed requests for /mcp (both eras) and /api, and the checks of their answers.

Owns the fuzz families (seeded ``random.Random``: the same seed makes the same requests, so a
failure reproduces): junk JSON values, mutations of well-formed JSON-RPC messages (envelope,
params, ``_meta``, batches), raw bodies that are not JSON at all, and header mutations (protocol
version, session id, Mcp-Method / Mcp-Name / Mcp-Param-*, Accept, Content-Type); for /api,
paths, methods, query parameters and mutated manifests. Also what a good answer is
(``mcp_problem``, ``api_problem``). Requests that would open a long-lived stream (a GET with a
live session and Accept: text/event-stream, ``subscriptions/listen``, ``/api/events`` as SSE)
are never generated: the fuzz drives the app in process and must finish. Must not mock any part
of the product; it only builds requests and judges answers.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass, field
from typing import Any

SESSION_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
STATELESS = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPS = "io.modelcontextprotocol/clientCapabilities"
META_INFO = "io.modelcontextprotocol/clientInfo"

CONTROL_TOOLS = ("runtime__list_services", "runtime__get_service", "runtime__get_logs", "runtime__status_summary",
                 "runtime__refresh_interface", "nope__x")


@dataclass(frozen=True)
class Targets:
    """What the generated requests aim at: the services' paths, tool and prompt names, resource URIs
    (only ones that answer at once: never a tool that sleeps, asks the client or returns size N)."""

    paths: tuple[str, ...] = ("/mcp/up", "/mcp/math")
    tools: tuple[str, ...] = ("up__upper", "math__add", "math__fib", "math__hypot", "upper", "add")
    prompts: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()


WASM_TARGETS = Targets()
ECHO_TARGETS = Targets(paths=("/mcp/echo",), tools=("echo__echo", "echo__add", "echo__log", "echo__fail", "echo__stats",
                                                    "echo", "add", "fail"),
                       prompts=("echo__greet", "greet"),
                       uris=("test://static-text", "test://info", "test://items/1", "test://items/", "test://nope"))
METHODS = ("tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list", "resources/templates/list",
           "resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete",
           "logging/setLevel", "ping", "initialize", "server/discover", "notifications/cancelled",
           "notifications/initialized", "notifications/roots/list_changed", "notifications/progress",
           "sampling/createMessage", "no/such", "")
# Opens a stream that lasts as long as the client stays: never generated (see the docstring).
STREAMING_METHODS = frozenset({"subscriptions/listen"})


@dataclass
class Req:
    method: str
    path: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    sent_id: Any = None  # the id of a single JSON object body, if it had one

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """As bytes (UTF-8: a header value may carry any byte; httpx would refuse non-ASCII text)."""
        return [(k.encode(), v.encode("utf-8", "surrogatepass")) for k, v in self.headers]

    def describe(self) -> str:
        return f"{self.method} {self.path} headers={self.headers} body={self.body[:400]!r}"


# -- junk ------------------------------------------------------------------------------------------

def junk(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, leaning to the ones code trips on (wrong types, edge numbers, odd strings)."""
    k = rng.randrange(14 if depth < 2 else 9)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.choice([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, rng.randrange(-1000, 1000)])
    if k == 3:
        return rng.choice([0.5, -0.0, 1e308, -1e-308, 3.0])
    if k == 4:
        return ""
    if k == 5:
        return rng.choice(["a", "up__upper", "svc_000000000000", "../../etc/passwd", "\u0000", "é\u2028\ud7ff",
                           "%s%n", "{{x}}", "x" * rng.choice([1, 64, 65, 300, 5000]), "ref/prompt", "debug",
                           "file:///etc/passwd", "test://x", "2026-07-28", "2025-11-25"])
    if k == 6:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(0, 30)))
    if k == 7:
        return rng.randrange(-5, 100)
    if k == 8:
        return rng.choice(["tools/call", "up", "math", "runtime", "*", "null"])
    if k in (9, 10, 11):
        return [junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(["name", "uri", "type", "a", "text", "_meta", "arguments", "", "id", "x"]): junk(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))}


def _maybe(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _params_for(rng: random.Random, method: str, t: Targets) -> dict[str, Any]:
    """Mostly-plausible params for ``method``, with some fields junk."""
    j = lambda: junk(rng)  # noqa: E731
    prompt = lambda: rng.choice(t.prompts) if t.prompts and _maybe(rng, 0.6) else j()  # noqa: E731
    uri = lambda: rng.choice(t.uris) if t.uris and _maybe(rng, 0.6) else j()  # noqa: E731
    if method == "tools/call":
        name: Any = rng.choice(t.tools + CONTROL_TOOLS) if _maybe(rng, 0.8) else j()
        args: Any = (rng.choice([{"text": j()}, {"a": j(), "b": j()}, {"a": rng.randrange(-3, 50)}, {"service": j()},
                                 {"service": "up", "limit": j()}, {}, {"_intent": j()}])
                     if _maybe(rng, 0.8) else j())
        p: dict[str, Any] = {"name": name, "arguments": args}
    elif method == "prompts/get":
        p = {"name": prompt(), "arguments": rng.choice([{"name": j()}, {"name": "x", "style": j()}, j()])}
    elif method in ("resources/read", "resources/subscribe", "resources/unsubscribe"):
        p = {"uri": uri()}
    elif method == "completion/complete":
        p = {"ref": rng.choice([{"type": "ref/prompt", "name": prompt()}, {"type": "ref/resource", "uri": uri()},
                                {"type": j()}, j()]),
             "argument": rng.choice([{"name": j(), "value": j()}, j()]), "context": j()}
    elif method == "logging/setLevel":
        p = {"level": j()}
    elif method == "notifications/cancelled":
        p = {"requestId": j(), "reason": j()}
    elif method == "notifications/progress":
        p = {"progressToken": j(), "progress": j(), "total": j()}
    elif method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
        p = {"cursor": j()} if _maybe(rng, 0.5) else {}
    elif method == "initialize":
        p = {"protocolVersion": rng.choice([*SESSION_VERSIONS, STATELESS, j()]), "capabilities": j(), "clientInfo": j()}
    else:
        p = {} if _maybe(rng, 0.5) else {"x": j()}
    if _maybe(rng, 0.15):
        p["requestState"] = rng.choice([j(), "abc", "a.b.c", "eyJ4IjoxfQ.AAAA"])
    if _maybe(rng, 0.2):
        p["_meta"] = rng.choice([j(), {"progressToken": j()}, {"io.modelcontextprotocol/logLevel": j()}])
    return p


def _mutate_message(rng: random.Random, msg: dict[str, Any]) -> Any:
    """One to three changes to a message's envelope."""
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(9)
        if op == 0:
            msg["jsonrpc"] = rng.choice(["1.0", 2.0, None, "2.0 ", junk(rng)])
        elif op == 1:
            msg["id"] = rng.choice([None, True, 1.5, [1], {"a": 1}, "", 2**70, -1, junk(rng)])
        elif op == 2:
            msg.pop("id", None)
        elif op == 3:
            msg["method"] = rng.choice([5, None, "", [], "tools/call ", "TOOLS/LIST", junk(rng)])
        elif op == 4:
            msg["params"] = junk(rng)
        elif op == 5:
            msg.pop(rng.choice(["jsonrpc", "method", "params"]), None)
        elif op == 6:
            msg[rng.choice(["result", "error"])] = junk(rng)  # a "response" from the client
        elif op == 7:
            msg[rng.choice(["extra", "_meta", "ID"])] = junk(rng)
        else:
            return [msg, *(junk(rng) for _ in range(rng.randrange(0, 3)))]  # a batch
    return msg


def _raw_body(rng: random.Random, base: bytes) -> bytes:
    """A body that is not (quite) JSON."""
    k = rng.randrange(8)
    if k == 0:
        return base[: rng.randrange(0, max(1, len(base)))]
    if k == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if k == 2:
        return b"[" * rng.choice([10, 1000, 100_000]) + b"]" * rng.choice([0, 10])
    if k == 3:
        return rng.choice([b"", b"null", b"1e999999", b"NaN", b"\"\xff\"", b"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2}",
                           b"{}", b"[]", b"[[]]", b"true", b"\xef\xbb\xbf{}"])
    if k == 4:
        return base.replace(b"\"", b"'", 1)
    if k == 5:
        return base + b"garbage"
    if k == 6:
        return base.replace(b"2.0", b"2.0\xff", 1)
    return b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":" + b"[" * 5000 + b"}}"


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _parsed(body: bytes) -> Any:
    """The body as the daemon reads it (the last of two equal keys wins), or None."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _id_of(obj: Any) -> Any:
    return obj.get("id") if isinstance(obj, dict) else None


# -- /mcp ------------------------------------------------------------------------------------------

def mcp_request(rng: random.Random, era: str, sessions: dict[str, str], targets: Targets = WASM_TARGETS) -> Req:
    """One malformed (or nearly well-formed) request to /mcp in ``era`` ("session" or "stateless");
    ``sessions`` maps a path to a live session on it (session era) the request may use."""
    # Half the requests keep a valid envelope and headers and fuzz only the params (they reach the
    # router, the policy engine and the backends); the other half may break anything.
    deep = _maybe(rng, 0.5)
    path = rng.choice(["/mcp"] * 6 + [*targets.paths] * (6 // len(targets.paths)) + ["/mcp/nope"])
    session_id = sessions.get(path) if _maybe(rng, 0.95) else rng.choice([*sessions.values(), None])
    if not deep and _maybe(rng, 0.1):
        return _mcp_get_or_delete(rng, era, path, session_id)
    method = rng.choice(METHODS)
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if not method.startswith("notifications/") or _maybe(rng, 0.1):
        msg["id"] = rng.choice([rng.randrange(1, 10**6), f"req-{rng.randrange(1000)}"])
    if deep or _maybe(rng, 0.9):
        msg["params"] = _params_for(rng, method, targets)
    if era == "stateless" and isinstance(msg.get("params"), dict) and (deep or _maybe(rng, 0.85)):
        meta = {META_VERSION: STATELESS, META_CAPS: {}, META_INFO: {"name": "fuzz", "version": "1"}}
        if not deep and _maybe(rng, 0.25):
            meta[rng.choice([META_VERSION, META_CAPS, META_INFO])] = junk(rng)
        if not deep and _maybe(rng, 0.1):
            del meta[rng.choice([META_VERSION, META_CAPS])]
        if deep and _maybe(rng, 0.2):
            meta[META_INFO] = junk(rng)
        old = msg["params"].get("_meta")
        msg["params"]["_meta"] = {**(old if isinstance(old, dict) else {}), **meta}
    if era == "stateless" and method in STREAMING_METHODS:
        msg["method"] = "no/such"
    body_obj: Any = _mutate_message(rng, msg) if not deep and _maybe(rng, 0.5) else msg
    body = _dump(body_obj)
    if not deep and _maybe(rng, 0.2):
        body = _raw_body(rng, body)
    headers = _clean_headers(era, body_obj, session_id) if deep else _mcp_headers(rng, era, body_obj, session_id)
    sent = _id_of(_parsed(body))
    return Req("POST", path, headers, body, sent)


def _clean_headers(era: str, body_obj: Any, session_id: str | None) -> list[tuple[str, str]]:
    """The headers a well-behaved client sends with ``body_obj``."""
    h = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")]
    if era == "session":
        h.append(("MCP-Protocol-Version", SESSION_VERSIONS[-1]))
        if session_id:
            h.append(("Mcp-Session-Id", session_id))
        return h
    h.append(("MCP-Protocol-Version", STATELESS))
    method = body_obj.get("method") if isinstance(body_obj, dict) else None
    if isinstance(method, str):
        h.append(("Mcp-Method", method))
    params = body_obj.get("params") if isinstance(body_obj, dict) else None
    key = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}.get(method or "")
    value = params.get(key) if isinstance(params, dict) and key else None
    if isinstance(value, str):
        encoded = value if value.isascii() and value.isprintable() and value.strip() == value else \
            "=?base64?" + base64.b64encode(value.encode("utf-8", "surrogatepass")).decode() + "?="
        h.append(("Mcp-Name", encoded))
    return h


def _mcp_headers(rng: random.Random, era: str, body_obj: Any, session_id: str | None) -> list[tuple[str, str]]:
    h: list[tuple[str, str]] = []
    accept = rng.choice(["application/json, text/event-stream"] * 8 + ["", "text/plain", "*/*", "application/json"])
    if accept:
        h.append(("Accept", accept))
    ctype = rng.choice(["application/json"] * 10 + ["", "text/plain", "application/json; charset=latin-1"])
    if ctype:
        h.append(("Content-Type", ctype))
    method = body_obj.get("method") if isinstance(body_obj, dict) else None
    params = body_obj.get("params") if isinstance(body_obj, dict) else None
    if era == "session":
        version = rng.choice([SESSION_VERSIONS[-1]] * 6 + [*SESSION_VERSIONS, "", "2099-01-01", "junk", STATELESS])
        if version or _maybe(rng, 0.5):
            h.append(("MCP-Protocol-Version", version))
        sid = rng.choice([session_id] * 8 + ["", "nope", "x" * 200, "ñ", None]) if session_id else None
        if sid is not None:
            h.append(("Mcp-Session-Id", sid))
    else:
        version = rng.choice([STATELESS] * 10 + ["", "2099-01-01", SESSION_VERSIONS[-1]])
        h.append(("MCP-Protocol-Version", version))
        if _maybe(rng, 0.85) and isinstance(method, str):
            h.append(("Mcp-Method", method))
        elif _maybe(rng, 0.5):
            h.append(("Mcp-Method", rng.choice(["tools/list", "", "x", "tools/call"])))
        name = None
        if isinstance(params, dict):
            name = params.get("name", params.get("uri"))
        if isinstance(name, str) and _maybe(rng, 0.85) and name.isascii() and name.isprintable():
            h.append(("Mcp-Name", name))
        elif _maybe(rng, 0.3):
            h.append(("Mcp-Name", rng.choice(["up__upper", "", "=?base64?!!?=", "=?base64?dXBfX3VwcGVy?="])))
        if _maybe(rng, 0.15):
            h.append((rng.choice(["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"]), "dup"))  # sent twice
        if _maybe(rng, 0.15):
            h.append((f"Mcp-Param-{rng.choice(['text', 'A', 'x-y', ''])}", rng.choice(["1", "", "=?base64?x?="])))
    return h


def _mcp_get_or_delete(rng: random.Random, era: str, path: str, session_id: str | None) -> Req:
    verb = rng.choice(["GET", "DELETE"])
    h: list[tuple[str, str]] = []
    version = STATELESS if era == "stateless" else rng.choice([*SESSION_VERSIONS, "2099-01-01"])
    h.append(("MCP-Protocol-Version", version))
    if verb == "GET":
        # Never a stream that stays open: no live session, a stateless version, a wrong Accept or a bad Last-Event-ID.
        refusal = rng.randrange(4)
        live = session_id if refusal in (2, 3) and era == "session" else rng.choice(["", "nope", "x" * 100])
        if refusal == 1 or era == "stateless":
            h[0] = ("MCP-Protocol-Version", STATELESS)
        h.append(("Accept", "text/plain" if refusal == 2 else "text/event-stream"))
        if refusal == 3:
            h.append(("Last-Event-ID", rng.choice(["x", "1", "abc.", "abc.1", ".5", "s.99999"])))
        if live:
            h.append(("Mcp-Session-Id", live))
        return Req("GET", path, h, b"", None)
    sid = rng.choice(["", "nope", session_id or "nope"]) if _maybe(rng, 0.9) else session_id
    if sid:
        h.append(("Mcp-Session-Id", sid))
    return Req("DELETE", path, h, b"")


def _well_formed_message(m: Any) -> str | None:
    if not isinstance(m, dict):
        return f"not an object: {m!r:.200}"
    if m.get("jsonrpc") != "2.0":
        return f"jsonrpc is not '2.0': {m!r:.200}"
    if "method" in m:  # a server-to-client notification or request on an SSE stream
        return None if isinstance(m["method"], str) else f"bad method: {m!r:.200}"
    if "id" not in m:
        return f"a response without id: {m!r:.200}"
    if ("result" in m) == ("error" in m):
        return f"not exactly one of result and error: {m!r:.200}"
    if "error" in m:
        err = m["error"]
        if not isinstance(err, dict) or type(err.get("code")) is not int or not isinstance(err.get("message"), str) \
                or not err["message"]:
            return f"a malformed error object: {m!r:.200}"
        if err["message"].startswith("internal error ("):
            return f"an unexpected exception inside the daemon: {m!r:.300}"
    return None


def mcp_problem(req: Req, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """What is wrong with the answer to ``req``, or None."""
    if status >= 500:
        return f"HTTP {status}"
    if b"Traceback" in body:
        return "a traceback in the body"
    if status == 202:
        return None if not body else f"202 with a body {body[:200]!r}"
    if not body:
        return None if (req.method == "DELETE" and status == 200) or status == 400 else f"HTTP {status} without a body"
    ctype = headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        messages = [json.loads(line[5:]) for line in body.decode().splitlines() if line.startswith("data:")]
        if not messages:
            return "an event stream without a message"
    elif ctype.startswith("application/json"):
        try:
            parsed = json.loads(body)
        except ValueError:
            return f"invalid JSON: {body[:200]!r}"
        messages = parsed if isinstance(parsed, list) else [parsed]
    else:
        return f"unexpected content-type {ctype!r}"
    for m in messages:
        why = _well_formed_message(m)
        if why:
            return why
    if len(messages) == 1 and "method" not in messages[0]:
        rid = messages[0].get("id")
        sent = req.sent_id
        if rid is not None and (isinstance(sent, bool) or rid != sent):
            return f"answered id {rid!r} to a request with id {sent!r}"
        if "result" in messages[0] and not isinstance(messages[0]["result"], dict):
            return f"a result that is not an object: {messages[0]!r:.200}"
    return None


# -- /api ------------------------------------------------------------------------------------------

def _manifest(rng: random.Random, wasm_path: str, port: int) -> Any:
    origin = rng.choice([
        {"type": "local_wasm", "path": wasm_path},
        {"type": "remote_mcp", "url": f"http://127.0.0.1:{port}/mcp"},
        {"type": "stdio", "command": "/bin/false-does-not-exist"},
        {"type": junk(rng)}, junk(rng)])
    m: dict[str, Any] = {"apiVersion": "runtimed/v1", "kind": "MCPService",
                         "metadata": {"name": rng.choice(["fz", "fz-2", "up", "math", junk(rng)])},
                         "spec": {"origin": origin, "autostart": False}}
    for _ in range(rng.randrange(0, 4)):
        where = rng.randrange(6)
        meta, spec = m.get("metadata"), m.get("spec")
        if where == 0 and isinstance(meta, dict):
            meta[rng.choice(["name", "labels", "description", "displayName", "extra"])] = junk(rng)
        elif where == 1 and isinstance(spec, dict):
            spec["policy"] = rng.choice([junk(rng), {rng.choice(["timeoutMs", "allowedTools", "deniedTools",
                                                                 "maxConcurrency", "rateLimit", "cache",
                                                                 "timeoutMS"]): junk(rng)}])
        elif where == 2 and isinstance(spec, dict):
            spec[rng.choice(["restartPolicy", "healthCheck", "toolNamespace", "enabled", "autostart",
                             "limits", "bogus"])] = junk(rng)
        elif where == 3:
            if isinstance(origin, dict):
                origin[rng.choice(["url", "path", "transport", "authRef", "command", "args", "env", "cwd",
                                   "allowedHosts", "sha256"])] = junk(rng)
        elif where == 4:
            m[rng.choice(["apiVersion", "kind", "metadata", "spec"])] = junk(rng)
        else:
            m.pop(rng.choice(["apiVersion", "kind", "metadata", "spec"]), None)
    return m


def api_request(rng: random.Random, wasm_path: str, closed_port: int) -> Req:
    ref = rng.choice(["up", "math", "nope", "svc_000000000000", "%2e%2e", "..%2f..", "a%00b", "ü", "x" * 300,
                      "up%20", "UP", ""])
    action = rng.choice(["start", "stop", "restart", "introspect", "unquarantine", "probe", "frobnicate", "", "%00"])
    kind = rng.randrange(10)
    query = ""
    if _maybe(rng, 0.3):
        query = "?" + "&".join(f"{rng.choice(['start', 'limit', 'after', 'service', 'x'])}="
                               f"{rng.choice(['1', '-1', 'true', 'maybe', '', '99999999999999999999', 'abc', '%ff'])}"
                               for _ in range(rng.randrange(1, 3)))
    body = b""
    ctype = rng.choice(["application/json"] * 6 + ["", "text/plain", "application/x-www-form-urlencoded",
                                                    "application/json; charset=utf-8"])
    if kind <= 2:
        method, path = rng.choice(["POST", "PUT", "POST", "PATCH"]), "/api/services"
        obj = _manifest(rng, wasm_path, closed_port)
        body = _dump(obj)
        if _maybe(rng, 0.2):
            body = _raw_body(rng, body)
        if method in ("POST", "PUT") and "start=" not in query:
            query = (query + "&" if query else "?") + "start=false"
    elif kind == 3:
        method, path = rng.choice(["GET", "DELETE", "PUT", "HEAD"]), f"/api/services/{ref}"
    elif kind == 4:
        method, path = rng.choice(["POST", "POST", "GET"]), f"/api/services/{ref}/{action}"
        if _maybe(rng, 0.3):
            body = _dump(junk(rng))
    elif kind == 5:
        method, path = "GET", f"/api/services/{ref}/{rng.choice(['logs', 'interface'])}"
    elif kind == 6:
        method, path = rng.choice(["GET", "POST"]), "/api/events"
    elif kind == 7:
        method, path = rng.choice(["GET", "POST", "DELETE"]), rng.choice(["/api/status", "/api/services", "/api",
                                                                           "/api/", "/api/nothing", "/api/services/"])
    elif kind == 8:
        method, path = rng.choice(["GET", "POST"]), rng.choice(["/api/bootstrap", "/api/bootstrap/remove"])
        if method == "POST":
            body = _dump(junk(rng)) if _maybe(rng, 0.5) else _raw_body(rng, b'{"clients":["codex"],"dryRun":true}')
            # Only a dry run may touch client configs; anything else is refused before writing.
            if body.startswith(b"{") and b"dryRun" not in body:
                body = b'{"dryRun": true, "clients": ' + _dump(junk(rng)) + b"}"
    else:
        method, path = "POST", "/api/services"
        body = _raw_body(rng, b'{"metadata": {"name": "x"}}')
    headers = [("Accept", "application/json")]
    if ctype:
        headers.append(("Content-Type", ctype))
    return Req(method, path + query, headers, body)


def api_problem(req: Req, status: int, headers: dict[str, str], body: bytes) -> str | None:
    if status >= 500:
        return f"HTTP {status}: {body[:300]!r}"
    if b"Traceback" in body:
        return "a traceback in the body"
    if req.method == "HEAD":
        return None
    if 300 <= status < 400:  # e.g. a trailing slash redirected to the route without it
        return None if headers.get("location") else f"HTTP {status} without a Location"
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if status >= 400:
        if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), str) or not parsed["error"]:
            return f"an error without a message: {body[:200]!r}"
        if parsed["error"].startswith("internal error ("):
            return f"an unexpected exception inside the daemon: {body[:300]!r}"
    return None
