"""Tool pinning: what each tool of a service looked like when it was first seen (or last approved),
and the changes made to it since.

``fingerprint`` owns the fingerprint of a tool definition and the readable diff of two definitions;
``book`` owns ``ToolPins`` (the pins of every service, kept in the store's ``pins`` collection, the
changes found when an interface arrives, the ``withheld`` predicate the gateway's catalogs are given,
and approving). Must not: serve MCP or HTTP, call upstreams, or decide lifecycle state.
"""
