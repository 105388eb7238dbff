"""What a session with an upstream (over HTTP or a child's stdio) does with the
messages the upstream sends besides its answer: shared by the remote and stdio
backends.

Owns: the JSON-RPC envelope helpers, turning an upstream reply into a result
or ``UpstreamError``, relaying a call's notifications (progress with the
upstream token mapped back to the client's, log messages) through the call's
``Relay``, routing unsolicited notifications (``list_changed`` and others) to
the ``BackendHost``, and answering server-to-client requests (sampling,
elicitation, roots, ping; replies built with ``runtimed.protocol.jsonrpc``),
and reading an upstream's error text for "this session is gone" (``says_session_lost``).
Must not do I/O: the transports send and read.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from typing import Any

from runtimed.backends.base import BackendHost, CallContext
from runtimed.errors import BackendFault, RelayUnavailable, UpstreamError
from runtimed.protocol.jsonrpc import INTERNAL_ERROR, METHOD_NOT_FOUND, error_response, response
from runtimed.protocol.types import JSON

log = logging.getLogger("runtimed.backends")

CLIENT_CAPABILITIES: JSON = {
    "sampling": {},
    "elicitation": {"form": {}},
    "roots": {"listChanged": True},
}
LIST_CHANGED = {
    "notifications/tools/list_changed": "tools",
    "notifications/resources/list_changed": "resources",
    "notifications/prompts/list_changed": "prompts",
}
# Requests a server may send to its client.
SERVER_REQUESTS = ("sampling/createMessage", "elicitation/create", "roots/list", "ping")


def notification_message(method: str, params: JSON | None) -> JSON:
    msg: JSON = {"jsonrpc": "2.0", "method": method}
    if params:
        msg["params"] = params
    return msg


def result_of(msg: Any, what: str) -> JSON:
    """The ``result`` of a JSON-RPC reply, or ``UpstreamError`` / a protocol fault."""
    if not isinstance(msg, dict):
        raise BackendFault(f"{what}: the upstream's reply is not a JSON-RPC object", kind="protocol")
    if "error" in msg:
        err = msg["error"]
        if not isinstance(err, dict):
            raise BackendFault(f"{what}: the upstream's error reply is malformed", kind="protocol")
        code = err.get("code")
        return_code = code if isinstance(code, int) else INTERNAL_ERROR
        raise UpstreamError(return_code, str(err.get("message") or "upstream error"), err.get("data"))
    result = msg.get("result")
    if not isinstance(result, dict):
        raise BackendFault(f"{what}: the upstream's reply has neither a result object nor an error", kind="protocol")
    return result


def is_request(msg: JSON) -> bool:
    return "method" in msg and "id" in msg and msg.get("id") is not None


def is_notification(msg: JSON) -> bool:
    return "method" in msg and "id" not in msg


def is_response(msg: JSON) -> bool:
    return "method" not in msg and ("result" in msg or "error" in msg)


def swap_progress_token(meta: JSON, ctx: CallContext, rid: int, enabled: bool = True) -> str | None:
    """Replace the client's progress token in ``meta`` (it means nothing upstream) with one of
    our own for request ``rid``, when the client asked for progress; ``relay_call_notification``
    maps it back. Returns our token, or None."""
    meta.pop("progressToken", None)
    if ctx.progress_token is None or not enabled:
        return None
    own = f"runtimed-{rid}"
    meta["progressToken"] = own
    return own


async def relay_call_notification(msg: JSON, ctx: CallContext, own_token: str | None, host: BackendHost) -> None:
    """A notification that arrived while a call was being answered."""
    method = msg.get("method", "")
    params = msg.get("params") or {}
    if method == "notifications/progress":
        if own_token is not None and params.get("progressToken") == own_token and ctx.progress_token is not None:
            out = dict(params)
            out["progressToken"] = ctx.progress_token
            await _safe_notify(ctx, method, out)
        return
    if method == "notifications/message":
        await _safe_notify(ctx, method, params)
        return
    handle_unsolicited_notification(method, params, host)


async def _safe_notify(ctx: CallContext, method: str, params: JSON) -> None:
    try:
        await ctx.relay.notify(method, params)
    except Exception as e:  # a gone client must not break the upstream call
        log.debug("relay notify %s failed: %s", method, type(e).__name__)


def handle_unsolicited_notification(method: str, params: JSON, host: BackendHost) -> None:
    kind = LIST_CHANGED.get(method)
    try:
        if kind:
            host.on_list_changed(kind)
        elif method in ("notifications/subscriptions/acknowledged", "notifications/cancelled"):
            return
        else:
            host.on_notification(method, params)
    except Exception:
        log.exception("host callback for %s failed", method)


async def answer_server_request(msg: JSON, ctx: CallContext | None, host: BackendHost) -> JSON:
    """The JSON-RPC response to a server-to-client request."""
    rid, method, params = msg.get("id"), msg.get("method", ""), msg.get("params") or {}
    if method == "ping":
        return response(rid, {})
    if method not in SERVER_REQUESTS:
        return error_response(rid, METHOD_NOT_FOUND, f"method not supported by this client: {method}")
    try:
        if ctx is not None:
            result = await ctx.relay.request(method, params)
        else:
            result = await host.on_server_request(method, params)
    except UpstreamError as e:
        return error_response(rid, e.code, e.message, e.data)
    except RelayUnavailable as e:
        return error_response(rid, METHOD_NOT_FOUND, f"no client can answer {method}: {e}")
    except Exception as e:
        log.warning("answering %s failed: %s", method, type(e).__name__)
        return error_response(rid, INTERNAL_ERROR, f"the gateway could not relay {method}")
    return response(rid, result if isinstance(result, dict) else {})


def spawn_guarded(tasks: set[asyncio.Task[Any]], coro: Awaitable[Any], what: str,
                  timeout: float | None = None) -> None:
    """Run ``coro`` in the background, tracked in ``tasks`` (so ``close`` can cancel it); a failure
    or a timeout is logged at debug level and never raised."""
    async def guarded() -> None:
        try:
            await (asyncio.wait_for(coro, timeout) if timeout is not None else coro)
        except Exception as e:
            log.debug("%s failed: %s", what, type(e).__name__)

    task = asyncio.ensure_future(guarded())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


# An upstream that no longer knows the session it was sent: the spec says HTTP 404, real servers
# also answer 400 with a message (the TypeScript SDK's servers: "Bad Request: No valid session ID
# provided", "Mcp-Session-Id header is required", "Server not initialized"; legacy SSE servers:
# "No transport found for sessionId", "Invalid session ID"). Matched loosely, case-insensitively:
# the text names a session and says it is invalid, unknown, missing, not found or expired.
_SESSION_WORD = re.compile(r"\bsession\b|session[ _-]?id", re.IGNORECASE)
_LOST_WORD = re.compile(
    r"\b(?:invalid|unknown|missing|not found|no valid|expired|terminated|required|does not exist|no such|"
    r"no transport)\b",
    re.IGNORECASE,
)
_NOT_INITIALIZED = re.compile(r"\bserver not initiali[sz]ed\b", re.IGNORECASE)


def says_session_lost(text: str) -> bool:
    """True when an upstream's error text says the session it was sent is unknown, invalid or missing
    (used only for an HTTP 400 answering a request that carried a session)."""
    return bool((_SESSION_WORD.search(text) and _LOST_WORD.search(text)) or _NOT_INITIALIZED.search(text))


def error_text(e: BaseException) -> str:
    """A backend error as a user reads it: an upstream's JSON-RPC error with its code, else the message."""
    if isinstance(e, UpstreamError):
        return f"the upstream answered error {e.code}: {e.message}"
    return str(e)
