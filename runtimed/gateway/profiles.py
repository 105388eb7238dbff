"""A profile's endpoint, ``/mcp/@NAME``: its catalog, and the three tools of search mode.

Owns ``build`` (a profile's ``Catalog``, derived from the aggregate one of ``/mcp``: the tools of
the services its ``services`` selection admits whose public name on ``/mcp`` its ``tools``
selection admits, less those an override hides or ``withhold`` keeps back, each listed with its
override applied (name, description, annotations merged) and routed by the name shown to the
original tool; prompts and resources of the services its ``prompts``/``resources`` selections
admit, the selected services by default; a resource URI two of them offer is served by the
first in name order, as on /mcp but among the profile's services), the search-mode catalog (``search_tools``,
``describe_tool``, ``call_tool`` over the profile's tools, whose index is
``runtimed.profiles.search``'s) and the answers of ``search_tools`` and ``describe_tool``
(``call_tool`` is the router's: it routes exactly as a direct ``tools/call`` does), and
``resolve_name`` (which tool of /mcp a name sent to a profile means, if any).

A profile only narrows: built-in ``runtime__*`` tools are not served on a profile's endpoint, a
tool hidden by its service's policy stays refused by that policy, and an override changes what
is listed, never what a policy sees. Must not: enforce policies, call upstreams, or speak HTTP.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from runtimed.config.profile import ProfileManifest, ToolOverride
from runtimed.gateway.catalog import Catalog, CatalogService, Entry, Withhold, add_resources
from runtimed.profiles.search import SearchUnavailable, ToolDoc, ToolIndex
from runtimed.protocol.jsonrpc import tool_error
from runtimed.protocol.types import JSON
from runtimed.records.intents import INTENT_PROPERTY

SEARCH_TOOLS = "search_tools"
DESCRIBE_TOOL = "describe_tool"
CALL_TOOL = "call_tool"
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
_READ_ONLY = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}

SEARCH_MODE_TOOLS: list[JSON] = [
    {
        "name": SEARCH_TOOLS,
        "title": "Search tools",
        "description": "Find the tools of this endpoint by what they do: a ranked full-text search over tool "
                       "names, descriptions and parameter names. Returns each match's name, description and "
                       "service, best first. Then call describe_tool for a tool's arguments, and call_tool to "
                       "call it.",
        "inputSchema": {"type": "object", "properties": {
            "query": {"type": "string", "description": "A few words saying what the tool should do, e.g. "
                                                       "'create a github issue'."},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT,
                      "description": f"How many matches to return (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})."}},
            "required": ["query"]},
        "annotations": {"title": "Search tools", **_READ_ONLY},
    },
    {
        "name": DESCRIBE_TOOL,
        "title": "Describe a tool",
        "description": "The full definition of one tool found with search_tools: its description, its input "
                       "schema (the arguments call_tool takes) and its annotations.",
        "inputSchema": {"type": "object", "properties": {
            "name": {"type": "string", "description": "The tool's name, as search_tools returned it."}},
            "required": ["name"]},
        "annotations": {"title": "Describe a tool", **_READ_ONLY},
    },
    {
        "name": CALL_TOOL,
        "title": "Call a tool",
        "description": "Call one tool found with search_tools, with the arguments its input schema (see "
                       "describe_tool) asks for. Returns the tool's own result.",
        "inputSchema": {"type": "object", "properties": {
            "name": {"type": "string", "description": "The tool's name, as search_tools returned it."},
            "arguments": {"type": "object", "description": "The tool's arguments.", "additionalProperties": True}},
            "required": ["name"]},
        "annotations": {"title": "Call a tool", "openWorldHint": True},
    },
]
SEARCH_MODE_NAMES = frozenset(t["name"] for t in SEARCH_MODE_TOOLS)


# -- building ------------------------------------------------------------------------------

def shown(item: JSON, override: ToolOverride | None) -> JSON:
    """A listed tool as a profile shows it: the override's name and description, its annotations
    merged over the tool's own."""
    if override is None or (override.name is None and override.description is None and not override.annotations):
        return item
    out = dict(item)
    if override.name is not None:
        out["name"] = override.name
    if override.description is not None:
        out["description"] = override.description
    if override.annotations:
        own = item.get("annotations")
        out["annotations"] = {**(own if isinstance(own, dict) else {}), **override.annotations}
    return out


def build(agg: Catalog, profile: ProfileManifest | None, name: str, withhold: Withhold | None = None) -> Catalog:
    """Profile ``name``'s catalog, from ``agg`` (the catalog of ``/mcp``). ``profile`` None: the
    profile was removed (an endpoint with nothing on it for the sessions still open there)."""
    if profile is None:
        return Catalog(services=[], aggregate=True, page_size=agg.page_size)
    spec = profile.spec
    prompts_of = spec.prompts or spec.services
    resources_of = spec.resources or spec.services
    services = [s for s in agg.services
                if spec.services.admits(s.name) or prompts_of.admits(s.name) or resources_of.admits(s.name)]
    cat = Catalog(services=services, aggregate=True, intent=agg.intent, page_size=agg.page_size, profile=profile)

    def admitted(svc: CatalogService | None, public: str) -> bool:
        if svc is None or not spec.services.admits(svc.name) or not spec.tools.admits(public):
            return False
        o = spec.overrides.get(public)
        return o is None or not o.hidden

    candidates = [e for e in agg.tools if admitted(e.svc, e.item["name"])]
    # An override's name wins over a tool whose own public name it takes (that tool is not listed).
    claimed = {o.name for public, o in spec.overrides.items()
               if o.name is not None and o.name != public and any(e.item["name"] == public for e in candidates)}
    for entry in candidates:
        public = entry.item["name"]
        override = spec.overrides.get(public)
        item = shown(entry.item, override)
        name_shown = item["name"]
        if name_shown in cat.tool_map or (name_shown == public and public in claimed):
            continue
        assert entry.svc is not None
        why = withhold(profile, entry.svc, _upstream_tool(entry)) if withhold is not None else None
        cat.originals[name_shown] = public
        if why is not None:
            cat.withheld[name_shown] = why
            continue
        listed = Entry(entry.svc, entry.upstream, item)
        cat.tools.append(listed)
        cat.tool_map[name_shown] = listed
    for public, entry in agg.hidden_map.items():  # hidden by their service's policy: refused by it
        if admitted(entry.svc, public):
            override = spec.overrides.get(public)
            name_shown = override.name if override is not None and override.name else public
            if name_shown not in cat.tool_map and name_shown not in cat.withheld:
                cat.hidden_map[name_shown] = entry
                cat.originals[name_shown] = public
    for entry in agg.prompts:
        if entry.svc is not None and prompts_of.admits(entry.svc.name):
            cat.prompts.append(entry)
            cat.prompt_map[entry.item["name"]] = entry
    for svc in services:  # a URI two services offer: the first selected one in name order serves it
        if resources_of.admits(svc.name):
            add_resources(cat, svc)
    if spec.mode == "search":
        return _search_mode(cat)
    return cat


def _upstream_tool(entry: Entry) -> JSON:
    """The tool as its service lists it (from its cached interface), else as listed on /mcp."""
    iface = entry.svc.interface if entry.svc is not None else None
    for tool in (iface.tools if iface is not None else ()):
        if tool.get("name") == entry.upstream:
            return tool
    return entry.item


def _search_mode(full: Catalog) -> Catalog:
    """The catalog clients of a search-mode profile see: the three search tools; every tool of
    ``full`` is still routed by its name (a client that found one may call it directly)."""
    cat = Catalog(services=full.services, aggregate=True, intent=full.intent, page_size=full.page_size,
                  profile=full.profile, originals=full.originals, withheld=full.withheld, full=full,
                  prompts=full.prompts, prompt_map=full.prompt_map, resources=full.resources,
                  resource_map=full.resource_map, templates=full.templates, template_matchers=full.template_matchers)
    for tool in SEARCH_MODE_TOOLS:
        entry = Entry(None, tool["name"], tool)
        cat.tools.append(entry)
        cat.tool_map[tool["name"]] = entry
    cat.hidden_map = {k: v for k, v in {**full.hidden_map, **full.tool_map}.items() if k not in SEARCH_MODE_NAMES}
    return cat


# -- which tool a name means ----------------------------------------------------------------

def resolve_name(profile: ProfileManifest, name: str) -> str | None:
    """The public name on /mcp of the tool a client of ``profile`` means by ``name``, or None when
    the profile offers no tool by that name: one an override renamed is reached by its new name
    only, and a hidden tool or one outside the selections by none."""
    spec = profile.spec
    original = next((public for public, o in spec.overrides.items() if o.name == name), None)
    if original is None:
        own = spec.overrides.get(name)
        if own is not None and own.name is not None and own.name != name:
            return None  # renamed: not by its old name
        original = name
    override = spec.overrides.get(original)
    if (override is not None and override.hidden) or not spec.tools.admits(original):
        return None
    return original


# -- the search-mode tools' answers ----------------------------------------------------------

def unknown_tool(cat: Catalog, name: Any) -> JSON:
    profile = cat.profile.name if cat.profile is not None else "?"
    return tool_error(f"Unknown tool {name!r} in profile {profile!r}: call {SEARCH_TOOLS} to find this profile's "
                      f"tools by what they do, then {DESCRIBE_TOOL} for a tool's arguments.", outcome="unknown tool")


def _structured(data: JSON) -> JSON:
    return {"content": [{"type": "text", "text": json.dumps(data, ensure_ascii=False)}], "structuredContent": data}


def _index(full: Catalog, holder: Catalog) -> ToolIndex:
    if holder.search_index is None:
        holder.search_index = ToolIndex(
            ToolDoc(name, str(e.item.get("description") or ""), e.svc.name if e.svc is not None else "",
                    tuple(_param_names(e.item))) for name, e in full.tool_map.items())
    index: ToolIndex = holder.search_index
    return index


def _param_names(item: JSON) -> list[str]:
    schema = item.get("inputSchema")
    props = schema.get("properties") if isinstance(schema, dict) else None
    return [k for k in props if k != INTENT_PROPERTY] if isinstance(props, dict) else []


async def search(cat: Catalog, args: JSON) -> JSON:
    """``search_tools(query, limit)``. The index is built (the first time) and queried in a worker
    thread: over thousands of tools that takes tens of milliseconds the event loop would otherwise
    not serve anything else in."""
    query, limit = args.get("query"), args.get("limit", DEFAULT_LIMIT)
    if not isinstance(query, str) or not query.strip():
        return tool_error(f"{SEARCH_TOOLS} needs a 'query': a few words saying what the tool should do")
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        return tool_error(f"{SEARCH_TOOLS}: 'limit' must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
    full = cat.full or cat
    try:
        hits = await asyncio.to_thread(lambda: _index(full, cat).search(query, limit))
    except SearchUnavailable as e:
        return tool_error(f"{SEARCH_TOOLS} is not available on this daemon: {e}")
    found = [{"name": h.name, "description": h.description, "service": h.service} for h in hits]
    return _structured({"tools": found, "count": len(found), "of": len(full.tool_map)})


def describe(cat: Catalog, args: JSON) -> JSON:
    """``describe_tool(name)``: the tool as a full-mode profile would list it."""
    name = args.get("name")
    full = cat.full or cat
    entry = full.tool_map.get(name) if isinstance(name, str) else None
    if entry is None:
        why = full.withheld.get(name) if isinstance(name, str) else None
        return tool_error(why, outcome="withheld") if why is not None else unknown_tool(cat, name)
    return _structured({"tool": entry.item})
