"""The MCP gateway: one Streamable HTTP endpoint for every service, both eras.

``server`` (``Gateway``: the wiring), ``transport`` (the endpoints),
``sessions`` and ``stateless`` (the two eras), ``catalog`` and ``naming``
(aggregation), ``profiles`` (a profile's endpoint ``/mcp/@NAME``: its catalog and
search mode), ``router`` (forwarding through the policy path), ``relay``
(server-to-client traffic), ``exchange`` (one request's answer), ``control``
(built-in tools), ``errors`` (exceptions into JSON-RPC errors and ``isError``
results, in one place). Its collaborators (settings, supervisor, call path,
event bus, intent recorder, profile registry) are passed to ``Gateway`` by ``runtimed.daemon``.
Must not: check access (``runtimed.http``) or enforce policies
(``runtimed.policy``). See docs/spec/gateway.md.
"""

from runtimed.gateway.server import Gateway as Gateway

__all__ = ["Gateway"]
