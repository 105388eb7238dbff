"""``runtimectl auth``: the gateway's sign-ins to OAuth-protected remote MCP servers (services whose
``authRef`` is ``oauth``).

Owns ``auth login SERVICE`` (starts a sign-in through ``POST /api/services/{name}/auth/login``:
prints the authorization URL on a line of its own, opens a browser only when one is likely to be
there, and waits, polling ``GET /api/services/{name}/auth`` every ``POLL_S``, until the daemon's
``/oauth/callback`` has completed it; a client-credentials service is signed in at once), ``auth
status [SERVICE]`` (one service's sign-in, or a table of every OAuth service) and ``auth logout
SERVICE`` (``DELETE``: revocation, best effort), with their human and ``--json`` renderings. Must
not: hold OAuth logic (the daemon runs the flow and keeps the tokens; this module never sees a
token), launch a browser where none can be shown (tests, ssh sessions, pipes), or import
``runtimectl.cli``.
"""

from __future__ import annotations

import os
import sys
import time
import webbrowser
from typing import Any
from urllib.parse import quote

import typer
from rich.table import Table

from runtimectl.client import DaemonClient
from runtimectl.context import JsonOpt, client, emit_json, err, fail, out, service_argument, usage
from runtimed.errors import DaemonError

POLL_S = 0.5
DEFAULT_TIMEOUT_S = 300.0

auth_app = typer.Typer(
    help="Sign the gateway in to OAuth-protected remote MCP servers (services added with --auth oauth).",
    no_args_is_help=True)


def _path(service: str) -> str:
    return f"/api/services/{quote(service, safe='')}/auth"


def relative(ts: float | None, now: float | None = None) -> str:
    """``in 59m``, ``3h ago``, ``-`` for None: a moment as a distance from ``now``."""
    if ts is None:
        return "-"
    delta = ts - (time.time() if now is None else now)
    span = abs(delta)
    if span < 60:
        text = f"{span:.0f}s"
    elif span < 3600:
        text = f"{span // 60:.0f}m"
    elif span < 86400:
        text = f"{span // 3600:.0f}h{(span % 3600) // 60:02.0f}m"
    else:
        text = f"{span // 86400:.0f}d"
    return f"in {text}" if delta >= 0 else f"{text} ago"


def browser_likely() -> bool:
    """Whether ``webbrowser.open`` can show a page to the person at this terminal: stdin and stdout are a
    terminal (not a pipe, a test or a script), and on Linux and the other unixes (not macOS, not Windows) a
    graphical session is there (``DISPLAY`` or ``WAYLAND_DISPLAY``)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_browser(url: str) -> bool:
    try:
        return bool(webbrowser.open(url, new=2))
    except Exception:  # a broken browser setup must not stop the sign-in: the URL is printed
        return False


def _expiry(status: dict[str, Any]) -> str:
    if status.get("expiresAt") is None:
        return "no expiry given"
    when = relative(status["expiresAt"])
    word = "expired" if when.endswith(" ago") else "expires"
    refresh = ", refreshed automatically" if status.get("refreshable") else ""
    return f"{word} {when}{refresh}"


def _signed_in_line(status: dict[str, Any]) -> str:
    scope = f", scope {status['scope']}" if status.get("scope") else ""
    return f"Signed in to {status['service']} at {status.get('issuer') or '?'} ({_expiry(status)}{scope})"


def _wait(c: DaemonClient, service: str, before: Any, timeout: float) -> dict[str, Any] | None:
    """The status once the sign-in started after ``before`` (the ``signedInAt`` seen before it) is done, or None
    at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = c.get(_path(service))
        if status.get("signedIn") and status.get("signedInAt") != before:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


@auth_app.command()
def login(
    ctx: typer.Context,
    service: str = service_argument(),
    no_browser: bool = typer.Option(False, "--no-browser", help="only print the URL (to open it elsewhere)"),
    timeout: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", metavar="SECONDS",
                                  help="how long to wait for the sign-in to complete"),
    wait: bool | None = typer.Option(None, "--wait/--no-wait", show_default=False,
                                     help="wait for the sign-in to complete (default: yes; with --json: no)"),
    as_json: bool = JsonOpt,
) -> None:
    """Sign the gateway in to SERVICE (a remote service whose authRef is oauth).

    Prints the URL of the authorization server's sign-in page (valid 10 minutes), opens it in a browser when
    there is one (not with --no-browser, over ssh without a display, or when the output is piped), and waits
    until the sign-in is done: the authorization server sends the browser back to the daemon, which keeps the
    tokens and starts the service. A service with the client_credentials grant is signed in at once.

    --json prints the daemon's answer (the URL as "url") and returns at once; with --json --wait the URL goes
    to stderr and the sign-in's status is printed as JSON once it is done.
    """
    if timeout <= 0:
        raise usage(f"--timeout must be greater than 0, not {timeout:g}")
    waiting = (not as_json) if wait is None else wait
    c = client(ctx)
    before = c.get(_path(service)).get("signedInAt")
    res: dict[str, Any] = c.post(_path(service) + "/login", json={})
    url = res.get("url")
    if not url:  # client credentials: signed in already
        if as_json:
            emit_json(res)
        else:
            out.print(_signed_in_line(res), markup=False)
        return
    if as_json and not waiting:
        emit_json(res)
        return
    name = res.get("service") or service
    minutes = int(res.get("expiresInSeconds") or 600) // 60
    where = err if as_json else out
    where.print(f"To sign {name} in, open this URL in a browser (valid {minutes} minutes):", markup=False)
    if as_json:
        print(url, file=sys.stderr, flush=True)
    else:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()
    if not no_browser and browser_likely() and _open_browser(url):
        where.print("(opened in your browser)", markup=False)
    if not waiting:
        return
    where.print(f"Waiting for the sign-in to complete (up to {timeout:g} s; Ctrl-C stops waiting, the URL stays "
                f"valid)...", markup=False)
    status = _wait(c, service, before, timeout)
    if status is None:
        raise fail(f"the sign-in to {name} did not complete within {timeout:g} s; the URL above is valid "
                   f"{minutes} minutes from when it was printed (runtimectl auth status {name} shows whether it "
                   f"completed; runtimectl auth login {name} starts a new one)")
    if as_json:
        emit_json(status)
    else:
        out.print(f"Signed in to {name} at {status.get('issuer') or '?'}", markup=False)
        out.print(f"  {_expiry(status)}" + (f"; scope {status['scope']}" if status.get("scope") else "")
                  + "; the service starts now", markup=False)


def _describe(status: dict[str, Any]) -> None:
    name = status["service"]
    out.print(f"{name}: {status['state']}", markup=False)
    rows: list[tuple[str, str]] = [
        ("issuer", status.get("issuer") or "- (found at the first sign-in)"),
        ("resource", status.get("resource") or "-"),
        ("grant", status.get("grant") or "-"),
    ]
    if status.get("registration"):
        rows.append(("client", f"{status.get('clientId')} ({status['registration']})"))
    if status.get("scope"):
        rows.append(("scope", str(status["scope"])))
    if status.get("signedIn") or status.get("state") == "expired":
        rows.append(("expires", _expiry(status)))
    if status.get("signedInAt"):
        rows.append(("signed in", relative(status["signedInAt"])))
    if status.get("reason"):
        rows.append(("reason", str(status["reason"])))
    for key, value in rows:
        out.print(f"  {key + ':':<11}{value}", markup=False)
    if not status.get("signedIn") and status.get("login"):
        out.print(f"sign in with: {status['login']}", markup=False)


def _oauth_services(c: DaemonClient) -> list[str]:
    services = c.get("/api/services")["services"]
    return [s["name"] for s in services if (s.get("origin") or {}).get("authRef") == "oauth"]


@auth_app.command()
def status(
    ctx: typer.Context,
    service: str | None = service_argument(None, help="name or id (default: every service that signs in with OAuth)"),
    as_json: bool = JsonOpt,
) -> None:
    """A service's sign-in (state, issuer, expiry, registration; never a token), or every OAuth service's."""
    c = client(ctx)
    if service is not None:
        one: dict[str, Any] = c.get(_path(service))
        if as_json:
            emit_json(one)
        else:
            _describe(one)
        return
    statuses = []
    for name in _oauth_services(c):
        try:
            statuses.append(c.get(_path(name)))
        except DaemonError as e:  # removed (or changed) between the list and now: say so, keep the others
            statuses.append({"service": name, "state": "unknown", "reason": str(e)})
    if as_json:
        emit_json(statuses)
        return
    if not statuses:
        out.print("no service signs in with OAuth (runtimectl add URL --auth oauth adds one)", markup=False)
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("SERVICE", "STATE", "ISSUER", "EXPIRES", "REGISTRATION", "REASON"):
        t.add_column(col, no_wrap=col not in ("REASON", "ISSUER"))
    for s in statuses:
        reason = s.get("reason") or ""
        if not s.get("signedIn") and s.get("login"):
            reason = f"{reason}: {s['login']}" if reason else s["login"]
        t.add_row(s["service"], s.get("state", "?"), s.get("issuer") or "-",
                  relative(s.get("expiresAt")) if s.get("signedIn") else "-", s.get("registration") or "-", reason)
    out.print(t)


@auth_app.command()
def logout(ctx: typer.Context, service: str = service_argument(), as_json: bool = JsonOpt) -> None:
    """Sign the gateway out of SERVICE: its tokens are revoked (when the server offers it) and forgotten, and
    the service stops until someone signs in again."""
    res: dict[str, Any] = client(ctx).delete(_path(service))
    if as_json:
        emit_json(res)
        return
    name = res.get("service") or service
    if res.get("revoked"):
        out.print(f"Signed out of {name}: the authorization server confirmed the revocation", markup=False)
    else:
        out.print(f"Signed out of {name}: its tokens are forgotten here (the authorization server did not confirm "
                  f"a revocation)", markup=False)
    out.print(f"{name} waits for a sign-in: runtimectl auth login {name}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``auth`` group to the root app."""
    app.add_typer(auth_app, name="auth")

