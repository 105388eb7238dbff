"""Built-in ``runtime__*`` tools on the aggregate endpoint.

Owns ``ControlTools``: the definitions of the control tools and their
handlers, which act only through the supervisor's public methods (it is given
the settings and the supervisor, nothing else). The mutating tools (start,
stop, restart, unquarantine) exist only when the daemon runs with admin tools
enabled. Must not: change lifecycle state directly or reveal secrets (service
views come from ``ServiceRuntime.summary``/``detail``, which hold none).
"""

from __future__ import annotations

import json
from typing import Any

from runtimed.config.settings import Settings
from runtimed.errors import SupervisorError
from runtimed.gateway.errors import tool_failure
from runtimed.lifecycle.supervisor import Supervisor
from runtimed.protocol.jsonrpc import tool_error
from runtimed.protocol.types import JSON
from runtimed.records.intents import capability_tool

NAMESPACE = "runtime"

_SERVICE_ARG = {"type": "object", "properties": {"service": {"type": "string", "description": "Service name or id."}},
                "required": ["service"]}
_NONE = {"type": "object", "properties": {}}
_RO = {"readOnlyHint": True, "openWorldHint": False}

READ_TOOLS: list[JSON] = [
    {"name": "runtime__status_summary", "description": "Counts of services by lifecycle state and health, and connected clients.",
     "inputSchema": _NONE, "annotations": _RO},
    {"name": "runtime__list_services", "description": "Every registered service with its state, health and tool count.",
     "inputSchema": _NONE, "annotations": _RO},
    {"name": "runtime__get_service", "description": "One service in detail: state, health, policies, interface revision.",
     "inputSchema": _SERVICE_ARG, "annotations": _RO},
    {"name": "runtime__get_logs", "description": "The most recent log lines of a service.",
     "inputSchema": {"type": "object", "properties": {
         "service": {"type": "string", "description": "Service name or id."},
         "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}, "required": ["service"]},
     "annotations": _RO},
    {"name": "runtime__refresh_interface", "description": "Re-read a running service's tools, resources and prompts.",
     "inputSchema": _SERVICE_ARG, "annotations": {"readOnlyHint": False, "idempotentHint": True}},
]
ADMIN_TOOLS: list[JSON] = [
    {"name": f"runtime__{verb}_service", "description": desc, "inputSchema": _SERVICE_ARG,
     "annotations": {"readOnlyHint": False, "destructiveHint": verb == "stop"}}
    for verb, desc in (
        ("start", "Start a stopped or crashed service."),
        ("stop", "Stop a running service."),
        ("restart", "Stop and start a service."),
        ("unquarantine", "Release a quarantined service and start it."),
    )
]


class ControlTools:
    """The ``runtime__*`` tools of one daemon."""

    def __init__(self, settings: Settings, supervisor: Supervisor) -> None:
        self.settings = settings
        self.supervisor = supervisor

    def tools(self) -> list[JSON]:
        out = READ_TOOLS + (ADMIN_TOOLS if self.settings.admin_tools else [])
        if self.settings.capture_intent:
            out = [*out, capability_tool()]  # runtime__request_capability: recorded by the router
        return out

    async def call(self, name: str, args: JSON, client_counts: JSON) -> JSON:
        """Run one control tool; problems come back as ``isError`` results."""
        sup = self.supervisor
        if not isinstance(args, dict):
            return tool_error("arguments must be an object")
        ref = args.get("service")
        try:
            if name == "runtime__status_summary":
                states: JSON = {}
                health: JSON = {}
                for s in sup.all():
                    states[s.state.value] = states.get(s.state.value, 0) + 1
                    health[s.health.value] = health.get(s.health.value, 0) + 1
                return _ok({"services": len(sup.services), "byState": states, "byHealth": health, "clients": client_counts})
            if name == "runtime__list_services":
                return _ok({"services": [_brief(s.summary()) for s in sup.all()]})
            if not isinstance(ref, str) or not ref:
                return tool_error(f"{name} needs the argument 'service' (a service name or id)")
            if name == "runtime__get_service":
                return _ok(sup.get(ref).detail())
            if name == "runtime__get_logs":
                limit = args.get("limit", 50)
                if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
                    return tool_error("limit must be an integer from 1 to 1000")
                return _ok({"service": sup.get(ref).name, "lines": list(sup.get(ref).logs)[-limit:]})
            if name == "runtime__refresh_interface":
                svc = sup.get(ref)
                iface = await sup.refresh_interface(svc, reason="runtime__refresh_interface")
                return _ok({"service": svc.name, "revision": iface.revision, "tools": len(iface.tools),
                            "resources": len(iface.resources), "prompts": len(iface.prompts)})
            if self.settings.admin_tools:
                if name == "runtime__start_service":
                    return _ok(_brief((await sup.start(ref, reason="runtime__start_service", intend=True)).summary()))
                if name == "runtime__stop_service":
                    return _ok(_brief((await sup.stop(ref, reason="runtime__stop_service", intend=True)).summary()))
                if name == "runtime__restart_service":
                    return _ok(_brief((await sup.restart(ref, reason="runtime__restart_service", intend=True)).summary()))
                if name == "runtime__unquarantine_service":
                    return _ok(_brief((await sup.unquarantine(ref)).summary()))
        except SupervisorError as e:
            return tool_failure(e)
        return tool_error(f"unknown control tool {name!r}")


def _ok(data: Any) -> JSON:
    return {"content": [{"type": "text", "text": json.dumps(data, indent=1, default=str)}],
            "structuredContent": data if isinstance(data, dict) else {"result": data}, "isError": False}


def _brief(summary: JSON) -> JSON:
    keys = ("name", "id", "state", "stateReason", "health", "toolCount", "lastError", "interfaceRevision")
    return {k: summary.get(k) for k in keys}
