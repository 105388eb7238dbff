"""Profiles: named, persisted, narrowed views of the gateway, one endpoint each (``/mcp/@NAME``).

``registry`` (``ProfileRegistry``: the profiles this daemon serves, loaded from and saved to the
state store's ``profiles`` collection, reloaded when another replica changes one, and the
listeners told of every change) and ``search`` (``ToolIndex``: the full-text index, SQLite FTS5
with BM25 ranking, that a search-mode profile's ``search_tools`` answers from). The manifest
model is ``runtimed.config.profile``'s; serving a profile (its catalog, overrides, rename
routing, the three search-mode tools) is ``runtimed.gateway``'s. Must not: import the gateway,
the HTTP layer, the supervisor, the policy engine or a backend; policies stay the services'.
"""

from runtimed.profiles.registry import ProfileRegistry as ProfileRegistry
from runtimed.profiles.search import ToolDoc as ToolDoc, ToolIndex as ToolIndex

__all__ = ["ProfileRegistry", "ToolDoc", "ToolIndex"]
