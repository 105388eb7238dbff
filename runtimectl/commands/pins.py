"""``runtimectl approve``: tool pinning from the command line.

Owns the ``approve SERVICE [TOOL...]`` command (the pending changes of those tools, or of every tool,
become the pinned definitions: ``POST /api/services/{ref}/tools/approve``) and how a pending tool change
is written out for a terminal (``pending_lines``, also used by ``runtimectl show``). Must not: decide
what is pinned or withheld (the daemon does), or import ``runtimectl.cli``.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from runtimectl.context import JsonOpt, client, emit_json, out, plural, service_argument


def pending_lines(change: dict[str, Any], indent: str = "  ") -> list[str]:
    """One pending change: the tool, what changed and when, then the diff (a description's unified
    diff, a schema's JSON paths)."""
    diff = change.get("diff") or {}
    fields = diff.get("fields") or []
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(change["detectedAt"])) \
        if isinstance(change.get("detectedAt"), (int, float)) else "?"
    lines = [f"{indent}- {change['tool']}: {', '.join(fields) or 'definition'} changed (detected {when})"
             + ("; no longer offered" if change.get("removed") else "")]
    for field in fields:
        d = diff.get(field)
        if isinstance(d, str):
            lines.append(f"{indent}    {field}:")
            lines.extend(f"{indent}      {line}" for line in d.splitlines())
        elif isinstance(d, dict) and {"added", "removed", "changed"} & set(d):
            for word in ("added", "removed", "changed"):
                for path in d.get(word) or []:
                    lines.append(f"{indent}    {field}: {word} {path}")
        else:
            lines.append(f"{indent}    {field}: {d}")
    return lines


def approve(
    ctx: typer.Context,
    service: str = service_argument(),
    tools: list[str] = typer.Argument(None, metavar="[TOOL]...", show_default=False,
                                      help="the tools (upstream names) whose change to approve (default: every "
                                           "pending change)"),
    as_json: bool = JsonOpt,
) -> None:
    """Approve changed tools: their new definitions become the pinned ones (pinTools serves them again)."""
    res = client(ctx).post(f"/api/services/{service}/tools/approve", json={"tools": list(tools) if tools else None})
    if as_json:
        emit_json(res)
        return
    approved = res.get("approved") or []
    if not approved:
        out.print(f"{res['service']}: no tool change is pending", markup=False)
        return
    out.print(f"{res['service']}: approved {plural(len(approved), 'tool')} ({', '.join(approved)})", markup=False)
    left = res.get("pending") or []
    if left:
        out.print(f"still pending: {', '.join(c['tool'] for c in left)}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``approve`` to the root app."""
    app.command()(approve)
