"""``runtimectl tools`` and ``runtimectl call``: what agents see, from the CLI.

Owns two commands that talk to the daemon's ``/mcp`` endpoint exactly as an
agent does, in the stateless era (one POST per request, no session): listing
tools (all pages; each with its parameters, required ones marked) and calling
one tool (binary content summarised unless ``--raw``; ``--output json`` prints
the whole result for scripts; a client-side timeout says the tool is slow when
the daemon still answers). The protocol's words (version,
``_meta`` keys, header names, message shapes, SSE) come from
``runtimed.protocol``. Must not: reach services directly, use ``/api`` for
anything an agent could not do, or import ``runtimectl.cli``.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable
from typing import Any

import httpx
import typer
from rich.table import Table

from runtimectl.client import DaemonClient
from runtimectl.context import EXIT_FAILURE, JsonOpt, client, emit_json, err, out, service_argument, shorten, usage
from runtimed.errors import ClientError, DaemonUnavailable
from runtimed.protocol import headers as mcp_headers, jsonrpc, meta
from runtimed.protocol.sse import SSEDecoder
from runtimed.protocol.types import JSON
from runtimed.protocol.versions import LATEST_STATELESS


class NoAnswerInTime(ClientError):
    """The daemon took the request but no answer came within the client's timeout."""


class McpClient:
    """Minimal stateless-era MCP client over httpx (JSON or SSE answers)."""

    def __init__(self, daemon: DaemonClient, path: str = "/mcp") -> None:
        self.daemon = daemon
        self.url = daemon.url + path
        self._id = 0

    def request(self, method: str, params: JSON, name: str | None = None, timeout: float | None = None) -> JSON:
        self._id += 1
        params = {**params, "_meta": {
            meta.PROTOCOL_VERSION: LATEST_STATELESS,
            meta.CLIENT_CAPABILITIES: {},
            meta.CLIENT_INFO: {"name": "runtimectl", "version": "1"},
        }}
        headers = {**self.daemon.headers, "Accept": "application/json, text/event-stream",
                   mcp_headers.PROTOCOL_VERSION: LATEST_STATELESS, mcp_headers.METHOD: method}
        if name is not None:
            headers[mcp_headers.NAME] = name if name.isascii() and name.isprintable() else _b64_sentinel(name)
        body = jsonrpc.request(self._id, method, params)
        try:
            with httpx.stream("POST", self.url, json=body, headers=headers, timeout=timeout or self.daemon.timeout) as r:
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    msg = _last_sse_response(r.iter_lines(), self._id)
                else:
                    r.read()
                    try:
                        msg = r.json()
                    except ValueError:
                        raise ClientError(f"{self.url} answered HTTP {r.status_code} with something that is not JSON") from None
                    if r.status_code == 401:
                        raise ClientError("unauthorized: set --token or RUNTIMED_AUTH_TOKEN")
        except httpx.ConnectError:
            raise DaemonUnavailable(f"runtimed is not running at {self.daemon.url}") from None
        except httpx.ReadTimeout:
            raise NoAnswerInTime(f"no answer from {self.url} in time") from None
        except httpx.TimeoutException:
            raise DaemonUnavailable(f"runtimed at {self.daemon.url} did not answer in time") from None
        except httpx.HTTPError as e:
            raise DaemonUnavailable(f"cannot talk to runtimed at {self.daemon.url}: {e}") from None
        if not isinstance(msg, dict):
            raise ClientError(f"unexpected answer from {self.url}")
        if "error" in msg:
            error = msg["error"] or {}
            raise ClientError(f"{method} failed: {error.get('message')} (code {error.get('code')})")
        result: JSON = msg.get("result") or {}
        return result


def _b64_sentinel(value: str) -> str:
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


def _last_sse_response(lines: Iterable[str], want_id: int) -> JSON | None:
    """The response to ``want_id`` from an SSE answer; log notifications on the way go to stderr."""
    decoder = SSEDecoder()
    for line in lines:
        event = decoder.feed_line(line)
        if event is None or not event.data:
            continue
        msg = json.loads(event.data)
        if isinstance(msg, dict) and msg.get("id") == want_id and ("result" in msg or "error" in msg):
            return msg
        if isinstance(msg, dict) and msg.get("method") == "notifications/message":
            p = msg.get("params") or {}
            sys.stderr.write(f"[{p.get('level', 'info')}] {p.get('data')}\n")
    return None


def _marks(tool: JSON) -> str:
    ann = tool.get("annotations") or {}
    marks = []
    if ann.get("readOnlyHint"):
        marks.append("read-only")
    if ann.get("destructiveHint"):
        marks.append("destructive")
    if ann.get("idempotentHint"):
        marks.append("idempotent")
    return ",".join(marks)


def list_tools(mcp: McpClient) -> list[JSON]:
    """Every tool on the endpoint, following ``nextCursor`` (at most 1000 pages)."""
    tools: list[JSON] = []
    cursor = None
    for _ in range(1000):
        result = mcp.request("tools/list", {"cursor": cursor} if cursor else {})
        tools += result.get("tools") or []
        cursor = result.get("nextCursor")
        if not cursor:
            break
    return tools


def _service_of(tool: JSON) -> str:
    tool_meta = tool.get("_meta") or {}
    service: str = tool_meta.get(meta.SERVICE) or (tool["name"].split("__", 1)[0] if "__" in tool.get("name", "") else "")
    return service


def parse_args(pairs: list[str], raw: str | None) -> JSON:
    """``call``'s arguments: ``--json`` first, then each ``--arg key=value`` (value parsed as JSON when it is JSON)."""
    args: JSON = {}
    if raw:
        try:
            loaded = json.loads(raw)
        except ValueError as e:
            raise ClientError(f"--json is not valid JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise ClientError("--json must be a JSON object")
        args.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError(f"--arg takes key=value, not {pair!r}")
        try:
            args[key] = json.loads(value)  # numbers, booleans, objects
        except ValueError:
            args[key] = value  # plain text
    return args


def parameters(tool: JSON) -> str:
    """A tool's arguments from its ``inputSchema``: ``text*, times`` (``*``: required), required ones first."""
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return ""
    props: dict[str, Any] = schema["properties"]
    required: list[Any] = schema["required"] if isinstance(schema.get("required"), list) else []
    names = [str(n) for n in props]
    return ", ".join([f"{n}*" for n in names if n in required] + [n for n in names if n not in required])


def tools_cmd(ctx: typer.Context, service: str | None = service_argument(None, help="only this service's tools"),
              as_json: bool = JsonOpt) -> None:
    """List the tools agents see on /mcp (name, service, parameters, description, policy marks)."""
    try:
        tools = list_tools(McpClient(client(ctx)))
    except ClientError as e:
        err.print(f"runtimectl: {e}", markup=False)
        raise typer.Exit(EXIT_FAILURE) from None
    rows = [t for t in tools if service is None or _service_of(t) == service]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print("no tools" + (f" for service {service!r}" if service else ""), markup=False)
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "SERVICE", "PARAMETERS", "DESCRIPTION", "MARKS"):
        table.add_column(col, overflow="fold")
    params = [parameters(t) for t in rows]
    for t, p in zip(rows, params, strict=True):
        table.add_row(t["name"], _service_of(t), p, shorten(t.get("description")), _marks(t))
    out.print(table)
    if any("*" in p for p in params):
        out.print("*: required", markup=False)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MiB"


def _decoded_size(data: object) -> str:
    if not isinstance(data, str):
        return "no data"
    try:
        return _size(len(base64.b64decode(data, validate=True)))
    except (ValueError, TypeError):
        return f"{len(data)} characters of base64 that does not decode"


def summarise_block(block: JSON) -> str:
    """One content block as text: text as it is, binary content as ``[image: image/png, 68 bytes]``."""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind in ("image", "audio"):
        return f"[{kind}: {block.get('mimeType') or 'unknown type'}, {_decoded_size(block.get('data'))}]"
    if kind == "resource" and isinstance(block.get("resource"), dict):
        res = block["resource"]
        if isinstance(res.get("text"), str):
            return str(res["text"])
        return f"[resource {res.get('uri', '')}: {res.get('mimeType') or 'unknown type'}, {_decoded_size(res.get('blob'))}]"
    if kind == "resource_link":
        return f"[resource link: {block.get('uri', '')}" + (f" ({block['name']})" if block.get("name") else "") + "]"
    return json.dumps(block)


def _timed_out(c: DaemonClient, tool: str, timeout: float) -> str:
    """What a client-side timeout means: a slow tool when the daemon still answers, else the daemon."""
    try:
        c.get("/api/status", timeout=3)
    except ClientError:
        return f"runtimed at {c.url} gave no answer within {timeout:g} s and does not answer now"
    return (f"{tool} gave no result within {timeout:g} s (--timeout {timeout:g}); runtimed is up, so the tool is "
            f"slow: call again with a larger --timeout (the service may still be working on this call)")


def call_cmd(ctx: typer.Context, tool: str = typer.Argument(..., help="public tool name, e.g. svc__echo"),
             arg: list[str] = typer.Option([], "--arg", help="key=value (value parsed as JSON when it is JSON)"),
             raw_args: str | None = typer.Option(None, "--json", help="the arguments, as one JSON object"),
             timeout: float = typer.Option(300.0, "--timeout", help="seconds to wait"),
             output: str = typer.Option("text", "--output", "-o",
                                        help="text (content blocks, binary summarised) or json (the whole result, "
                                             "for scripts)"),
             raw: bool = typer.Option(False, "--raw", help="text output: print binary content as it came (base64)"),
             ) -> None:
    """Call a tool through /mcp and print its result; exit 1 on an error result."""
    if output not in ("text", "json"):
        raise usage(f"--output must be text or json, not {output!r}")
    c = client(ctx, timeout=timeout)
    try:
        args = parse_args(arg, raw_args)
        result = McpClient(c).request("tools/call", {"name": tool, "arguments": args}, name=tool)
    except NoAnswerInTime:
        err.print(f"runtimectl: {_timed_out(c, tool, timeout)}", markup=False)
        raise typer.Exit(EXIT_FAILURE) from None
    except ClientError as e:
        err.print(f"runtimectl: {e}", markup=False)
        raise typer.Exit(EXIT_FAILURE) from None
    if output == "json":
        emit_json(result)
    if result.get("resultType") == "input_required":
        err.print("runtimectl: the tool asks the client for input (sampling, elicitation or roots), "
                  "which the CLI cannot give", markup=False)
        raise typer.Exit(EXIT_FAILURE)
    if output == "text":
        _print_text(result, raw)
    if result.get("isError"):
        raise typer.Exit(EXIT_FAILURE)


def _print_text(result: JSON, raw: bool) -> None:
    structured = result.get("structuredContent")
    if structured is not None:
        sys.stdout.write(json.dumps(structured, indent=2) + "\n")
    else:
        for block in result.get("content") or []:
            if raw and block.get("type") != "text":
                sys.stdout.write(json.dumps(block) + "\n")
            else:
                sys.stdout.write(summarise_block(block) + "\n")
    if result.get("isError") and structured is not None:
        for block in result.get("content") or []:
            if block.get("type") == "text":
                err.print(block.get("text", ""), markup=False)


def register(app: typer.Typer) -> None:
    """Add ``tools`` and ``call`` to the root app."""
    app.command("tools")(tools_cmd)
    app.command("call")(call_cmd)
