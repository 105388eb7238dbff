"""``runtimectl token``: scoped access tokens, each reaching one profile's endpoint (``/mcp/@NAME``).

Owns ``token create --profile NAME [--expires 30d] [--label TEXT]`` (``POST /api/tokens``: prints the
token once, on a line of its own, with the endpoint it reaches and a warning on stderr that it will
not be shown again), ``token list`` (``GET /api/tokens``: ids, profiles, labels, expiry, last use;
never a token) and ``token revoke ID`` (``DELETE /api/tokens/{id}``), with their human and ``--json``
renderings. Must not: keep or log a token (the daemon keeps only its hash; this module prints it once
and forgets it), or import ``runtimectl.cli``.
"""

from __future__ import annotations

import re
import sys
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from runtimectl.commands.auth import relative
from runtimectl.context import JsonOpt, client, emit_json, err, out, usage

# A whole scoped token (runtimed.auth.tokens' format, rtk_<id>_<secret>), given where its id is asked for.
WHOLE_TOKEN = re.compile(r"^rtk_([0-9a-f]{8})_[A-Za-z0-9_-]+$")

token_app = typer.Typer(
    help="Scoped access tokens: a bearer token that reaches one profile's endpoint (/mcp/@NAME) and nothing else.",
    no_args_is_help=True)


def _expires(t: dict[str, Any]) -> str:
    if t.get("expiresAt") is None:
        return "never"
    return f"expired {relative(t['expiresAt'])}" if t.get("expired") else relative(t["expiresAt"])


@token_app.command()
def create(
    ctx: typer.Context,
    profile: str = typer.Option(..., "--profile", "-p", metavar="NAME", help="the profile the token reaches"),
    expires: str | None = typer.Option(None, "--expires", metavar="DURATION",
                                       help="lifetime: 30d, 12h, 90m, 2w or seconds (default: never expires)"),
    label: str | None = typer.Option(None, "--label", metavar="TEXT", help="a note to recognise it by in lists"),
    as_json: bool = JsonOpt,
) -> None:
    """Create a bearer token that reaches only the endpoint of profile NAME (/mcp/@NAME).

    The token is printed once and never shown again (the daemon keeps only its hash): put it where the
    agent reads it now. runtimectl token revoke ID withdraws it.
    """
    res: dict[str, Any] = client(ctx).post("/api/tokens", json={"profile": profile, "expiresIn": expires,
                                                                 "label": label})
    if as_json:
        emit_json(res)
        err.print("runtimectl: the token above is shown this once: keep it now", markup=False)
        return
    out.print(f"Created token {res['id']} for profile {res['profile']} (reaches {res.get('endpoint')}; "
              f"expires {_expires(res)}):", markup=False)
    sys.stdout.write(res["token"] + "\n")
    sys.stdout.flush()
    err.print("This token is shown this once and cannot be shown again: keep it now "
              f"(send it as Authorization: Bearer <token>; runtimectl token revoke {res['id']} withdraws it).",
              markup=False)


@token_app.command("list")
def list_tokens(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """The scoped tokens: id, profile, label, when created, when they expire, last use (never the tokens)."""
    tokens: list[dict[str, Any]] = client(ctx).get("/api/tokens")["tokens"]
    if as_json:
        emit_json(tokens)
        return
    if not tokens:
        out.print("no scoped token (runtimectl token create --profile NAME makes one)", markup=False)
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("ID", "PROFILE", "LABEL", "CREATED", "EXPIRES", "LAST USED"):
        t.add_column(col, no_wrap=col != "LABEL")
    for tok in tokens:
        t.add_row(tok["id"], tok["profile"], tok.get("label") or "-", relative(tok.get("createdAt")),
                  _expires(tok), relative(tok.get("lastUsedAt")) if tok.get("lastUsedAt") else "never")
    out.print(t)


@token_app.command()
def revoke(ctx: typer.Context, token: str = typer.Argument(..., metavar="ID", help="the token's id (token list)"),
           as_json: bool = JsonOpt) -> None:
    """Revoke a scoped token: from now on it is refused (401) on every replica."""
    tid = token
    if token.startswith("rtk_"):  # the whole token given: its id (the token never goes further, or back)
        m = WHOLE_TOKEN.match(token)
        if m is None:
            raise usage("give the token's id (8 hex characters, as runtimectl token list shows it)")
        tid = m.group(1)
    res: dict[str, Any] = client(ctx).delete(f"/api/tokens/{quote(tid, safe='')}")
    if as_json:
        emit_json(res)
        return
    out.print(f"Revoked token {res['revoked']} (profile {res['profile']})", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``token`` group to the root app."""
    app.add_typer(token_app, name="token")
