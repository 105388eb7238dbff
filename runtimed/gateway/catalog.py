"""What one endpoint offers: the merged, named, filtered view of services.

Owns ``Catalog`` (tools, prompts, resources and templates of a set of serving
services, with public names mapped back to (service, upstream name), resource
routing by URI, and paging with gateway cursors) and ``CatalogCache`` (one
catalog per endpoint, rebuilt only when a service's interface, manifest or
running set changes; a profile's, ``@NAME``, is derived from the aggregate one by
``gateway.profiles`` and rebuilt when either changes). Must not: call upstreams
(lists come from each service's cached interface), enforce call policies beyond
visibility, or speak HTTP.

Collision rules: services are taken in name order. Two tools (or prompts) with
the same public name: the first service keeps it, the later one gets a
hash-suffixed name (``naming.disambiguate``). Two services offering the same
resource URI: the first service in name order serves it; the other's copy is
not listed. Built-in ``runtime__*`` tools win over a service's.

Withheld tools: the catalog is given a predicate ``withheld(svc, upstream name) -> reason | None``
(``pins.ToolPins.withheld``: a tool whose definition changed since it was approved, on a service with
``pinTools``). A withheld tool is not listed; its public name is kept in ``Catalog.withheld`` with the
reason, which the router answers a call to it with (an ``isError`` result).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from runtimed.config.profile import ProfileManifest
from runtimed.errors import RpcError
from runtimed.gateway.naming import disambiguate, public_name
from runtimed.policy.service import PolicedService
from runtimed.protocol import meta
from runtimed.protocol.jsonrpc import INVALID_PARAMS, Encoded
from runtimed.protocol.types import JSON
from runtimed.records.intents import add_intent_property

PAGE_SIZE = 1000  # the default of settings.list_page_size
SERVICE_META = meta.SERVICE  # added to each tool/prompt listed on /mcp
KINDS = ("tools", "prompts", "resources", "resourceTemplates")
PROFILE_PREFIX = "@"  # a scope "@NAME" is profile NAME's endpoint, /mcp/@NAME (service names cannot start with it)


def profile_of(scope: str | None) -> str | None:
    """The profile a scope names ("@NAME" -> NAME), or None (``/mcp`` or a service's endpoint)."""
    return scope[len(PROFILE_PREFIX):] if scope is not None and scope.startswith(PROFILE_PREFIX) else None


def service_of(scope: str | None) -> str | None:
    """The service a scope names (``/mcp/<service>``), or None (``/mcp`` or a profile's endpoint)."""
    return scope if scope is not None and not scope.startswith(PROFILE_PREFIX) else None


class CatalogService(PolicedService, Protocol):
    """What the gateway reads of a serving service: what the policy engine reads, and its namespace.
    The supervisor's ``ServiceRuntime`` satisfies it structurally."""

    @property
    def namespace(self) -> str: ...


# Why a service's tool (by upstream name) is not served now, or None (``pins.ToolPins.withheld``).
Withheld = Callable[[CatalogService, str], str | None]


@dataclass
class Entry:
    svc: CatalogService | None  # None: a built-in tool
    upstream: str  # upstream name (tools, prompts) or URI / URI template
    item: JSON  # as listed to clients


@dataclass
class Catalog:
    services: list[CatalogService]
    aggregate: bool
    tools: list[Entry] = field(default_factory=list)
    prompts: list[Entry] = field(default_factory=list)
    resources: list[Entry] = field(default_factory=list)
    templates: list[Entry] = field(default_factory=list)
    tool_map: dict[str, Entry] = field(default_factory=dict)
    prompt_map: dict[str, Entry] = field(default_factory=dict)
    hidden_map: dict[str, Entry] = field(default_factory=dict)  # tools hidden by policy: never listed, still routed
    # Tools not served now, by public (or shown) name -> why (``pinTools``: changed since it was approved);
    # the router answers a call to one with the reason.
    withheld: dict[str, str] = field(default_factory=dict)
    resource_map: dict[str, Entry] = field(default_factory=dict)
    template_matchers: list[tuple[re.Pattern[str], Entry]] = field(default_factory=list)
    renamed: list[tuple[CatalogService, str, str, str]] = field(default_factory=list)  # svc, kind, upstream, public
    intent: bool = False  # service tools are listed with the optional ``_intent`` argument
    page_size: int = PAGE_SIZE
    # A profile's endpoint (``gateway.profiles``): the profile; its tools' names on /mcp by the name
    # shown (``originals``); in search mode, ``full`` is the catalog of every tool the three search
    # tools reach.
    profile: ProfileManifest | None = None
    originals: dict[str, str] = field(default_factory=dict)
    full: Catalog | None = None
    search_index: Any = field(default=None, repr=False, compare=False)  # built on the first search
    # (kind, start) -> a page at a multiple of page_size, items pre-encoded (the catalog never changes).
    _pages: dict[tuple[str, int], tuple[Encoded, str | None]] = field(default_factory=dict, repr=False, compare=False)
    # Per kind: owner -> (index of its first entry, its entry count); built on first paging.
    _owners: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict, repr=False, compare=False)

    def kind(self, kind: str) -> list[Entry]:
        return {"tools": self.tools, "prompts": self.prompts, "resources": self.resources,
                "resourceTemplates": self.templates}[kind]

    # -- paging ------------------------------------------------------------
    def page(self, kind: str, cursor: str | None) -> tuple[list[JSON], str | None]:
        """One page of at most ``page_size`` items, across services in name order.

        The cursor names the service of the next item and the position in that
        service's own list (its cursor), so paging survives other services
        starting or stopping between pages. Pages that start at a multiple of
        the page size (all of them when a client pages from the start) are kept
        with their JSON encoding (``jsonrpc.Encoded``); others are built per request.
        """
        entries = self.kind(kind)
        start = 0
        if cursor is not None:
            start = self._decode(kind, cursor, entries)
        if start >= len(entries):
            return [], None
        cacheable = start % self.page_size == 0
        if cacheable:
            hit = self._pages.get((kind, start))
            if hit is not None:
                return hit
        end = min(start + self.page_size, len(entries))
        items: list[JSON] = [e.item for e in entries[start:end]]
        nxt = None
        if end < len(entries):
            owner = _owner(entries[end])
            nxt = _encode(kind, owner, end - self._owner_index(kind)[owner][0])
        if cacheable:
            page = self._pages[(kind, start)] = (Encoded(items), nxt)
            return page
        return items, nxt

    def _owner_index(self, kind: str) -> dict[str, tuple[int, int]]:
        """Where each owner's entries start and how many there are (entries are grouped by owner)."""
        index = self._owners.get(kind)
        if index is None:
            index = {}
            for i, e in enumerate(self.kind(kind)):
                o = _owner(e)
                first, count = index.get(o, (i, 0))
                index[o] = (first, count + 1)
            self._owners[kind] = index
        return index

    def _decode(self, kind: str, cursor: str, entries: list[Entry]) -> int:
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
            k, owner, offset = raw["k"], raw["s"], int(raw["o"])
        except (ValueError, KeyError, TypeError):
            raise RpcError(INVALID_PARAMS, f"Invalid cursor {cursor[:40]!r}: not a cursor this gateway made") from None
        if k != kind:
            raise RpcError(INVALID_PARAMS, f"Invalid cursor: it belongs to a {k} list, not {kind}")
        found = self._owner_index(kind).get(owner)
        if found is None:
            # The service left since the last page: continue with the next service in order.
            owners = [_owner(e) for e in entries]
            later = [i for i, o in enumerate(owners) if o > owner]
            return later[0] if later else len(entries)
        first, count = found
        return first + min(offset, count)

    # -- routing -----------------------------------------------------------
    def route_resource(self, uri: str) -> Entry | None:
        hit = self.resource_map.get(uri)
        if hit is not None:
            return hit
        for pattern, entry in self.template_matchers:
            if pattern.fullmatch(uri):
                return entry
        return None


def _owner(e: Entry) -> str:
    # Sort key and cursor identity: the built-ins first, then services by name.
    return "" if e.svc is None else "1" + e.svc.name


def _encode(kind: str, owner: str, offset: int) -> str:
    raw = json.dumps({"k": kind, "s": owner, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def template_regex(template: str) -> re.Pattern[str]:
    """A matcher for an RFC 6570 URI template (simple and reserved expansions)."""
    out, pos = [], 0
    for m in re.finditer(r"\{([^}]*)\}", template):
        out.append(re.escape(template[pos:m.start()]))
        expr = m.group(1)
        out.append(".*" if expr[:1] in ("+", "#", "/", "?", "&", ";") or expr.endswith("*") else "[^/?#]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def build(services: list[CatalogService], aggregate: bool, builtins: list[JSON] | None = None,
          intent: bool = False, page_size: int = PAGE_SIZE, withheld: Withheld | None = None) -> Catalog:
    """``intent``: list every service tool with the optional ``_intent`` argument (intent capture).
    ``withheld``: why a tool is not served now (see the module's docstring), or None."""
    cat = Catalog(services=services, aggregate=aggregate, intent=intent, page_size=max(1, page_size))
    for tool in builtins or []:
        entry = Entry(None, tool["name"], tool)
        cat.tools.append(entry)
        cat.tool_map[tool["name"]] = entry
    held: dict[int, str] = {}  # id(tool) -> why it is withheld
    for svc in services:
        iface = svc.interface
        if iface is None:
            continue
        for tool in svc.policy.visible_tools(iface.tools):
            why = withheld(svc, tool["name"]) if withheld is not None and isinstance(tool.get("name"), str) else None
            if why is not None:
                held[id(tool)] = why
                continue
            _add_named(cat, svc, "tool", tool, cat.tools, cat.tool_map, aggregate)
        for prompt in iface.prompts:
            _add_named(cat, svc, "prompt", prompt, cat.prompts, cat.prompt_map, aggregate)
        add_resources(cat, svc)
    # Tools hidden by a policy are indexed after every listed name is settled (so hiding a tool
    # never renames another): a call to one reaches the policy engine, which answers with an
    # isError result naming the policy instead of a bare "Unknown tool".
    for svc in services:
        if svc.interface is None:
            continue
        visible = {id(t) for t in svc.policy.visible_tools(svc.interface.tools)}
        for tool in svc.interface.tools:
            if (id(tool) in visible and id(tool) not in held) or not isinstance(tool.get("name"), str):
                continue
            public = public_name(svc.namespace, tool["name"])[0] if aggregate else tool["name"]
            if public in cat.tool_map or public in cat.hidden_map or public in cat.withheld:
                public = disambiguate(public, svc.id) if aggregate else public
            if public not in cat.tool_map and public not in cat.hidden_map and public not in cat.withheld:
                if id(tool) in held:  # withheld (pinTools): the router answers a call with the reason
                    cat.withheld[public] = held[id(tool)]
                else:
                    cat.hidden_map[public] = Entry(svc, tool["name"], tool)
    return cat


def add_resources(cat: Catalog, svc: CatalogService) -> None:
    """``svc``'s resources and templates, after those of the services added before it (a URI
    another service already serves is not listed again)."""
    iface = svc.interface
    if iface is None:
        return
    for res in iface.resources:
        uri = res.get("uri")
        if not isinstance(uri, str) or uri in cat.resource_map:
            continue  # first service in name order wins
        entry = Entry(svc, uri, res)
        cat.resources.append(entry)
        cat.resource_map[uri] = entry
    for tpl in iface.resource_templates:
        t = tpl.get("uriTemplate")
        if not isinstance(t, str):
            continue
        entry = Entry(svc, t, tpl)
        cat.templates.append(entry)
        cat.template_matchers.append((template_regex(t), entry))


def _add_named(cat: Catalog, svc: CatalogService, kind: str, item: JSON, out: list[Entry],
               index: dict[str, Entry], aggregate: bool) -> None:
    upstream = item.get("name")
    if not isinstance(upstream, str):
        return
    public = upstream
    if aggregate:
        public, changed = public_name(svc.namespace, upstream)
        if public in index:
            public, changed = disambiguate(public, svc.id), True
        if changed:
            cat.renamed.append((svc, kind, upstream, public))
    elif public in index:
        return
    listed = dict(item)
    listed["name"] = public
    if cat.intent and kind == "tool":
        listed["inputSchema"] = add_intent_property(item.get("inputSchema"))
    if aggregate:
        meta = item.get("_meta")
        listed["_meta"] = {**(meta if isinstance(meta, dict) else {}), SERVICE_META: svc.name}
    entry = Entry(svc, upstream, listed)
    out.append(entry)
    index[public] = entry


# ``withhold(profile, service, upstream tool)``: why the tool is withheld from the profile, or None.
Withhold = Callable[[ProfileManifest, CatalogService, JSON], str | None]
# ``build_profile(aggregate, profile or None, name, withhold)``: a profile's catalog (``gateway.profiles.build``).
ProfileBuilder = Callable[[Catalog, ProfileManifest | None, str, Withhold | None], Catalog]


class CatalogCache:
    """One catalog per scope (None = aggregate, "@NAME" = profile NAME, else a service name).

    When ``serving`` returns the very list it returned last time (the supervisor
    caches it until a service's state, interface or manifest is set, or the set
    of services changes), the cached catalog is used as it is. Otherwise the key
    is cheap to compute on every request: per serving service the
    identities of the service, its interface and its manifest objects (the
    supervisor replaces them on any change; the service id is a function of the
    manifest), so ``tools/call`` never rebuilds name maps. The cache entry keeps
    those objects alive, so an identity in a key cannot be reused by a new object.

    A profile's catalog is keyed by the identities of the aggregate catalog it is derived from and of
    the profile's manifest (the profile registry replaces the object on any change), and the
    generation (``invalidate``: e.g. a pinned tool was approved). ``withhold`` (set by whoever
    decides it, None: nothing is withheld) may keep a tool out of a profile's catalog.
    """

    def __init__(self, serving: Callable[[], Sequence[CatalogService]], builtins: Callable[[], list[JSON]],
                 on_renamed: Callable[[Catalog], None], intent: Callable[[], bool] = lambda: False,
                 page_size: int = PAGE_SIZE,
                 profiles: Callable[[str], ProfileManifest | None] = lambda _name: None,
                 build_profile: ProfileBuilder | None = None, withheld: Withheld | None = None) -> None:
        """``withheld``: see ``build``; when what it answers changes, call ``invalidate``."""
        self._serving = serving
        self.withheld = withheld
        self.page_size = page_size
        self._builtins = builtins
        self._on_renamed = on_renamed
        self._intent = intent
        self._profiles = profiles
        self._build_profile = build_profile
        self.withhold: Withhold | None = None
        # scope -> (key, catalog, the serving() list it was checked against, (generation, intent), pinned objects)
        self._cache: dict[str | None, tuple[tuple[Any, ...], Catalog, Any, tuple[int, bool], list[Any]]] = {}
        # profile name -> (key, catalog, pinned objects)
        self._profile_cache: dict[str, tuple[tuple[Any, ...], Catalog, list[Any]]] = {}
        self.generation = 0

    def get(self, scope: str | None) -> Catalog:
        profile = profile_of(scope)
        if profile is not None:
            return self._profile(profile)
        serving = self._serving()
        intent = bool(self._intent())
        hit = self._cache.get(scope)
        # Fast path: the supervisor hands out the same list until anything listed changes.
        if hit is not None and hit[2] is serving and hit[3] == (self.generation, intent):
            return hit[1]
        services = list(serving) if scope is None else [s for s in serving if s.name == scope]
        key = (self.generation, intent, *((id(s), id(s.interface), id(s.manifest)) for s in services))
        if hit is not None and hit[0] == key:
            self._cache[scope] = (key, hit[1], serving, (self.generation, intent), hit[4])
            return hit[1]
        cat = build(services, aggregate=scope is None, builtins=self._builtins() if scope is None else None,
                    intent=intent, page_size=self.page_size, withheld=self.withheld)
        self._cache[scope] = (key, cat, serving, (self.generation, intent), [(s.interface, s.manifest) for s in services])
        if cat.renamed:
            self._on_renamed(cat)
        return cat

    def _profile(self, name: str) -> Catalog:
        """Profile ``name``'s catalog (a profile that does not exist, or no longer: an empty one)."""
        agg = self.get(None)
        manifest = self._profiles(name)
        key = (self.generation, id(agg), id(manifest), id(self.withhold))
        hit = self._profile_cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        if self._build_profile is None:
            cat = Catalog(services=[], aggregate=True, page_size=self.page_size, profile=manifest)
        else:
            cat = self._build_profile(agg, manifest, name, self.withhold)
        self._profile_cache[name] = (key, cat, [agg, manifest, self.withhold])
        return cat

    def invalidate(self, profile: str | None = None) -> None:
        """Rebuild every catalog on next use; ``profile``: only that profile's."""
        if profile is not None:
            self._profile_cache.pop(profile, None)
            return
        self.generation += 1
