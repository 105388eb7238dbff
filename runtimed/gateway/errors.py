"""Errors into answers on ``/mcp``: the one place the gateway turns an exception
into a JSON-RPC error or a ``tools/call`` ``isError`` result.

Owns ``rpc_error`` (a refusal or a backend's error, raised on a call to a
service, as the ``RpcError`` the transport answers with), ``tool_refusal`` (a
policy's refusal of a ``tools/call`` as the ``isError`` result the agent
reads), ``withheld_tool`` (a call to a tool withheld by ``pinTools``, likewise),
``tool_failure`` (a refused control-tool action, likewise), ``not_serving``
(a call to a tool of a registered service that is not serving: its state,
since when, why, and the command that starts it, as an ``isError`` result),
``error_reply`` (an ``RpcError`` as a JSON-RPC error response) and
``unexpected_reply`` (a bug, answered readably and logged). Must not: decide
anything about a call, or speak HTTP (statuses are the transport's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from runtimed.errors import (
    BackendError,
    BackendFault,
    InputRequired,
    PolicyRefusal,
    RelayUnavailable,
    RpcError,
    SupervisorError,
    UpstreamError,
)
from runtimed.protocol.jsonrpc import INTERNAL_ERROR, error_response, tool_error
from runtimed.protocol.types import JSON

log = logging.getLogger("runtimed.gateway")


def rpc_error(e: PolicyRefusal | BackendError, service: str) -> RpcError:
    """The JSON-RPC error for a call to ``service`` that raised ``e``.

    An upstream's own JSON-RPC error is passed on as-is; everything else is an
    internal error whose message names the service (or the policy) and why.
    ``InputRequired`` reaches here only in the session era, where the client
    cannot be asked through an input-required result.
    """
    if isinstance(e, UpstreamError):
        return RpcError(e.code, e.message, e.data)
    if isinstance(e, PolicyRefusal):
        return RpcError(INTERNAL_ERROR, f"refused by policy {e.policy}: {e}", data={"policy": e.policy})
    if isinstance(e, InputRequired):
        return RpcError(INTERNAL_ERROR, f"service {service!r} needs client input the client cannot give")
    if isinstance(e, RelayUnavailable):
        return RpcError(INTERNAL_ERROR, f"service {service!r} asked the client something it cannot answer: {e}")
    if isinstance(e, BackendFault):
        return RpcError(INTERNAL_ERROR, f"service {service!r} failed ({e.kind}): {e}")
    return RpcError(INTERNAL_ERROR, f"service {service!r} failed: {e}")


def tool_refusal(e: PolicyRefusal) -> JSON:
    """A policy's refusal of a ``tools/call``: an ``isError`` result whose text says which policy
    refused and why, with ``_meta.runtimed`` = {policy, outcome, the policy's facts}."""
    return tool_error(str(e), policy=e.policy, **e.meta)


def withheld_tool(reason: str, tool: str) -> JSON:
    """A ``tools/call`` of a tool the catalog withholds (``pinTools``: its definition changed since it
    was approved): an ``isError`` result with the reason, which names the command that approves it."""
    return tool_error(reason, outcome="withheld", policy="pinTools", tool=tool)


def tool_failure(e: SupervisorError) -> JSON:
    """A control tool's action refused by the supervisor: an ``isError`` result with its message."""
    return tool_error(str(e))


class NotServing(Protocol):
    """What ``not_serving`` reads of a registered service (the supervisor's ``ServiceRuntime``)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def state(self) -> Any: ...  # lifecycle.State (a str enum)

    @property
    def enabled(self) -> bool: ...

    state_since: float
    state_reason: str
    next_restart_at: float | None


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _start_command(svc: NotServing) -> str | None:
    """The command that makes ``svc`` serve again (None while it is on its way)."""
    state = str(svc.state)
    if not svc.enabled:
        return f"runtimectl set {svc.name} --enable"
    if state == "QUARANTINED":
        return f"runtimectl unquarantine {svc.name}"
    if state in ("STOPPED", "CRASHED", "REGISTERED"):
        return f"runtimectl start {svc.name}"
    return None


def _not_serving_line(svc: NotServing) -> str:
    state = str(svc.state)
    label = f"{state} (never started)" if state == "REGISTERED" else state
    line = f"service {svc.name!r} is {label} since {_when(svc.state_since)}"
    if svc.state_reason and state != "REGISTERED":
        line += f" ({svc.state_reason})"
    if state == "CRASHED" and svc.next_restart_at:
        line += f"; its restart policy tries again at {_when(svc.next_restart_at)}"
    command = _start_command(svc)
    if command is None:
        return line + "; call again in a moment"
    if state == "QUARANTINED":
        return line + f"; once the cause is fixed: {command}"
    return line + f"; its tools come back when it runs: {command}"


def not_serving(services: Sequence[NotServing]) -> JSON:
    """A ``tools/call`` of a tool of registered services that are not serving: an ``isError``
    result saying, per service, its state, since when, why and the command that starts it, with
    ``_meta.runtimed`` = {outcome, service, state, since, reason, start} (of the first)."""
    first = services[0]
    text = "; ".join(_not_serving_line(s) for s in services)
    return tool_error(text, outcome="not serving", service=first.name, state=str(first.state),
                      since=first.state_since, reason=first.state_reason, start=_start_command(first))


def error_reply(msg_id: Any, e: RpcError) -> JSON:
    """The JSON-RPC error response for ``e``."""
    return error_response(msg_id, e.code, e.message, e.data)


def unexpected_reply(msg_id: Any, method: str, e: Exception) -> JSON:
    """A bug must still answer with something readable; it is logged with its traceback."""
    log.exception("gateway error in %s", method, exc_info=e)
    return error_response(msg_id, INTERNAL_ERROR, f"internal error ({type(e).__name__}); see the daemon log")
